//! Running commands and finding things, with errors that say what to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Root of the repository (the parent of `xtask/`).
///
/// Read at run time (cargo sets `CARGO_MANIFEST_DIR` for what it runs; the build's value is
/// the fallback): cargo reuses a target folder's binaries for another checkout of the same
/// sources, and the path compiled into them would be the other checkout's.
pub fn repo_root() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .parent()
    .expect("xtask lives in the repository root")
    .to_path_buf()
}

/// Cargo's target folder for everything xtask builds: `CARGO_TARGET_DIR` when set; under CI
/// (`CI` set) `~/.cache/albedo/target`, which CI may keep between runs; else `<root>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        return if p.is_absolute() {
            p
        } else {
            repo_root().join(p)
        };
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    match std::env::var_os("HOME") {
        Some(home) if ci => PathBuf::from(home).join(".cache/albedo/target"),
        _ => repo_root().join("target"),
    }
}

/// `~/.cargo/bin`, where `cargo install` puts tools.
pub fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
        .join("bin")
}

/// PATH with `~/.cargo/bin` and the repository's `node_modules/.bin` in front.
pub fn tool_path() -> std::ffi::OsString {
    let mut dirs = vec![cargo_bin_dir(), repo_root().join("node_modules/.bin")];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// A command in the repository root with [`tool_path`] as PATH.
pub fn cmd(program: &str) -> Command {
    let mut c = Command::new(program);
    c.current_dir(repo_root())
        .env("PATH", tool_path())
        .env("CARGO_TARGET_DIR", target_dir());
    c
}

/// Runs `c`, streaming its output, and fails with `what` if it fails.
pub fn run(c: &mut Command, what: &str) -> Result<()> {
    eprintln!("xtask: {what}");
    let status = c
        .status()
        .with_context(|| format!("{what}: could not start {:?}", c.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Runs `c` and returns its stdout, or `None` if it cannot start or fails.
pub fn output(c: &mut Command) -> Option<String> {
    let out = c.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The version of `package` recorded in `Cargo.lock`.
pub fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock"))
        .context("reading Cargo.lock (it is committed; run `cargo generate-lockfile` if lost)")?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .with_context(|| format!("{package} is not in Cargo.lock"))?
        + needle.len();
    let end = lock[start..].find('"').context("malformed Cargo.lock")? + start;
    Ok(lock[start..end].to_string())
}

/// Sends `GET path` to `addr` and returns the status code, or `None` if nothing answers.
pub fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    http(addr, "GET", path, None, None).map(|(status, _)| status)
}

/// Sends `method path` to `addr` (with `token` as a bearer token and `body` as JSON, when
/// given) and returns the status code and body, or `None` if nothing answers.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    write!(s, "{head}\r\n{body}").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Waits until `check` returns `Some`, polling every 100 ms, for at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Python of a benchmark's venv at `venv` that can `import` each of `imports`, making the
/// venv and `pip install`ing `packages` into it on first use; `Err(why)` when they cannot be
/// installed (the benchmark then says so and runs without them).
pub fn bench_venv(venv: &Path, imports: &str, packages: &[&str]) -> Result<PathBuf, String> {
    let python = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", &format!("import {imports}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && ready(&python) {
        return Ok(python);
    }
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .status()
            .map_err(|e| format!("python3 -m venv: {e}"))?;
        if !status.success() {
            return Err(format!("python3 -m venv failed ({status})"));
        }
    }
    let list = packages.join(" ");
    eprintln!("xtask: installing {list} from PyPI into {}", venv.display());
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "-q"])
        .args(packages)
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(format!("pip install {list} failed: {tail:?}"));
    }
    if !ready(&python) {
        return Err(format!(
            "{list} installed into {} but `import {imports}` fails",
            venv.display()
        ));
    }
    Ok(python)
}
