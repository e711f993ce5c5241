//! The PersonaFlux server: axum + leptos_axum. Everything product-specific is in the `app` crate;
//! this crate wires configuration, telemetry, sessions, static files and the few routes that are
//! not server functions.

pub mod csrf;
pub mod headers;
pub mod host;
pub mod limits;
pub mod metrics;
pub mod rest;
pub mod routes;
pub mod status;
pub mod telemetry;

use app::auth::providers::Providers;
use app::infra::{config::Config, db::Db, llm, session::DbSessionStore, AppState};
use app::{shell, App};
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::{future::IntoFuture, net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;
use tower_http::{
    compression::CompressionLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use tower_sessions::{cookie::Key, cookie::SameSite, Expiry, SessionManagerLayer};

/// After the shutdown grace: how long the replies get to save themselves as interrupted, and the
/// open connections to close.
const SAVE_ON_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(5);

/// A built server, bound to its port but not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database: {0}")]
    Database(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the session secret is unusable: {0}")]
    Secret(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl Application {
    /// Connects to the database (running migrations), builds the router and binds the listen
    /// address. Port 0 binds a free port (see [`Application::addr`]).
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        let url = config.database_url.expose().to_string();
        let db_error =
            |e: &dyn std::fmt::Display| StartError::Database(redact_password(&e.to_string(), &url));
        // Metrics are recorded from the first request on (read at /metrics with METRICS_TOKEN).
        let _ = metrics::handle();
        let db = Db::connect(&url).await.map_err(|e| db_error(&e))?;
        let sessions = DbSessionStore::new(&db).await.map_err(|e| db_error(&e))?;
        // Replies left `streaming` by a server that died (its heartbeat stale) are given up.
        app::chat::service::interrupt_stale_replies(&db, config.replies.stale_after, None)
            .await
            .map_err(|e| db_error(&e))?;
        app::play::service::interrupt_stale_turns(&db, config.replies.stale_after, None)
            .await
            .map_err(|e| db_error(&e))?;
        app::characters::service::purge_expired(&db).await;
        app::chat::service::purge_expired(&db).await;
        spawn_trash_purge(db.clone());

        let addr = config.listen_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        // With port 0 the real port is only known now (and the default public URL with it).
        config.leptos.site_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let leptos_options = config.leptos.clone();
        if config.listen_addr().ip().is_unspecified() && config.public_url.is_none() {
            tracing::warn!(
                "listening on {} without PUBLIC_URL: the server answers only to localhost, \
                 127.0.0.1 and [::1]; set PUBLIC_URL to the address users reach it at",
                config.listen_addr()
            );
        }

        let key = Key::try_from(config.session_secret.expose())
            .map_err(|e| StartError::Secret(e.to_string()))?;
        let session_layer = SessionManagerLayer::new(sessions.clone())
            .with_name("pf_session")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(config.cookie_secure)
            .with_expiry(Expiry::OnInactivity(
                tower_sessions::cookie::time::Duration::try_from(config.session_idle)
                    .map_err(|e| StartError::Config(format!("SESSION_IDLE_SECS: {e}")))?,
            ))
            .with_private(key);

        let state = AppState {
            leptos_options: leptos_options.clone(),
            db: db.clone(),
            llm: llm::from_config(&config.llm),
            providers: Arc::new(Providers::new(&config.auth, &config.public_url())),
            config: Arc::new(config),
            running: Default::default(),
        };

        spawn_session_cleanup(sessions);
        let router = router(state.clone(), session_layer);
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.state.leptos_options.site_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully: no new connections; the
    /// replies in flight may finish for `SHUTDOWN_GRACE_SECS`, after which each saves what it
    /// has as `interrupted`; then the open connections (the reply streams among them, now ended)
    /// are closed and this returns.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            router,
            state,
        } = self;
        let stop_accepting = tokio_util::sync::CancellationToken::new();
        let mut serving = tokio::spawn(
            // The peer address is the client address the sign-in limit counts by (see `limits`).
            axum::serve(
                // Each write goes out at once: a page streamed in pieces must not wait for the
                // client's delayed ACK (Nagle's algorithm held the chat page's last piece for
                // 40 ms in about one response in a hundred).
                axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                }),
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop_accepting.clone().cancelled_owned())
            .into_future(),
        );
        tokio::select! {
            _ = shutdown => {}
            // The server ended on its own (an error): nothing to drain it for.
            ended = &mut serving => return ended.map_err(std::io::Error::other)?,
        }
        let running = state.running.len();
        tracing::info!(
            replies = running,
            grace_secs = state.config.replies.shutdown_grace.as_secs(),
            "shutting down: no new connections; replies in flight may finish"
        );
        stop_accepting.cancel();
        state
            .running
            .drain(state.config.replies.shutdown_grace, SAVE_ON_SHUTDOWN)
            .await;
        // The replies have ended, so their streams have too; other requests get a moment.
        match tokio::time::timeout(SAVE_ON_SHUTDOWN, serving).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(std::io::Error::other(join)),
            Err(_) => {
                tracing::warn!("connections still open after the shutdown: closing them");
                Ok(())
            }
        }
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }
}

/// The app's page routes, listed once per process.
///
/// Listing them renders `App` with resource loading suppressed, and leptos keeps that switch in a
/// process-wide flag (`leptos_server::SuppressResourceLoad`): a page being rendered at that moment
/// in the same process creates resources that never load, and its response never ends. A server
/// builds its router once before serving, but a process that builds several (the integration
/// tests, a server per test) rendered pages while another was listing routes — the rare hung
/// render of issue 9 point 11. Listing once, before any router exists, leaves no such moment.
pub fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The routes: health and other plain routes, server functions, pages, static files.
pub fn router(
    state: AppState,
    sessions: SessionManagerLayer<DbSessionStore, tower_sessions::service::PrivateCookie>,
) -> Router {
    let hsts = state.config.public_url().is_https();
    let routes = route_list();
    let leptos_options = state.leptos_options.clone();
    let known = host::KnownHosts::from_config(&state.config);
    Router::new()
        .merge(routes::api(state.clone()))
        .merge(rest::router(state.clone()))
        .route("/metrics", axum::routing::get(metrics::scrape))
        .leptos_routes(&state, routes, move || shell(leptos_options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state.clone())
        // The status of every server function's error (one place; see `status`).
        .layer(axum::middleware::from_fn(status::server_fn_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            routes::pages_know_their_user,
        ))
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(
            state,
            limits::sign_in_rate,
        ))
        .layer(axum::middleware::from_fn(limits::body_limit))
        .layer(axum::middleware::from_fn_with_state(
            known.clone(),
            csrf::same_origin_only,
        ))
        .layer(axum::middleware::from_fn_with_state(
            known,
            host::known_hosts_only,
        ))
        .layer(axum::middleware::from_fn_with_state(
            headers::SecurityHeaders { hsts },
            headers::security_headers,
        ))
        .layer(CompressionLayer::new())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::make_span))
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn(telemetry::only_uuid_request_ids))
}

/// `text` with the password of `url` (a database URL) replaced by `***`, in its raw and its
/// percent-decoded form, wherever it appears: a driver's error may quote the URL.
pub fn redact_password(text: &str, url: &str) -> String {
    let Some(password) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
        .or_else(|| password_by_hand(url))
    else {
        return text.to_string();
    };
    let mut out = text.to_string();
    let decoded = url::form_urlencoded::parse(format!("p={password}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned());
    for p in [Some(password), decoded].into_iter().flatten() {
        if !p.is_empty() {
            out = out.replace(&p, "***");
        }
    }
    out
}

/// The `user:password@` part of a URL that does not parse (a bad port, a bad host).
fn password_by_hand(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    Some(userinfo.split_once(':')?.1.to_string())
}

/// Empties characters and chats past their days in the trash, every hour (the first run is at start-up).
fn spawn_trash_purge(db: app::infra::db::Db) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        tick.tick().await;
        loop {
            tick.tick().await;
            app::characters::service::purge_expired(&db).await;
            app::chat::service::purge_expired(&db).await;
        }
    });
}

fn spawn_session_cleanup(store: DbSessionStore) {
    use tower_sessions::session_store::ExpiredDeletion;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
        }
    });
}
