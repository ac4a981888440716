//! `albedo-worker`: connects to an Albedo server and offers this host's slots. See `--help`.

use std::time::Duration;

use clap::Parser;

use albedo_worker::client::{ClientConfig, run};

/// An Albedo worker: connects to a server, announces this host's devices and slots, and
/// runs the trials it is given. Reconnects by itself when the server restarts.
#[derive(Debug, Parser)]
#[command(name = "albedo-worker", version, about, long_about)]
struct Cli {
    /// Server URL, e.g. http://127.0.0.1:8080
    #[arg(long, env = "ALBEDO_SERVER")]
    server: String,
    /// Worker token, created on the server host with `albedo token create`.
    #[arg(long, env = "ALBEDO_WORKER_TOKEN", hide_env_values = true)]
    token: String,
    /// Trials this worker runs at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    slots: u32,
    /// Name shown in the server's worker list (default: the host name).
    #[arg(long)]
    name: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let name = cli.name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "worker".into())
    });
    let config = ClientConfig {
        server: cli.server,
        token: cli.token,
        name,
        slots: cli.slots,
        devices: albedo_worker::devices::detect(),
        max_backoff: Duration::from_secs(30),
    };
    tokio::select! {
        r = run(config) => r?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
