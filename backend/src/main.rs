//! `albedo`: the Albedo server and its data-folder commands. See `albedo --help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use albedo_backend::ingest::{IngestOptions, ingest_paths};
use albedo_backend::store::{Store, TokenScope};
use albedo_backend::{AppState, Config, run};

/// Albedo: a workbench for machine learning on Copernicus Sentinel data.
///
/// Start with `albedo ingest PATH...` to load products into a data folder, then
/// `albedo serve` and open the printed URL. `cargo xtask demo` does all of it with the
/// bundled sample data.
#[derive(Debug, Parser)]
#[command(name = "albedo", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web app, the JSON API (/api), the STAC API (/stac) and the worker socket.
    Serve {
        /// Address to listen on. Use 127.0.0.1 to stay local; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Data folder: holds the SQLite store (created if missing).
        #[arg(long, default_value = "./albedo-data", env = "ALBEDO_DATA")]
        data: PathBuf,
        /// Folder of the built browser app (Trunk's dist). Without it, / explains how to
        /// build one; the APIs work either way.
        #[arg(long = "static")]
        static_dir: Option<PathBuf>,
        /// A folder whose files `POST /api/ingest` may ingest by path (repeatable). Without
        /// one, HTTP ingest accepts STAC documents only.
        #[arg(long = "ingest-root", value_name = "DIR")]
        ingest_roots: Vec<PathBuf>,
        /// Seconds between worker heartbeats; a worker silent for three of them is gone.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=3600))]
        heartbeat_secs: u32,
        /// Seconds the trials of a gone worker wait for it to reconnect before they are
        /// re-run elsewhere (default: three heartbeats).
        #[arg(long)]
        lease_grace_secs: Option<f64>,
    },
    /// Load products into the data folder's catalog, whether or not a server is running.
    ///
    /// Each PATH is a STAC Item / FeatureCollection / Collection / newline-delimited file
    /// (.json, .geojson, .ndjson), a GeoTIFF, a product folder of band GeoTIFFs (with an
    /// optional metadata.json), or a folder of those; `-` reads STAC (e.g. ndjson) from
    /// standard input. Everything is checked (errors name the JSON field or byte offset) and
    /// written in one transaction: on any error nothing is ingested. Newline-delimited input
    /// streams, so its size is not bounded by memory. Ingesting a product again updates it.
    Ingest {
        /// Data folder holding the store.
        #[arg(long, default_value = "./albedo-data", env = "ALBEDO_DATA")]
        data: PathBuf,
        /// Collection for STAC items that name none.
        #[arg(long)]
        collection: Option<String>,
        /// Bulk loads: commit every N products on their own instead of all at once. Keeps
        /// the WAL file small and lets a running server write between chunks, but an error
        /// keeps the chunks committed before it (run the same ingest again after a fix).
        #[arg(long, value_name = "N")]
        commit_every: Option<std::num::NonZeroUsize>,
        /// Files or folders to ingest (`-`: standard input).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Manage the bearer tokens workers connect with.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token (replacing any of the same scope and name) and print it once.
    Create {
        /// What it may do: `worker` connects workers, `user` changes things via the API.
        #[arg(long, value_enum, default_value_t = Scope::Worker)]
        scope: Scope,
        /// Data folder holding the store.
        #[arg(long, default_value = "./albedo-data", env = "ALBEDO_DATA")]
        data: PathBuf,
        /// A name for the token, e.g. the host the worker runs on.
        #[arg(long, default_value = "local")]
        name: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Scope {
    Worker,
    User,
}

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
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve {
            listen,
            data,
            static_dir,
            ingest_roots,
            heartbeat_secs,
            lease_grace_secs,
        } => {
            if let Some(dir) = &static_dir {
                anyhow::ensure!(
                    dir.join("index.html").is_file(),
                    "--static {}: no index.html there (build the frontend first: cargo xtask demo)",
                    dir.display()
                );
            }
            let store = Store::open(&data)
                .with_context(|| format!("opening the store in {}", data.display()))?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let addr = listener.local_addr()?;
            for root in &ingest_roots {
                anyhow::ensure!(
                    root.is_dir(),
                    "--ingest-root {}: not a folder",
                    root.display()
                );
            }
            let lease_grace = match lease_grace_secs {
                Some(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => {
                    Some(std::time::Duration::from_secs_f64(s))
                }
                Some(s) => anyhow::bail!("--lease-grace-secs {s}: give 0 to 86400 seconds"),
                None => None,
            };
            let config = Config {
                static_dir,
                ingest_roots,
                heartbeat_interval_secs: heartbeat_secs,
                lease_grace,
                ..Config::default()
            };
            let state = AppState::new(store, config).context("starting the experiment engine")?;
            // The one line tools wait for; keep its shape.
            println!("Albedo listening on http://{addr}/");
            run(listener, state, shutdown_signal()).await?;
        }
        Command::Ingest {
            data,
            collection,
            commit_every,
            paths,
        } => {
            let store = Store::open(&data)
                .with_context(|| format!("opening the store in {}", data.display()))?;
            let options = IngestOptions {
                default_collection: collection,
                commit_every,
            };
            let report =
                tokio::task::spawn_blocking(move || ingest_paths(&store, &paths, &options))
                    .await?
                    .context(if commit_every.is_some() {
                        "ingest failed"
                    } else {
                        "ingest failed; nothing was written"
                    })?;
            for (path, why) in &report.skipped {
                eprintln!("skipped {}: {why}", path.display());
            }
            if !report.collections.is_empty() {
                println!("collections: {}", report.collections.join(", "));
            }
            println!(
                "ingested {} products ({} with local pixels) into {}",
                report.ingested,
                report.local,
                data.display()
            );
        }
        Command::Token {
            command: TokenCommand::Create { data, name, scope },
        } => {
            let store = Store::open(&data)
                .with_context(|| format!("opening the store in {}", data.display()))?;
            let scope = match scope {
                Scope::Worker => TokenScope::Worker,
                Scope::User => TokenScope::User,
            };
            println!("{}", store.create_token(scope, &name)?);
        }
    }
    Ok(())
}
