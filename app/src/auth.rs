//! Who is signed in. The local sign-in of the embedded default lives here; OAuth providers plug in
//! beside it (the sign-in page lists whatever [`sign_in_options`] returns).

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The signed-in user as the browser sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: String,
    pub display_name: String,
}

/// What the sign-in page offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInOptions {
    /// "Continue as local user": only while the server listens on loopback.
    pub local: bool,
    /// (id, label) of each configured provider; its button goes to `/auth/{id}/start`.
    pub providers: Vec<(String, String)>,
}

#[server(endpoint = "auth/me")]
pub async fn get_current_user() -> Result<Option<CurrentUser>, AppError> {
    ssr::current_user().await
}

#[server(endpoint = "auth/options")]
pub async fn get_sign_in_options() -> Result<SignInOptions, AppError> {
    let state = crate::infra::AppState::get();
    Ok(SignInOptions {
        local: state.config.local_sign_in_allowed(),
        providers: state.oauth.buttons(),
    })
}

#[server(endpoint = "auth/local")]
pub async fn local_sign_in() -> Result<(), AppError> {
    ssr::local_sign_in().await
}

#[server(endpoint = "auth/signout")]
pub async fn sign_out() -> Result<(), AppError> {
    ssr::sign_out().await
}

/// The auth context: the current user, refetched after sign-in or sign-out.
#[derive(Clone, Copy)]
pub struct Auth {
    pub user: Resource<Result<Option<CurrentUser>, AppError>>,
    pub local_sign_in: ServerAction<LocalSignIn>,
    pub sign_out: ServerAction<SignOut>,
}

pub fn provide_auth() {
    let local_sign_in = ServerAction::<LocalSignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let user = Resource::new(
        move || (local_sign_in.version().get(), sign_out.version().get()),
        |_| get_current_user(),
    );
    provide_context(Auth {
        user,
        local_sign_in,
        sign_out,
    });
}

pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

/// The words for a `/signin?error=CODE` left by a failed provider sign-in.
pub fn flow_error_message(code: &str) -> &'static str {
    match code {
        "unknown_provider" => "That sign-in method is not available.",
        "state" => "The sign-in expired or did not start here. Please try again.",
        "denied" => "Sign-in was cancelled at the provider.",
        "provider" => "The sign-in provider could not be reached. Please try again later.",
        "token" => "The sign-in provider's answer could not be verified.",
        _ => "Sign-in failed. Please try again.",
    }
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::error::OrInternal;
    use crate::infra::{db::Db, new_id, now_ms, AppState};
    use crate::with_pool;
    use tower_sessions::Session;

    const USER_KEY: &str = "user_id";
    const SIGNED_IN_AT: &str = "signed_in_at";

    /// The id of the signed-in user; the type every owner-scoped query takes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct UserId(pub String);

    async fn session() -> Result<Session, AppError> {
        leptos_axum::extract::<Session>()
            .await
            .or_internal("session layer missing")
    }

    /// The one way to get the current user: every server function that touches user data calls it
    /// first and returns early when it fails.
    pub async fn require_user() -> Result<UserId, AppError> {
        let session = session().await?;
        let Some(id) = session_user_id(&session).await? else {
            return Err(AppError::Unauthorized);
        };
        let state = AppState::get();
        match find_user(&state.db, &id).await {
            Ok(Some(_)) => Ok(UserId(id)),
            Ok(None) => Err(AppError::Unauthorized),
            Err(e) => Err(AppError::internal("load user", e)),
        }
    }

    /// The user id in the session, if its sign-in has not outlived the absolute session lifetime
    /// (`SESSION_MAX_AGE_SECS`; the idle limit is the session's expiry on inactivity).
    async fn session_user_id(session: &Session) -> Result<Option<String>, AppError> {
        let id: Option<String> = session.get(USER_KEY).await.or_internal("session read")?;
        let Some(id) = id else { return Ok(None) };
        let at: Option<i64> = session
            .get(SIGNED_IN_AT)
            .await
            .or_internal("session read")?;
        let max_age = AppState::get().config.session_max_age.as_millis() as i64;
        if at.is_none_or(|at| now_ms() - at > max_age) {
            session.flush().await.or_internal("session flush")?;
            return Ok(None);
        }
        Ok(Some(id))
    }

    pub async fn current_user() -> Result<Option<CurrentUser>, AppError> {
        let session = session().await?;
        let Some(id) = session_user_id(&session).await? else {
            return Ok(None);
        };
        find_user(&AppState::get().db, &id)
            .await
            .or_internal("load user")
    }

    pub async fn local_sign_in() -> Result<(), AppError> {
        let state = AppState::get();
        if !state.config.local_sign_in_allowed() {
            return Err(AppError::Forbidden(
                "Local sign-in is only available while the server listens on loopback.".into(),
            ));
        }
        let user = upsert_identity(&state.db, "local", "local", "Local user")
            .await
            .or_internal("local sign-in")?;
        sign_in_as(&user.id).await?;
        tracing::info!(user_id = %user.id, "signed in (local)");
        leptos_axum::redirect("/dashboard");
        Ok(())
    }

    /// Starts a session for `user_id` in the current server function's session.
    pub async fn sign_in_as(user_id: &str) -> Result<(), AppError> {
        start_session(&session().await?, user_id).await
    }

    /// Signs `user_id` in: a new session id (no fixation), the user, and the time of sign-in.
    pub async fn start_session(session: &Session, user_id: &str) -> Result<(), AppError> {
        session.cycle_id().await.or_internal("session cycle")?;
        session
            .insert(USER_KEY, user_id)
            .await
            .or_internal("session write")?;
        session
            .insert(SIGNED_IN_AT, now_ms())
            .await
            .or_internal("session write")
    }

    pub async fn sign_out() -> Result<(), AppError> {
        let session = session().await?;
        session.flush().await.or_internal("session flush")?;
        leptos_axum::redirect("/");
        Ok(())
    }

    async fn find_identity(
        db: &Db,
        provider: &str,
        subject: &str,
    ) -> Result<Option<CurrentUser>, sqlx::Error> {
        let existing: Option<(String,)> = with_pool!(db, pool => {
            sqlx::query_as("SELECT user_id FROM oauth_identities WHERE provider = $1 AND subject = $2")
                .bind(provider)
                .bind(subject)
                .fetch_optional(pool)
                .await?
        });
        match existing {
            Some((id,)) => find_user(db, &id).await,
            None => Ok(None),
        }
    }

    #[derive(sqlx::FromRow)]
    struct UserRow {
        id: String,
        display_name: String,
    }

    pub async fn find_user(db: &Db, id: &str) -> Result<Option<CurrentUser>, sqlx::Error> {
        let row: Option<UserRow> = with_pool!(db, pool => {
            sqlx::query_as("SELECT id, display_name FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|r| CurrentUser {
            id: r.id,
            display_name: r.display_name,
        }))
    }

    /// Finds the user signed in through (`provider`, `subject`), creating them on first sign-in.
    /// Two first sign-ins at once both end with the one user: the loser of the insert race finds
    /// the winner's row.
    pub async fn upsert_identity(
        db: &Db,
        provider: &str,
        subject: &str,
        display_name: &str,
    ) -> Result<CurrentUser, sqlx::Error> {
        if let Some(u) = find_identity(db, provider, subject).await? {
            return Ok(u);
        }
        let id = new_id();
        let now = now_ms();
        let created: Result<(), sqlx::Error> = with_pool!(db, pool => {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query("INSERT INTO users (id, display_name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                    .bind(&id)
                    .bind(display_name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO oauth_identities (provider, subject, user_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(provider)
                .bind(subject)
                .bind(&id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
            .await
        });
        match created {
            Ok(()) => {}
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                if let Some(u) = find_identity(db, provider, subject).await? {
                    return Ok(u);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        Ok(CurrentUser {
            id,
            display_name: display_name.to_string(),
        })
    }
}
