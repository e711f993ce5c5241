//! Configuration: defaults, the generated session secret, and the refusals.

use super::{Config, LimitsConfig, LlmConfig, LogFormat, PublicUrl, SessionSecret};
use std::collections::HashMap;

/// The workspace's site options file.
fn leptos_toml() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../Leptos.toml").to_string()
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.insert("LEPTOS_TOML".into(), leptos_toml());
    m
}

#[test]
fn defaults_are_the_embedded_setup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let c = Config::from_env(&env(&[("DATA_DIR", data.to_str().unwrap())])).unwrap();
    assert_eq!(
        c.database_url.expose(),
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
    let toml = std::fs::read_to_string(leptos_toml()).unwrap().replace(
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

    e.insert("SESSION_SECRET".into(), SessionSecret::generate_hex());
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
    let opts = leptos::config::get_configuration(Some(&leptos_toml()))
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
    assert!(c.auth.google.is_none() && c.auth.oidc.is_none());
    assert!(
        c.auth.token_cipher.is_none(),
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
    let google = c.auth.google.as_ref().expect("google");
    assert_eq!(google.issuer, "https://accounts.google.com");
    assert_eq!(
        c.auth.oidc.as_ref().expect("oidc").issuer,
        "https://id.example"
    );
    assert_eq!(
        c.public_url.as_ref().map(ToString::to_string).as_deref(),
        Some("https://personaflux.example")
    );
    assert!(c.auth.token_cipher.is_some());
    assert!(
        !format!("{:?}", c.auth).contains("g-secret"),
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

#[test]
fn the_public_url_is_parsed_once_with_its_default() {
    let u = PublicUrl::parse("https://personaflux.example/").unwrap();
    assert!(u.is_https() && !u.is_loopback());
    assert_eq!(
        u.join(&["auth", "oidc", "callback"]).as_str(),
        "https://personaflux.example/auth/oidc/callback"
    );
    let prefixed = PublicUrl::parse("https://example.org/pf//").unwrap();
    assert_eq!(prefixed.to_string(), "https://example.org/pf");
    assert_eq!(
        prefixed.join(&["auth", "github", "callback"]).as_str(),
        "https://example.org/pf/auth/github/callback"
    );
    let local = PublicUrl::listening_on("127.0.0.1:4321".parse().unwrap());
    assert_eq!(local.to_string(), "http://127.0.0.1:4321");
    assert!(local.is_loopback() && !local.is_https());
    assert!(PublicUrl::listening_on("[::1]:80".parse().unwrap()).is_loopback());
    for bad in [
        "personaflux.example",
        "ftp://x.example",
        "https://x.example/?a=1",
    ] {
        assert!(PublicUrl::parse(bad).is_err(), "{bad}");
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let err = Config::from_env(&env(&[("DATA_DIR", d), ("PUBLIC_URL", "not a url")])).unwrap_err();
    assert!(err.to_string().contains("PUBLIC_URL"), "{err}");
    let c = Config::from_env(&env(&[("DATA_DIR", d)])).unwrap();
    assert_eq!(c.public_url, None);
    assert_eq!(c.public_url().to_string(), "http://127.0.0.1:3000");
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_data_folder_and_its_keys_are_created_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let d = data.to_str().unwrap();
    Config::from_env(&env(&[
        ("DATA_DIR", d),
        ("GITHUB_CLIENT_ID", "gh"),
        ("GITHUB_CLIENT_SECRET", "gh-secret"),
    ]))
    .unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&dir.path().join("nested")), 0o700);
    assert_eq!(mode(&data.join("session.key")), 0o600);
    assert_eq!(mode(&data.join("token.key")), 0o600);
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    for name in ["session.key", "token.key"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let e = env(&[
            ("DATA_DIR", data.to_str().unwrap()),
            ("GITHUB_CLIENT_ID", "gh"),
            ("GITHUB_CLIENT_SECRET", "gh-secret"),
        ]);
        let first = Config::from_env(&e).unwrap();
        let key = data.join(name);
        for wide in [0o644, 0o640, 0o604, 0o660, 0o602] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(wide)).unwrap();
            let err = Config::from_env(&e).unwrap_err().to_string();
            assert!(
                err.contains(&key.display().to_string())
                    && err.contains(&format!("{wide:03o}"))
                    && err.contains("chmod 600"),
                "{name} {wide:o}: {err}"
            );
        }
        // Made private again, the same key is used.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let again = Config::from_env(&e).unwrap();
        assert_eq!(again.session_secret.expose(), first.session_secret.expose());
        // Owner-only read is fine too.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
        Config::from_env(&e).unwrap();
    }
}

#[test]
fn the_configuration_never_prints_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let c = Config::from_env(&env(&[
        ("DATA_DIR", dir.path().join("data").to_str().unwrap()),
        (
            "DATABASE_URL",
            "postgres://pf:hunter2-db-secret@db.example/pf",
        ),
    ]))
    .unwrap();
    assert_eq!(
        c.database_url.expose(),
        "postgres://pf:hunter2-db-secret@db.example/pf"
    );
    assert!(!format!("{c:?}").contains("hunter2-db-secret"));
}

#[test]
fn limits_have_sane_defaults_and_can_be_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let c = Config::from_env(&env(&[("DATA_DIR", d)])).unwrap();
    assert_eq!(c.limits, LimitsConfig::default());
    assert_eq!(c.limits.model_calls_per_minute, 20);
    assert_eq!(c.limits.concurrent_generations, 3);
    assert_eq!(c.limits.daily_tokens, 200_000);
    assert_eq!(c.limits.sign_ins_per_minute, 10);
    assert_eq!(c.limits.client_ip_header, None);

    let c = Config::from_env(&env(&[
        ("DATA_DIR", d),
        ("LIMIT_MODEL_CALLS_PER_MINUTE", "2"),
        ("LIMIT_CONCURRENT_GENERATIONS", "1"),
        ("LIMIT_DAILY_TOKENS", "0"),
        ("LIMIT_SIGN_INS_PER_MINUTE", "5"),
        ("CLIENT_IP_HEADER", "X-Forwarded-For"),
    ]))
    .unwrap();
    assert_eq!(
        c.limits,
        LimitsConfig {
            model_calls_per_minute: 2,
            concurrent_generations: 1,
            daily_tokens: 0,
            sign_ins_per_minute: 5,
            client_ip_header: Some("x-forwarded-for".into()),
        }
    );
    let err =
        Config::from_env(&env(&[("DATA_DIR", d), ("LIMIT_DAILY_TOKENS", "lots")])).unwrap_err();
    assert!(err
        .to_string()
        .contains("LIMIT_DAILY_TOKENS must be a whole number"));
}

#[test]
fn reply_staleness_and_shutdown_grace_have_defaults_and_are_checked() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let c = Config::from_env(&env(&[("DATA_DIR", data)])).unwrap();
    assert_eq!(c.replies.stale_after, Duration::from_secs(10));
    assert_eq!(c.replies.shutdown_grace, Duration::from_secs(10));
    let c = Config::from_env(&env(&[
        ("DATA_DIR", data),
        ("REPLY_STALE_SECS", "30"),
        ("SHUTDOWN_GRACE_SECS", "0"),
    ]))
    .unwrap();
    assert_eq!(c.replies.stale_after, Duration::from_secs(30));
    assert_eq!(c.replies.shutdown_grace, Duration::ZERO);
    // The prompt's budget: by provider, unless set.
    assert_eq!(c.replies.context_tokens, 8_000, "offline");
    let gemini = [
        ("DATA_DIR", data),
        ("LLM_PROVIDER", "gemini"),
        ("GEMINI_API_KEY", "k"),
    ];
    let c = Config::from_env(&env(&gemini)).unwrap();
    assert_eq!(c.replies.context_tokens, 32_000);
    let c = Config::from_env(&env(&[
        gemini[0],
        gemini[1],
        gemini[2],
        ("CHAT_CONTEXT_TOKENS", "100000"),
    ]))
    .unwrap();
    assert_eq!(c.replies.context_tokens, 100_000);
    for (key, value, says) in [
        ("REPLY_STALE_SECS", "0", "at least 1"),
        (
            "REPLY_STALE_SECS",
            "soon",
            "REPLY_STALE_SECS must be a whole number",
        ),
        (
            "SHUTDOWN_GRACE_SECS",
            "-1",
            "SHUTDOWN_GRACE_SECS must be a whole number",
        ),
        ("CHAT_CONTEXT_TOKENS", "999", "at least 1000"),
    ] {
        let e = Config::from_env(&env(&[("DATA_DIR", data), (key, value)])).unwrap_err();
        assert!(e.to_string().contains(says), "{key}={value}: {e}");
    }
}
