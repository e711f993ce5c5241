//! `personaflux`: reads the configuration, starts the server, serves until Ctrl-C.

use app::infra::config::{Config, ProcessEnv};
use server::{telemetry, Application};

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
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    };
    if let Err(e) = app.run_until(shutdown).await {
        tracing::error!(error = %e, "server error");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
