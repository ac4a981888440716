//! Trial runners, for real: synthetic trials on the tokio clock, command trials as real `sh`
//! processes (signals, process groups, exit codes). Every wait is bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use albedo_shared::experiment::{Params, TrialId};
use albedo_shared::protocol::{LeaseId, TrialSpec, WorkerMsg};
use albedo_worker::trials::command::{parse_metric_line, substitute};
use albedo_worker::trials::{
    Assignment, Control, SyntheticParams, TrialManager, run_trial, synthetic_curve, synthetic_seed,
};

fn params(lr: f64, width: u32, dropout: f64) -> Params {
    [
        ("lr".to_string(), json!(lr)),
        ("width".to_string(), json!(width)),
        ("dropout".to_string(), json!(dropout)),
    ]
    .into()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn synthetic_curve_follows_the_formulas() {
    // lr = 0.01, width = 64, dropout = 0.2: q = 0.92 - 0.06 * 0.5^1.5, tau = 5.
    let p = SyntheticParams::from_params(&params(0.01, 64, 0.2)).unwrap();
    assert!(close(p.quality(), 0.898_786_796_564_403_6, 1e-12));
    assert!(close(p.tau(), 5.0, 1e-12));
    assert!(close(p.mean_value(5), 0.601_206_130_557_258_2, 1e-12));
    assert!(close(p.mean_value(20), 0.883_971_127_600_951_4, 1e-12));
    // lr = 1e-5, width = 16, dropout = 0.5: q = 0.92 - 0.06 * 2.5^1.5 - 0.04 - 0.03, tau = 15.
    let p2 = SyntheticParams::from_params(&params(1e-5, 16, 0.5)).unwrap();
    assert!(close(p2.quality(), 0.612_829_175_487_371_6, 1e-12));
    assert!(close(p2.tau(), 15.0, 1e-12));
    assert!(close(p2.mean_value(3), 0.161_261_292_367_930_63, 1e-12));
    // lr > 0.3 diverges: q = 0.1 and every mean value is the floor 0.1.
    let p3 = SyntheticParams::from_params(&params(0.5, 32, 0.2)).unwrap();
    assert_eq!(p3.quality(), 0.1);
    assert_eq!(p3.mean_value(20), 0.1);
    // Early steps are floored at 0.1 too.
    assert_eq!(p2.mean_value(1), 0.1);
    // Step time: 20 + 80*(log2(width)-4)/3*u.
    assert!(close(p.step_ms(0.7), 20.0 + 80.0 * 2.0 / 3.0 * 0.7, 1e-12));
    assert!(close(p2.step_ms(0.9), 20.0, 1e-12));

    // The curve: values are mean + noise of sd 0.01, step times within [u=0.7, u=1.0].
    let steps = 2000;
    let curve = synthetic_curve(&params(0.01, 64, 0.2), 42, steps).unwrap();
    assert_eq!(curve.len(), steps as usize);
    let residuals: Vec<f64> = curve
        .iter()
        .enumerate()
        .map(|(i, (v, _))| v - p.mean_value(i as u32 + 1))
        .collect();
    let n = residuals.len() as f64;
    let mean = residuals.iter().sum::<f64>() / n;
    let sd = (residuals.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 0.001, "noise mean {mean}");
    assert!((0.009..0.011).contains(&sd), "noise sd {sd}");
    let ms = curve[0].1;
    assert!(curve.iter().all(|(_, t)| *t == ms), "one u per trial");
    assert!((p.step_ms(0.7)..=p.step_ms(1.0)).contains(&ms), "{ms}");
    // 128 wide: [76, 100] ms; 16 wide: 20 ms.
    let wide = synthetic_curve(&params(0.01, 128, 0.2), 1, 1).unwrap()[0].1;
    assert!((76.0..=100.0).contains(&wide), "{wide}");
    assert_eq!(
        synthetic_curve(&params(0.01, 16, 0.2), 1, 1).unwrap()[0].1,
        20.0
    );

    // Bad parameters are refused with the parameter's name.
    let mut bad = params(0.01, 64, 0.2);
    bad.remove("dropout");
    assert!(synthetic_curve(&bad, 1, 3).unwrap_err().contains("dropout"));
    let bad = params(-1.0, 64, 0.2);
    assert!(synthetic_curve(&bad, 1, 3).unwrap_err().contains("lr"));
}

#[test]
fn synthetic_curve_is_deterministic_per_seed() {
    let p = params(0.003, 32, 0.1);
    let seed = synthetic_seed(1, TrialId(3));
    assert_eq!(seed, synthetic_seed(1, TrialId(3)));
    assert_ne!(seed, synthetic_seed(1, TrialId(4)));
    assert_ne!(seed, synthetic_seed(2, TrialId(3)));
    let a = synthetic_curve(&p, seed, 20).unwrap();
    assert_eq!(a, synthetic_curve(&p, seed, 20).unwrap());
    // A shorter run is a prefix of a longer one.
    assert_eq!(a[..5], synthetic_curve(&p, seed, 5).unwrap()[..]);
    let b = synthetic_curve(&p, seed + 1, 20).unwrap();
    assert_ne!(a, b);
    assert_ne!(a[0].1, b[0].1, "u differs between trials");
}

fn assignment(lease: u64, spec: TrialSpec, params: Params, resource: Option<u32>) -> Assignment {
    Assignment {
        lease: LeaseId(lease),
        trial: TrialId(7),
        experiment: "exp-t".into(),
        attempt: 1,
        spec,
        params,
        resource,
        may_wait: true,
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<WorkerMsg>, within: Duration) -> WorkerMsg {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("a report in time")
        .expect("channel open")
}

fn metric(lease: u64, step: u32, value: f64) -> WorkerMsg {
    WorkerMsg::Metric {
        lease: LeaseId(lease),
        step,
        values: BTreeMap::from([("accuracy".to_string(), value)]),
    }
}

#[tokio::test]
async fn synthetic_trial_pauses_at_its_resource_and_continues() {
    let p = params(0.01, 16, 0.2); // 20 ms steps
    let curve = synthetic_curve(&p, synthetic_seed(0, TrialId(7)), 6).unwrap();
    let (rep_tx, mut rep) = mpsc::unbounded_channel();
    let (ctl, ctl_rx) = mpsc::unbounded_channel();
    let a = assignment(1, TrialSpec::synthetic(6), p, Some(3));
    let task = tokio::spawn(run_trial(a, ctl_rx, rep_tx));
    let t0 = Instant::now();
    let w = Duration::from_secs(2);
    for s in 1..=3 {
        assert_eq!(
            next(&mut rep, w).await,
            metric(1, s, curve[s as usize - 1].0)
        );
    }
    assert!(t0.elapsed() >= Duration::from_millis(55), "slept the steps");
    let paused = WorkerMsg::Paused {
        lease: LeaseId(1),
        step: 3,
    };
    assert_eq!(next(&mut rep, w).await, paused);
    // Paused: nothing more comes until a continue.
    assert!(
        tokio::time::timeout(Duration::from_millis(400), rep.recv())
            .await
            .is_err()
    );
    ctl.send(Control::Continue(Some(5))).unwrap();
    for s in 4..=5 {
        assert_eq!(
            next(&mut rep, w).await,
            metric(1, s, curve[s as usize - 1].0)
        );
    }
    assert_eq!(
        next(&mut rep, w).await,
        WorkerMsg::Paused {
            lease: LeaseId(1),
            step: 5
        }
    );
    ctl.send(Control::Continue(None)).unwrap();
    assert_eq!(next(&mut rep, w).await, metric(1, 6, curve[5].0));
    match next(&mut rep, w).await {
        WorkerMsg::Finished {
            lease,
            final_values,
            duration_ms,
        } => {
            assert_eq!(lease, LeaseId(1));
            assert_eq!(final_values["accuracy"], curve[5].0);
            // Six 20 ms steps; the pauses (over 400 ms) are not counted.
            assert!((115..400).contains(&duration_ms), "{duration_ms}");
        }
        other => panic!("expected finished, got {other:?}"),
    }
    tokio::time::timeout(w, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn synthetic_trial_stops_when_paused_and_mid_run() {
    let (rep_tx, mut rep) = mpsc::unbounded_channel();
    let w = Duration::from_secs(2);
    // Stopped while paused at step 2.
    let (ctl, ctl_rx) = mpsc::unbounded_channel();
    let a = assignment(2, TrialSpec::synthetic(20), params(0.01, 16, 0.2), Some(2));
    tokio::spawn(run_trial(a, ctl_rx, rep_tx.clone()));
    assert!(matches!(
        next(&mut rep, w).await,
        WorkerMsg::Metric { step: 1, .. }
    ));
    assert!(matches!(
        next(&mut rep, w).await,
        WorkerMsg::Metric { step: 2, .. }
    ));
    assert!(matches!(
        next(&mut rep, w).await,
        WorkerMsg::Paused { step: 2, .. }
    ));
    ctl.send(Control::Stop).unwrap();
    assert_eq!(
        next(&mut rep, w).await,
        WorkerMsg::Stopped {
            lease: LeaseId(2),
            step: 2
        }
    );
    // Stopped mid-run (no resource): the stop interrupts the running step.
    let (ctl, ctl_rx) = mpsc::unbounded_channel();
    let a = assignment(3, TrialSpec::synthetic(20), params(0.01, 128, 0.2), None);
    tokio::spawn(run_trial(a, ctl_rx, rep_tx));
    assert!(matches!(
        next(&mut rep, w).await,
        WorkerMsg::Metric { step: 1, .. }
    ));
    let t = Instant::now();
    ctl.send(Control::Stop).unwrap();
    assert_eq!(
        next(&mut rep, w).await,
        WorkerMsg::Stopped {
            lease: LeaseId(3),
            step: 1
        }
    );
    // (Stopped at step 1, not after a metric of step 2: the running step was cut short.)
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn synthetic_trial_with_bad_params_fails() {
    let (rep_tx, mut rep) = mpsc::unbounded_channel();
    let (_ctl, ctl_rx) = mpsc::unbounded_channel();
    let a = assignment(4, TrialSpec::synthetic(3), Params::new(), None);
    run_trial(a, ctl_rx, rep_tx).await;
    match next(&mut rep, Duration::from_secs(1)).await {
        WorkerMsg::Failed { lease, reason } => {
            assert_eq!(lease, LeaseId(4));
            assert!(reason.contains("'lr'"), "{reason}");
        }
        other => panic!("expected failed, got {other:?}"),
    }
}

#[tokio::test]
async fn manager_runs_up_to_its_slots() {
    let (rep_tx, mut rep) = mpsc::unbounded_channel();
    let mut m = TrialManager::new(2, rep_tx);
    for lease in 1..=3 {
        m.assign(assignment(
            lease,
            TrialSpec::synthetic(3),
            params(0.01, 16, 0.2),
            Some(1),
        ));
    }
    // Two run; the third waits for a slot.
    assert_eq!((m.busy(), m.queued()), (2, 1));
    // The first two run to their resource (step 1) and pause there, which frees their slots:
    // the third starts (and says so), and pauses too.
    let mut paused = Vec::new();
    let mut started = None;
    while paused.len() < 3 {
        match next(&mut rep, Duration::from_secs(1)).await {
            WorkerMsg::Paused { lease, step } => {
                assert_eq!(step, 1);
                m.observe(&WorkerMsg::Paused { lease, step });
                paused.push(lease);
            }
            WorkerMsg::Started { lease } => started = Some((lease, paused.len())),
            _ => {}
        }
    }
    // (Reports of runners already in the channel may come before its `started`.)
    assert!(
        matches!(started, Some((LeaseId(3), n)) if n >= 1),
        "it started once a slot was free: {started:?}"
    );
    assert_eq!(paused.last(), Some(&LeaseId(3)));
    assert_eq!((m.running(), m.busy(), m.queued()), (3, 0, 0));
    assert!(!m.control(LeaseId(4), Control::Stop));
    assert!(m.control(LeaseId(1), Control::Stop));
    assert_eq!(
        next(&mut rep, Duration::from_secs(1)).await,
        WorkerMsg::Stopped {
            lease: LeaseId(1),
            step: 1,
        }
    );
    // Its runner is gone.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(m.running(), 2);
}

fn sh(script: &str, extra_args: &[&str], grace_ms: u64) -> TrialSpec {
    let mut args = vec!["-c".to_string(), script.to_string(), "sh".to_string()];
    args.extend(extra_args.iter().map(|s| s.to_string()));
    TrialSpec::Command {
        program: "sh".into(),
        args,
        env: BTreeMap::from([("EXTRA".to_string(), "yes".to_string())]),
        working_dir: None,
        grace_ms,
    }
}

#[test]
fn substitution_and_metric_lines() {
    let p: Params = [
        ("lr".to_string(), json!(0.01)),
        ("name".to_string(), json!("run1")),
    ]
    .into();
    assert_eq!(substitute("--lr={lr}", &p), "--lr=0.01");
    assert_eq!(
        substitute("{name}/{lr}/{other}/{", &p),
        "run1/0.01/{other}/{"
    );
    assert_eq!(substitute("{{lr}}", &p), "{0.01}");
    assert_eq!(
        parse_metric_line(r#"{"step": 3, "val_accuracy": 0.81, "tag": "x"}"#),
        Some((
            Some(3),
            BTreeMap::from([("val_accuracy".to_string(), 0.81)])
        ))
    );
    assert_eq!(
        parse_metric_line(r#"{"loss": 1}"#),
        Some((None, BTreeMap::from([("loss".to_string(), 1.0)])))
    );
    assert_eq!(parse_metric_line("epoch 3 done"), None);
    assert_eq!(parse_metric_line("[1, 2]"), None);
    assert_eq!(parse_metric_line(r#"{"step": -1}"#), None);
}

#[tokio::test]
async fn command_trial_reports_metrics_with_params() {
    let script = r#"
echo "starting, not json"
echo "{\"step\": 1, \"val_accuracy\": $1, \"note\": \"x\"}"
arg_ok=0; [ "$2" = "run1-x" ] && arg_ok=1
params_ok=0
case "$ALBEDO_PARAMS" in *'"lr":0.25'*'"name":"run1"'*) params_ok=1;; esac
echo "{\"step\": 2, \"arg_ok\": $arg_ok, \"params_ok\": $params_ok, \"trial\": $ALBEDO_TRIAL_ID}"
[ "$EXTRA" = yes ] && echo '{"val_accuracy": 0.9}'
"#;
    let p: Params = [
        ("lr".to_string(), json!(0.25)),
        ("name".to_string(), json!("run1")),
    ]
    .into();
    let (rep_tx, mut rep) = mpsc::unbounded_channel();
    let (_ctl, ctl_rx) = mpsc::unbounded_channel();
    let a = assignment(10, sh(script, &["{lr}", "{name}-x"], 1000), p, None);
    let task = tokio::spawn(run_trial(a, ctl_rx, rep_tx));
    let w = Duration::from_secs(5);
    let m = |step, values: &[(&str, f64)]| WorkerMsg::Metric {
        lease: LeaseId(10),
        step,
        values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    };
    assert_eq!(next(&mut rep, w).await, m(1, &[("val_accuracy", 0.25)]));
    assert_eq!(
        next(&mut rep, w).await,
        m(2, &[("arg_ok", 1.0), ("params_ok", 1.0), ("trial", 7.0)])
    );
    assert_eq!(next(&mut rep, w).await, m(3, &[("val_accuracy", 0.9)]));
    match next(&mut rep, w).await {
        WorkerMsg::Finished {
            lease,
            final_values,
            ..
        } => {
            assert_eq!(lease, LeaseId(10));
            assert_eq!(final_values["val_accuracy"], 0.9);
            assert_eq!(final_values["params_ok"], 1.0);
        }
        other => panic!("expected finished, got {other:?}"),
    }
    tokio::time::timeout(w, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn command_trial_failure_names_exit_code_and_stderr() {
    let script =
        "echo '{\"step\": 1, \"loss\": 2}'; echo first >&2; echo 'out of memory' >&2; exit 3";
    let (rep_tx, mut rep) = mpsc::unbounded_channel();
    let (_ctl, ctl_rx) = mpsc::unbounded_channel();
    let a = assignment(11, sh(script, &[], 1000), Params::new(), None);
    tokio::spawn(run_trial(a, ctl_rx, rep_tx));
    let w = Duration::from_secs(5);
    assert!(matches!(
        next(&mut rep, w).await,
        WorkerMsg::Metric { step: 1, .. }
    ));
    match next(&mut rep, w).await {
        WorkerMsg::Failed { lease, reason } => {
            assert_eq!(lease, LeaseId(11));
            assert!(reason.contains("exit code 3"), "{reason}");
            assert!(reason.contains("out of memory"), "{reason}");
        }
        other => panic!("expected failed, got {other:?}"),
    }
    // A program that does not exist fails too.
    let (rep_tx, mut rep) = mpsc::unbounded_channel();
    let (_ctl, ctl_rx) = mpsc::unbounded_channel();
    let spec = TrialSpec::Command {
        program: "/nonexistent/albedo-trainer".into(),
        args: vec![],
        env: BTreeMap::new(),
        working_dir: None,
        grace_ms: 100,
    };
    run_trial(assignment(12, spec, Params::new(), None), ctl_rx, rep_tx).await;
    match next(&mut rep, w).await {
        WorkerMsg::Failed { reason, .. } => assert!(reason.contains("could not start"), "{reason}"),
        other => panic!("expected failed, got {other:?}"),
    }
}

/// State letter of a process (`R`, `S`, `Z`, ...), or `None` once it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// Starts `script` (which must print `{"step": 1, "pid": $$, "child": <pid>}` first), stops it,
/// and returns the time from the stop to the `stopped` report, and the two pids.
async fn stop_script(lease: u64, script: &str, grace_ms: u64) -> (Duration, u32, u32) {
    let (rep_tx, mut rep) = mpsc::unbounded_channel();
    let (ctl, ctl_rx) = mpsc::unbounded_channel();
    let a = assignment(lease, sh(script, &[], grace_ms), Params::new(), None);
    let task = tokio::spawn(run_trial(a, ctl_rx, rep_tx));
    let w = Duration::from_secs(5);
    let (pid, child) = match next(&mut rep, w).await {
        WorkerMsg::Metric {
            step: 1, values, ..
        } => (values["pid"] as u32, values["child"] as u32),
        other => panic!("expected the first metric, got {other:?}"),
    };
    assert!(matches!(proc_state(pid), Some(c) if c != 'Z'));
    let t = Instant::now();
    ctl.send(Control::Stop).unwrap();
    assert_eq!(
        next(&mut rep, Duration::from_millis(grace_ms) + w).await,
        WorkerMsg::Stopped {
            lease: LeaseId(lease),
            step: 1
        }
    );
    let took = t.elapsed();
    tokio::time::timeout(w, task).await.unwrap().unwrap();
    (took, pid, child)
}

/// The program was reaped (no zombie of ours) and its child is not running any more (it was
/// killed with the group; reaping it is its new parent's business).
async fn assert_gone(pid: u32, child: u32) {
    assert_eq!(proc_state(pid), None, "program {pid} left behind");
    for _ in 0..50 {
        if matches!(proc_state(child), None | Some('Z') | Some('X')) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("child {child} still running: {:?}", proc_state(child));
}

#[tokio::test]
async fn stop_ends_a_program_that_traps_sigterm_within_the_grace() {
    // Traps TERM (and exits on it) while its child sleeps forever.
    let script = r#"
trap 'exit 0' TERM
sleep 1000 &
echo "{\"step\": 1, \"pid\": $$, \"child\": $!}"
while :; do wait; done
"#;
    let (took, pid, child) = stop_script(20, script, 3000).await;
    assert!(took < Duration::from_millis(3000), "{took:?}");
    assert_gone(pid, child).await;
}

#[tokio::test]
async fn stop_kills_a_program_that_ignores_sigterm_after_the_grace() {
    // Ignores TERM (its child inherits that) and sleeps forever.
    let script = r#"
trap '' TERM
sleep 1000 &
echo "{\"step\": 1, \"pid\": $$, \"child\": $!}"
while :; do sleep 0.05; done
"#;
    let (took, pid, child) = stop_script(21, script, 400).await;
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_millis(400 + 2000), "{took:?}");
    assert_gone(pid, child).await;
}

#[tokio::test]
async fn command_trial_pauses_at_its_resource() {
    // Counts steps every 30 ms; with resource 2 it is SIGSTOPped after step 2.
    let script = r#"i=0; while [ $i -lt 5 ]; do i=$((i+1)); echo "{\"step\": $i, \"x\": $i}"; sleep 0.03; done"#;
    let (rep_tx, mut rep) = mpsc::unbounded_channel();
    let (ctl, ctl_rx) = mpsc::unbounded_channel();
    let a = assignment(30, sh(script, &[], 500), Params::new(), Some(2));
    let task = tokio::spawn(run_trial(a, ctl_rx, rep_tx));
    let w = Duration::from_secs(5);
    assert!(matches!(
        next(&mut rep, w).await,
        WorkerMsg::Metric { step: 1, .. }
    ));
    assert!(matches!(
        next(&mut rep, w).await,
        WorkerMsg::Metric { step: 2, .. }
    ));
    assert!(matches!(
        next(&mut rep, w).await,
        WorkerMsg::Paused { step: 2, .. }
    ));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rep.recv())
            .await
            .is_err(),
        "a paused program reports nothing"
    );
    ctl.send(Control::Continue(None)).unwrap();
    for s in 3..=5 {
        assert!(matches!(next(&mut rep, w).await, WorkerMsg::Metric { step, .. } if step == s));
    }
    match next(&mut rep, w).await {
        WorkerMsg::Finished { final_values, .. } => assert_eq!(final_values["x"], 5.0),
        other => panic!("expected finished, got {other:?}"),
    }
    tokio::time::timeout(w, task).await.unwrap().unwrap();
}
