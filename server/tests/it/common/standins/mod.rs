//! Stand-ins for the sign-in providers. Each is a small server on a loopback port (or, for the
//! OpenID Connect provider, the real `oidc-provider` package run by node) that answers like the
//! real provider and checks what it checks, so the sign-in tests exercise the app's whole flow
//! without the network. The test modules hold only the tests; the providers live here.

pub mod faulty_oidc;
pub mod github;
pub mod node_oidc;
pub mod secondme;

pub use faulty_oidc::{Fault, FaultyIdp};
pub use github::{GitHub, GitHubAccount};
pub use node_oidc::NodeIdp;
pub use secondme::SecondMe;

/// A new loopback port and its base URL (`http://127.0.0.1:…`).
async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Serves `router` on `listener` in the background, for the rest of the test.
fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    tokio::spawn(async move { axum::serve(listener, router).await });
}
