//! Configuration: defaults, the generated session secret, and the refusals.

use app::infra::config::{Config, LlmConfig, LogFormat};
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.insert("LEPTOS_TOML".into(), crate::common::leptos_toml());
    m
}

#[test]
fn defaults_are_the_embedded_setup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let c = Config::from_env(&env(&[("DATA_DIR", data.to_str().unwrap())])).unwrap();
    assert_eq!(
        c.database_url,
        format!("sqlite://{}/personaflux.db", data.display())
    );
    assert_eq!(c.listen_addr().to_string(), "127.0.0.1:3000");
    assert!(c.local_sign_in_allowed());
    assert!(!c.cookie_secure);
    assert!(matches!(c.llm, LlmConfig::Offline { .. }));
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(&*c.leptos.output_name, "personaflux");
}

#[test]
fn the_session_secret_is_generated_once_and_kept_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let e = env(&[("DATA_DIR", data.to_str().unwrap())]);
    let a = Config::from_env(&e).unwrap();
    let b = Config::from_env(&e).unwrap();
    assert_eq!(a.session_secret.expose(), b.session_secret.expose());
    assert_eq!(a.session_secret.expose().len(), 64);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("session.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        format!("{:?}", a.session_secret),
        "SessionSecret(<redacted>)"
    );
}

#[test]
fn off_loopback_needs_an_explicit_secret() {
    // get_configuration lets LEPTOS_SITE_ADDR override the file; this test sets the address in
    // a file of its own instead, so it does not touch the process environment.
    let dir = tempfile::tempdir().unwrap();
    let toml = std::fs::read_to_string(crate::common::leptos_toml())
        .unwrap()
        .replace(
            "site-addr = \"127.0.0.1:3000\"",
            "site-addr = \"0.0.0.0:3000\"",
        );
    let path = dir.path().join("Leptos.toml");
    std::fs::write(&path, toml).unwrap();
    let mut e = env(&[("DATA_DIR", dir.path().join("data").to_str().unwrap())]);
    e.insert("LEPTOS_TOML".into(), path.display().to_string());

    let err = Config::from_env(&e).unwrap_err();
    assert!(
        err.to_string().contains("SESSION_SECRET is required"),
        "{err}"
    );
    assert!(
        !dir.path().join("data/session.key").exists(),
        "no secret generated off loopback"
    );

    e.insert("SESSION_SECRET".into(), "short".into());
    assert!(Config::from_env(&e)
        .unwrap_err()
        .to_string()
        .contains("at least 64 bytes"));

    e.insert(
        "SESSION_SECRET".into(),
        app::infra::config::SessionSecret::generate_hex(),
    );
    let c = Config::from_env(&e).unwrap();
    assert!(!c.local_sign_in_allowed());
    assert!(c.cookie_secure);
}

#[test]
fn bad_values_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    for (k, v, expect) in [
        ("LLM_PROVIDER", "gpt", "LLM_PROVIDER=gpt is not supported"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT=xml"),
        (
            "OFFLINE_TOKEN_DELAY_MS",
            "fast",
            "OFFLINE_TOKEN_DELAY_MS must be a whole number",
        ),
        (
            "COOKIE_SECURE",
            "maybe",
            "COOKIE_SECURE must be true or false",
        ),
    ] {
        let err = Config::from_env(&env(&[("DATA_DIR", d), (k, v)])).unwrap_err();
        assert!(err.to_string().contains(expect), "{k}: {err}");
    }
}

/// Leptos.toml is the one home of the site options: cargo-leptos metadata in Cargo.toml would be a
/// second copy that could drift, and build-site.sh must read the file rather than repeat names.
#[test]
fn site_options_live_only_in_leptos_toml() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let cargo = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    assert!(
        !cargo.contains("metadata.leptos"),
        "Cargo.toml must not repeat the site options"
    );
    let script = std::fs::read_to_string(format!("{root}/scripts/build-site.sh")).unwrap();
    assert!(script.contains("Leptos.toml"));
    assert!(
        !script.contains("personaflux"),
        "build-site.sh must take the output name from Leptos.toml"
    );
    let opts = leptos::config::get_configuration(Some(&crate::common::leptos_toml()))
        .unwrap()
        .leptos_options;
    assert_eq!(
        opts.css_path(),
        format!("/{}/{}.css", opts.site_pkg_dir, opts.output_name)
    );
}

#[test]
fn providers_are_configured_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let c = Config::from_env(&env(&[("DATA_DIR", d.to_str().unwrap())])).unwrap();
    assert!(c.oauth.providers.is_empty());
    assert!(
        c.oauth.token_key.is_none(),
        "no key is made without providers"
    );

    let c = Config::from_env(&env(&[
        ("DATA_DIR", d.to_str().unwrap()),
        ("GOOGLE_CLIENT_ID", "g-id"),
        ("GOOGLE_CLIENT_SECRET", "g-secret"),
        ("OIDC_ISSUER", "https://id.example"),
        ("OIDC_CLIENT_ID", "o-id"),
        ("OIDC_CLIENT_SECRET", "o-secret"),
        ("PUBLIC_URL", "https://personaflux.example/"),
    ]))
    .unwrap();
    let ids: Vec<&str> = c.oauth.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, vec!["google", "oidc"]);
    assert_eq!(c.oauth.providers[0].issuer, "https://accounts.google.com");
    assert_eq!(
        c.oauth.public_url.as_deref(),
        Some("https://personaflux.example")
    );
    assert_eq!(c.oauth.token_key.as_ref().map(Vec::len), Some(32));
    assert!(
        !format!("{:?}", c.oauth).contains("g-secret"),
        "secrets never print"
    );

    let err = Config::from_env(&env(&[
        ("DATA_DIR", d.to_str().unwrap()),
        ("OIDC_ISSUER", "https://id.example"),
    ]))
    .unwrap_err();
    assert!(
        err.to_string().contains("OIDC_CLIENT_ID is required"),
        "{err}"
    );
    let err = Config::from_env(&env(&[
        ("DATA_DIR", d.to_str().unwrap()),
        ("GOOGLE_CLIENT_ID", "g"),
        ("GOOGLE_CLIENT_SECRET", "s"),
        ("TOKEN_ENCRYPTION_KEY", "abcd"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("32 bytes"), "{err}");
}

#[test]
fn behind_a_public_proxy_there_is_no_local_sign_in_and_cookies_are_secure() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let c = Config::from_env(&env(&[
        ("DATA_DIR", d),
        ("PUBLIC_URL", "https://personaflux.example"),
    ]))
    .unwrap();
    assert!(!c.local_sign_in_allowed());
    assert!(c.cookie_secure);
    for local in [
        "http://127.0.0.1:3000",
        "http://localhost:8080/",
        "http://[::1]:3000",
    ] {
        let c = Config::from_env(&env(&[("DATA_DIR", d), ("PUBLIC_URL", local)])).unwrap();
        assert!(c.local_sign_in_allowed(), "{local}");
        assert!(!c.cookie_secure, "{local}");
    }
}
