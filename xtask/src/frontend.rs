//! Building the browser app into `<target>/dist`.
//!
//! With the pinned Trunk installed, `trunk build --release` from the root `Trunk.toml`.
//! Without it, the same steps Trunk takes, done here: `cargo build` of `albedo-frontend` for
//! wasm32 in the `wasm-release` profile, `wasm-bindgen --target web`, `wasm-opt -Oz`, and
//! `frontend/index.html` with its one `<link data-trunk rel="rust">` replaced by the module
//! script that loads the app. Both produce a folder `albedo serve --static` serves.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::tools;
use crate::util::{cmd, repo_root, run, target_dir};

/// Where the built app goes.
pub fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

/// Which path built the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// `trunk build --release`.
    Trunk,
    /// cargo + wasm-bindgen + wasm-opt, driven by xtask.
    Direct,
}

/// Builds the app in release mode and returns the dist folder.
pub fn build(builder: Builder) -> Result<PathBuf> {
    tools::ensure_wasm_target()?;
    tools::ensure_wasm_bindgen()?;
    let wasm_opt = tools::wasm_opt()?;
    let dist = dist_dir();
    match builder {
        Builder::Trunk => {
            let trunk = tools::trunk().context("trunk is not installed")?;
            run(
                cmd(trunk.to_str().unwrap_or("trunk"))
                    .args(["build", "--release", "--dist"])
                    .arg(&dist)
                    .env("TRUNK_SKIP_VERSION_CHECK", "true"),
                "building the browser app with trunk (release)",
            )?;
        }
        Builder::Direct => build_direct(&dist, &wasm_opt)?,
    }
    Ok(dist)
}

fn build_direct(dist: &Path, wasm_opt: &Path) -> Result<()> {
    run(
        cmd("cargo").args([
            "build",
            "--package",
            "albedo-frontend",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
        ]),
        "building the browser app (wasm32, wasm-release profile)",
    )?;
    let wasm = target_dir().join("wasm32-unknown-unknown/wasm-release/albedo-frontend.wasm");
    if dist.exists() {
        std::fs::remove_dir_all(dist).with_context(|| format!("clearing {}", dist.display()))?;
    }
    std::fs::create_dir_all(dist)?;
    run(
        cmd("wasm-bindgen")
            .args([
                "--target",
                "web",
                "--no-typescript",
                "--out-name",
                "albedo-frontend",
                "--out-dir",
            ])
            .arg(dist)
            .arg(&wasm),
        "wasm-bindgen",
    )?;
    let bg = dist.join("albedo-frontend_bg.wasm");
    run(
        cmd(wasm_opt.to_str().unwrap_or("wasm-opt"))
            .args(["-Oz", "-o"])
            .arg(&bg)
            .arg(&bg),
        "wasm-opt -Oz",
    )?;
    let source = std::fs::read_to_string(repo_root().join("frontend/index.html"))
        .context("reading frontend/index.html")?;
    let html = replace_trunk_link(&source)?;
    std::fs::write(dist.join("index.html"), html)?;
    Ok(())
}

/// Replaces the one `<link data-trunk rel="rust" ...>` tag with the script that loads the
/// wasm-bindgen output.
fn replace_trunk_link(source: &str) -> Result<String> {
    let start = source
        .find("<link data-trunk")
        .context("frontend/index.html has no <link data-trunk rel=\"rust\"> tag")?;
    let end = source[start..]
        .find('>')
        .context("unclosed <link data-trunk> tag")?
        + start
        + 1;
    let tag = &source[start..end];
    if !tag.contains("rel=\"rust\"") {
        bail!("the first data-trunk link must be rel=\"rust\", found {tag}");
    }
    if source[end..].contains("data-trunk") {
        bail!("frontend/index.html may hold only one data-trunk link (the rust one)");
    }
    let script = "<link rel=\"modulepreload\" href=\"/albedo-frontend.js\" crossorigin=\"anonymous\">\n\
        <link rel=\"preload\" href=\"/albedo-frontend_bg.wasm\" as=\"fetch\" type=\"application/wasm\" crossorigin=\"anonymous\">\n\
        <script type=\"module\">import init from '/albedo-frontend.js'; init({ module_or_path: '/albedo-frontend_bg.wasm' });</script>";
    Ok(format!("{}{}{}", &source[..start], script, &source[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_the_trunk_link_for_the_loader() {
        let html = "<head>\n<link data-trunk rel=\"rust\" data-wasm-opt=\"z\" />\n</head>";
        let out = replace_trunk_link(html).unwrap();
        assert!(out.contains("import init from '/albedo-frontend.js'"));
        assert!(!out.contains("data-trunk"));
        assert!(replace_trunk_link("<head></head>").is_err());
        assert!(replace_trunk_link("<link data-trunk rel=\"css\" href=\"a.css\">").is_err());
    }
}
