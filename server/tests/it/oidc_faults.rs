//! What a real provider will not do on request: ID tokens with the wrong issuer, audience or nonce,
//! a bad signature, an expired token, and a PKCE check that fails. A small provider on loopback
//! (discovery, JWKS, authorize, token — RS256-signed ID tokens, PKCE S256 checked, codes single
//! use) issues them on demand; the app must refuse every one.

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

fn signing_key(which: usize) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem(which), Some(JsonWebKeyId::new("k1".into()))).unwrap()
}

async fn discovery(State(idp): State<Arc<Idp>>) -> impl IntoResponse {
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
    Json(meta)
}

async fn jwks() -> impl IntoResponse {
    Json(CoreJsonWebKeySet::new(vec![
        signing_key(0).as_verification_key()
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
    let key = signing_key(if fault == Fault::BadSignature { 1 } else { 0 });
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

on_both_backends!(every_bad_id_token_and_a_failed_pkce_check_are_refused);

async fn every_bad_id_token_and_a_failed_pkce_check_are_refused(backend: Backend) {
    let idp = start_idp().await;
    let issuer = idp.issuer.clone();
    let app = spawn_app_with(
        backend,
        &[
            ("OIDC_ISSUER", issuer.as_str()),
            ("OIDC_CLIENT_ID", "personaflux"),
            ("OIDC_CLIENT_SECRET", "secret"),
        ],
        |_| {},
    )
    .await;

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
