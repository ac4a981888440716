//! `albedo-system-tests`: helpers for tests that run Albedo as separate processes.
//!
//! What it is: starting the real `albedo` and `albedo-worker` binaries (built by
//! `cargo build -p albedo-backend -p albedo-worker`, which `cargo xtask test` runs first),
//! a minimal HTTP/1.1 client for their JSON API, and bounded waits. The tests themselves are
//! in `tests/tests/`; the browser tests are in `tests/browser/` (Playwright).
//!
//! What it is not: a mock of anything. Every test talks to real processes over 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Root of the repository.
///
/// Read at run time (cargo sets `CARGO_MANIFEST_DIR` for what it runs; the build's value is
/// the fallback): cargo reuses a target folder's binaries for another checkout of the same
/// sources, and the path compiled into them would be the other checkout's.
pub fn repo_root() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .parent()
    .expect("tests/ is in the repository root")
    .to_path_buf()
}

/// Path of a workspace binary built in the same profile as this test.
pub fn binary(name: &str) -> PathBuf {
    // A test executable is target/<profile>/deps/<name>-<hash>; a binary of this crate
    // (the scheduler benchmark) is target/<profile>/<name>.
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("target/<profile>");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().expect("target/<profile>");
    }
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p albedo-backend -p albedo-worker` first \
         (`cargo xtask test` does)",
        bin.display()
    );
    bin
}

/// A child process killed (SIGKILL) when dropped, with the temporary folder it writes into
/// (a worker's models), removed after it.
#[derive(Debug)]
pub struct Proc(
    pub Child,
    #[expect(
        dead_code,
        reason = "held only to be removed after the process is killed"
    )]
    Option<tempfile::TempDir>,
);

impl Proc {
    /// Wraps a started process that owns no temporary folder.
    pub fn new(child: Child) -> Self {
        Proc(child, None)
    }
}

impl Proc {
    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts `albedo-worker` with `slots` slots against the server at `addr` (its output
/// discarded).
pub fn worker(addr: &str, token: &str, name: &str, slots: u32) -> Proc {
    worker_with(addr, token, name, slots, Stdio::null())
}

/// Starts `albedo-worker` like [`worker`], its standard error going to `stderr`. Models
/// that its `eo_cnn` trials save go to a temporary folder removed with the returned
/// [`Proc`], not into the source tree.
pub fn worker_with(addr: &str, token: &str, name: &str, slots: u32, stderr: Stdio) -> Proc {
    let models = tempfile::Builder::new()
        .prefix("albedo-test-models-")
        .tempdir()
        .expect("temporary models folder");
    let child = Command::new(binary("albedo-worker"))
        .args([
            "--server",
            &format!("http://{addr}"),
            "--slots",
            &slots.to_string(),
            "--name",
            name,
        ])
        .env("ALBEDO_WORKER_TOKEN", token)
        .env("ALBEDO_MODELS_DIR", models.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start albedo-worker");
    Proc(child, Some(models))
}

/// Runs `albedo` with `args` to completion and returns (success, stdout, stderr).
pub fn albedo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("albedo"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run albedo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `albedo serve` on a free port of 127.0.0.1 over `data`; returns it with its address.
pub fn serve(data: &Path) -> (Proc, String) {
    serve_on(data, "127.0.0.1:0")
}

/// Starts `albedo serve` on `listen` over `data`; returns it with its address.
pub fn serve_on(data: &Path, listen: &str) -> (Proc, String) {
    serve_with(data, listen, &[])
}

/// Starts `albedo serve` on `listen` over `data` with `extra` arguments (e.g.
/// `--heartbeat-secs 1`); returns it with its address.
pub fn serve_with(data: &Path, listen: &str, extra: &[&str]) -> (Proc, String) {
    let mut child = Command::new(binary("albedo"))
        .args(["serve", "--listen", listen, "--data"])
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start albedo serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .expect("albedo serve printed nothing")
        .expect("read stdout");
    let addr = line
        .strip_prefix("Albedo listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .trim_end_matches('/')
        .to_string();
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (Proc::new(child), addr)
}

/// `GET path` on `addr`: (status, body).
pub fn get(addr: &str, path: &str) -> (u16, String) {
    request(addr, "GET", path, None, None)
}

/// `POST path` with a JSON `body` and an optional bearer `token`: (status, body).
pub fn post(addr: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    request(addr, "POST", path, token, Some(body))
}

/// One HTTP/1.1 request: (status, body).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    // A server may answer (401, 413) and close before it has read a large body: the write
    // then fails, and the answer is still there to read.
    let written = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    if raw.is_empty() {
        panic!("{method} {path}: no answer (write: {written:?}, read: {read:?})");
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET path` parsed as JSON, asserting a 200.
pub fn get_json(addr: &str, path: &str) -> serde_json::Value {
    let (status, body) = get(addr, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Polls `check` every 50 ms until it is true, panicking with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the Server-Sent Events of `GET path` (sending `Last-Event-ID: last` when given)
/// until `done` says so for an event's JSON data, or `limit` passes (a panic). Returns
/// `(id, data)` of every event in order.
pub fn sse_until(
    addr: &str,
    path: &str,
    last: Option<u64>,
    limit: Duration,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> Vec<(u64, serde_json::Value)> {
    let mut parsed = Vec::new();
    sse_raw_until(addr, path, last, limit, |data| {
        let value: serde_json::Value =
            serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        let stop = done(&value);
        parsed.push(value);
        stop
    })
    .into_iter()
    .zip(parsed)
    .map(|((id, _), value)| (id, value))
    .collect()
}

/// [`sse_until`] without parsing: `done` sees each event's data as it came, and the events
/// are returned as text. A benchmark reads a stream of thousands of events this way so that
/// its own work while the clock runs stays small (parse what you need after).
pub fn sse_raw_until(
    addr: &str,
    path: &str,
    last: Option<u64>,
    limit: Duration,
    mut done: impl FnMut(&str) -> bool,
) -> Vec<(u64, String)> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let resume = last
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
    )
    .expect("write");
    let mut reader = BufReader::new(s);
    let mut out = Vec::new();
    let mut id = None;
    let mut line = String::new();
    loop {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} reading events of {path}; got {}",
            out.len()
        );
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => panic!("the event stream of {path} ended"),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => panic!("reading {path}: {e}"),
        }
        // Chunk-size lines and headers are skipped: only `id:` and `data:` lines matter.
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("data:") {
            let data = v.trim();
            let n = id.take().expect("every event has an id");
            let stop = done(data);
            out.push((n, data.to_string()));
            if stop {
                return out;
            }
        }
    }
}

/// A worker token and a user token created in data folder `data` (trimmed).
pub fn tokens(data: &Path) -> (String, String) {
    let d = data.to_str().expect("utf8 data folder");
    let (ok, worker, err) = albedo(&["token", "create", "--data", d, "--name", "w"]);
    assert!(ok, "{err}");
    let (ok, user, err) = albedo(&[
        "token", "create", "--data", d, "--name", "u", "--scope", "user",
    ]);
    assert!(ok, "{err}");
    (worker.trim().to_string(), user.trim().to_string())
}

/// Three land-cover classes of the bundled BigEarthNet patches, as a dataset spec's
/// `classes`.
pub fn ben_classes() -> serde_json::Value {
    serde_json::json!([
        {"name": "forest", "values": ["Coniferous forest", "Broad-leaved forest", "Mixed forest"]},
        {"name": "arable", "values": ["Non-irrigated arable land"]},
        {"name": "pastures", "values": ["Pastures"]}
    ])
}

/// Waits until job `id` has finished (a failed job fails the test).
pub fn wait_job(addr: &str, id: u64, limit: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(limit, &format!("job {id} finishes"), || {
        last = get_json(addr, &format!("/api/jobs/{id}"));
        assert_ne!(last["state"], "failed", "{last}");
        last["state"] == "finished"
    });
    last
}

/// Posts a dataset spec (user token) and waits for its build job to finish.
pub fn build_dataset(addr: &str, user: &str, spec: &serde_json::Value, limit: Duration) {
    let (status, body) = post(addr, "/api/datasets", Some(user), &spec.to_string());
    assert_eq!(status, 202, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
        .as_u64()
        .expect("job id");
    wait_job(addr, id, limit);
}

/// Creates an experiment (user token) and waits until it has finished; returns its id.
pub fn run_experiment(addr: &str, user: &str, spec: &serde_json::Value, limit: Duration) -> String {
    let (status, body) = post(addr, "/api/experiments", Some(user), &spec.to_string());
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
        .as_str()
        .expect("experiment id")
        .to_string();
    wait_until(limit, &format!("experiment {id} finishes"), || {
        get_json(addr, &format!("/api/experiments/{id}"))["state"] == "finished"
    });
    id
}

/// An `eo_cnn` experiment of one trial per value combination, each fixed hyperparameter a
/// one-value categorical parameter.
pub fn eo_cnn_grid(
    name: &str,
    dataset: &str,
    params: &[(&str, serde_json::Value)],
    max_trials: u32,
) -> serde_json::Value {
    let params: Vec<serde_json::Value> = params
        .iter()
        .map(|(n, v)| {
            let values = if v.is_array() {
                v.clone()
            } else {
                serde_json::json!([v])
            };
            serde_json::json!({"name": n, "type": "categorical", "values": values})
        })
        .collect();
    serde_json::json!({
        "name": name, "metric": "val_accuracy", "direction": "maximize",
        "params": params, "optimizer": {"type": "grid"}, "max_trials": max_trials,
        "trial": {"kind": "eo_cnn", "dataset": dataset, "version": 1, "threads": 1}
    })
}
