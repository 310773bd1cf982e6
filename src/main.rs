use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard::config::ServerConfig;
use switchboard::server::Server;
use switchboard::telemetry;
use tracing::error;

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
    let Command::Serve(config) = Cli::parse().command;
    let telemetry = match telemetry::init(&config.telemetry) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let served = serve(config).await;
    if let Err(e) = &served {
        error!("{e}");
    }
    // After the server: the spans of its last calls go too.
    telemetry.shutdown();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
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
