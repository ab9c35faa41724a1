//! The `lsm-server` binary: configuration → logging → [`lsm_server::Server`], until
//! SIGTERM or SIGINT; or one of the offline tools (`verify`, `dump`, `stats`).

use clap::Parser;
use lsm_server::{Cli, Config, Server};

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if let Some(tool) = cli.tool.take() {
        lsm_server::tools::run(&tool, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    let config = Config::resolve(cli)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log_level)?)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file or the journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.threads > 0 {
        builder.worker_threads(config.threads);
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        server.serve(shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}
