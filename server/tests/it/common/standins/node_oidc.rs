//! A real OpenID Connect provider: the `oidc-provider` npm package, run by node from
//! `end2end/oidc-server.mjs` on a loopback port (the README's test command installs it). It knows
//! the app as client `personaflux` and signs in whatever username its login form is given.

use crate::common::location;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The running provider, stopped when dropped.
pub struct NodeIdp {
    child: Child,
    issuer: String,
}

impl Drop for NodeIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeIdp {
    /// A free loopback port, for a provider started later (once the app's callback URL is known).
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The app's configuration for a provider that will listen on `port`, labelled "Test IdP".
    pub fn env(port: u16) -> Vec<(&'static str, String)> {
        vec![
            ("OIDC_ISSUER", format!("http://127.0.0.1:{port}")),
            ("OIDC_CLIENT_ID", "personaflux".into()),
            ("OIDC_CLIENT_SECRET", "e2e-client-secret".into()),
            ("OIDC_LABEL", "Test IdP".into()),
        ]
    }

    /// Starts the provider on `port`, accepting `redirect_uri` for the app; returns once its
    /// discovery document answers.
    pub async fn start(port: u16, redirect_uri: &str) -> Self {
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
        let idp = NodeIdp { child, issuer };
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

    /// The browser's part at the provider: from the app's `authorize` redirect, through the
    /// provider's login form (signing in as `username`), to the first redirect back to `app_base`.
    /// Returns that URL (the app's callback, not yet visited).
    pub async fn log_in(
        client: &reqwest::Client,
        authorize: String,
        username: &str,
        app_base: &str,
    ) -> String {
        let mut url = authorize;
        let mut hops = 0;
        loop {
            let res = client.get(&url).send().await.unwrap();
            if res.status().is_redirection() {
                let next = location(&res);
                let next = if next.starts_with('/') {
                    format!("{}{}", origin_of(&url), next)
                } else {
                    next
                };
                if next.starts_with(app_base) {
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
                let res = client
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
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap();
    let host = rest.split('/').next().unwrap();
    format!("{}://{host}", url.split("://").next().unwrap())
}
