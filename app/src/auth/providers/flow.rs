//! The sign-in flow every provider shares, written once. Start: a fresh `state`, `nonce` and PKCE
//! (S256) verifier kept in the server-side session with the provider and a same-origin "return
//! to", then the provider's authorize URL. Callback: the flow is taken out of the session first
//! (a callback works once), its state, provider and age checked, the provider's error honoured,
//! the code exchanged by the provider for an identity, the user found or created, the tokens
//! stored encrypted, the provider's post-sign-in step run and the session started.

use super::{Authorize, Callback, Provider, ProviderError, ProviderId, Providers};
use crate::auth::{service, store, UserId};
use crate::infra::crypto::TokenSlot;
use crate::infra::{db::Db, now_ms};
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use serde::{Deserialize, Serialize};
use tower_sessions::{Expiry, Session};
use url::Url;

const FLOW_KEY: &str = "oauth_flow";
/// A sign-in must be completed within this time.
const FLOW_TTL_MS: i64 = 10 * 60 * 1000;

/// What the session holds between leaving for the provider and coming back.
#[derive(Serialize, Deserialize)]
struct Flow {
    provider: ProviderId,
    state: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
    started_at: i64,
}

/// The query the provider sends the browser back with.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

impl Providers {
    /// Begins a sign-in with the provider `segment` names: remembers the flow in the session and
    /// returns the provider URL to send the browser to.
    pub async fn start(
        &self,
        session: &Session,
        segment: &str,
        return_to: Option<&str>,
    ) -> Result<Url, ProviderError> {
        self.start_flow(session, segment, return_to)
            .await
            .inspect_err(|e| e.log(segment))
    }

    /// Completes a sign-in and starts the user's session. Returns where to send them.
    pub async fn callback(
        &self,
        db: &Db,
        session: &Session,
        segment: &str,
        query: &CallbackQuery,
    ) -> Result<String, ProviderError> {
        let done = self.complete_flow(db, session, segment, query).await;
        if let Err(e) = &done {
            e.log(segment);
            // The flow is spent; an anonymous session has nothing else to keep.
            if !service::is_signed_in(session).await {
                if let Err(e) = session.flush().await {
                    tracing::warn!(error = %e, "could not delete a spent sign-in session");
                }
            }
        }
        done
    }

    async fn start_flow(
        &self,
        session: &Session,
        segment: &str,
        return_to: Option<&str>,
    ) -> Result<Url, ProviderError> {
        let provider = self.find(segment)?;
        let (pkce, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = CsrfToken::new_random();
        let nonce = Nonce::new_random();
        let flow = Flow {
            provider: provider.id(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to
                .and_then(safe_return_to)
                .unwrap_or_else(|| "/dashboard".into()),
            started_at: now_ms(),
        };
        let url = provider
            .authorize_url(&self.http, Authorize { state, nonce, pkce })
            .await?;
        session
            .insert(FLOW_KEY, flow)
            .await
            .map_err(|e| ProviderError::internal("save the sign-in flow", &e))?;
        // A session that holds only a pending sign-in lives as long as the flow, not the two
        // weeks of a signed-in one: anonymous starts must not pile up rows. (The expiry is not
        // stored with the session: the next request that saves it — the sign-in — is back on the
        // configured idle expiry.)
        if !service::is_signed_in(session).await {
            session.set_expiry(Some(Expiry::OnInactivity(
                tower_sessions::cookie::time::Duration::milliseconds(FLOW_TTL_MS),
            )));
        }
        Ok(url)
    }

    async fn complete_flow(
        &self,
        db: &Db,
        session: &Session,
        segment: &str,
        query: &CallbackQuery,
    ) -> Result<String, ProviderError> {
        // The flow leaves the session before anything is checked: whatever happens next, this
        // callback cannot be used again.
        let flow: Option<Flow> = session
            .remove(FLOW_KEY)
            .await
            .map_err(|e| ProviderError::internal("read the sign-in flow", &e))?;
        let Some(flow) = flow else {
            return Err(ProviderError::State);
        };
        let state_ok = query
            .state
            .as_deref()
            .is_some_and(|s| constant_time_eq(s.as_bytes(), flow.state.as_bytes()));
        let provider: &Provider = match self.find(segment) {
            Ok(p) if state_ok && p.id() == flow.provider => p,
            _ => return Err(ProviderError::State),
        };
        if now_ms() - flow.started_at > FLOW_TTL_MS {
            return Err(ProviderError::State);
        }
        if let Some(err) = &query.error {
            return Err(ProviderError::Denied(err.chars().take(100).collect()));
        }
        let code = query
            .code
            .clone()
            .ok_or_else(|| ProviderError::Denied("no code".into()))?;
        let identity = provider
            .identity(
                &self.http,
                Callback {
                    code,
                    pkce_verifier: flow.pkce_verifier,
                    nonce: flow.nonce,
                },
            )
            .await?;

        let id = provider.id();
        let user = store::upsert_identity(db, id.as_str(), &identity.subject, &identity.name)
            .await
            .map_err(|e| ProviderError::internal("save the identity", &e))?;
        let cipher = self.cipher()?;
        let subject = identity.subject.as_str();
        let record = store::SignInRecord {
            access_token_enc: cipher.encrypt(
                &identity.access_token,
                &TokenSlot::access(id.as_str(), subject),
            ),
            refresh_token_enc: identity
                .refresh_token
                .as_deref()
                .map(|r| cipher.encrypt(r, &TokenSlot::refresh(id.as_str(), subject))),
            token_expires_at: identity.expires_in.map(|d| now_ms() + d.as_millis() as i64),
            scopes: identity.scopes.as_deref(),
            email: identity.email.as_deref(),
        };
        store::record_sign_in(db, id, &identity.subject, &record)
            .await
            .map_err(|e| ProviderError::internal("store provider tokens", &e))?;
        let user_id = UserId(user.id);
        provider
            .after_sign_in(self, db, &user_id, identity.scopes.as_deref())
            .await;
        // The cause is logged by `start_session`.
        service::start_session(session, &user_id.0)
            .await
            .map_err(|e| ProviderError::Internal(format!("start the session: {e}")))?;
        tracing::info!(provider = %id, user_id = %user_id.0, "signed in");
        Ok(flow.return_to)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A "return to" target is accepted only as a same-origin relative path: one leading `/`, not
/// `//` or `/\` (which browsers treat as another host), no control characters, bounded length.
pub fn safe_return_to(target: &str) -> Option<String> {
    let ok = target.starts_with('/')
        && !target.starts_with("//")
        && !target.starts_with("/\\")
        && target.len() <= 512
        && !target.chars().any(|c| c.is_control() || c == '\\');
    ok.then(|| target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn return_to_accepts_only_local_paths() {
        assert_eq!(
            safe_return_to("/characters/new").as_deref(),
            Some("/characters/new")
        );
        assert_eq!(
            safe_return_to("/dashboard?x=1#y").as_deref(),
            Some("/dashboard?x=1#y")
        );
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "",
            "/a\nb",
            "/a\\b",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn provider_ids_parse_from_their_url_segment_only() {
        for id in ProviderId::ALL {
            assert_eq!(id.as_str().parse::<ProviderId>().unwrap(), id);
            assert_eq!(
                serde_json::to_value(id).unwrap(),
                serde_json::json!(id.as_str())
            );
        }
        for bad in ["", "nope", "GitHub", "local", "oidc/"] {
            assert!(matches!(
                bad.parse::<ProviderId>(),
                Err(ProviderError::UnknownProvider)
            ));
        }
    }

    proptest! {
        #[test]
        fn accepted_targets_never_leave_the_origin(s in "\\PC{0,40}") {
            if let Some(t) = safe_return_to(&s) {
                // Resolved against our origin, the target stays on it.
                prop_assert!(t.starts_with('/') && !t.starts_with("//"));
                prop_assert!(!t.contains('\\'));
            }
        }
    }
}
