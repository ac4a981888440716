//! `cargo xtask test`: every check CI runs, in the order that fails fastest, with a summary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::stack::{self, Profile, StackOptions};
use crate::util::{cmd, repo_root, run, target_dir};
use crate::{frontend, tools};

/// Crates that build for the browser and are linted for wasm32.
const WASM_CRATES: &[&str] = &["albedo-frontend", "albedo-render", "albedo-shared"];

/// Runs a command, echoing its stdout line by line, and returns the sum of `count(line)`
/// over its lines.
fn run_counting(
    c: &mut std::process::Command,
    what: &str,
    count: impl Fn(&str) -> Option<u64>,
) -> Result<u64> {
    eprintln!("xtask: {what}");
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what}: could not start"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut total = 0u64;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        total += count(&line).unwrap_or(0);
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(total)
}

/// The first number after `prefix` on a line that starts with it.
fn number_after(line: &str, prefix: &str) -> Option<u64> {
    line.strip_prefix(prefix)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs every check; `browser` adds the Playwright tests in headless Chromium.
pub fn run_all(browser: bool) -> Result<()> {
    let started = Instant::now();
    let mut summary: Vec<String> = Vec::new();
    eprintln!("xtask: target folder {}", target_dir().display());

    run(
        cmd("cargo").args(["fmt", "--all", "--", "--check"]),
        "cargo fmt --check",
    )?;
    summary.push("fmt ok".into());

    run(
        cmd("cargo").args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "clippy (native, all targets, -D warnings)",
    )?;
    summary.push("clippy native ok".into());

    // The GPU backend of the trainer that builds offline (see ARCHITECTURE.md: burn's
    // `cuda`, `rocm` and CubeCL `cpu` download LLVM in a build script and are not built).
    run(
        cmd("cargo").args([
            "clippy",
            "--package",
            "albedo-worker",
            "--package",
            "albedo-trainer",
            "--features",
            "albedo-worker/wgpu,albedo-trainer/wgpu",
            "--",
            "-D",
            "warnings",
        ]),
        "clippy with the trainer's wgpu backend (-D warnings)",
    )?;
    summary.push("clippy wgpu ok".into());

    tools::ensure_wasm_target()?;
    let mut wasm_clippy = cmd("cargo");
    wasm_clippy.args(["clippy", "--target", "wasm32-unknown-unknown"]);
    for c in WASM_CRATES {
        wasm_clippy.args(["--package", c]);
    }
    wasm_clippy.args(["--", "-D", "warnings"]);
    run(
        &mut wasm_clippy,
        "clippy (wasm32: frontend, render, shared; -D warnings)",
    )?;
    summary.push("clippy wasm32 ok".into());

    // The multi-process tests in tests/ start `albedo` and `albedo-worker`: cargo builds the
    // binaries of every package whose integration tests it builds (backend and worker have
    // some) before it runs any test, with the same features as the tests. A separate
    // `cargo build -p ...` would unify features differently and compile burn twice.
    tools::ensure_mesa()?;
    let rust_tests = run_counting(
        cmd("cargo")
            .args(["test", "--workspace"])
            .env("ALBEDO_REQUIRE_GPU", "1"),
        "cargo test (all crates and tests/)",
        |line| number_after(line, "test result: ok. "),
    )?;
    summary.push(format!("{rust_tests} rust tests passed"));

    if browser {
        let (passed, stac, secs) = browser_tests()?;
        summary.push(format!(
            "{passed} browser tests and {stac} STAC client checks passed ({secs:.0} s)"
        ));
    } else {
        summary.push("browser tests SKIPPED (--no-browser)".into());
    }
    println!(
        "xtask test: {} in {:.1} min",
        summary.join(", "),
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// Builds the app, starts the stack as the demo does (debug binaries, a fresh data folder,
/// any free port) and runs the Playwright tests and the pystac-client checks against it.
fn browser_tests() -> Result<(u64, u64, f64)> {
    let started = Instant::now();
    tools::ensure_chromium()?;
    tools::ensure_npm_packages()?;
    // Always the path a fresh CI machine takes (no Trunk there); `cargo xtask demo` builds
    // with Trunk, so both stay exercised.
    let dist = frontend::build(frontend::Builder::Direct)?;
    let data = target_dir().join("e2e-data");
    if data.exists() {
        std::fs::remove_dir_all(&data).context("clearing the e2e data folder")?;
    }
    stack::ensure_dir(&data)?;
    let stack = stack::start(&StackOptions {
        listen: "127.0.0.1:0".into(),
        data,
        static_dir: dist.clone(),
        workers: 1,
        slots: 2,
        profile: Profile::Debug,
    })?;
    // The runner ends with a line `browser tests: N passed, M failed`.
    let passed = run_counting(
        cmd("node")
            .arg(repo_root().join("tests/browser/run.mjs"))
            .env("ALBEDO_URL", stack.url())
            .env("ALBEDO_ASSETS", repo_root().join("assets"))
            .env("ALBEDO_DIST", &dist)
            .env("ALBEDO_USER_TOKEN", &stack.user_token),
        "browser end-to-end tests (Playwright, headless Chromium)",
        |line| number_after(line, "browser tests: "),
    )?;
    if passed == 0 {
        bail!("the browser test runner reported no passing test");
    }
    let python = tools::ensure_stac_venv()?;
    let stac_checks = run_counting(
        Command::new(&python)
            .env("PYTHONWARNINGS", "ignore::UserWarning")
            .arg(repo_root().join("tests/stac/pystac_client_check.py"))
            .arg(format!("{}stac", stack.url()))
            .arg(repo_root().join("assets")),
        "STAC client tests (pystac-client from PyPI against /stac)",
        |line| number_after(line, "stac client checks: "),
    )?;
    if stac_checks == 0 {
        bail!("the STAC client checks reported no passing check");
    }
    // stac-api-validator, offline: the published schemas it would download come from
    // packages (tools::SCHEMA_WHEELS). It validates the first item of the collection named
    // here against the schemas of every extension that item declares: the local Sentinel-2
    // L1C products declare eo, projection and raster 1.1.0, all packaged; the Planetary
    // Computer items of `sentinel-2-l2a` declare eo 1.0.0 and projection 1.0.0, whose
    // schemas no registry package was found to ship.
    let schemas = tools::ensure_stac_schemas(&python)?;
    let validated = run_counting(
        Command::new(&python)
            .env("PYTHONWARNINGS", "ignore")
            .arg(repo_root().join("tests/stac/stac_api_validator_check.py"))
            .arg(format!("{}stac", stack.url()))
            .arg(&schemas)
            .arg("sentinel-2-l1c"),
        "stac-api-validator (core, features, item-search) against /stac",
        |line| number_after(line, "stac api validator: "),
    )?;
    if validated == 0 {
        bail!("stac-api-validator reported no passing conformance class");
    }
    drop(stack);
    Ok((
        passed,
        stac_checks + validated,
        started.elapsed().as_secs_f64(),
    ))
}
