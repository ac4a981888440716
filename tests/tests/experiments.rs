//! The experiment engine with real processes: experiments run on real workers over the real
//! protocol, the live event stream resumes with `Last-Event-ID`, bad specs and tokens are
//! refused, and neither a worker nor the server killed with SIGKILL loses a trial or an
//! acknowledged metric.

use std::collections::BTreeMap;
use std::time::Duration;

use albedo_system_tests::{get, get_json, post, serve_with, sse_until, tokens, wait_until, worker};
use serde_json::{Value, json};

/// A data folder with a worker token and a user token.
fn data_with_tokens() -> (tempfile::TempDir, String, String) {
    let data = tempfile::tempdir().expect("tempdir");
    let (worker, user) = tokens(data.path());
    (data, worker, user)
}

/// Fast server settings: heartbeats every second, a lost worker's trials re-run after 1 s.
const FAST: &[&str] = &["--heartbeat-secs", "1", "--lease-grace-secs", "1"];

fn search_spec(max_trials: u32, steps: u32, step_ms: u32, extra: Value) -> String {
    let mut spec = json!({
        "name": "engine test",
        "metric": "accuracy",
        "direction": "maximize",
        "params": [
            {"name": "lr", "type": "float", "low": 1e-4, "high": 0.1, "log": true},
            {"name": "width", "type": "categorical", "values": [16, 32, 64, 128]},
            {"name": "dropout", "type": "float", "low": 0.0, "high": 0.5}
        ],
        "optimizer": {"type": "random"},
        "max_trials": max_trials,
        "seed": 3,
        "trial": {"kind": "synthetic", "steps": steps, "step_ms": step_ms}
    });
    for (k, v) in extra.as_object().expect("object") {
        spec[k] = v.clone();
    }
    spec.to_string()
}

fn create(addr: &str, user: &str, spec: &str) -> String {
    let (status, body) = post(addr, "/api/experiments", Some(user), spec);
    assert_eq!(status, 201, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    v["id"].as_str().expect("id").to_string()
}

fn state_of(addr: &str, id: &str) -> String {
    get_json(addr, &format!("/api/experiments/{id}"))["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn trials(addr: &str, id: &str) -> Vec<Value> {
    get_json(addr, &format!("/api/experiments/{id}/trials"))
        .as_array()
        .expect("array")
        .clone()
}

/// Trial id -> its steps in order.
fn series(addr: &str, id: &str) -> BTreeMap<u64, Vec<(u64, f64)>> {
    get_json(addr, &format!("/api/experiments/{id}/metrics"))
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            let points = s["points"]
                .as_array()
                .expect("points")
                .iter()
                .map(|p| {
                    (
                        p["step"].as_u64().expect("step"),
                        p["values"]["accuracy"].as_f64().expect("accuracy"),
                    )
                })
                .collect();
            (s["trial"].as_u64().expect("trial"), points)
        })
        .collect()
}

/// Every finished trial reported all its steps, in order, once.
fn assert_complete(series: &BTreeMap<u64, Vec<(u64, f64)>>, trials: &[Value], steps: u64) {
    for t in trials {
        if t["state"] == "finished" {
            let id = t["id"].as_u64().expect("id");
            let got: Vec<u64> = series[&id].iter().map(|p| p.0).collect();
            assert_eq!(got, (1..=steps).collect::<Vec<_>>(), "trial {id}");
        }
    }
}

#[test]
fn experiments_run_on_workers_and_stream_their_events() {
    let (data, wtoken, user) = data_with_tokens();
    let (_server, addr) = serve_with(data.path(), "127.0.0.1:0", FAST);
    let _a = worker(&addr, &wtoken, "a", 2);
    let _b = worker(&addr, &wtoken, "b", 2);
    wait_until(Duration::from_secs(20), "two workers connect", || {
        get_json(&addr, "/api/workers").as_array().map(Vec::len) == Some(2)
    });

    let spec = search_spec(
        12,
        8,
        15,
        json!({"early_stopping": {"type": "median", "min_finished": 3, "warmup_steps": 2}}),
    );
    let id = create(&addr, &user, &spec);
    // The whole stream, from the start, until the experiment ends.
    let events = sse_until(
        &addr,
        &format!("/api/experiments/{id}/events"),
        None,
        Duration::from_secs(60),
        |e| e["event"]["type"] == "experiment" && e["event"]["state"] == "finished",
    );
    assert_eq!(state_of(&addr, &id), "finished");
    let ids: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let trials = trials(&addr, &id);
    assert_eq!(trials.len(), 12);
    let finished = trials.iter().filter(|t| t["state"] == "finished").count();
    let stopped = trials.iter().filter(|t| t["state"] == "stopped").count();
    assert_eq!(finished + stopped, 12, "{trials:?}");
    assert!(
        finished >= 3,
        "the median rule needs 3 finished trials first"
    );
    for t in trials.iter().filter(|t| t["state"] == "stopped") {
        assert!(t["reason"].as_str().unwrap_or("").contains("median"), "{t}");
    }
    let series = series(&addr, &id);
    assert_complete(&series, &trials, 8);
    // Every stored metric was streamed, once.
    let metric_events = events
        .iter()
        .filter(|e| e.1["event"]["type"] == "metric")
        .count();
    let stored: usize = series.values().map(Vec::len).sum();
    assert_eq!(metric_events, stored);
    // Both workers ran trials.
    let workers: std::collections::BTreeSet<&str> =
        trials.iter().filter_map(|t| t["worker"].as_str()).collect();
    assert_eq!(workers.len(), 2, "{workers:?}");

    // A client that reconnects with Last-Event-ID gets exactly what came after.
    let (mid, _) = events[events.len() / 2];
    let rest = sse_until(
        &addr,
        &format!("/api/experiments/{id}/events"),
        Some(mid),
        Duration::from_secs(20),
        |e| e["event"]["type"] == "experiment" && e["event"]["state"] == "finished",
    );
    let expected: Vec<u64> = ids.iter().copied().filter(|i| *i > mid).collect();
    assert_eq!(rest.iter().map(|e| e.0).collect::<Vec<_>>(), expected);

    // Finished experiments cannot be cancelled; the best trial is a finished one.
    let (status, body) = post(
        &addr,
        &format!("/api/experiments/{id}/cancel"),
        Some(&user),
        "",
    );
    assert_eq!(status, 409, "{body}");
    let summary = get_json(&addr, &format!("/api/experiments/{id}"));
    let best = summary["best"]["trial"].as_u64().expect("a best trial");
    assert_eq!(trials[best as usize]["state"], "finished");
}

#[test]
fn prefetched_trials_wait_on_the_worker_and_never_overrun_its_slots() {
    let (data, wtoken, user) = data_with_tokens();
    let (_server, addr) = serve_with(data.path(), "127.0.0.1:0", FAST);
    let _a = worker(&addr, &wtoken, "a", 2);
    wait_until(Duration::from_secs(20), "the worker connects", || {
        get_json(&addr, "/api/workers").as_array().map(Vec::len) == Some(1)
    });
    let id = create(
        &addr,
        &user,
        &search_spec(16, 3, 30, json!({"prefetch": 2})),
    );
    // The workers page shows trials waiting on the worker beside the running ones.
    let mut most = (0, 0);
    wait_until(Duration::from_secs(60), "the experiment ends", || {
        let w = get_json(&addr, "/api/workers");
        let listed = w[0]["running"].as_array().cloned().unwrap_or_default();
        let waiting = listed.iter().filter(|r| r["waiting"] == true).count();
        most = most.max((listed.len() - waiting, waiting));
        state_of(&addr, &id) == "finished"
    });
    assert!(most.1 >= 1, "no trial ever waited on the worker: {most:?}");
    let trials = trials(&addr, &id);
    assert_eq!(trials.len(), 16);
    assert!(
        trials.iter().all(|t| t["state"] == "finished"),
        "{trials:?}"
    );
    assert_complete(&series(&addr, &id), &trials, 3);
    // Each run's interval starts when it really started (a waiting trial's `started`
    // report): at no moment did more trials run than the worker has slots.
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for t in &trials {
        let (start, end) = (t["started_ms"].as_i64(), t["ended_ms"].as_i64());
        let (Some(start), Some(end)) = (start, end) else {
            panic!("trial without its times: {t}");
        };
        assert!(end >= start, "a run that ended before it started: {t}");
        edges.push((start, 1));
        edges.push((end, -1));
    }
    // Ends sort before starts at the same millisecond (half-open intervals).
    edges.sort();
    let mut running = 0;
    for (_, d) in edges {
        running += d;
        assert!(running <= 2, "more runs at once than slots");
    }
}

#[test]
fn bad_specs_and_tokens_are_refused_and_create_nothing() {
    let (data, wtoken, user) = data_with_tokens();
    let (_server, addr) = serve_with(data.path(), "127.0.0.1:0", FAST);
    let good = search_spec(4, 3, 5, json!({}));

    for token in [None, Some("albu_wrong"), Some(wtoken.as_str())] {
        let (status, body) = post(&addr, "/api/experiments", token, &good);
        assert_eq!(status, 401, "{token:?}: {body}");
    }
    let bad = [
        (
            search_spec(4, 3, 5, json!({"optimizer": {"type": "hyperband"}})),
            "optimizer",
        ),
        (
            search_spec(
                4,
                3,
                5,
                json!({"params": [{"name": "lr", "type": "float", "low": 1, "high": 0.1}]}),
            ),
            "params.lr.low",
        ),
        (
            search_spec(
                4,
                3,
                5,
                json!({"params": [{"name": "lr", "type": "float", "low": 0, "high": 1, "log": true}]}),
            ),
            "params.lr.low",
        ),
        (search_spec(4, 3, 5, json!({"params": []})), "params"),
        (
            search_spec(
                4,
                3,
                5,
                json!({"optimizer": {"type": "grid"},
                       "params": [{"name": "lr", "type": "float", "low": 0.1, "high": 1}]}),
            ),
            "params.lr.steps",
        ),
        (
            search_spec(4, 3, 5, json!({"max_trials": -1})),
            "max_trials",
        ),
        (search_spec(4, 3, 5, json!({"colour": "red"})), "colour"),
    ];
    for (spec, field) in bad {
        let (status, body) = post(&addr, "/api/experiments", Some(&user), &spec);
        assert_eq!(status, 400, "{spec}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let said = format!("{} {}", v["field"], v["message"]);
        assert!(said.contains(field), "{field} not named in {said}");
    }
    assert_eq!(get_json(&addr, "/api/experiments"), json!([]));
    let (status, _) = get(&addr, "/api/experiments/e1");
    assert_eq!(status, 404);
    let (status, _) = get(&addr, "/api/experiments/..%2Fetc");
    assert_eq!(status, 404);
}

#[test]
fn a_worker_killed_mid_trial_is_replaced_and_nothing_is_lost() {
    let (data, wtoken, user) = data_with_tokens();
    let (_server, addr) = serve_with(data.path(), "127.0.0.1:0", FAST);
    let mut doomed = worker(&addr, &wtoken, "doomed", 2);
    wait_until(Duration::from_secs(20), "the first worker connects", || {
        get_json(&addr, "/api/workers").as_array().map(Vec::len) == Some(1)
    });
    let id = create(&addr, &user, &search_spec(6, 20, 60, json!({})));
    wait_until(
        Duration::from_secs(20),
        "two trials run on the doomed worker",
        || {
            let series = series(&addr, &id);
            series.values().filter(|s| s.len() >= 3).count() >= 2
        },
    );
    let _survivor = worker(&addr, &wtoken, "survivor", 2);
    doomed.kill9();
    wait_until(Duration::from_secs(60), "the experiment finishes", || {
        state_of(&addr, &id) == "finished"
    });
    let trials = trials(&addr, &id);
    assert_eq!(trials.len(), 6);
    assert!(
        trials.iter().all(|t| t["state"] == "finished"),
        "{trials:?}"
    );
    let rerun: Vec<&Value> = trials
        .iter()
        .filter(|t| t["attempt"].as_u64() == Some(2))
        .collect();
    assert!(
        rerun.len() >= 2,
        "the killed worker's trials ran again: {trials:?}"
    );
    for t in &rerun {
        assert_eq!(t["worker"], "survivor");
    }
    assert_complete(&series(&addr, &id), &trials, 20);
}

#[test]
fn a_server_killed_mid_experiment_resumes_it_after_a_restart() {
    let (data, wtoken, user) = data_with_tokens();
    let (mut server, addr) = serve_with(data.path(), "127.0.0.1:0", FAST);
    let _w = worker(&addr, &wtoken, "steady", 3);
    wait_until(Duration::from_secs(20), "the worker connects", || {
        get_json(&addr, "/api/workers").as_array().map(Vec::len) == Some(1)
    });
    let id = create(&addr, &user, &search_spec(9, 15, 40, json!({})));
    wait_until(Duration::from_secs(30), "three trials finish", || {
        trials(&addr, &id)
            .iter()
            .filter(|t| t["state"] == "finished")
            .count()
            >= 3
    });
    // What the server has stored (and so acknowledged) before it dies.
    let before = series(&addr, &id);
    let finished_before: Vec<u64> = trials(&addr, &id)
        .iter()
        .filter(|t| t["state"] == "finished")
        .map(|t| t["id"].as_u64().expect("id"))
        .collect();
    server.kill9();

    let (_server, addr2) = serve_with(data.path(), &addr, FAST);
    assert_eq!(addr2, addr);
    wait_until(Duration::from_secs(60), "the experiment finishes", || {
        state_of(&addr, &id) == "finished"
    });
    let trials = trials(&addr, &id);
    assert_eq!(trials.len(), 9, "{trials:?}");
    assert!(
        trials.iter().all(|t| t["state"] == "finished"),
        "{trials:?}"
    );
    let after = series(&addr, &id);
    for (trial, points) in &before {
        for p in points {
            assert!(
                after[trial].contains(p),
                "trial {trial} lost step {} it had before the kill",
                p.0
            );
        }
    }
    for t in finished_before {
        assert_eq!(after[&t], before[&t], "finished trial {t} changed");
    }
    assert_complete(&after, &trials, 15);
}

#[test]
fn an_ablation_study_of_command_trials_gives_each_component_its_delta() {
    let (data, wtoken, user) = data_with_tokens();
    let (_server, addr) = serve_with(data.path(), "127.0.0.1:0", FAST);
    let _w = worker(&addr, &wtoken, "ablator", 2);
    wait_until(Duration::from_secs(20), "the worker connects", || {
        get_json(&addr, "/api/workers").as_array().map(Vec::len) == Some(1)
    });
    // A real program: it reads ALBEDO_PARAMS, leaves out what `ablate` names and reports
    // JSON lines. Removing NIR costs 0.2, SWIR 0.05; removing the noise band helps by 0.01.
    let script = r#"
import json, os
p = json.loads(os.environ["ALBEDO_PARAMS"])
removed = {c["name"] for c in p["ablate"]}
acc = p["base"] - 0.2 * ("nir" in removed) - 0.05 * ("swir" in removed) + 0.01 * ("noise" in removed)
for s in range(1, 4):
    print(json.dumps({"step": s, "val_accuracy": acc * s / 3}), flush=True)
"#;
    let spec = json!({
        "name": "which bands matter",
        "metric": "val_accuracy",
        "direction": "maximize",
        "max_trials": 4,
        "ablation": {
            "baseline": {"base": 0.9},
            "components": [
                {"name": "nir", "kind": "band_group", "members": ["B08"]},
                {"name": "swir", "kind": "band_group", "members": ["B11", "B12"]},
                {"name": "noise", "kind": "named"}
            ]
        },
        "trial": {"kind": "command", "program": "python3", "args": ["-c", script]}
    });
    let id = create(&addr, &user, &spec.to_string());
    wait_until(Duration::from_secs(60), "the study finishes", || {
        state_of(&addr, &id) == "finished"
    });
    let report = get_json(&addr, &format!("/api/experiments/{id}/ablation"));
    assert!((report["baseline"].as_f64().expect("baseline") - 0.9).abs() < 1e-9);
    let effect = |name: &str| {
        report["components"]
            .as_array()
            .expect("components")
            .iter()
            .find(|c| c["component"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"))["importance"]
            .as_f64()
            .expect("importance")
    };
    assert!((effect("nir") - 0.2).abs() < 1e-9, "{report}");
    assert!((effect("swir") - 0.05).abs() < 1e-9, "{report}");
    assert!((effect("noise") + 0.01).abs() < 1e-9, "{report}");
    // A search has no ablation report.
    let search = create(&addr, &user, &search_spec(2, 2, 5, json!({})));
    let (status, _) = get(&addr, &format!("/api/experiments/{search}/ablation"));
    assert_eq!(status, 409);
}

#[test]
fn the_best_trials_model_is_registered_with_its_lineage() {
    let (data, wtoken, user) = data_with_tokens();
    let (_server, addr) = serve_with(data.path(), "127.0.0.1:0", FAST);
    let _w = worker(&addr, &wtoken, "trainer", 2);
    wait_until(Duration::from_secs(20), "the worker connects", || {
        get_json(&addr, "/api/workers").as_array().map(Vec::len) == Some(1)
    });
    let work = tempfile::tempdir().expect("tempdir");
    // Each trial "trains" a model file of its own and names it as its `model` artifact.
    let script = r#"
import json, os
p = json.loads(os.environ["ALBEDO_PARAMS"])
out = "model-%s" % os.environ["ALBEDO_TRIAL_ID"]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "weights.txt"), "w") as f:
    f.write("width=%d" % p["width"])
print(json.dumps({"artifacts": {"model": out}}), flush=True)
print(json.dumps({"step": 1, "val_accuracy": p["width"] / 100}), flush=True)
"#;
    let spec = json!({
        "name": "register me",
        "metric": "val_accuracy",
        "direction": "maximize",
        "params": [{"name": "width", "type": "categorical", "values": [16, 64, 32]}],
        "optimizer": {"type": "grid"},
        "max_trials": 3,
        "trial": {"kind": "command", "program": "python3", "args": ["-c", script],
                  "working_dir": work.path().to_str().expect("utf8")}
    });
    let id = create(&addr, &user, &spec.to_string());
    wait_until(Duration::from_secs(60), "the experiment finishes", || {
        state_of(&addr, &id) == "finished"
    });
    let body = json!({"name": "toy-model", "experiment": id}).to_string();
    let (status, _) = post(&addr, "/api/models", None, &body);
    assert_eq!(status, 401);
    let (status, text) = post(&addr, "/api/models", Some(&user), &body);
    assert_eq!(status, 201, "{text}");
    let model: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(model["version"], 1);
    assert_eq!(model["experiment"], id.as_str());
    assert_eq!(model["params"]["width"], 64, "the best trial: {model}");
    assert!((model["value"].as_f64().expect("value") - 0.64).abs() < 1e-9);
    assert_eq!(model["files"], json!(["weights.txt"]));
    let copied = data
        .path()
        .join("artifacts/models/toy-model/v1/weights.txt");
    assert_eq!(std::fs::read_to_string(copied).expect("copied"), "width=64");

    // Again: a new version; a chosen trial; bad requests.
    let (status, text) = post(
        &addr,
        "/api/models",
        Some(&user),
        &json!({"name": "toy-model", "experiment": id, "trial": 0}).to_string(),
    );
    assert_eq!(status, 201, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["version"],
        2
    );
    assert_eq!(
        get_json(&addr, "/api/models/toy-model")
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        get_json(&addr, "/api/models/toy-model/2")["params"]["width"],
        16
    );
    for (body, want) in [
        (json!({"name": "../x", "experiment": id}), 400),
        (json!({"name": "m", "experiment": "e999"}), 404),
        (json!({"name": "m", "experiment": id, "trial": 9}), 404),
        (json!({"name": "m", "experiment": id, "colour": 1}), 400),
    ] {
        let (status, text) = post(&addr, "/api/models", Some(&user), &body.to_string());
        assert_eq!(status, want, "{body}: {text}");
    }
    let (status, _) = get(&addr, "/api/models/toy-model/3");
    assert_eq!(status, 404);
}
