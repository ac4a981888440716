//! The `command` trial: any program.
//!
//! - Environment: the worker's, plus the spec's `env`, plus `ALBEDO_PARAMS` (the parameters
//!   as a JSON object), `ALBEDO_TRIAL_ID`, `ALBEDO_EXPERIMENT_ID`, `ALBEDO_ATTEMPT`.
//! - Arguments: `{name}` is replaced by parameter `name` (a string as is, anything else as
//!   JSON); braces around anything that is not a parameter name are left alone.
//! - Stdout: each line that is a JSON object is a metric report: `step` (a non-negative
//!   integer; absent means the previous step + 1) and every other numeric field as a value;
//!   except a line with an `artifacts` object (`{"artifacts": {"model": "out/model.st"}}`),
//!   which names files the trial made (relative paths are taken from its working directory)
//!   for the server to register. Other lines are logged, not fatal. Stderr: the last [`STDERR_TAIL_LINES`] lines are kept
//!   for the failure reason.
//! - Exit 0 finishes the trial (final values: the last value of each metric); anything else
//!   fails it with the exit code (or signal) and the stderr tail.
//! - The program runs in its own process group. A stop sends SIGTERM to the group, then
//!   SIGKILL after `grace_ms` if the program has not exited, and SIGKILL to the group once it
//!   has (so that its children die too). Signals are sent with the `kill` program.
//! - A `resource` (ASHA) pauses the program with SIGSTOP to its group once it has reported
//!   that step; a continue resumes it with SIGCONT.

use std::collections::{BTreeMap, VecDeque};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use albedo_shared::experiment::Params;
use albedo_shared::protocol::WorkerMsg;

use super::{Assignment, Control, Reporter};

/// Lines of stderr kept for a failure reason.
pub const STDERR_TAIL_LINES: usize = 20;

/// Replaces `{name}` by the value of parameter `name` in `arg`.
pub fn substitute(arg: &str, params: &Params) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if params.contains_key(&after[..close]) => {
                match &params[&after[..close]] {
                    serde_json::Value::String(s) => out.push_str(s),
                    v => out.push_str(&v.to_string()),
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses one stdout line: `Some((step, values))` for a JSON object, where `step` is `None`
/// when the line has none.
pub fn parse_metric_line(line: &str) -> Option<(Option<u32>, BTreeMap<String, f64>)> {
    let serde_json::Value::Object(map) = serde_json::from_str(line.trim()).ok()? else {
        return None;
    };
    let step = match map.get("step") {
        None => None,
        Some(v) => Some(u32::try_from(v.as_u64()?).ok()?),
    };
    let values = map
        .iter()
        .filter(|(k, _)| k.as_str() != "step")
        .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x)))
        .collect();
    Some((step, values))
}

/// Parses an `{"artifacts": {name: path, ...}}` line: the named paths (strings only).
pub fn parse_artifact_line(line: &str) -> Option<Vec<(String, String)>> {
    let serde_json::Value::Object(map) = serde_json::from_str(line.trim()).ok()? else {
        return None;
    };
    let serde_json::Value::Object(artifacts) = map.get("artifacts")? else {
        return None;
    };
    Some(
        artifacts
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|p| (k.clone(), p.to_string())))
            .collect(),
    )
}

/// Sends `signal` (`TERM`, `KILL`, `STOP`, `CONT`) to process group `pgid`.
async fn signal_group(pgid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(e) = status {
        tracing::warn!(pgid, signal, error = %e, "could not run kill");
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Stops the child: SIGTERM to the group, SIGKILL after `grace` if still running, SIGKILL to
/// the group in any case (stragglers), and reaps the child.
async fn terminate(child: &mut Child, pgid: u32, grace: Duration) {
    signal_group(pgid, "TERM").await;
    // A paused (SIGSTOPped) group must run to handle the TERM.
    signal_group(pgid, "CONT").await;
    // Whether or not the program exited within the grace period, the group is then killed:
    // the program if it ignored the TERM, its children if they outlived it.
    let _ = tokio::time::timeout(grace, child.wait()).await;
    signal_group(pgid, "KILL").await;
    // Should `kill` be unusable, the program itself is still killed (not its children).
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Runs a command trial under the assignment `a`. Returns when the lease has ended (its last
/// report sent) or the control channel closed (the program is then killed).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    a: &Assignment,
    program: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    working_dir: Option<&str>,
    grace_ms: u64,
    control: &mut mpsc::UnboundedReceiver<Control>,
    reports: &Reporter,
) {
    let lease = a.lease;
    let started = Instant::now();
    let params_json = serde_json::to_string(&a.params).unwrap_or_else(|_| "{}".into());
    let mut cmd = Command::new(program);
    cmd.args(args.iter().map(|s| substitute(s, &a.params)))
        .envs(env)
        .env("ALBEDO_PARAMS", params_json)
        .env("ALBEDO_TRIAL_ID", a.trial.to_string())
        .env("ALBEDO_EXPERIMENT_ID", &a.experiment)
        .env("ALBEDO_ATTEMPT", a.attempt.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = working_dir {
        cmd.current_dir(dir);
    }
    // Where relative artifact paths start.
    let base = match working_dir {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::current_dir().unwrap_or_default(),
    };
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("could not start '{program}': {e}");
            let _ = reports.send(WorkerMsg::Failed { lease, reason });
            return;
        }
    };
    let Some(pgid) = child.id() else {
        let _ = child.wait().await;
        let reason = format!("'{program}' ended before it could be watched");
        let _ = reports.send(WorkerMsg::Failed { lease, reason });
        return;
    };
    let grace = Duration::from_millis(grace_ms);
    let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let stderr_task = child.stderr.take().map(|stderr| {
        let tail = Arc::clone(&tail);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == STDERR_TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        })
    });
    let mut stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
    let mut resource = a.resource;
    let mut paused = false;
    let mut paused_at: Option<Instant> = None;
    let mut paused_total = Duration::ZERO;
    let mut step: u32 = 0;
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    let status = loop {
        tokio::select! {
            line = async { stdout.as_mut()?.next_line().await.ok().flatten() }, if stdout.is_some() => {
                let Some(line) = line else {
                    stdout = None;
                    continue;
                };
                if let Some(found) = parse_artifact_line(&line) {
                    for (name, path) in found {
                        let uri = base.join(&path).display().to_string();
                        let _ = reports.send(WorkerMsg::Artifact { lease, name, uri });
                    }
                    continue;
                }
                let Some((s, values)) = parse_metric_line(&line) else {
                    tracing::info!(%lease, line = %line, "trial output");
                    continue;
                };
                step = s.unwrap_or(step + 1);
                last.extend(values.iter().map(|(k, v)| (k.clone(), *v)));
                let _ = reports.send(WorkerMsg::Metric { lease, step, values });
                if !paused && resource.is_some_and(|r| step >= r) {
                    signal_group(pgid, "STOP").await;
                    paused = true;
                    paused_at = Some(Instant::now());
                    let _ = reports.send(WorkerMsg::Paused { lease, step });
                }
            }
            c = control.recv() => match c {
                None => {
                    terminate(&mut child, pgid, grace).await;
                    return;
                }
                Some(Control::Stop) => {
                    terminate(&mut child, pgid, grace).await;
                    let _ = reports.send(WorkerMsg::Stopped { lease, step });
                    return;
                }
                Some(Control::Continue(r)) => {
                    resource = r;
                    if paused && resource.is_none_or(|r| step < r) {
                        signal_group(pgid, "CONT").await;
                        paused = false;
                        paused_total += paused_at.take().map_or(Duration::ZERO, |t| t.elapsed());
                    }
                }
            },
            status = child.wait() => break status,
        }
    };
    // Leftover processes of the group (the program's children) do not outlive the trial;
    // once they are gone stdout ends, and what is left in it is still read.
    signal_group(pgid, "KILL").await;
    if let Some(mut lines) = stdout {
        let drain = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(found) = parse_artifact_line(&line) {
                    for (name, path) in found {
                        let uri = base.join(&path).display().to_string();
                        let _ = reports.send(WorkerMsg::Artifact { lease, name, uri });
                    }
                } else if let Some((s, values)) = parse_metric_line(&line) {
                    step = s.unwrap_or(step + 1);
                    last.extend(values.iter().map(|(k, v)| (k.clone(), *v)));
                    let _ = reports.send(WorkerMsg::Metric {
                        lease,
                        step,
                        values,
                    });
                } else {
                    tracing::info!(%lease, line = %line, "trial output");
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
    if let Some(task) = stderr_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let reason = format!("could not wait for '{program}': {e}");
            let _ = reports.send(WorkerMsg::Failed { lease, reason });
            return;
        }
    };
    if status.success() {
        let duration = started.elapsed().saturating_sub(paused_total);
        let _ = reports.send(WorkerMsg::Finished {
            lease,
            final_values: last,
            duration_ms: duration.as_millis() as u64,
        });
    } else {
        let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
        let reason = format!(
            "'{program}' failed with {}; stderr tail:\n{}",
            describe(status),
            tail.join("\n")
        );
        let _ = reports.send(WorkerMsg::Failed { lease, reason });
    }
}
