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
    /// Folder `eo_cnn` trials save their models under (`<dir>/<experiment>/trial-<id>/`),
    /// unless the trial names one.
    #[cfg(feature = "eo-cnn")]
    #[arg(long, env = "ALBEDO_MODELS_DIR", default_value = "albedo-models")]
    models_dir: std::path::PathBuf,
    /// Device of `eo_cnn` trials unless the trial names one: cpu, or wgpu (in a build with
    /// the `wgpu` feature).
    #[cfg(feature = "eo-cnn")]
    #[arg(long, default_value = "cpu")]
    device: albedo_trainer::Compute,
    /// Threads of each `eo_cnn` trial's CPU pool unless the trial says (default: rayon's,
    /// `RAYON_NUM_THREADS` or one per core); with several slots, cores / slots.
    #[cfg(feature = "eo-cnn")]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    trainer_threads: Option<u32>,
}

// One thread for the async part: it only moves small messages and waits on timers, and a
// runner woken by its timer then runs at once, with no hand-over to another thread (heavy
// work, training and classification, runs on blocking threads).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    #[cfg(feature = "eo-cnn")]
    {
        // Training and classification allocate large blocks each batch: keep them in the heap.
        albedo_trainer::tune_allocator();
        let available = albedo_trainer::Compute::available();
        anyhow::ensure!(
            available.contains(&cli.device),
            "--device {}: this build offers {}",
            cli.device,
            available
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        albedo_worker::trials::eo_cnn::set_defaults(albedo_worker::trials::eo_cnn::EoCnnDefaults {
            models_dir: Some(cli.models_dir.clone()),
            device: cli.device,
            threads: cli.trainer_threads.map(|t| t as usize).or_else(|| {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                (cli.slots > 1).then(|| (cores / cli.slots as usize).max(1))
            }),
        });
    }
    let name = cli.name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "worker".into())
    });
    #[allow(unused_mut)]
    let mut devices = albedo_worker::devices::detect();
    #[cfg(feature = "eo-cnn")]
    if cli.device == albedo_trainer::Compute::Wgpu {
        // Announced as asked: the adapter is only opened by the first trial on it.
        devices.push(albedo_shared::protocol::Device {
            kind: "wgpu".into(),
            name: "wgpu default adapter (--device wgpu)".into(),
        });
    }
    let config = ClientConfig {
        server: cli.server,
        token: cli.token,
        name,
        slots: cli.slots,
        devices,
        max_backoff: Duration::from_secs(30),
    };
    tokio::select! {
        r = run(config) => r?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
