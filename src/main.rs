use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard::config::ServerConfig;
use switchboard::server::Server;
use tracing::error;
use tracing_subscriber::EnvFilter;

/// Switchboard: a gRPC control plane for contact-center agent desktops and media routing.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API until SIGTERM or Ctrl-C.
    Serve(ServerConfig),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let Command::Serve(config) = Cli::parse().command;
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServerConfig) -> Result<(), switchboard::server::ServerError> {
    // Listening for the stop signals starts before the server announces itself, so a stop
    // asked for at any moment after that is a graceful one.
    let stop = stop_signal();
    let server = Server::start(config).await?;
    stop.await;
    server.shutdown().await
}

/// Registers SIGTERM and SIGINT (Ctrl-C) handlers now; the future ends when either arrives.
#[cfg(unix)]
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let wait = |registered: std::io::Result<tokio::signal::unix::Signal>| async move {
            match registered {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(terminate) => {}
            () = wait(interrupt) => {}
        }
    }
}

#[cfg(not(unix))]
fn stop_signal() -> impl std::future::Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
