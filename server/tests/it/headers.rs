//! Security headers: a Content-Security-Policy whose per-response nonce is the one on every inline
//! script of the page (so hydration runs and an injected script does not), no framing, no MIME
//! sniffing, no caching of anything that may hold a user's data, HSTS only over https.

use crate::common::*;

on_both_backends!(
    every_page_script_carries_the_nonce_its_policy_names,
    dynamic_responses_are_never_cached,
    hsts_only_when_the_public_url_is_https,
);

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// The `'nonce-…'` value of the policy's script-src.
fn policy_nonce(csp: &str) -> String {
    let script = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or_else(|| panic!("no script-src in {csp}"));
    assert!(!script.contains("unsafe-inline"), "{script}");
    script
        .split_whitespace()
        .find_map(|t| t.strip_prefix("'nonce-")?.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no nonce in {script}"))
        .to_string()
}

async fn every_page_script_carries_the_nonce_its_policy_names(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let mut seen = std::collections::HashSet::new();
    for path in [
        "/",
        "/signin",
        "/dashboard",
        "/characters/new",
        "/no-such-page",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        let csp = header(&res, "content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"));
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("object-src 'none'"), "{csp}");
        assert_eq!(
            header(&res, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(header(&res, "x-frame-options").as_deref(), Some("DENY"));
        assert!(header(&res, "referrer-policy").is_some());
        let nonce = policy_nonce(&csp);
        assert!(seen.insert(nonce.clone()), "{path}: a nonce was reused");

        let html = res.text().await.unwrap();
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        assert!(!scripts.is_empty(), "{path}: the page has no scripts");
        for s in scripts {
            let tag = &s[..s.find('>').unwrap()];
            assert!(
                tag.contains(&format!("nonce=\"{nonce}\"")),
                "{path}: a script without the response's nonce: <script{tag}>"
            );
        }
    }
}

async fn dynamic_responses_are_never_cached(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let page = app.client.get(app.url("/dashboard")).send().await.unwrap();
    assert_eq!(header(&page, "cache-control").as_deref(), Some("no-store"));
    let api = app.send(app::auth::GetCurrentUser {}).await;
    assert_eq!(header(&api, "cache-control").as_deref(), Some("no-store"));
    let health = app.client.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(
        header(&health, "cache-control").as_deref(),
        Some("no-store")
    );
}

async fn hsts_only_when_the_public_url_is_https(backend: Backend) {
    let plain = spawn_app(backend).await;
    let res = plain.client.get(plain.url("/")).send().await.unwrap();
    assert_eq!(header(&res, "strict-transport-security"), None);

    let secret = app::infra::config::SessionSecret::generate_hex();
    let https = spawn_app_with(
        backend,
        &[
            ("PUBLIC_URL", "https://personaflux.example"),
            ("SESSION_SECRET", secret.as_str()),
        ],
        |_| {},
    )
    .await;
    let res = https.client.get(https.url("/")).send().await.unwrap();
    let hsts = header(&res, "strict-transport-security").expect("HSTS over https");
    assert!(hsts.contains("max-age=31536000"), "{hsts}");
}
