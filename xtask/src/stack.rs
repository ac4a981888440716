//! Starting Albedo as a user runs it: ingest the bundled assets, create a worker and a user
//! token, start `albedo serve` and local workers. `cargo xtask demo` and the browser tests share this.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::util::{cmd, http_get_status, repo_root, target_dir, wait_for};

/// Cargo profile the binaries were built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `target/debug`.
    Debug,
    /// `target/release`.
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Address for `albedo serve` (port 0: any free port).
    pub listen: String,
    /// Data folder.
    pub data: PathBuf,
    /// Built browser app.
    pub static_dir: PathBuf,
    /// Number of local worker processes.
    pub workers: u32,
    /// Slots per worker.
    pub slots: u32,
    /// Binaries' profile.
    pub profile: Profile,
}

/// A running server with its workers; stops them all when dropped.
#[derive(Debug)]
pub struct Stack {
    /// `host:port` the server listens on.
    pub addr: String,
    /// A user token (for the API's changes; the browser takes it from the URL).
    pub user_token: String,
    server: Child,
    workers: Vec<Child>,
}

impl Stack {
    /// The browser URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The browser URL that hands the app the user token (it stores it and drops it from
    /// the address bar).
    pub fn url_with_token(&self) -> String {
        format!("http://{}/#token={}", self.addr, self.user_token)
    }

    /// Whether the server process is still running.
    pub fn server_alive(&mut self) -> bool {
        matches!(self.server.try_wait(), Ok(None))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in self
            .workers
            .iter_mut()
            .chain(std::iter::once(&mut self.server))
        {
            // SIGTERM first so the server shuts down gracefully, then make sure.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        for child in self
            .workers
            .iter_mut()
            .chain(std::iter::once(&mut self.server))
        {
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Path of one of the workspace binaries.
pub fn binary(name: &str, profile: Profile) -> PathBuf {
    target_dir().join(profile.dir()).join(name)
}

/// The bundled sample data the demo loads.
pub fn asset_paths() -> Vec<PathBuf> {
    let assets = repo_root().join("assets");
    ["s2", "s1", "stac"]
        .iter()
        .map(|d| assets.join(d))
        .collect()
}

fn albedo(profile: Profile) -> Command {
    let mut c = cmd(binary("albedo", profile).to_str().unwrap_or("albedo"));
    c.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info,tower_http=warn".into()),
    );
    c
}

/// Ingests the assets, starts the server and the workers, waits until all are up.
pub fn start(opts: &StackOptions) -> Result<Stack> {
    let data = opts
        .data
        .to_str()
        .context("data folder path is not UTF-8")?;
    crate::util::run(
        albedo(opts.profile)
            .args(["ingest", "--data", data])
            .args(asset_paths()),
        "ingesting the bundled sample data from assets/",
    )?;
    let token = create_token(opts.profile, data, "worker", "local-demo-workers")?;
    let user_token = create_token(opts.profile, data, "user", "local-demo-user")?;

    let mut server = albedo(opts.profile)
        .args([
            "serve",
            "--listen",
            &opts.listen,
            "--data",
            data,
            "--static",
        ])
        .arg(&opts.static_dir)
        // The bundled data may be read by dataset builds and HTTP ingest.
        .arg("--ingest-root")
        .arg(repo_root().join("assets"))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting albedo serve")?;
    let addr = read_listen_line(&mut server)?;
    let mut stack = Stack {
        addr: addr.clone(),
        user_token,
        server,
        workers: Vec::new(),
    };
    wait_for(Duration::from_secs(30), "the server's /api/health", || {
        (http_get_status(&addr, "/api/health") == Some(200)).then_some(())
    })?;
    for i in 0..opts.workers {
        let child = cmd(binary("albedo-worker", opts.profile)
            .to_str()
            .unwrap_or("albedo-worker"))
        .args([
            "--server",
            &format!("http://{addr}"),
            "--slots",
            &opts.slots.to_string(),
        ])
        .args(["--name", &format!("local-{}", i + 1)])
        .env("ALBEDO_WORKER_TOKEN", &token)
        .env("ALBEDO_MODELS_DIR", opts.data.join("worker-models"))
        .spawn()
        .context("starting albedo-worker")?;
        stack.workers.push(child);
    }
    let want = opts.workers as usize;
    wait_for(
        Duration::from_secs(30),
        "the local workers to connect",
        || (count_workers(&addr)? >= want).then_some(()),
    )?;
    Ok(stack)
}

/// Runs `albedo token create` (replacing a token of the same scope and name); returns it.
fn create_token(profile: Profile, data: &str, scope: &str, name: &str) -> Result<String> {
    let out = albedo(profile)
        .args([
            "token", "create", "--data", data, "--scope", scope, "--name", name,
        ])
        .output()
        .with_context(|| format!("creating a {scope} token"))?;
    if !out.status.success() {
        bail!(
            "albedo token create --scope {scope} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Number of connected workers per `/api/workers`.
fn count_workers(addr: &str) -> Option<usize> {
    let (_, body) = crate::util::http(addr, "GET", "/api/workers", None, None)?;
    Some(body.matches("\"worker_id\"").count())
}

/// Reads the server's `Albedo listening on http://ADDR/` line; forwards the rest of its
/// stdout to ours.
fn read_listen_line(server: &mut Child) -> Result<String> {
    let stdout = server.stdout.take().context("server stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("Albedo listening on http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_string());
                break;
            }
            println!("{line}");
        }
        for line in lines.map_while(Result::ok) {
            println!("{line}");
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => Ok(addr),
        Err(_) => {
            let status = server.try_wait().ok().flatten();
            bail!(
                "albedo serve did not report its address (exit status: {status:?}); see its log above"
            )
        }
    }
}

/// Ensures `dir` exists.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}
