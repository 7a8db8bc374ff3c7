//! `imgd serve`: start, announce a generated admin key once, serve until a signal, drain.

use anyhow::Result;

use crate::app;
use crate::config::Config;

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received, draining");
}

/// Runs the server until a signal.
pub async fn run(config: Config) -> Result<()> {
    let server = app::start(config, crate::telemetry::metrics_handle()).await?;
    if let Some(key) = &server.generated_admin_key {
        // Printed once, on stdout, apart from the logs; it is also in DATA_DIR/admin.key.
        println!(
            "imgd: generated admin API key (saved to {}): {key}",
            server.admin_key_path.display()
        );
    }
    server.run_until(shutdown_signal()).await
}
