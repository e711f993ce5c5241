//! What a real provider will not do on request: ID tokens with the wrong issuer, audience or nonce,
//! a bad signature, an expired token, and a PKCE check that fails. A small provider on loopback
//! (discovery, JWKS, authorize, token — RS256-signed ID tokens, PKCE S256 checked, codes single
//! use) issues them on demand; the app must refuse every one. It also rotates its signing key and
//! fails its discovery on demand (SECURITY.md §6).

use crate::common::*;
use axum::{
    extract::{Query, State},
    response::{IntoResponse, Redirect},
    routing::{get, post},
    Form, Json, Router,
};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreIdTokenFields, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreResponseType, CoreRsaPrivateSigningKey, CoreSubjectIdentifierType,
    CoreTokenResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, Audience, AuthUrl, EmptyAdditionalClaims, EmptyAdditionalProviderMetadata,
    EmptyExtraTokenFields, IssuerUrl, JsonWebKeyId, JsonWebKeySetUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, PrivateSigningKey, ResponseTypes, StandardClaims, SubjectIdentifier,
    TokenUrl,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    WrongIssuer,
    WrongAudience,
    WrongNonce,
    BadSignature,
    Expired,
    PkceMismatch,
    /// The token endpoint answers with a redirect (which must not be followed).
    RedirectedToken,
}

struct Idp {
    issuer: String,
    fault: Mutex<Fault>,
    /// The signing key in use (0 or 1); the JWKS serves only it, under the id `key-{n}`.
    key: Mutex<usize>,
    /// Discovery requests received, and whether discovery answers 500.
    discoveries: std::sync::atomic::AtomicUsize,
    discovery_fails: Mutex<bool>,
    /// code -> (code_challenge, nonce)
    codes: Mutex<HashMap<String, (String, String)>>,
}

fn pem(which: usize) -> &'static str {
    static KEYS: OnceLock<[String; 2]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let make = || {
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
                .to_string()
        };
        [make(), make()]
    });
    &keys[which]
}

/// Key `which`, labelled with the id of key `kid`.
fn signing_key(which: usize, kid: usize) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem(which), Some(JsonWebKeyId::new(format!("key-{kid}"))))
        .unwrap()
}

async fn discovery(State(idp): State<Arc<Idp>>) -> axum::response::Response {
    idp.discoveries
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if *idp.discovery_fails.lock().unwrap() {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let i = &idp.issuer;
    let meta = CoreProviderMetadata::new(
        IssuerUrl::new(i.clone()).unwrap(),
        AuthUrl::new(format!("{i}/authorize")).unwrap(),
        JsonWebKeySetUrl::new(format!("{i}/jwks")).unwrap(),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        EmptyAdditionalProviderMetadata {},
    )
    .set_token_endpoint(Some(TokenUrl::new(format!("{i}/token")).unwrap()));
    Json(meta).into_response()
}

async fn jwks(State(idp): State<Arc<Idp>>) -> impl IntoResponse {
    let key = *idp.key.lock().unwrap();
    Json(CoreJsonWebKeySet::new(vec![
        signing_key(key, key).as_verification_key()
    ]))
}

/// Signs the user in at once and sends the browser back with a code.
async fn authorize(
    State(idp): State<Arc<Idp>>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    idp.codes.lock().unwrap().insert(
        code.clone(),
        (
            q["code_challenge"].clone(),
            q.get("nonce").cloned().unwrap_or_default(),
        ),
    );
    assert_eq!(q["code_challenge_method"], "S256");
    Redirect::to(&format!(
        "{}?code={code}&state={}",
        q["redirect_uri"], q["state"]
    ))
}

async fn token(
    State(idp): State<Arc<Idp>>,
    Form(f): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let bad = |e: &str| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": e})),
        )
            .into_response()
    };
    // A redirect to this same endpoint, after which it answers honestly: a client that followed
    // it would sign in.
    if *idp.fault.lock().unwrap() == Fault::RedirectedToken {
        *idp.fault.lock().unwrap() = Fault::None;
        return Redirect::temporary(&format!("{}/token", idp.issuer)).into_response();
    }
    // Single use: the code is gone after this.
    let Some((challenge, nonce)) = idp.codes.lock().unwrap().remove(&f["code"]) else {
        return bad("invalid_grant");
    };
    let fault = *idp.fault.lock().unwrap();
    let verifier = PkceCodeVerifier::new(f.get("code_verifier").cloned().unwrap_or_default());
    let computed = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    if computed.as_str() != challenge || fault == Fault::PkceMismatch {
        return bad("invalid_grant");
    }
    let now = chrono::Utc::now();
    let issuer = if fault == Fault::WrongIssuer {
        "http://127.0.0.1:1"
    } else {
        &idp.issuer
    };
    let audience = if fault == Fault::WrongAudience {
        "someone-else"
    } else {
        "personaflux"
    };
    let (iat, exp) = if fault == Fault::Expired {
        (
            now - chrono::Duration::hours(2),
            now - chrono::Duration::hours(1),
        )
    } else {
        (now, now + chrono::Duration::minutes(5))
    };
    let nonce = if fault == Fault::WrongNonce {
        "another-nonce".into()
    } else {
        nonce
    };
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(issuer.to_string()).unwrap(),
        vec![Audience::new(audience.into())],
        exp,
        iat,
        StandardClaims::new(SubjectIdentifier::new("mallory".into())),
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce)));
    // A bad signature: the other key's signature under this key's id.
    let current = *idp.key.lock().unwrap();
    let key = if fault == Fault::BadSignature {
        signing_key(1 - current, current)
    } else {
        signing_key(current, current)
    };
    let access = AccessToken::new("at-123".into());
    let id_token = CoreIdToken::new(
        claims,
        &key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some(&access),
        None,
    )
    .unwrap();
    let res = CoreTokenResponse::new(
        access,
        CoreTokenType::Bearer,
        CoreIdTokenFields::new(Some(id_token), EmptyExtraTokenFields {}),
    );
    Json(res).into_response()
}

async fn start_idp() -> Arc<Idp> {
    // RSA key generation is slow in a debug build: do it up front, off the async threads.
    tokio::task::spawn_blocking(|| {
        pem(0);
        pem(1);
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let idp = Arc::new(Idp {
        issuer,
        fault: Mutex::new(Fault::None),
        key: Mutex::new(0),
        discoveries: Default::default(),
        discovery_fails: Mutex::new(false),
        codes: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(idp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    idp
}

on_both_backends!(
    every_bad_id_token_and_a_failed_pkce_check_are_refused,
    a_rotated_signing_key_is_fetched_without_a_restart,
    a_failing_discovery_is_not_retried_on_every_request,
);

async fn app_with(backend: Backend, idp: &Idp) -> TestApp {
    spawn_app_with(
        backend,
        &[
            ("OIDC_ISSUER", idp.issuer.as_str()),
            ("OIDC_CLIENT_ID", "personaflux"),
            ("OIDC_CLIENT_SECRET", "secret"),
        ],
        |_| {},
    )
    .await
}

async fn every_bad_id_token_and_a_failed_pkce_check_are_refused(backend: Backend) {
    let idp = start_idp().await;
    let app = app_with(backend, &idp).await;

    // The honest token signs the user in: the app's PKCE verifier matched the challenge.
    assert_eq!(sign_in_via(&app, "oidc").await, "/dashboard");
    let me: Option<app::auth::CurrentUser> =
        result(app.call_form("auth/me", &[]).await).await.unwrap();
    assert!(me.is_some());
    app.call_form("auth/signout", &[]).await;

    for (fault, error) in [
        (Fault::WrongIssuer, "/signin?error=token"),
        (Fault::WrongAudience, "/signin?error=token"),
        (Fault::WrongNonce, "/signin?error=token"),
        (Fault::BadSignature, "/signin?error=token"),
        (Fault::Expired, "/signin?error=token"),
        (Fault::PkceMismatch, "/signin?error=provider"),
        (Fault::RedirectedToken, "/signin?error=provider"),
    ] {
        *idp.fault.lock().unwrap() = fault;
        assert_eq!(sign_in_via(&app, "oidc").await, error, "{fault:?}");
        let me: Option<app::auth::CurrentUser> =
            result(app.call_form("auth/me", &[]).await).await.unwrap();
        assert_eq!(me, None, "{fault:?} must not sign anyone in");
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

fn discoveries(idp: &Idp) -> usize {
    idp.discoveries.load(std::sync::atomic::Ordering::SeqCst)
}

/// The provider rotates its signing key: the JWKS now serves only the new key and new ID tokens
/// name it. Sign-in goes on working without a restart (the app refetches the keys once when a
/// token names a key it does not know), and the old key is no longer trusted.
async fn a_rotated_signing_key_is_fetched_without_a_restart(backend: Backend) {
    let idp = start_idp().await;
    let app = app_with(backend, &idp).await;
    assert_eq!(sign_in_via(&app, "oidc").await, "/dashboard");
    app.call_form("auth/signout", &[]).await;
    assert_eq!(discoveries(&idp), 1, "discovery is cached");

    *idp.key.lock().unwrap() = 1;
    assert_eq!(
        sign_in_via(&app, "oidc").await,
        "/dashboard",
        "a token signed with the new key"
    );
    let me: Option<app::auth::CurrentUser> =
        result(app.call_form("auth/me", &[]).await).await.unwrap();
    assert!(me.is_some());
    assert_eq!(discoveries(&idp), 2, "refetched once for the new key");
    app.call_form("auth/signout", &[]).await;

    // The next sign-in uses the refreshed keys without calling out again; a forged token
    // (the retired key under the new key's id) is still refused.
    assert_eq!(sign_in_via(&app, "oidc").await, "/dashboard");
    app.call_form("auth/signout", &[]).await;
    *idp.fault.lock().unwrap() = Fault::BadSignature;
    assert_eq!(sign_in_via(&app, "oidc").await, "/signin?error=token");
    assert_eq!(discoveries(&idp), 2);
}

/// A provider whose discovery fails is asked again only after a back-off, not on every anonymous
/// request; once it recovers (after the back-off), sign-in works.
async fn a_failing_discovery_is_not_retried_on_every_request(backend: Backend) {
    let idp = start_idp().await;
    *idp.discovery_fails.lock().unwrap() = true;
    let app = app_with(backend, &idp).await;
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..20 {
        let res = anon.get(app.url("/auth/oidc/start")).send().await.unwrap();
        assert_eq!(location(&res), "/signin?error=provider");
    }
    assert_eq!(discoveries(&idp), 1, "one call within the back-off window");
}
