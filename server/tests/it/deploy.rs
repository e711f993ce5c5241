//! The deployment a user starts (`deploy/`): Postgres, two app replicas and a Caddy proxy. Docker
//! is not needed to check it: this parses `docker-compose.yml` and the `Caddyfile`, interpolates the
//! compose variables the way `docker compose` does, and loads each replica's environment through the
//! app's own configuration code, so a compose file the server would refuse to start with fails here.

use app::infra::config::{Config, SessionSecret};
use serde_norway::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compose() -> Value {
    serde_norway::from_str(&read("deploy/docker-compose.yml")).expect("docker-compose.yml parses")
}

/// Compose's variable interpolation: `${NAME}`, `${NAME:-default}`, `${NAME:?error}` (an error
/// when `NAME` is unset or empty), and `$$` for a literal `$`.
fn interpolate(text: &str, vars: &HashMap<&str, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let r = rest
            .strip_prefix('{')
            .ok_or_else(|| format!("bare $ in {text:?}"))?;
        let end = r
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
        let expr = &r[..end];
        rest = &r[end + 1..];
        let set = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
        let value = if let Some((name, default)) = expr.split_once(":-") {
            set(name).unwrap_or_else(|| default.to_string())
        } else if let Some((name, message)) = expr.split_once(":?") {
            set(name).ok_or_else(|| format!("{name}: {message}"))?
        } else {
            vars.get(expr).cloned().unwrap_or_default()
        };
        out.push_str(&value);
    }
    out.push_str(rest);
    Ok(out)
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    &compose["services"][name]
}

/// A service's `environment` mapping, interpolated.
fn environment(
    compose: &Value,
    name: &str,
    vars: &HashMap<&str, String>,
) -> Result<HashMap<String, String>, String> {
    let env = service(compose, name)["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{name} has an environment mapping"));
    env.iter()
        .map(|(k, v)| {
            let k = k.as_str().expect("variable names are strings").to_string();
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("{k} has a non-scalar value {other:?}"),
            };
            Ok((k, interpolate(&v, vars)?))
        })
        .collect()
}

/// The variables a user exports before `docker compose up` (the compose file's header).
fn user_vars() -> HashMap<&'static str, String> {
    HashMap::from([
        ("SESSION_SECRET", SessionSecret::generate_hex()),
        ("TOKEN_ENCRYPTION_KEY", "ab".repeat(32)),
    ])
}

const APPS: [&str; 2] = ["app1", "app2"];

/// Loads a replica's environment through `Config::from_env`. `LEPTOS_SITE_ADDR` is written into a
/// copy of `Leptos.toml` (leptos reads that override from the process environment, which a test
/// must not change); the data folder is a temporary one.
fn load_config(env: &HashMap<String, String>, dir: &Path) -> Result<Config, String> {
    let mut env = env.clone();
    let toml = read("Leptos.toml");
    assert!(toml.contains("site-addr = \"127.0.0.1:3000\""));
    let addr = env
        .remove("LEPTOS_SITE_ADDR")
        .expect("LEPTOS_SITE_ADDR set");
    let path = dir.join("Leptos.toml");
    std::fs::write(
        &path,
        toml.replace(
            "site-addr = \"127.0.0.1:3000\"",
            &format!("site-addr = \"{addr}\""),
        ),
    )
    .unwrap();
    env.insert("LEPTOS_TOML".into(), path.display().to_string());
    env.insert("DATA_DIR".into(), dir.join("data").display().to_string());
    Config::from_env(&env).map_err(|e| e.to_string())
}

#[test]
fn compose_runs_two_replicas_on_one_postgres_behind_the_proxy() {
    let compose = compose();
    let vars = user_vars();
    let services: BTreeSet<&str> = compose["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["postgres", "app1", "app2", "proxy"])
    );

    // Both replicas: one image built from deploy/Dockerfile, the same environment.
    let envs: Vec<_> = APPS
        .iter()
        .map(|a| environment(&compose, a, &vars).unwrap())
        .collect();
    assert_eq!(envs[0], envs[1], "the replicas' environments differ");
    let env = &envs[0];
    for app in APPS {
        let s = service(&compose, app);
        assert_eq!(s["build"]["dockerfile"].as_str(), Some("deploy/Dockerfile"));
        assert!(repo()
            .join("deploy")
            .join(s["build"]["context"].as_str().unwrap())
            .join("deploy/Dockerfile")
            .is_file());
        assert_eq!(s["image"], service(&compose, "app1")["image"]);
        assert!(
            s.get("ports").is_none(),
            "{app} is reached through the proxy only"
        );
        assert_eq!(
            s["depends_on"]["postgres"]["condition"].as_str(),
            Some("service_healthy")
        );
    }

    // The one database is the postgres service's, with its user, password and database name.
    let db = url::Url::parse(&env["DATABASE_URL"]).unwrap();
    assert_eq!(db.scheme(), "postgres");
    assert_eq!(db.host_str(), Some("postgres"));
    assert!(services.contains(db.host_str().unwrap()));
    let pg = environment(&compose, "postgres", &vars).unwrap();
    assert_eq!(db.username(), pg["POSTGRES_USER"]);
    assert_eq!(db.password(), Some(pg["POSTGRES_PASSWORD"].as_str()));
    assert_eq!(db.path(), format!("/{}", pg["POSTGRES_DB"]));
    assert_eq!(db.port_or_known_default(), Some(5432));
    assert!(service(&compose, "postgres")["healthcheck"]["test"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|t| t.as_str() == Some("pg_isready")));

    // The app accepts this environment off loopback, and the proxy's header is the client's address.
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(env, dir.path()).expect("the replicas' environment loads");
    assert!(!config.listen_addr().ip().is_loopback());
    assert!(!config.local_sign_in_allowed());
    assert_eq!(env["CLIENT_IP_HEADER"], "x-forwarded-for");
    assert_eq!(
        config.public_url().as_url().as_str().trim_end_matches('/'),
        "http://localhost:8080"
    );

    // Health checks: each replica probes /api/health on its listen port; the proxy waits for both.
    let port = config.listen_addr().port();
    for app in APPS {
        let check = &service(&compose, app)["healthcheck"];
        let test: Vec<&str> = check["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(test[0], "CMD");
        assert!(
            test.contains(&format!("http://127.0.0.1:{port}/api/health").as_str()),
            "{app}: {test:?}"
        );
        assert_eq!(
            service(&compose, "proxy")["depends_on"][app]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    // A graceful stop (SHUTDOWN_GRACE_SECS, default 10) fits in compose's grace period.
    for app in APPS {
        let grace = service(&compose, app)["stop_grace_period"]
            .as_str()
            .unwrap();
        let secs: u64 = grace.trim_end_matches('s').parse().unwrap();
        assert!(secs > 10, "{app}: stop_grace_period {grace}");
    }

    // The proxy: published port = the Caddyfile's site address; upstreams = both replicas' ports.
    let proxy = service(&compose, "proxy");
    let ports: Vec<&str> = proxy["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(ports, ["8080:8080"]);
    assert!(proxy["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v.as_str() == Some("./Caddyfile:/etc/caddy/Caddyfile:ro")));
    let caddy = caddyfile();
    assert_eq!(caddy.site, ":8080");
    assert_eq!(
        caddy.upstreams,
        APPS.iter()
            .map(|a| format!("{a}:{port}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(caddy.directives["lb_policy"], "round_robin");
    assert_eq!(caddy.directives["health_uri"], "/api/health");
    assert_eq!(caddy.directives["flush_interval"], "-1");
}

#[test]
fn compose_refuses_to_start_without_the_secrets_the_app_requires_off_loopback() {
    let compose = compose();
    for secret in ["SESSION_SECRET", "TOKEN_ENCRYPTION_KEY"] {
        let mut vars = user_vars();
        vars.remove(secret);
        let err = environment(&compose, "app1", &vars).unwrap_err();
        assert!(err.starts_with(secret), "{err}");
    }
    // And the app does need them: without SESSION_SECRET it refuses to start off loopback, and with
    // a sign-in provider configured it needs TOKEN_ENCRYPTION_KEY.
    let mut vars = user_vars();
    vars.insert("GITHUB_CLIENT_ID", "id".into());
    vars.insert("GITHUB_CLIENT_SECRET", "secret".into());
    let env = environment(&compose, "app1", &vars).unwrap();
    let dir = tempfile::tempdir().unwrap();
    load_config(&env, dir.path()).expect("loads with a provider");
    for secret in ["SESSION_SECRET", "TOKEN_ENCRYPTION_KEY"] {
        let mut without = env.clone();
        without.remove(secret);
        let err = load_config(&without, dir.path()).unwrap_err();
        assert!(err.contains(&format!("{secret} is required")), "{err}");
    }
}

#[test]
fn every_variable_in_compose_is_one_the_app_reads() {
    let compose = compose();
    let env = environment(&compose, "app1", &user_vars()).unwrap();
    // The README's configuration table, first column.
    let readme = read("README.md");
    let documented: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    // The configuration code, where each variable is read by name.
    let mut code = String::new();
    for dir in ["app/src/infra/config", "server/src"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                code.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    // LEPTOS_* are read by leptos itself: each overrides the Leptos.toml key of the same name.
    let leptos_toml = read("Leptos.toml");
    let reads = |name: &str| match name.strip_prefix("LEPTOS_") {
        Some(key) => {
            leptos_toml.contains(&format!("\n{} = ", key.to_lowercase().replace('_', "-")))
        }
        None => documented.contains(name) && code.contains(&format!("\"{name}\"")),
    };
    for name in env.keys() {
        assert!(
            reads(name),
            "compose sets {name}, which the app does not read"
        );
    }
    // The Dockerfile's own defaults (`ENV NAME=value`) too.
    let mut in_env = false;
    let mut set = 0;
    for line in read("deploy/Dockerfile").lines() {
        in_env = line.starts_with("ENV ") || (in_env && line.starts_with(' '));
        for word in line.split_whitespace().filter(|_| in_env) {
            if let Some((name, _)) = word.split_once('=') {
                assert!(
                    reads(name),
                    "the Dockerfile sets {name}, which the app does not read"
                );
                set += 1;
            }
        }
        in_env &= line.trim_end().ends_with('\\');
    }
    assert_eq!(set, 3, "LEPTOS_SITE_ROOT, LEPTOS_SITE_ADDR, DATA_DIR");
}

/// The parts of the Caddyfile the deployment relies on.
struct Caddy {
    site: String,
    upstreams: Vec<String>,
    directives: HashMap<String, String>,
}

/// A small reader for the one-site Caddyfile in `deploy/`: the site address, the
/// `reverse_proxy` upstreams, and the subdirectives of its block (`name value`, one per line).
fn caddyfile() -> Caddy {
    let text = read("deploy/Caddyfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let site = lines[0]
        .strip_suffix('{')
        .expect("site block")
        .trim()
        .to_string();
    let proxy = lines
        .iter()
        .position(|l| l.starts_with("reverse_proxy "))
        .expect("a reverse_proxy directive");
    let upstreams = lines[proxy]
        .trim_start_matches("reverse_proxy")
        .trim_end_matches('{')
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let directives = lines[proxy + 1..]
        .iter()
        .take_while(|l| **l != "}")
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    Caddy {
        site,
        upstreams,
        directives,
    }
}
