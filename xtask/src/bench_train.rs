//! `cargo xtask bench train`: the EO CNN's training and inference throughput in Albedo's
//! trainer and in PyTorch, same network, same samples, same batch size and threads, one
//! run.
//!
//! What it does: builds `albedo-trainer`'s `bench_train` example in release (only for this
//! command: CI's `cargo xtask test` never builds burn in release) and runs it with
//! `--export`, which trains the default-architecture CNN on 13-channel 64x64 BigEarthNet
//! patches (batch 64) through the public `train()`, times `predict_proba`, and writes the
//! samples it used; then, where PyTorch installs, runs `trainer/bench/train_pytorch.py` on those
//! samples with `torch.set_num_threads` of the same count, twice: with OpenMP's default
//! (spinning) wait policy and with `OMP_WAIT_POLICY=PASSIVE`, the faster of the two being
//! the one compared (on a loaded machine spinning threads halve PyTorch's speed here). The
//! example and the script say exactly what they time.
//!
//! PyTorch comes from PyPI into `~/.cache/albedo/venv-torch` (`pip install torch`, the CPU
//! and CUDA wheel with its `nvidia-*` packages, about 5.4 GB and 1.5 minutes here: the
//! wheel's `libtorch_cpu.so` itself needs `libcudart` and `libcupti`, so `--no-deps` does not
//! import). Where it cannot install, one line says why and Albedo's numbers still print.
//!
//! Output (stdout): `load_average=` (of the machine before the run, since the numbers move
//! with it), `threads=`, `train_images_per_sec=`, `infer_images_per_sec=`, and with PyTorch
//! `pytorch_run: ...` (each PyTorch run), `pytorch_images_per_sec=`,
//! `pytorch_infer_images_per_sec=`, `train_vs_pytorch_ratio=` and `infer_vs_pytorch_ratio=`
//! (Albedo / PyTorch's faster run: above 1 means Albedo is faster).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::util::{cmd, repo_root, target_dir};

/// The PyTorch release the benchmark installs.
const TORCH: &str = "torch==2.15.0";

/// Runs the benchmark with `threads` threads on each side; `pytorch: false` skips PyTorch.
pub fn train(threads: usize, pytorch: bool) -> Result<()> {
    // The server and worker packages are named so that cargo unifies dependency features as
    // it does for `cargo xtask demo`'s release build: the trainer alone resolves a different
    // feature set and would rebuild burn in release (about 15 minutes on 2 cores).
    crate::util::run(
        cmd("cargo").args([
            "build",
            "--release",
            "--package",
            "albedo-backend",
            "--package",
            "albedo-worker",
            "--package",
            "albedo-trainer",
            "--example",
            "bench_train",
        ]),
        "building the trainer benchmark (release)",
    )?;
    let bin = target_dir().join("release/examples/bench_train");
    let export = target_dir().join("bench/train-samples");
    let _ = std::fs::remove_dir_all(&export);
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    let threads_s = threads.to_string();

    eprintln!("xtask: training and inference in Albedo's trainer ({threads} threads)");
    let albedo = run_capture(
        Command::new(&bin)
            .args(["--threads", &threads_s, "--export"])
            .arg(&export)
            .env("RAYON_NUM_THREADS", &threads_s),
        "bench_train",
    )?;
    let albedo_train = value(&albedo, "train_images_per_sec")?;
    let albedo_infer = value(&albedo, "infer_images_per_sec")?;

    let mut torch_runs = Vec::new();
    if pytorch {
        match torch_python() {
            Ok(python) => {
                let script = repo_root().join("trainer/bench/train_pytorch.py");
                // OpenMP threads spin while they wait by default, which costs PyTorch
                // dearly on a loaded machine; passive waiting costs it a little on an idle
                // one. Both run, and Albedo is compared with the faster.
                for policy in [None, Some("PASSIVE")] {
                    eprintln!(
                        "xtask: the same network in PyTorch ({threads} threads, \
                         OMP_WAIT_POLICY={})",
                        policy.unwrap_or("default")
                    );
                    let mut c = Command::new(&python);
                    c.arg(&script)
                        .args(["--threads", &threads_s, "--data"])
                        .arg(&export)
                        .env("OMP_NUM_THREADS", &threads_s)
                        .env("MKL_NUM_THREADS", &threads_s);
                    if let Some(p) = policy {
                        c.env("OMP_WAIT_POLICY", p);
                    }
                    let out = run_capture(&mut c, "trainer/bench/train_pytorch.py")?;
                    torch_runs.push((
                        policy.unwrap_or("default"),
                        value(&out, "pytorch_images_per_sec")?,
                        value(&out, "pytorch_infer_images_per_sec")?,
                    ));
                }
            }
            Err(why) => println!("pytorch: not run: {why}"),
        }
    }
    let best = |pick: fn(&(&str, f64, f64)) -> f64| {
        torch_runs
            .iter()
            .map(pick)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let torch = best(|r| r.1).zip(best(|r| r.2));
    let _ = std::fs::remove_dir_all(&export);

    println!("load_average={load}");
    println!("threads={threads}");
    for (policy, t, i) in &torch_runs {
        println!("pytorch_run: omp_wait_policy={policy} train={t:.1} infer={i:.1}");
    }
    println!("train_images_per_sec={albedo_train:.1}");
    if let Some((t, _)) = torch {
        println!("pytorch_images_per_sec={t:.1}");
        println!("train_vs_pytorch_ratio={:.3}", albedo_train / t);
    }
    println!("infer_images_per_sec={albedo_infer:.1}");
    if let Some((_, i)) = torch {
        println!("pytorch_infer_images_per_sec={i:.1}");
        println!("infer_vs_pytorch_ratio={:.3}", albedo_infer / i);
    }
    Ok(())
}

/// Runs `c` with stderr shown, echoes its stdout and returns its `key=value` lines.
fn run_capture(c: &mut Command, what: &str) -> Result<BTreeMap<String, String>> {
    let out = c
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        eprintln!("  {line}");
    }
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    Ok(key_values(&stdout))
}

/// The `key=value` pairs of lines made only of them.
fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .flat_map(str::split_whitespace)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn value(kv: &BTreeMap<String, String>, key: &str) -> Result<f64> {
    kv.get(key)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no number `{key}=` in the output"))
}

/// The venv holding PyTorch: `~/.cache/albedo/venv-torch`.
fn venv() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/albedo/venv-torch")
}

/// Python of the PyTorch venv, installing PyTorch into it on first use (about 5 GB with its
/// nvidia-* packages: PyPI has no CPU-only wheel); `Err(why)` when it cannot be installed.
fn torch_python() -> Result<PathBuf, String> {
    crate::util::bench_venv(&venv(), "torch, numpy", &[TORCH, "numpy"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_of_output_lines() {
        let kv = key_values(
            "bench_train: samples=896 batch=64\ntrain_images_per_sec=81.5\nnoise\n\
             infer_images_per_sec=250.0\n",
        );
        assert_eq!(value(&kv, "train_images_per_sec").unwrap(), 81.5);
        assert_eq!(value(&kv, "infer_images_per_sec").unwrap(), 250.0);
        assert_eq!(kv["samples"], "896");
        assert!(value(&kv, "pytorch_images_per_sec").is_err());
    }
}
