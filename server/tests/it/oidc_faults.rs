//! What a real provider will not do on request: ID tokens with the wrong issuer, audience or nonce,
//! a bad signature, an expired token, and a PKCE check that fails. The faulty provider
//! ([`FaultyIdp`]) issues them on demand; the app must refuse every one. It also rotates its signing key and
//! fails its discovery on demand (SECURITY.md §6).

use crate::common::standins::{Fault, FaultyIdp};
use crate::common::*;
use app::auth::{GetCurrentUser, SignOut};

on_both_backends!(
    every_bad_id_token_and_a_failed_pkce_check_are_refused,
    a_rotated_signing_key_is_fetched_without_a_restart,
    a_failing_discovery_is_not_retried_on_every_request,
);

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

/// The provider rotates its signing key: the JWKS now serves only the new key and new ID tokens
/// name it. Sign-in goes on working without a restart (the app refetches the keys once when a
/// token names a key it does not know), and the old key is no longer trusted.
async fn a_rotated_signing_key_is_fetched_without_a_restart(backend: Backend) {
    let idp = FaultyIdp::start().await;
    let app = spawn_app_env(backend, &idp.env()).await;
    assert_eq!(sign_in_via(&app, "oidc").await, "/dashboard");
    app.call(SignOut {}).await.unwrap();
    assert_eq!(idp.discoveries(), 1, "discovery is cached");

    idp.rotate_key();
    assert_eq!(
        sign_in_via(&app, "oidc").await,
        "/dashboard",
        "a token signed with the new key"
    );
    assert!(app.call(GetCurrentUser {}).await.unwrap().is_some());
    assert_eq!(idp.discoveries(), 2, "refetched once for the new key");
    app.call(SignOut {}).await.unwrap();

    // The next sign-in uses the refreshed keys without calling out again; a forged token
    // (the retired key under the new key's id) is still refused.
    assert_eq!(sign_in_via(&app, "oidc").await, "/dashboard");
    app.call(SignOut {}).await.unwrap();
    idp.set_fault(Fault::BadSignature);
    assert_eq!(sign_in_via(&app, "oidc").await, "/signin?error=token");
    assert_eq!(idp.discoveries(), 2);
}

/// A provider whose discovery fails is asked again only after a back-off, not on every anonymous
/// request; once it recovers (after the back-off), sign-in works.
async fn a_failing_discovery_is_not_retried_on_every_request(backend: Backend) {
    let idp = FaultyIdp::start().await;
    idp.fail_discovery(true);
    let app = spawn_app_env(backend, &idp.env()).await;
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..20 {
        let res = anon.get(app.url("/auth/oidc/start")).send().await.unwrap();
        assert_eq!(location(&res), "/signin?error=provider");
    }
    assert_eq!(idp.discoveries(), 1, "one call within the back-off window");
}
