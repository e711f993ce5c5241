//! The names this server answers to, and the origins its pages come from.
//!
//! A DNS-rebinding page (`http://rb.example:3000`, whose name the attacker points at 127.0.0.1)
//! reaches a loopback server with its own name in `Host` and `Origin` — both chosen by the
//! attacker. So neither is trusted as the server's identity: the names come from configuration.
//! A request whose `Host` is not one of them gets 421 before any handler ([`known_hosts_only`]);
//! `Origin` is compared with the configured origins, never with `Host` (`csrf.rs`).
//!
//! Known names: the host of `PUBLIC_URL` (with its port), the listen address, and — when the
//! server accepts loopback connections — `localhost`, `127.0.0.1` and `[::1]` with the listen
//! port. A reverse proxy may keep the public `Host` or rewrite it to the listen address; the
//! `Origin` the browser sends is then the public origin either way.

use app::infra::config::Config;
use axum::{
    extract::{Request, State},
    http::{header, uri::Authority, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::net::IpAddr;
use std::sync::Arc;

/// One `host:port` this server answers to; `default_port` is the port a `Host` without one means.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Name {
    host: String,
    port: u16,
    default_port: u16,
}

/// The configured names and origins. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KnownHosts(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    names: Vec<Name>,
    /// Serialized origins (`scheme://host[:port]`, default ports omitted), lowercase.
    origins: Vec<String>,
}

/// An IP address as it appears in a `Host` header (IPv6 in brackets).
fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `scheme://host[:port]`, the port left out when it is the scheme's default.
fn origin(scheme: &str, host: &str, port: u16, default_port: u16) -> String {
    if port == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

impl KnownHosts {
    /// The names `config` makes this server answer to. Call with the real listen address
    /// (after binding port 0).
    pub fn from_config(config: &Config) -> Self {
        let mut names = Vec::new();
        let mut origins = Vec::new();
        let public = config.public_url();
        let url = public.as_url();
        if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
            let default_port = if url.scheme() == "https" { 443 } else { 80 };
            names.push(Name {
                host: host.to_ascii_lowercase(),
                port,
                default_port,
            });
            origins.push(url.origin().ascii_serialization().to_ascii_lowercase());
        }
        // The server speaks plain HTTP itself: a browser that reaches it directly is on http://.
        let listen = config.listen_addr();
        let port = listen.port();
        let mut direct: Vec<String> = Vec::new();
        if !listen.ip().is_unspecified() {
            direct.push(ip_host(listen.ip()));
        }
        if listen.ip().is_loopback() || listen.ip().is_unspecified() {
            direct.extend(["localhost", "127.0.0.1", "[::1]"].map(String::from));
        }
        for host in direct {
            let name = Name {
                host,
                port,
                default_port: 80,
            };
            let o = origin("http", &name.host, port, 80);
            if !names.contains(&name) {
                names.push(name);
            }
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        Self(Arc::new(Inner { names, origins }))
    }

    /// Whether a `Host` header (`host[:port]`) names this server.
    pub fn knows_host(&self, value: &str) -> bool {
        let Ok(authority) = value.parse::<Authority>() else {
            return false;
        };
        if authority.as_str().contains('@') {
            return false;
        }
        let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
        let port = authority.port_u16();
        self.0.names.iter().any(|n| {
            n.host == host
                && match port {
                    Some(p) => p == n.port,
                    None => n.port == n.default_port,
                }
        })
    }

    /// Whether an `Origin` header is one of this server's origins.
    pub fn knows_origin(&self, value: &str) -> bool {
        let Ok(url) = url::Url::parse(value) else {
            return false;
        };
        let origin = url.origin();
        origin.is_tuple()
            && self
                .0
                .origins
                .contains(&origin.ascii_serialization().to_ascii_lowercase())
    }
}

/// Answers 421 (Misdirected Request) to a request whose `Host` is not one of this server's names,
/// before any handler runs. HTTP/2 requests carry the name in the URI's authority instead.
pub async fn known_hosts_only(
    State(known): State<KnownHosts>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    match host {
        Some(h) if known.knows_host(&h) => next.run(req).await,
        other => {
            tracing::warn!(
                host = other.as_deref().unwrap_or("-"),
                path = %req.uri().path(),
                "refused a request for a host this server is not configured for"
            );
            (
                StatusCode::MISDIRECTED_REQUEST,
                "This server does not answer to that host name.",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)], listen: &str) -> Config {
        let mut env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        env.insert(
            "LEPTOS_TOML".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../Leptos.toml").into(),
        );
        env.insert("DATA_DIR".into(), dir.path().display().to_string());
        env.insert(
            "SESSION_SECRET".into(),
            app::infra::config::SessionSecret::generate_hex(),
        );
        let mut c = Config::from_env(&env).unwrap();
        c.leptos.site_addr = listen.parse().unwrap();
        c
    }

    #[test]
    fn loopback_answers_to_its_loopback_names_only() {
        let k = KnownHosts::from_config(&config(&[], "127.0.0.1:3000"));
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST:3000",
            "[::1]:3000",
        ] {
            assert!(k.knows_host(ok), "{ok}");
        }
        for bad in [
            "rb.example:3000",
            "127.0.0.1:3001",
            "localhost",
            "127.0.0.1",
            "",
            "u@127.0.0.1:3000",
            "127.0.0.1.rb.example:3000",
        ] {
            assert!(!k.knows_host(bad), "{bad}");
        }
        assert!(k.knows_origin("http://127.0.0.1:3000"));
        assert!(k.knows_origin("http://localhost:3000"));
        for bad in [
            "http://rb.example:3000",
            "null",
            "https://127.0.0.1:3000",
            "http://127.0.0.1:3001",
        ] {
            assert!(!k.knows_origin(bad), "{bad}");
        }
    }

    #[test]
    fn a_public_url_adds_its_host_and_origin() {
        let k = KnownHosts::from_config(&config(
            &[("PUBLIC_URL", "https://PersonaFlux.example/pf")],
            "127.0.0.1:3000",
        ));
        for ok in [
            "personaflux.example",
            "personaflux.example:443",
            "127.0.0.1:3000",
        ] {
            assert!(k.knows_host(ok), "{ok}");
        }
        assert!(!k.knows_host("personaflux.example:80"));
        assert!(k.knows_origin("https://personaflux.example"));
        assert!(k.knows_origin("https://personaflux.example:443"));
        assert!(!k.knows_origin("http://personaflux.example"));

        let k = KnownHosts::from_config(&config(
            &[("PUBLIC_URL", "https://pf.example")],
            "0.0.0.0:8080",
        ));
        assert!(k.knows_host("pf.example") && k.knows_host("localhost:8080"));
        assert!(!k.knows_host("0.0.0.0:8080") && !k.knows_host("10.0.0.5:8080"));
    }
}
