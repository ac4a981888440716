//! `cargo xtask`: the exact steps of a newcomer (`demo`) and of CI (`test`).
//!
//! What it is: a small program with no dependencies beyond `anyhow` and `clap`, so that it
//! builds in seconds on a fresh machine, which installs the tools Albedo needs (see
//! [`tools`]), builds the browser app ([`frontend`]), starts the stack ([`stack`]) and runs
//! every check CI runs ([`checks`]).
//!
//! What it is not: a build system. Cargo, Trunk, wasm-bindgen, wasm-opt and npm do the work.

mod bench;
mod bench_train;
mod checks;
mod frontend;
mod stack;
mod tools;
mod util;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

/// Albedo's developer commands.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install what is missing, build the browser app and the server in release mode, load
    /// the bundled sample data, start the server and local workers, print the URL. Runs until
    /// Ctrl-C.
    Demo {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Data folder (SQLite store).
        #[arg(long, default_value = "albedo-data")]
        data: PathBuf,
        /// Local worker processes to start.
        #[arg(long, default_value_t = 1)]
        workers: u32,
        /// Trial slots per worker.
        #[arg(long, default_value_t = 2)]
        slots: u32,
        /// Build without installing Trunk (cargo + wasm-bindgen + wasm-opt, same output).
        #[arg(long)]
        no_trunk: bool,
    },
    /// Everything CI checks: fmt, clippy (native and wasm32), all tests, browser tests.
    Test {
        /// Skip the browser end-to-end tests.
        #[arg(long)]
        no_browser: bool,
    },
    /// Benchmarks: `bench tiles` (raster tiles per second over HTTP, against titiler where
    /// it installs), `bench catalog` (STAC search latency, against rustac where it installs),
    /// `bench scheduler` (the experiment engine), `bench train` (the EO CNN against PyTorch).
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Build the browser app into <target>/dist.
    BuildFrontend {
        /// Build without Trunk even when it is installed.
        #[arg(long)]
        no_trunk: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// 256x256 three-band tiles per second from the T33UUU COG product through
    /// `/api/products/{id}/raster` of a release `albedo serve`.
    Tiles {
        /// Timed requests.
        #[arg(long, default_value_t = 400)]
        n: usize,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Skip the titiler comparison.
        #[arg(long)]
        no_titiler: bool,
    },
    /// Generates N items by jittering the 1000 real Planetary Computer items, ingests them
    /// into a fresh store and times a fixed mix of `/stac/search` queries; where rustac
    /// installs from crates.io, times the same queries on its `serve` too.
    Catalog {
        /// Items to generate (10000, 100000, 1000000, ...).
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        /// Times the whole query mix runs.
        #[arg(long, default_value_t = 30)]
        rounds: usize,
        /// Keep the generated store (its path is printed) instead of deleting it, e.g. to
        /// read query plans off it.
        #[arg(long)]
        keep_data: bool,
        /// Time the query mix on this existing store (a data folder an earlier
        /// `--keep-data` run printed, of --n items) instead of generating and ingesting one.
        #[arg(long, value_name = "DATA_DIR")]
        store: Option<std::path::PathBuf>,
        /// Skip the comparison with rustac's `serve` (which otherwise runs the same queries on
        /// the same items when rustac installs, up to 100000 items, and without --store).
        #[arg(long)]
        no_rustac: bool,
    },
    /// The experiment engine with real worker processes: the Maggy workload (BSP, async,
    /// median rule, ASHA) against its ideal schedule, scheduler overhead, scaling to 64
    /// slots, metric ingest.
    Scheduler {
        /// Parts to run: maggy, overhead, scaling, ingest (all when none is named).
        parts: Vec<String>,
    },
    /// The EO CNN (13 bands, 64x64, batch 64) trained and run in Albedo's trainer and, where
    /// PyTorch installs from PyPI, in PyTorch on the same samples and threads.
    Train {
        /// Threads of each side (rayon pool; torch.set_num_threads).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Skip the PyTorch comparison.
        #[arg(long)]
        no_pytorch: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Demo {
            listen,
            data,
            workers,
            slots,
            no_trunk,
        } => demo(listen, data, workers, slots, no_trunk),
        Cmd::Bench {
            what:
                BenchCmd::Tiles {
                    n,
                    concurrency,
                    no_titiler,
                },
        } => bench::tiles(n, concurrency, !no_titiler),
        Cmd::Bench {
            what:
                BenchCmd::Catalog {
                    n,
                    rounds,
                    keep_data,
                    store,
                    no_rustac,
                },
        } => bench::catalog(n, rounds, keep_data, store, !no_rustac),
        Cmd::Bench {
            what: BenchCmd::Scheduler { parts },
        } => bench::scheduler(&parts),
        Cmd::Bench {
            what:
                BenchCmd::Train {
                    threads,
                    no_pytorch,
                },
        } => bench_train::train(threads, !no_pytorch),
        Cmd::Test { no_browser } => checks::run_all(!no_browser),
        Cmd::BuildFrontend { no_trunk } => {
            let builder = if no_trunk || tools::trunk().is_none() {
                frontend::Builder::Direct
            } else {
                frontend::Builder::Trunk
            };
            let dist = frontend::build(builder)?;
            println!("built the browser app into {}", dist.display());
            Ok(())
        }
    }
}

/// The starter training dataset the demo builds from the bundled BigEarthNet patches.
const STARTER_DATASET: &str = "bigearthnet-demo";

/// Queues a build of [`STARTER_DATASET`] (a worker job) unless the server has it already,
/// so that an `eo_cnn` experiment can be launched from the form at once. Says what it did.
fn starter_dataset(addr: &str, token: &str) -> Result<Option<String>> {
    let (status, list) = util::http(addr, "GET", "/api/datasets", None, None)
        .context("no answer from GET /api/datasets")?;
    if status != 200 {
        bail!("GET /api/datasets answered {status}: {list}");
    }
    if list.contains(&format!("\"name\":\"{STARTER_DATASET}\"")) {
        return Ok(None);
    }
    let dir = util::repo_root().join("assets/labeled/bigearthnet/v1_geotiff/S2");
    let dir = util::json_string(&dir.to_string_lossy());
    // Every band of the patches and NDVI; three land-cover classes the bundled patches hold.
    let spec = format!(
        r#"{{"name": "{STARTER_DATASET}", "source": {{"kind": "bigearthnet", "dir": {dir}}},
        "channels": ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                     "B11", "B12", "NDVI"],
        "classes": [
          {{"name": "forest", "values": ["Coniferous forest", "Broad-leaved forest", "Mixed forest"]}},
          {{"name": "arable", "values": ["Non-irrigated arable land"]}},
          {{"name": "pastures", "values": ["Pastures"]}}],
        "patch_size": 30, "stride": 30,
        "split": {{"train": 0.6, "val": 0.2, "test": 0.2, "seed": 7, "stratified": true}}}}"#
    );
    let (status, body) = util::http(addr, "POST", "/api/datasets", Some(token), Some(&spec))
        .context("no answer from POST /api/datasets")?;
    if status != 202 {
        bail!("POST /api/datasets answered {status}: {body}");
    }
    Ok(Some(format!(
        "building the starter dataset `{STARTER_DATASET}` from the bundled BigEarthNet \
         patches (a worker job; the Datasets page lists it when done)"
    )))
}

fn demo(listen: String, data: PathBuf, workers: u32, slots: u32, no_trunk: bool) -> Result<()> {
    let builder = if no_trunk {
        frontend::Builder::Direct
    } else {
        tools::ensure_trunk()?;
        frontend::Builder::Trunk
    };
    let dist = frontend::build(builder)?;
    util::run(
        util::cmd("cargo").args([
            "build",
            "--release",
            "--package",
            "albedo-backend",
            "--package",
            "albedo-worker",
        ]),
        "building the server and worker (release)",
    )?;
    let data = if data.is_absolute() {
        data
    } else {
        util::repo_root().join(data)
    };
    stack::ensure_dir(&data)?;
    let mut running = stack::start(&stack::StackOptions {
        listen,
        data: data.clone(),
        static_dir: dist,
        workers,
        slots,
        profile: stack::Profile::Release,
    })?;
    println!();
    println!("  Albedo is running: {}", running.url());
    println!(
        "  open {} once to sign this browser in (it keeps the token)",
        running.url_with_token()
    );
    println!(
        "  data folder: {}   workers: {workers} x {slots} slots",
        data.display()
    );
    match starter_dataset(&running.addr, &running.user_token) {
        Ok(Some(note)) => println!("  {note}"),
        Ok(None) => {}
        Err(e) => println!("  the starter dataset was not queued: {e:#}"),
    }
    println!("  Ctrl-C stops the server and the workers.");
    println!();
    while running.server_alive() {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    anyhow::bail!("the server stopped; see its log above")
}
