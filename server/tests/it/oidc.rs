//! Sign-in through a real OpenID Connect provider ([`NodeIdp`]: the `oidc-provider` npm package,
//! started on loopback by these tests; the test command installs it).

use crate::common::standins::NodeIdp;
use crate::common::*;
use app::auth::{GetCurrentUser, GetSignInOptions, SignOut};
use app::characters::{GenerateCharacter, GetCharacter, ListCharacters, SaveCharacter};
use app::chat::{OpenChat, SendMessage, StopReply};
use app::error::AppError;

/// An app with the identity provider configured as its `oidc` provider.
async fn app_with_idp(backend: Backend) -> (TestApp, NodeIdp) {
    let idp_port = NodeIdp::free_port();
    let app = spawn_app_env(backend, &NodeIdp::env(idp_port)).await;
    // The redirect URI needs the app's port, known only now; the app discovers the issuer lazily.
    // PUBLIC_URL defaults to the configured address, so set the public URL the same way the
    // browser reaches the app.
    let idp = NodeIdp::start(idp_port, &format!("{}/auth/oidc/callback", app.base)).await;
    (app, idp)
}

/// Walks the browser's part of the flow: our start route, the provider's login form, back to our
/// callback. Returns the callback URL the provider sent the browser to (not yet visited).
async fn to_callback(
    app: &TestApp,
    idp_client: &reqwest::Client,
    username: &str,
    return_to: Option<&str>,
) -> String {
    let start = match return_to {
        Some(r) => format!("/auth/oidc/start?return_to={}", urlencode(r)),
        None => "/auth/oidc/start".into(),
    };
    let res = app.client.get(app.url(&start)).send().await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let authorize = location(&res);
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(
        authorize.contains("nonce=") && authorize.contains("state="),
        "{authorize}"
    );
    // The provider sends the browser to its login page.
    NodeIdp::log_in(idp_client, authorize, username, &app.base).await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn idp_client() -> reqwest::Client {
    new_client()
}

async fn me(app: &TestApp) -> Option<app::auth::CurrentUser> {
    app.call(GetCurrentUser {}).await.unwrap()
}

on_both_backends!(
    signing_in_through_the_provider_creates_the_user_and_keeps_tokens_encrypted,
    the_callback_works_once_and_only_with_its_own_state,
    return_to_stays_on_this_site,
    a_second_user_cannot_reach_the_first_users_data,
);

async fn signing_in_through_the_provider_creates_the_user_and_keeps_tokens_encrypted(
    backend: Backend,
) {
    let (app, _idp) = app_with_idp(backend).await;
    let options = app.call(GetSignInOptions {}).await.unwrap();
    assert_eq!(
        options.providers,
        vec![("oidc".to_string(), "Test IdP".to_string())]
    );

    let callback = to_callback(&app, &idp_client(), "alice", None).await;
    let res = app.client.get(&callback).send().await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(location(&res), "/dashboard");
    let user = me(&app).await.expect("signed in");
    assert_eq!(user.display_name, "Alice");

    let (access, email): (Vec<u8>, Option<String>) = app::with_pool!(&app.db, pool => {
        sqlx::query_as("SELECT access_token_enc, email FROM oauth_identities WHERE provider = 'oidc' AND subject = 'alice'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(email.as_deref(), Some("alice@example.test"));
    assert!(access.len() > 24 + 16, "nonce, ciphertext and tag");

    // Signing in again is the same user.
    app.call(SignOut {}).await.unwrap();
    assert_eq!(me(&app).await, None);

    // Session fixation: a cookie from before sign-in (here, the one the flow started with) is
    // not signed in afterwards — the session id was renewed.
    let res = app
        .client
        .get(app.url("/auth/oidc/start"))
        .send()
        .await
        .unwrap();
    let before = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("pf_session="))
        .expect("the flow is kept in a session");
    let callback = NodeIdp::log_in(&idp_client(), location(&res), "alice", &app.base).await;
    assert_eq!(
        location(&app.client.get(&callback).send().await.unwrap()),
        "/dashboard"
    );
    assert!(me(&app).await.is_some());
    let res = app
        .request(&new_client(), GetCurrentUser {})
        .header("cookie", before)
        .send()
        .await
        .unwrap();
    assert_eq!(
        result::<Option<app::auth::CurrentUser>>(res).await.unwrap(),
        None
    );
    app.call(SignOut {}).await.unwrap();
    assert_eq!(me(&app).await, None);
    let callback = to_callback(&app, &idp_client(), "alice", None).await;
    app.client.get(&callback).send().await.unwrap();
    assert_eq!(me(&app).await.unwrap().id, user.id);
}

async fn the_callback_works_once_and_only_with_its_own_state(backend: Backend) {
    let (app, _idp) = app_with_idp(backend).await;

    // A callback that was not started here.
    let res = app
        .client
        .get(app.url("/auth/oidc/callback?code=abc&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/signin?error=state");

    // A started flow with a tampered state.
    let callback = to_callback(&app, &idp_client(), "carol", None).await;
    let tampered = callback.replace("state=", "state=x");
    let res = app.client.get(&tampered).send().await.unwrap();
    assert_eq!(location(&res), "/signin?error=state");
    assert_eq!(me(&app).await, None);
    // ...and the flow is gone: the genuine callback cannot be used after a failed attempt either.
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&res), "/signin?error=state");

    // A good callback, replayed: the second use finds no flow.
    let callback = to_callback(&app, &idp_client(), "carol", None).await;
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&res), "/dashboard");
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&res), "/signin?error=state");

    // The same code in another browser's session (a stolen code) is refused too.
    let other = new_client();
    let res = other.get(&callback).send().await.unwrap();
    assert_eq!(location(&res), "/signin?error=state");

    // An unknown provider.
    let res = app
        .client
        .get(app.url("/auth/nope/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/signin?error=unknown_provider");
    let html = app
        .client
        .get(app.url("/signin?error=state"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("The sign-in expired or did not start here."),
        "{html}"
    );
}

async fn return_to_stays_on_this_site(backend: Backend) {
    let (app, _idp) = app_with_idp(backend).await;
    for (asked, landed) in [
        ("/characters/new", "/characters/new"),
        ("//evil.example/x", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
    ] {
        let callback = to_callback(&app, &idp_client(), "dave", Some(asked)).await;
        let res = app.client.get(&callback).send().await.unwrap();
        assert_eq!(location(&res), landed, "return_to {asked}");
    }
}

async fn a_second_user_cannot_reach_the_first_users_data(backend: Backend) {
    let (alice, _idp) = app_with_idp(backend).await;
    let callback = to_callback(&alice, &idp_client(), "alice", None).await;
    alice.client.get(&callback).send().await.unwrap();
    let generated = alice
        .call(GenerateCharacter {
            draft: draft("Mira"),
            variation: 0,
        })
        .await
        .unwrap();
    let id = alice
        .call(SaveCharacter {
            draft: draft("Mira").with_story(&generated.story),
            import: None,
        })
        .await
        .unwrap();
    let chat = alice
        .call(OpenChat {
            character_id: id.clone(),
        })
        .await
        .unwrap();

    // Bob, in his own browser, against the same server.
    let bob = alice.another_browser();
    let callback = to_callback(&bob, &idp_client(), "bob", None).await;
    bob.client.get(&callback).send().await.unwrap();
    assert_eq!(me(&bob).await.unwrap().display_name, "Bob");

    let list = bob.call(ListCharacters {}).await.unwrap();
    assert!(list.is_empty());
    assert_eq!(
        bob.call(GetCharacter { id: id.clone() }).await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        bob.call(OpenChat {
            character_id: id.clone()
        })
        .await,
        Err(AppError::NotFound)
    );
    let err = bob
        .refusal(SendMessage {
            session_id: chat.session_id.clone(),
            text: "hi".into(),
            after: None,
        })
        .await;
    assert_eq!(err, AppError::NotFound);
    assert_eq!(
        bob.call(StopReply {
            reply_id: chat.messages[0].id.clone()
        })
        .await,
        Err(AppError::NotFound)
    );
    // Bob's page for Alice's character is a 404, not her data.
    let res = bob
        .client
        .get(bob.url(&format!("/characters/{id}")))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(!res.text().await.unwrap().contains("Mira"));
}
