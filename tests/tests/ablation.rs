//! An ablation study over bands, a derived feature and a block of the built-in CNN, end to
//! end: a real worker process builds a BigEarthNet dataset through the server's job queue,
//! then runs the leave-one-out study as `eo_cnn` trials (the baseline with every component,
//! then one trial without each: red edge, NIR, SWIR, NDVI, block 3) and the server reports
//! each component's delta on `val_accuracy`. The deltas are printed (`--nocapture` shows
//! them): which components matter on this sample is what the study finds, so the test
//! checks that every trial finished with a saved model and that every component got its
//! delta (metric without it minus the baseline's), not which sign it has. Measured on the
//! build machine: baseline 0.910; without red edge -0.015, NIR -0.030, SWIR -0.075, NDVI
//! -0.075, block 3 -0.030 (every component helps on this sample).

use std::time::Duration;

use albedo_system_tests::{
    ben_classes, build_dataset, get_json, post, repo_root, serve_with, tokens, wait_until, worker,
};
use serde_json::{Value, json};

/// The dataset's channels: visible, red edge, NIR, SWIR, NDVI.
const CHANNELS: [&str; 10] = [
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12", "NDVI",
];

#[test]
fn an_ablation_study_of_the_cnn_shows_which_bands_and_blocks_matter() {
    let data = tempfile::tempdir().expect("tempdir");
    let (wtoken, user) = tokens(data.path());
    let user = user.as_str();
    let labeled = repo_root().join("../shared/data/labeled");
    let root = labeled.to_str().expect("utf8").to_string();
    let (_server, addr) = serve_with(
        data.path(),
        "127.0.0.1:0",
        &["--heartbeat-secs", "1", "--ingest-root", &root],
    );
    let _worker = worker(&addr, wtoken.trim(), "ablator", 2);

    // 30x30 patches of the 14 BigEarthNet S2 folders: 16 a folder, 224 in all.
    let spec = json!({
        "name": "ben-ablation",
        "source": {"kind": "bigearthnet", "dir": format!("{root}/bigearthnet/v1_geotiff/S2")},
        "channels": CHANNELS,
        "classes": ben_classes(),
        "patch_size": 30,
        "stride": 30,
        "split": {"train": 0.7, "val": 0.3, "test": 0.0, "seed": 3, "stratified": true}
    });
    build_dataset(&addr, user, &spec, Duration::from_secs(120));

    let components = json!([
        {"name": "red edge", "kind": "band_group", "members": ["B05", "B06", "B07"]},
        {"name": "nir", "kind": "band_group", "members": ["B08"]},
        {"name": "swir", "kind": "band_group", "members": ["B11", "B12"]},
        {"name": "NDVI", "kind": "feature"},
        {"name": "block3", "kind": "block"}
    ]);
    let study = json!({
        "name": "which bands and blocks matter",
        "metric": "val_accuracy",
        "direction": "maximize",
        "max_trials": 6,
        "ablation": {
            "baseline": {"width": 8, "depth": 3, "epochs": 4, "lr": 0.003, "batch_size": 16,
                         "dropout": 0.0, "seed": 5},
            "components": components
        },
        "trial": {"kind": "eo_cnn", "dataset": "ben-ablation", "version": 1, "threads": 1}
    });
    let (status, body) = post(&addr, "/api/experiments", Some(user), &study.to_string());
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_until(Duration::from_secs(300), "the study finishes", || {
        let e = get_json(&addr, &format!("/api/experiments/{id}"));
        assert_ne!(e["state"], "failed", "{e}");
        e["state"] == "finished"
    });

    let trials = get_json(&addr, &format!("/api/experiments/{id}/trials"));
    let trials = trials.as_array().expect("trials");
    assert_eq!(trials.len(), 6, "{trials:?}");
    for t in trials {
        assert_eq!(t["state"], "finished", "{t}");
        assert!(t["artifacts"]["model"].is_string(), "{t}");
    }

    let report = get_json(&addr, &format!("/api/experiments/{id}/ablation"));
    let baseline = report["baseline"].as_f64().expect("baseline");
    assert!((0.0..=1.0).contains(&baseline), "{report}");
    println!("ablation study on BigEarthNet (val_accuracy, baseline {baseline:.3}):");
    let effects = report["components"].as_array().expect("components");
    assert_eq!(effects.len(), 5, "{report}");
    for (effect, component) in effects.iter().zip(components.as_array().expect("array")) {
        assert_eq!(effect["component"], component["name"], "{report}");
        let metric = effect["metric"].as_f64().expect("metric");
        let delta = effect["delta"].as_f64().expect("delta");
        let importance = effect["importance"].as_f64().expect("importance");
        assert!((metric - baseline - delta).abs() < 1e-9, "{effect}");
        assert!(
            (importance + delta).abs() < 1e-9,
            "maximised metric: {effect}"
        );
        println!(
            "  without {:<9} val_accuracy {metric:.3}  delta {delta:+.3}  importance {importance:+.3}",
            effect["component"].as_str().unwrap_or_default()
        );
    }
}
