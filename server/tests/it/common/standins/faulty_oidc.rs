//! An OpenID Connect provider that does on request what a real provider will not: ID tokens with
//! the wrong issuer, audience or nonce, a bad signature, an expired token, a PKCE check that fails,
//! a token endpoint that redirects. It serves discovery, JWKS, authorize (signs the user in at
//! once, no login page) and token — RS256-signed ID tokens, PKCE S256 checked, codes single use.
//! It also rotates its signing key and fails its discovery on request (SECURITY.md §6).

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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The client the app is registered as: the audience of an honest ID token.
const CLIENT_ID: &str = "personaflux";

/// What the next token response gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: an honest ID token.
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

/// The running provider.
pub struct FaultyIdp {
    issuer: String,
    fault: Mutex<Fault>,
    /// The signing key in use (0 or 1); the JWKS serves only it, under the id `key-{n}`.
    key: Mutex<usize>,
    /// Discovery requests received, and whether discovery answers 500.
    discoveries: AtomicUsize,
    discovery_fails: Mutex<bool>,
    /// code -> (code_challenge, nonce)
    codes: Mutex<HashMap<String, (String, String)>>,
}

impl FaultyIdp {
    /// Starts the provider on a new loopback port, answering honestly until told otherwise.
    pub async fn start() -> Arc<Self> {
        // RSA key generation is slow in a debug build: do it up front, off the async threads.
        tokio::task::spawn_blocking(|| {
            pem(0);
            pem(1);
        })
        .await
        .unwrap();
        let (listener, issuer) = super::bind().await;
        let idp = Arc::new(FaultyIdp {
            issuer,
            fault: Mutex::new(Fault::None),
            key: Mutex::new(0),
            discoveries: AtomicUsize::new(0),
            discovery_fails: Mutex::new(false),
            codes: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(idp.clone());
        super::serve(listener, router);
        idp
    }

    /// The app's configuration for this provider (the app discovers it from the issuer).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OIDC_ISSUER", self.issuer.clone()),
            ("OIDC_CLIENT_ID", CLIENT_ID.into()),
            ("OIDC_CLIENT_SECRET", "secret".into()),
        ]
    }

    /// Makes the token responses from now on get `fault` wrong.
    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// Retires the signing key: from now on the JWKS serves only the other one, and ID tokens
    /// are signed with it and name its id.
    pub fn rotate_key(&self) {
        let mut key = self.key.lock().unwrap();
        *key = 1 - *key;
    }

    /// Whether discovery answers 500 from now on.
    pub fn fail_discovery(&self, fail: bool) {
        *self.discovery_fails.lock().unwrap() = fail;
    }

    /// Discovery requests received so far.
    pub fn discoveries(&self) -> usize {
        self.discoveries.load(Ordering::SeqCst)
    }
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

async fn discovery(State(idp): State<Arc<FaultyIdp>>) -> axum::response::Response {
    idp.discoveries.fetch_add(1, Ordering::SeqCst);
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

async fn jwks(State(idp): State<Arc<FaultyIdp>>) -> impl IntoResponse {
    let key = *idp.key.lock().unwrap();
    Json(CoreJsonWebKeySet::new(vec![
        signing_key(key, key).as_verification_key()
    ]))
}

/// Signs the user in at once and sends the browser back with a code.
async fn authorize(
    State(idp): State<Arc<FaultyIdp>>,
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
    State(idp): State<Arc<FaultyIdp>>,
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
        CLIENT_ID
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
