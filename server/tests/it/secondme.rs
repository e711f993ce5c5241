//! Sign-in with SecondMe against the SecondMe stand-in ([`SecondMe`]), which answers like
//! SecondMe: every response wrapped as `{code: 0, data: …}`, short-lived access tokens, a refresh
//! grant, and Shades.

use crate::common::standins::{secondme, SecondMe};
use crate::common::*;
use app::auth::{GetCurrentUser, GetSignInOptions};
use serde_json::json;
use std::sync::Arc;

async fn app_with_secondme(backend: Backend, secret: &str) -> (TestApp, Arc<SecondMe>) {
    let sm = SecondMe::start().await;
    let app = spawn_app_env(backend, &sm.env(secret)).await;
    (app, sm)
}

async fn shade_names(app: &TestApp) -> Vec<(String, String, f64)> {
    app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT name, icon, confidence FROM shades ORDER BY position").fetch_all(pool).await.unwrap()
    })
}

on_both_backends!(
    signing_in_imports_shades_and_tokens_are_refreshed_when_expired,
    a_wrapped_error_signs_nobody_in,
    a_user_without_an_id_is_refused,
    tokens_copied_to_another_identity_do_not_decrypt,
    a_sync_replaces_secondme_shades_and_keeps_the_users_own,
);

/// The twin page's "Sync from SecondMe": Shades from SecondMe are marked so and replaced by a
/// sync; a Shade the user wrote, and their edits to the twin, are kept.
async fn a_sync_replaces_secondme_shades_and_keeps_the_users_own(backend: Backend) {
    use app::domain::{ShadeDraft, ShadeSource};
    use app::twins::{GetTwin, SaveTwin, SyncSecondmeShades};
    let (app, sm) = app_with_secondme(backend, secondme::CLIENT_SECRET).await;
    assert_eq!(sign_in_via(&app, "secondme").await, "/dashboard");
    let view = app.call(GetTwin {}).await.unwrap();
    assert!(view.exists && view.secondme);
    assert_eq!(view.draft.name, "Lin Wei");
    assert_eq!(view.draft.shades.len(), 2);
    assert!(view
        .draft
        .shades
        .iter()
        .all(|s| s.source == ShadeSource::Secondme));

    let mut draft = view.draft.clone();
    draft.bio = "Runs at dawn, codes at night.".into();
    draft.shades.insert(
        0,
        ShadeDraft {
            name: "Tea person".into(),
            icon: "🍵".into(),
            description: "You make tea for everyone.".into(),
            ..ShadeDraft::default()
        },
    );
    app.call(SaveTwin { twin: draft }).await.unwrap();

    // SecondMe now has three Shades (its stand-in adds one after a refresh).
    app::with_pool!(&app.db, pool => {
        sqlx::query("UPDATE oauth_identities SET token_expires_at = 0 WHERE provider = 'secondme'")
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap()
    });
    let synced = app.call(SyncSecondmeShades {}).await.unwrap();
    assert_eq!(sm.refreshes(), 1);
    let shades = &synced.draft.shades;
    assert_eq!(shades.len(), 4, "{shades:?}");
    assert_eq!(shades[0].name, "Tea person");
    assert_eq!(shades[0].source, ShadeSource::User);
    assert!(shades[1..]
        .iter()
        .all(|s| s.source == ShadeSource::Secondme));
    assert_eq!(synced.draft.bio, "Runs at dawn, codes at night.");

    // A user who did not sign in with SecondMe gets a sentence and a 4xx, not a fault.
    let other = app.another_browser();
    other.sign_in_local().await;
    assert!(!other.call(GetTwin {}).await.unwrap().secondme);
    let err = other.call(SyncSecondmeShades {}).await.unwrap_err();
    assert!(
        matches!(&err, app::error::AppError::BadRequest(m) if m.contains("Sign in with SecondMe first")),
        "{err:?}"
    );
}

async fn signing_in_imports_shades_and_tokens_are_refreshed_when_expired(backend: Backend) {
    let (app, sm) = app_with_secondme(backend, secondme::CLIENT_SECRET).await;
    let options = app.call(GetSignInOptions {}).await.unwrap();
    assert_eq!(
        options.providers,
        vec![("secondme".to_string(), "SecondMe".to_string())]
    );

    assert_eq!(sign_in_via(&app, "secondme").await, "/dashboard");
    let me = app.call(GetCurrentUser {}).await.unwrap().unwrap();
    assert_eq!(me.display_name, "Lin Wei");
    assert_eq!(
        shade_names(&app).await,
        vec![
            ("Night Owl".to_string(), "🦉".to_string(), 0.9),
            ("Trail Runner".to_string(), "🏃".to_string(), 0.55)
        ]
    );
    let (subject, scopes): (String, Option<String>) = app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT subject, scopes FROM oauth_identities WHERE provider = 'secondme'").fetch_one(pool).await.unwrap()
    });
    assert_eq!(subject, "90210");
    assert_eq!(scopes.as_deref(), Some("user.info user.info.shades chat"));

    // While the token is valid, no refresh.
    let me = app::auth::UserId(me.id);
    assert_eq!(import_shades(&app, &me).await, 2);
    assert_eq!(sm.refreshes(), 0);

    // Expired: refreshed once, the new token used, the new token stored encrypted.
    app::with_pool!(&app.db, pool => {
        sqlx::query("UPDATE oauth_identities SET token_expires_at = 0 WHERE provider = 'secondme'")
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap()
    });
    assert_eq!(import_shades(&app, &me).await, 3);
    assert_eq!(sm.refreshes(), 1);
    assert_eq!(shade_names(&app).await.len(), 3);
    assert_eq!(import_shades(&app, &me).await, 3);
    assert_eq!(sm.refreshes(), 1, "the refreshed token is kept and reused");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM twins").await, 1);
}

async fn a_wrapped_error_signs_nobody_in(backend: Backend) {
    let (app, _sm) = app_with_secondme(backend, "wrong-secret").await;
    assert_eq!(
        sign_in_via(&app, "secondme").await,
        "/signin?error=provider"
    );
    let (app, sm) = app_with_secondme(backend, secondme::CLIENT_SECRET).await;
    sm.fail_user_info();
    assert_eq!(
        sign_in_via(&app, "secondme").await,
        "/signin?error=provider"
    );
    assert_eq!(app.call(GetCurrentUser {}).await, Ok(None));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
}

/// Imports the user's Shades again, through the providers the server built.
async fn import_shades(app: &TestApp, user: &app::auth::UserId) -> usize {
    let providers = &app.state.as_ref().expect("the server's state").providers;
    app::twins::service::import_secondme_shades(providers, &app.db, user)
        .await
        .unwrap()
}

/// SecondMe users whose id is missing, `null` or empty would all share one account (subject
/// `"null"`, …): such a sign-in is refused (SECURITY.md §10).
async fn a_user_without_an_id_is_refused(backend: Backend) {
    let (app, sm) = app_with_secondme(backend, "sm-secret").await;
    for id in [
        None,
        Some(serde_json::Value::Null),
        Some(json!("")),
        Some(json!("  ")),
        Some(json!({})),
        Some(json!(true)),
    ] {
        sm.set_user_id(id.clone());
        assert_eq!(
            sign_in_via(&app, "secondme").await,
            "/signin?error=provider",
            "{id:?}"
        );
        assert_eq!(app.call(GetCurrentUser {}).await, Ok(None), "{id:?}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
    // A real id still signs in.
    sm.set_user_id(Some(json!("u-1")));
    assert_eq!(sign_in_via(&app, "secondme").await, "/dashboard");
}

type EncTokens = (Option<Vec<u8>>, Option<Vec<u8>>);

async fn enc_tokens(app: &TestApp, subject: &str) -> EncTokens {
    app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT access_token_enc, refresh_token_enc FROM oauth_identities WHERE provider = 'secondme' AND subject = $1")
            .bind(subject).fetch_one(pool).await.unwrap()
    })
}

async fn set_enc_tokens(app: &TestApp, subject: &str, (access, refresh): &EncTokens) {
    app::with_pool!(&app.db, pool => {
        sqlx::query("UPDATE oauth_identities SET access_token_enc = $1, refresh_token_enc = $2 WHERE provider = 'secondme' AND subject = $3")
            .bind(access).bind(refresh).bind(subject).execute(pool).await.map(|_| ()).unwrap()
    })
}

/// Encrypted tokens are bound to their row (provider, subject, which token): ciphertexts copied
/// from one identity to another do not decrypt there, so the read and refresh path refuses them
/// rather than act with someone else's token (SECURITY.md §10).
async fn tokens_copied_to_another_identity_do_not_decrypt(backend: Backend) {
    let (app, sm) = app_with_secondme(backend, "sm-secret").await;
    sm.set_user_id(Some(json!(1)));
    assert_eq!(sign_in_via(&app, "secondme").await, "/dashboard");
    let bob = app.another_browser();
    sm.set_user_id(Some(json!(2)));
    assert_eq!(sign_in_via(&bob, "secondme").await, "/dashboard");
    let bob_id = bob.call(GetCurrentUser {}).await.unwrap().unwrap();
    let bob_id = app::auth::UserId(bob_id.id);
    let providers = &app.state.as_ref().expect("the server's state").providers;
    let import = || app::twins::service::import_secondme_shades(providers, &app.db, &bob_id);
    assert!(import().await.is_ok(), "Bob's own tokens work");

    let alices = enc_tokens(&app, "1").await;
    let bobs = enc_tokens(&app, "2").await;
    assert!(alices.0.is_some() && alices.1.is_some());
    set_enc_tokens(&app, "2", &alices).await;
    assert!(
        import().await.is_err(),
        "Alice's tokens in Bob's row must not decrypt"
    );
    // The access token alone, too: it is not used, and the refresh token cannot stand in.
    set_enc_tokens(&app, "2", &(alices.0.clone(), bobs.1.clone())).await;
    let refreshes = sm.refreshes();
    assert!(import().await.is_ok());
    assert_eq!(
        sm.refreshes(),
        refreshes + 1,
        "the copied access token was refused, so Bob's own refresh token was used"
    );
    // An access token in the refresh token's place does not decrypt either.
    set_enc_tokens(&app, "2", &(None, bobs.0.clone())).await;
    assert!(import().await.is_err());
}
