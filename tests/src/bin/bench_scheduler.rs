//! `bench-scheduler`: the experiment engine's benchmark (`cargo xtask bench scheduler`).
//!
//! Real `albedo` and `albedo-worker` processes (release builds beside this binary) over the
//! real protocol on 127.0.0.1. Each run's clock is the server's: from the experiment's
//! `running` event (every worker connected, the experiment submitted) to its `finished` event.
//! Prints `key=value` lines:
//!
//! - `maggy_workload`: 96 random-search trials of the fixed synthetic workload (issue 4) on
//!   8 slots, four ways: BSP, async, async with the median rule (`min_finished=5,
//!   warmup_steps=3`), async with ASHA (`min_resource=1, max_resource=20, eta=3`); wall
//!   ratios to BSP, best metrics, and `engine_efficiency` = the ideal wall of the median-rule
//!   run (computed in-process by `albedo_tuning::sim` for the same trials, zero overhead)
//!   over the measured one.
//! - `overhead`: 2000 trials of 50 ms on 32 slots against total work / slots, with
//!   `prefetch: 1` (the sweep's setting) and without; and where the time went: start-up
//!   (`running` to the 32nd trial start), tail (last trial end to `finished`), the trials'
//!   mean length as the server saw them, and the slot-time no trial ran.
//! - `scaling`: 256 trials of 200 ms on 1..64 slots; speedup over 1 slot divided by slots.
//! - `ingest`: metric reports per second stored and streamed (SSE) by the server.
//!
//! Usage: `bench-scheduler [maggy] [overhead] [scaling] [ingest]` (all when none is named).

use std::process::ExitCode;
use std::time::Duration;

use albedo_shared::experiment::{Direction, ExperimentSpec, Params, TrialId};
use albedo_shared::protocol::TrialSpec;
use albedo_system_tests::{
    Proc, albedo, get_json, post, serve_with, sse_raw_until, wait_until, worker,
};
use albedo_tuning::sim::{simulate_async, simulate_bsp};
use albedo_tuning::synthetic::sim_curve;
use albedo_tuning::{build_optimizer, build_stopper};
use serde_json::{Value, json};

/// Seed of the configurations and of the curves: fixed, so that every run sees the same
/// trials.
const SEED: u64 = 2026;

struct Cluster {
    _data: tempfile::TempDir,
    _server: Proc,
    addr: String,
    worker_token: String,
    user_token: String,
    workers: Vec<Proc>,
}

impl Cluster {
    fn start() -> Cluster {
        let data = tempfile::tempdir().expect("tempdir");
        let d = data.path().to_str().expect("utf8").to_string();
        let (ok, worker_token, err) = albedo(&["token", "create", "--data", &d, "--name", "bench"]);
        assert!(ok, "{err}");
        let (ok, user_token, err) = albedo(&[
            "token", "create", "--data", &d, "--name", "bench", "--scope", "user",
        ]);
        assert!(ok, "{err}");
        let (server, addr) = serve_with(data.path(), "127.0.0.1:0", &[]);
        Cluster {
            _data: data,
            _server: server,
            addr,
            worker_token: worker_token.trim().to_string(),
            user_token: user_token.trim().to_string(),
            workers: Vec::new(),
        }
    }

    /// Replaces the workers with `slots` slots spread over at most 4 processes.
    fn slots(&mut self, slots: u32) {
        for mut w in self.workers.drain(..) {
            w.kill9();
        }
        wait_until(Duration::from_secs(20), "old workers leave", || {
            get_json(&self.addr, "/api/workers")
                .as_array()
                .map(Vec::len)
                == Some(0)
        });
        let procs = slots.clamp(1, 4);
        for i in 0..procs {
            let mine = slots / procs + u32::from(i < slots % procs);
            self.workers.push(worker(
                &self.addr,
                &self.worker_token,
                &format!("bench-{i}"),
                mine,
            ));
        }
        wait_until(Duration::from_secs(20), "workers connect", || {
            let list = get_json(&self.addr, "/api/workers");
            let total: u64 = list
                .as_array()
                .map(|a| a.iter().filter_map(|w| w["slots"].as_u64()).sum())
                .unwrap_or(0);
            total == u64::from(slots)
        });
    }

    /// Runs `spec` to its end; returns the measured run.
    fn run(&self, spec: &Value, limit: Duration) -> Run {
        let (status, body) = post(
            &self.addr,
            "/api/experiments",
            Some(&self.user_token),
            &spec.to_string(),
        );
        assert_eq!(status, 201, "{body}");
        let created: Value = serde_json::from_str(&body).expect("json");
        let id = created["id"].as_str().expect("id").to_string();
        // Read as text while the clock runs (only the experiment's own events are parsed,
        // to see its end); parsed once it has ended.
        let events: Vec<(u64, Value)> = sse_raw_until(
            &self.addr,
            &format!("/api/experiments/{id}/events"),
            None,
            limit,
            |data| {
                data.contains(r#""type":"experiment""#) && {
                    let e: Value = serde_json::from_str(data).expect("event json");
                    e["event"]["state"] != "running"
                }
            },
        )
        .into_iter()
        .map(|(n, data)| (n, serde_json::from_str(&data).expect("event json")))
        .collect();
        let at = |e: &Value| e["at_ms"].as_i64().expect("at_ms");
        let start = at(&events.first().expect("events").1);
        let end = at(&events.last().expect("events").1);
        let trials = get_json(&self.addr, &format!("/api/experiments/{id}/trials"))
            .as_array()
            .expect("trials")
            .clone();
        Run {
            wall_secs: (end - start) as f64 / 1000.0,
            trials,
            metric_events: events
                .iter()
                .filter(|e| e.1["event"]["type"] == "metric")
                .count(),
            events: events.into_iter().map(|e| e.1).collect(),
        }
    }
}

struct Run {
    wall_secs: f64,
    trials: Vec<Value>,
    metric_events: usize,
    /// Every event of the run, in order.
    events: Vec<Value>,
}

/// Where a throughput run's wall went beyond its trials, from the server's event times (ms):
/// start-up (the `running` event to the `slots`-th trial start), tail (the last trial's
/// end to the `finished` event), and the trials' own mean length (start to end as the
/// server saw them, against their nominal step time).
struct Breakdown {
    startup_ms: i64,
    tail_ms: i64,
    mean_trial_ms: f64,
    /// Slot-milliseconds no trial ran, over the whole run.
    idle_slot_ms: i64,
}

impl Run {
    fn breakdown(&self, slots: usize) -> Breakdown {
        let at = |e: &Value| e["at_ms"].as_i64().unwrap_or(0);
        let first = self.events.first().map(at).unwrap_or(0);
        let last = self.events.last().map(at).unwrap_or(0);
        let mut starts = std::collections::HashMap::new();
        let mut ends = std::collections::HashMap::new();
        for e in &self.events {
            let ev = &e["event"];
            let trial = ev["trial"].as_u64();
            match (ev["type"].as_str(), trial) {
                (Some("trial_leased"), Some(t)) if ev["waiting"] != true => {
                    starts.entry(t).or_insert(at(e));
                }
                (Some("trial_started"), Some(t)) => {
                    starts.entry(t).or_insert(at(e));
                }
                (Some("trial_state"), Some(t)) if ev["state"] == "finished" => {
                    ends.insert(t, at(e));
                }
                _ => {}
            }
        }
        let mut start_times: Vec<i64> = starts.values().copied().collect();
        start_times.sort_unstable();
        let startup_ms = start_times
            .get(slots.saturating_sub(1))
            .map_or(0, |t| t - first);
        let last_end = ends.values().copied().max().unwrap_or(last);
        let lengths: Vec<i64> = ends
            .iter()
            .filter_map(|(t, end)| starts.get(t).map(|s| end - s))
            .collect();
        let busy: i64 = lengths.iter().sum();
        Breakdown {
            startup_ms,
            tail_ms: last - last_end,
            mean_trial_ms: busy as f64 / lengths.len().max(1) as f64,
            idle_slot_ms: (last - first) * slots as i64 - busy,
        }
    }
    /// Best final value of the finished trials (maximised).
    fn best(&self) -> f64 {
        self.trials
            .iter()
            .filter(|t| t["state"] == "finished")
            .filter_map(|t| t["value"].as_f64())
            .fold(f64::NEG_INFINITY, f64::max)
    }

    fn count(&self, state: &str) -> usize {
        self.trials.iter().filter(|t| t["state"] == state).count()
    }
}

fn spec(name: &str, trials: u32, steps: u32, step_ms: Option<u32>, extra: Value) -> Value {
    let mut trial = json!({"kind": "synthetic", "steps": steps, "seed": SEED});
    if let Some(ms) = step_ms {
        trial["step_ms"] = json!(ms);
    }
    let mut spec = json!({
        "name": name,
        "metric": "accuracy",
        "direction": "maximize",
        "params": [
            {"name": "lr", "type": "float", "low": 1e-5, "high": 1.0, "log": true},
            {"name": "width", "type": "categorical", "values": [16, 32, 64, 128]},
            {"name": "dropout", "type": "float", "low": 0.0, "high": 0.5}
        ],
        "optimizer": {"type": "random"},
        "max_trials": trials,
        "seed": SEED,
        "trial": trial
    });
    for (k, v) in extra.as_object().expect("object") {
        spec[k] = v.clone();
    }
    spec
}

/// The zero-overhead schedule of `spec` on `slots` slots: (wall seconds, best finished).
fn ideal(spec: &Value, slots: usize) -> (f64, f64) {
    let spec: ExperimentSpec = serde_json::from_value(spec.clone()).expect("spec");
    let TrialSpec::Synthetic {
        steps,
        seed,
        step_ms,
    } = spec.trial.clone()
    else {
        panic!("synthetic trials only");
    };
    let workload = move |id: TrialId, params: &Params| {
        sim_curve(params, seed, id, steps, step_ms).expect("curve")
    };
    let mut optimizer = build_optimizer(&spec).expect("optimizer");
    let out = if spec.mode == albedo_shared::experiment::Mode::Bsp {
        simulate_bsp(optimizer.as_mut(), slots, workload)
    } else {
        let stopper = build_stopper(&spec.early_stopping, spec.direction).expect("stopper");
        simulate_async(optimizer.as_mut(), stopper.as_ref(), slots, workload)
    };
    let best = albedo_tuning::optimizer::best_finished(&out.history, Direction::Maximize)
        .unwrap_or(f64::NAN);
    (out.wall_secs, best)
}

fn line(key: &str, value: impl std::fmt::Display) {
    println!("{key}={value}");
}

fn maggy(c: &mut Cluster) {
    c.slots(8);
    let limit = Duration::from_secs(300);
    let bsp = spec("maggy bsp", 96, 20, None, json!({"mode": "bsp"}));
    let asy = spec("maggy async", 96, 20, None, json!({}));
    let es = spec(
        "maggy async + median",
        96,
        20,
        None,
        json!({"early_stopping": {"type": "median", "min_finished": 5, "warmup_steps": 3}}),
    );
    let asha = spec(
        "maggy asha",
        96,
        20,
        None,
        json!({"optimizer": {"type": "asha", "min_resource": 1, "max_resource": 20, "reduction_factor": 3}}),
    );
    let runs: Vec<(&str, Value, Run)> = [
        ("bsp", bsp),
        ("async", asy),
        ("async_es", es),
        ("asha", asha),
    ]
    .into_iter()
    .map(|(name, s)| {
        let run = c.run(&s, limit);
        eprintln!(
            "maggy_workload {name}: {:.2} s, {} finished, {} stopped, best {:.4}",
            run.wall_secs,
            run.count("finished"),
            run.count("stopped"),
            run.best()
        );
        (name, s, run)
    })
    .collect();
    let bsp_wall = runs[0].2.wall_secs;
    for (name, s, run) in &runs {
        let (ideal_wall, ideal_best) = ideal(s, 8);
        line(
            &format!("{name}_wall_secs"),
            format!("{:.3}", run.wall_secs),
        );
        line(
            &format!("ideal_{name}_wall_secs"),
            format!("{ideal_wall:.3}"),
        );
        line(&format!("best_{name}"), format!("{:.4}", run.best()));
        line(&format!("ideal_best_{name}"), format!("{ideal_best:.4}"));
        if *name != "bsp" {
            line(
                &format!("{name}_vs_bsp_wall_ratio"),
                format!("{:.3}", run.wall_secs / bsp_wall),
            );
        }
        if *name == "async_es" {
            line(
                "engine_efficiency",
                format!("{:.3}", ideal_wall / run.wall_secs),
            );
        }
    }
}

/// 2000 trials of 50 ms on 32 slots, as a throughput-bound sweep runs them (`prefetch: 1`:
/// a worker holds the next trial of each slot, so no round trip to the server sits between
/// two trials), and, for comparison, with every trial assigned only to a free slot.
fn overhead(c: &mut Cluster) {
    c.slots(32);
    let ideal = 2000.0 * 0.050 / 32.0;
    line("overhead_ideal_secs", format!("{ideal:.3}"));
    // No schedule beats whole trials: 2000 trials on 32 slots leave some slots 63 to run.
    let floor = (2000.0 / 32.0_f64).ceil() * 0.050;
    line("overhead_floor_secs", format!("{floor:.3}"));
    for (suffix, extra) in [("_no_prefetch", json!({})), ("", json!({"prefetch": 1}))] {
        let s = spec(&format!("overhead{suffix}"), 2000, 1, Some(50), extra);
        let run = c.run(&s, Duration::from_secs(300));
        assert_eq!(run.count("finished"), 2000, "every trial finishes");
        line(
            &format!("overhead_wall_secs{suffix}"),
            format!("{:.3}", run.wall_secs),
        );
        line(
            &format!("scheduler_overhead_pct{suffix}"),
            format!("{:.2}", (run.wall_secs / ideal - 1.0) * 100.0),
        );
        line(
            &format!("scheduler_overhead_vs_floor_pct{suffix}"),
            format!("{:.2}", (run.wall_secs / floor - 1.0) * 100.0),
        );
        let b = run.breakdown(32);
        line(&format!("overhead_startup_ms{suffix}"), b.startup_ms);
        line(&format!("overhead_tail_ms{suffix}"), b.tail_ms);
        line(
            &format!("overhead_mean_trial_ms{suffix}"),
            format!("{:.2}", b.mean_trial_ms),
        );
        line(&format!("overhead_idle_slot_ms{suffix}"), b.idle_slot_ms);
    }
}

fn scaling(c: &mut Cluster) {
    let mut base = None;
    for slots in [1u32, 2, 4, 8, 16, 32, 64] {
        c.slots(slots);
        let s = spec(&format!("scaling {slots}"), 256, 1, Some(200), json!({}));
        let run = c.run(&s, Duration::from_secs(300));
        assert_eq!(run.count("finished"), 256, "every trial finishes");
        let t1 = *base.get_or_insert(run.wall_secs);
        let efficiency = t1 / run.wall_secs / f64::from(slots);
        line(
            &format!("scaling_wall_secs_{slots}"),
            format!("{:.3}", run.wall_secs),
        );
        line(
            &format!("scaling_efficiency_{slots}"),
            format!("{efficiency:.3}"),
        );
    }
}

fn ingest(c: &mut Cluster) {
    c.slots(16);
    let s = spec("ingest", 16, 4000, Some(0), json!({}));
    let run = c.run(&s, Duration::from_secs(300));
    assert_eq!(run.count("finished"), 16, "every trial finishes");
    line("ingest_metric_reports", run.metric_events);
    line("ingest_wall_secs", format!("{:.3}", run.wall_secs));
    line(
        "metric_reports_per_sec",
        format!("{:.0}", run.metric_events as f64 / run.wall_secs),
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let known = ["maggy", "overhead", "scaling", "ingest"];
    if let Some(bad) = args.iter().find(|a| !known.contains(&a.as_str())) {
        eprintln!("unknown part '{bad}'; parts: {}", known.join(" "));
        return ExitCode::from(2);
    }
    let wants = |p: &str| args.is_empty() || args.iter().any(|a| a == p);
    let mut cluster = Cluster::start();
    if wants("maggy") {
        maggy(&mut cluster);
    }
    if wants("overhead") {
        overhead(&mut cluster);
    }
    if wants("scaling") {
        scaling(&mut cluster);
    }
    if wants("ingest") {
        ingest(&mut cluster);
    }
    ExitCode::SUCCESS
}
