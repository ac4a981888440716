//! Building the browser app into `<target>/dist`.
//!
//! With the pinned Trunk installed, `trunk build --release` from the root `Trunk.toml`.
//! Without it, the same steps Trunk takes, done here: `cargo build` of `albedo-frontend` for
//! wasm32 in the `wasm-release` profile, `wasm-bindgen --target web`, `wasm-opt -Oz`, and
//! `frontend/index.html` with its one `<link data-trunk rel="rust">` replaced by the module
//! script that loads the app, and its `<link data-trunk rel="copy-dir" href=...>` static
//! folders (the basemap) copied into the dist folder as Trunk copies them. Both produce a
//! folder `albedo serve --static` serves.

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
    let (source, copy_dirs) = take_copy_dir_links(&source)?;
    let html = replace_trunk_link(&source)?;
    std::fs::write(dist.join("index.html"), html)?;
    let html_dir = repo_root().join("frontend");
    for href in copy_dirs {
        let from = html_dir.join(&href);
        let name = from
            .file_name()
            .with_context(|| format!("copy-dir href {href} names no folder"))?;
        copy_dir(&from, &dist.join(name))
            .with_context(|| format!("copying {} into the dist folder", from.display()))?;
    }
    Ok(())
}

/// Removes every `<link data-trunk rel="copy-dir" href="...">` tag; returns the page without
/// them and their `href`s (relative to `frontend/`), which Trunk copies into the dist folder
/// under the folder's own name.
fn take_copy_dir_links(source: &str) -> Result<(String, Vec<String>)> {
    let mut out = String::with_capacity(source.len());
    let mut hrefs = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("<link data-trunk") {
        let end = rest[start..]
            .find('>')
            .context("unclosed <link data-trunk> tag")?
            + start
            + 1;
        let tag = &rest[start..end];
        out.push_str(&rest[..start]);
        if tag.contains("rel=\"copy-dir\"") {
            let href = tag
                .split("href=\"")
                .nth(1)
                .and_then(|h| h.split('"').next())
                .with_context(|| format!("{tag} has no href"))?;
            hrefs.push(href.to_string());
            // Drop the tag and the line break after it.
            rest = rest[end..].strip_prefix('\n').unwrap_or(&rest[end..]);
            out.truncate(out.trim_end_matches([' ', '\t']).len());
        } else {
            out.push_str(tag);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    Ok((out, hrefs))
}

/// Copies the folder `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
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

    #[test]
    fn takes_the_copy_dir_links_out() {
        let html = "<head>\n  <link data-trunk rel=\"rust\" />\n  \
                    <link data-trunk rel=\"copy-dir\" href=\"../assets/basemap\" />\n</head>";
        let (out, dirs) = take_copy_dir_links(html).unwrap();
        assert_eq!(dirs, vec!["../assets/basemap".to_string()]);
        assert_eq!(out, "<head>\n  <link data-trunk rel=\"rust\" />\n</head>");
        assert!(replace_trunk_link(&out).is_ok());
    }
}
