//! `personaflux`: reads the configuration, starts the server, serves until SIGTERM or Ctrl-C
//! (SIGINT), then shuts down gracefully (see `Application::run_until`) and exits 0.

use app::infra::config::{Config, ProcessEnv};
use server::{telemetry, Application};

/// mimalloc instead of the system allocator: see the note in `server/Cargo.toml`.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = dotenvy::dotenv();
    let config = match Config::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("personaflux: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("personaflux: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(
        provider = app.state().llm.name(),
        "PersonaFlux is listening on http://{}",
        app.addr()
    );
    println!("PersonaFlux is running at http://{}", app.addr());
    let shutdown = async {
        let signal = stop_signal().await;
        tracing::info!(signal, "stop requested");
    };
    if let Err(e) = app.run_until(shutdown).await {
        tracing::error!(error = %e, "server error");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

/// The first of SIGTERM (what service managers and container runtimes send) and SIGINT (Ctrl-C).
async fn stop_signal() -> &'static str {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                s = interrupt => s,
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops gracefully");
                interrupt.await
            }
        }
    }
    #[cfg(not(unix))]
    interrupt.await
}
