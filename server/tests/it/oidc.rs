//! Sign-in through a real OpenID Connect provider (the `oidc-provider` npm package, started on
//! loopback by these tests from `end2end/oidc-server.mjs`; the test command installs it).

use crate::common::*;
use app::error::AppError;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The identity provider, stopped when dropped.
struct Idp {
    child: Child,
    issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_idp(port: u16, redirect_uri: &str) -> Idp {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let script = format!("{root}/end2end/oidc-server.mjs");
    assert!(
        std::path::Path::new(&format!("{root}/end2end/node_modules/oidc-provider")).exists(),
        "end2end/node_modules is missing: run the README's test command (scripts/test.sh), which installs it"
    );
    let child = Command::new("node")
        .arg(&script)
        .arg(port.to_string())
        .arg(redirect_uri)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs the identity provider");
    let issuer = format!("http://127.0.0.1:{port}");
    let idp = Idp { child, issuer };
    let probe = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = probe
            .get(format!("{}/.well-known/openid-configuration", idp.issuer))
            .send()
            .await
        {
            if r.status().is_success() {
                return idp;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the identity provider did not start");
}

/// An app with the identity provider configured as its `oidc` provider.
async fn app_with_idp(backend: Backend) -> (TestApp, Idp) {
    let idp_port = free_port();
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let app = spawn_app_with(
        backend,
        &[
            ("OIDC_ISSUER", issuer.as_str()),
            ("OIDC_CLIENT_ID", "personaflux"),
            ("OIDC_CLIENT_SECRET", "e2e-client-secret"),
            ("OIDC_LABEL", "Test IdP"),
        ],
        |_| {},
    )
    .await;
    // The redirect URI needs the app's port, known only now; the app discovers the issuer lazily.
    // PUBLIC_URL defaults to the configured address, so set the public URL the same way the
    // browser reaches the app.
    let idp = start_idp(idp_port, &format!("{}/auth/oidc/callback", app.base)).await;
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
    let mut url = authorize;
    let mut hops = 0;
    loop {
        let res = idp_client.get(&url).send().await.unwrap();
        if res.status().is_redirection() {
            let next = location(&res);
            let next = if next.starts_with('/') {
                format!("{}{}", origin_of(&url), next)
            } else {
                next
            };
            if next.starts_with(&app.base) {
                return next;
            }
            url = next;
        } else {
            let html = res.text().await.unwrap();
            let action = html
                .split("action=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_else(|| panic!("no login form at {url}: {html}"));
            let res = idp_client
                .post(format!("{}{}", origin_of(&url), action))
                .form(&[("username", username)])
                .send()
                .await
                .unwrap();
            assert!(res.status().is_redirection(), "login: {}", res.status());
            url = location(&res);
            if url.starts_with('/') {
                url = format!("{}{}", origin_of(res.url().as_ref()), url);
            }
        }
        hops += 1;
        assert!(hops < 10, "too many hops at the provider");
    }
}

fn origin_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap();
    let host = rest.split('/').next().unwrap();
    format!("{}://{host}", url.split("://").next().unwrap())
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
    result(app.call_form("auth/me", &[]).await).await.unwrap()
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
    let options: app::auth::SignInOptions = result(app.call_form("auth/options", &[]).await)
        .await
        .unwrap();
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
    app.call_form("auth/signout", &[]).await;
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
    let callback = {
        let mut url = location(&res);
        let idp = idp_client();
        loop {
            let r = idp.get(&url).send().await.unwrap();
            if r.status().is_redirection() {
                let next = location(&r);
                url = if next.starts_with('/') {
                    format!("{}{}", origin_of(&url), next)
                } else {
                    next
                };
                if url.starts_with(&app.base) {
                    break url;
                }
            } else {
                let html = r.text().await.unwrap();
                let action = html
                    .split("action=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap();
                let r = idp
                    .post(format!("{}{}", origin_of(&url), action))
                    .form(&[("username", "alice")])
                    .send()
                    .await
                    .unwrap();
                let next = location(&r);
                url = if next.starts_with('/') {
                    format!("{}{}", origin_of(&url), next)
                } else {
                    next
                };
            }
        }
    };
    assert_eq!(
        location(&app.client.get(&callback).send().await.unwrap()),
        "/dashboard"
    );
    assert!(me(&app).await.is_some());
    let res = new_client()
        .post(app.url("/api/auth/me"))
        .header("accept", "application/json")
        .header("cookie", before)
        .send()
        .await
        .unwrap();
    assert_eq!(
        result::<Option<app::auth::CurrentUser>>(res).await.unwrap(),
        None
    );
    app.call_form("auth/signout", &[]).await;
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
    let generated: app::characters::Generated = result(
        alice
            .call_json(
                "characters/generate",
                serde_json::json!({"draft": valid_draft("Mira"), "variation": 0}),
            )
            .await,
    )
    .await
    .unwrap();
    let draft: app::domain::CharacterDraft = serde_json::from_value(valid_draft("Mira")).unwrap();
    let id: String = result(
        alice
            .call_json(
                "characters/save",
                serde_json::json!({"draft": draft.with_story(&generated.story)}),
            )
            .await,
    )
    .await
    .unwrap();
    let chat: app::chat::ChatView =
        result(alice.call_form("chat/open", &[("character_id", &id)]).await)
            .await
            .unwrap();

    // Bob, in his own browser, against the same server.
    let bob = alice.another_browser();
    let callback = to_callback(&bob, &idp_client(), "bob", None).await;
    bob.client.get(&callback).send().await.unwrap();
    assert_eq!(me(&bob).await.unwrap().display_name, "Bob");

    let list: Vec<app::characters::CharacterSummary> =
        result(bob.call_form("characters/list", &[]).await)
            .await
            .unwrap();
    assert!(list.is_empty());
    assert_eq!(
        result::<app::characters::CharacterView>(
            bob.call_form("characters/get", &[("id", &id)]).await
        )
        .await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        result::<app::chat::ChatView>(bob.call_form("chat/open", &[("character_id", &id)]).await)
            .await,
        Err(AppError::NotFound)
    );
    let res = bob
        .call_form(
            "chat/send",
            &[("session_id", &chat.session_id), ("text", "hi")],
        )
        .await;
    let err: AppError = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(err, AppError::NotFound);
    let reply_id = &chat.messages[0].id;
    assert_eq!(
        result::<()>(bob.call_form("chat/stop", &[("reply_id", reply_id)]).await).await,
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
