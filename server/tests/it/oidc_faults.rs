//! What a real provider will not do on request: ID tokens with the wrong issuer, audience or nonce,
//! a bad signature, an expired token, and a PKCE check that fails. The faulty provider
//! ([`FaultyIdp`]) issues them on demand; the app must refuse every one.

use crate::common::standins::{Fault, FaultyIdp};
use crate::common::*;
use app::auth::{GetCurrentUser, SignOut};

on_both_backends!(every_bad_id_token_and_a_failed_pkce_check_are_refused);

async fn every_bad_id_token_and_a_failed_pkce_check_are_refused(backend: Backend) {
    let idp = FaultyIdp::start().await;
    let app = spawn_app_env(backend, &idp.env()).await;

    // The honest token signs the user in: the app's PKCE verifier matched the challenge.
    assert_eq!(sign_in_via(&app, "oidc").await, "/dashboard");
    assert!(app.call(GetCurrentUser {}).await.unwrap().is_some());
    app.call(SignOut {}).await.unwrap();

    for (fault, error) in [
        (Fault::WrongIssuer, "/signin?error=token"),
        (Fault::WrongAudience, "/signin?error=token"),
        (Fault::WrongNonce, "/signin?error=token"),
        (Fault::BadSignature, "/signin?error=token"),
        (Fault::Expired, "/signin?error=token"),
        (Fault::PkceMismatch, "/signin?error=provider"),
        (Fault::RedirectedToken, "/signin?error=provider"),
    ] {
        idp.set_fault(fault);
        assert_eq!(sign_in_via(&app, "oidc").await, error, "{fault:?}");
        assert_eq!(
            app.call(GetCurrentUser {}).await,
            Ok(None),
            "{fault:?} must not sign anyone in"
        );
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM oauth_identities WHERE provider = 'oidc'"
        )
        .await,
        1,
        "only the honest sign-in made an identity"
    );
}
