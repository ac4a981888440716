//! STAC item search (`GET`/`POST /stac/search`) over all the real STAC items of the sample
//! data, checked against a brute-force filter computed here from the same JSON files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use albedo_backend::ingest::{IngestOptions, ingest_paths};
use albedo_backend::store::Store;
use albedo_backend::{AppState, Config, router};

#[allow(dead_code)]
mod common;

const DEFAULT_COLLECTION: &str = "sentinel-2-stactools";

fn stac_dir() -> PathBuf {
    common::data_root().join("stac")
}

fn sources() -> Vec<PathBuf> {
    let d = stac_dir();
    vec![
        d.join("sentinel-2-l2a_1000_items_planetary-computer_2024-07-09_to_08-28.ndjson"),
        d.join("sentinel-2-l2a_100_items_planetary-computer_13TDE_2024.ndjson"),
        d.join("sentinel-2-stactools-expected"),
        d.join("sentinel-1-grd"),
    ]
}

/// An item as the brute force sees it, read straight from the files.
#[derive(Debug, Clone)]
struct Raw {
    id: String,
    collection: String,
    bbox: [f64; 4],
    start: String,
    end: String,
    datetime: String,
    props: serde_json::Map<String, Value>,
    geometry: Value,
}

/// Every item of [`sources`], in ingest order, the last of an id winning.
fn raw_items() -> BTreeMap<String, Raw> {
    let mut docs: Vec<Value> = Vec::new();
    for src in sources() {
        let mut files = vec![src.clone()];
        if src.is_dir() {
            files = std::fs::read_dir(&src)
                .expect("dir")
                .map(|e| e.expect("entry").path())
                .collect();
            files.sort();
        }
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read");
            if f.extension().is_some_and(|e| e == "ndjson") {
                docs.extend(
                    text.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| serde_json::from_str::<Value>(l).expect("ndjson line")),
                );
            } else {
                let v: Value = serde_json::from_str(&text).expect("json");
                if v["type"] == "Feature" {
                    docs.push(v);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for d in docs {
        let p = d["properties"].as_object().expect("properties").clone();
        let b: Vec<f64> = d["bbox"]
            .as_array()
            .expect("bbox")
            .iter()
            .map(|x| x.as_f64().expect("num"))
            .collect();
        let bbox = if b.len() == 6 {
            [b[0], b[1], b[3], b[4]]
        } else {
            [b[0], b[1], b[2], b[3]]
        };
        let norm = |s: &str| normalise(s);
        let datetime = norm(p["datetime"].as_str().expect("datetime"));
        let (start, end) = match (
            p.get("start_datetime").and_then(Value::as_str),
            p.get("end_datetime").and_then(Value::as_str),
        ) {
            (Some(a), Some(b)) => (norm(a), norm(b)),
            _ => (datetime.clone(), datetime.clone()),
        };
        let id = d["id"].as_str().expect("id").to_string();
        out.insert(
            id.clone(),
            Raw {
                id,
                collection: d["collection"]
                    .as_str()
                    .unwrap_or(DEFAULT_COLLECTION)
                    .to_string(),
                bbox,
                start,
                end,
                datetime,
                props: p,
                geometry: d["geometry"].clone(),
            },
        );
    }
    out
}

/// An RFC 3339 UTC time as a fixed-width comparable string `YYYY-MM-DDTHH:MM:SS.ffffff`.
fn normalise(s: &str) -> String {
    let s = s.replace(' ', "T");
    let s = s.trim_end_matches('Z').trim_end_matches("+00:00");
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    assert_eq!(secs.len(), 19, "{s}");
    format!("{secs}.{:0<6}", &frac[..frac.len().min(6)])
}

/// Longitude intervals of a bbox, split at the antimeridian.
fn lon_parts(w: f64, e: f64) -> Vec<(f64, f64)> {
    if w <= e {
        vec![(w, e)]
    } else {
        vec![(w, 180.0), (-180.0, e)]
    }
}

fn bbox_hits(item: &[f64; 4], q: &[f64; 4]) -> bool {
    let lat = item[1] <= q[3] && item[3] >= q[1];
    lat && lon_parts(item[0], item[2]).iter().any(|a| {
        lon_parts(q[0], q[2])
            .iter()
            .any(|b| a.0 <= b.1 && a.1 >= b.0)
    })
}

/// Sutherland-Hodgman: clips a ring to an axis-aligned rectangle; empty when they do not meet.
fn clip_ring(ring: &[(f64, f64)], r: [f64; 4]) -> Vec<(f64, f64)> {
    let mut poly = ring.to_vec();
    type Inside = fn((f64, f64), f64) -> bool;
    type Cut = fn((f64, f64), (f64, f64), f64) -> (f64, f64);
    let cut_x: Cut = |a, b, x| (x, a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0));
    let cut_y: Cut = |a, b, y| (a.0 + (b.0 - a.0) * (y - a.1) / (b.1 - a.1), y);
    let edges: [(Inside, Cut, f64); 4] = [
        (|p, v| p.0 >= v, cut_x, r[0]),
        (|p, v| p.0 <= v, cut_x, r[2]),
        (|p, v| p.1 >= v, cut_y, r[1]),
        (|p, v| p.1 <= v, cut_y, r[3]),
    ];
    for (inside, cut, v) in edges {
        let input = std::mem::take(&mut poly);
        for i in 0..input.len() {
            let cur = input[i];
            let prev = input[(i + input.len() - 1) % input.len()];
            match (inside(cur, v), inside(prev, v)) {
                (true, true) => poly.push(cur),
                (true, false) => {
                    poly.push(cut(prev, cur, v));
                    poly.push(cur);
                }
                (false, true) => poly.push(cut(prev, cur, v)),
                (false, false) => {}
            }
        }
    }
    poly
}

fn geometry_hits_rect(g: &Value, r: [f64; 4]) -> bool {
    let polys: Vec<Value> = match g["type"].as_str() {
        Some("Polygon") => vec![g["coordinates"].clone()],
        Some("MultiPolygon") => g["coordinates"].as_array().expect("polys").clone(),
        other => panic!("unexpected geometry {other:?}"),
    };
    polys.iter().any(|p| {
        let ring: Vec<(f64, f64)> = p[0]
            .as_array()
            .expect("ring")
            .iter()
            .map(|c| (c[0].as_f64().expect("x"), c[1].as_f64().expect("y")))
            .collect();
        clip_ring(&ring, r).len() >= 3
    })
}

fn time_hits(item: &Raw, start: Option<&str>, end: Option<&str>) -> bool {
    start.is_none_or(|s| item.end.as_str() >= normalise(s).as_str())
        && end.is_none_or(|e| item.start.as_str() <= normalise(e).as_str())
}

fn num(item: &Raw, k: &str) -> Option<f64> {
    item.props.get(k).and_then(Value::as_f64)
}

fn text<'a>(item: &'a Raw, k: &str) -> Option<&'a str> {
    item.props.get(k).and_then(Value::as_str)
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    raw: BTreeMap<String, Raw>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let options = IngestOptions {
        default_collection: Some(DEFAULT_COLLECTION.into()),
        ..IngestOptions::default()
    };
    ingest_paths(&store, &sources(), &options).expect("ingest");
    Fixture {
        _dir: dir,
        state: AppState::new(store, Config::default()).expect("state"),
        raw: raw_items(),
    }
}

async fn send(state: &AppState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router(state.clone()).oneshot(req).await.expect("response");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 256 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).expect("json body"))
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    send(state, Request::get(uri).body(Body::empty()).expect("req")).await
}

async fn post(state: &AppState, uri: &str, body: &Value) -> (StatusCode, Value) {
    send(
        state,
        Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("req"),
    )
    .await
}

fn next_link(page: &Value) -> Option<Value> {
    page["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["rel"] == "next")
        .cloned()
}

fn ids(page: &Value) -> Vec<String> {
    page["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_string())
        .collect()
}

/// Follows GET `next` links from `uri`; returns all features in order.
async fn all_get(state: &AppState, uri: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut uri = uri.to_string();
    for _ in 0..10_000 {
        let (status, page) = get(state, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {page}");
        let n = page["features"].as_array().expect("features").len();
        assert_eq!(page["numberReturned"], n);
        out.extend(page["features"].as_array().expect("f").iter().cloned());
        match next_link(&page) {
            Some(l) => {
                assert_eq!(l["method"], "GET");
                let href = l["href"].as_str().expect("href");
                uri = href
                    .strip_prefix("http://127.0.0.1")
                    .expect("absolute link")
                    .to_string();
            }
            None => return out,
        }
    }
    panic!("paging does not end");
}

/// Follows POST `next` links (merging their bodies) from `body`.
async fn all_post(state: &AppState, body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut body = body.clone();
    for _ in 0..10_000 {
        let (status, page) = post(state, "/stac/search", &body).await;
        assert_eq!(status, StatusCode::OK, "{body}: {page}");
        out.extend(page["features"].as_array().expect("f").iter().cloned());
        match next_link(&page) {
            Some(l) => {
                assert_eq!(l["method"], "POST");
                assert_eq!(l["merge"], true);
                for (k, v) in l["body"].as_object().expect("body") {
                    body[k] = v.clone();
                }
            }
            None => return out,
        }
    }
    panic!("paging does not end");
}

fn id_set(features: &[Value]) -> BTreeSet<String> {
    let set: BTreeSet<String> = features
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(set.len(), features.len(), "an item came twice");
    set
}

fn expect(raw: &BTreeMap<String, Raw>, pred: impl Fn(&Raw) -> bool) -> BTreeSet<String> {
    raw.values()
        .filter(|r| pred(r))
        .map(|r| r.id.clone())
        .collect()
}

#[tokio::test]
async fn search_matches_a_brute_force_filter() {
    let f = fixture();
    let raw = &f.raw;
    assert!(raw.len() > 1100, "{} distinct items", raw.len());

    // Everything, paged.
    let (_, first) = get(&f.state, "/stac/search?limit=500").await;
    assert_eq!(first["numberMatched"], raw.len());
    let all = all_get(&f.state, "/stac/search?limit=500").await;
    assert_eq!(id_set(&all), raw.keys().cloned().collect());

    struct Case {
        get: String,
        post: Value,
        want: BTreeSet<String>,
    }
    let colorado = [-106.0, 39.0, -105.0, 40.0];
    let cases = vec![
        Case {
            get: "bbox=-106,39,-105,40&datetime=2024-07-15T00:00:00Z/2024-08-15T00:00:00Z\
                  &query=%7B%22eo%3Acloud_cover%22%3A%7B%22lt%22%3A20%7D%7D&limit=7"
                .into(),
            post: json!({"bbox": colorado, "datetime": "2024-07-15T00:00:00Z/2024-08-15T00:00:00Z",
                         "query": {"eo:cloud_cover": {"lt": 20}}, "limit": 7}),
            want: expect(raw, |r| {
                bbox_hits(&r.bbox, &colorado)
                    && time_hits(r, Some("2024-07-15T00:00:00Z"), Some("2024-08-15T00:00:00Z"))
                    && num(r, "eo:cloud_cover").is_some_and(|c| c < 20.0)
            }),
        },
        // Crosses the antimeridian: both sides.
        Case {
            get: "bbox=170,-20,-170,70&limit=3".into(),
            post: json!({"bbox": [170, -20, -170, 70], "limit": 3}),
            want: expect(raw, |r| bbox_hits(&r.bbox, &[170.0, -20.0, -170.0, 70.0])),
        },
        // Only the west side of the antimeridian.
        Case {
            get: "bbox=-179.9,-20,-179.8,-10".into(),
            post: json!({"bbox": [-179.9, -20, -179.8, -10]}),
            want: expect(raw, |r| bbox_hits(&r.bbox, &[-179.9, -20.0, -179.8, -10.0])),
        },
        // Polar, north and south.
        Case {
            get: "bbox=0,75,120,90".into(),
            post: json!({"bbox": [0, 75, 120, 90]}),
            want: expect(raw, |r| bbox_hits(&r.bbox, &[0.0, 75.0, 120.0, 90.0])),
        },
        Case {
            get: "bbox=-180,-90,180,-75".into(),
            post: json!({"bbox": [-180, -90, 180, -75]}),
            want: expect(raw, |r| bbox_hits(&r.bbox, &[-180.0, -90.0, 180.0, -75.0])),
        },
        // Open intervals; start/end items match by overlap.
        Case {
            get: "datetime=../2022-01-01T00:00:00Z".into(),
            post: json!({"datetime": "../2022-01-01T00:00:00Z"}),
            want: expect(raw, |r| time_hits(r, None, Some("2022-01-01T00:00:00Z"))),
        },
        Case {
            get: "datetime=2024-08-20T00:00:00Z/..&limit=100".into(),
            post: json!({"datetime": "2024-08-20T00:00:00Z/..", "limit": 100}),
            want: expect(raw, |r| time_hits(r, Some("2024-08-20T00:00:00Z"), None)),
        },
        // An instant inside a start/end range only.
        Case {
            get: "datetime=2022-11-30T01:44:00Z".into(),
            post: json!({"datetime": "2022-11-30T01:44:00Z"}),
            want: expect(raw, |r| {
                time_hits(r, Some("2022-11-30T01:44:00Z"), Some("2022-11-30T01:44:00Z"))
            }),
        },
        // Query extension on the promoted properties.
        Case {
            get: "query=%7B%22sar%3Apolarizations%22%3A%7B%22in%22%3A%5B%22HH%22%5D%7D%7D".into(),
            post: json!({"query": {"sar:polarizations": {"in": ["HH"]}}}),
            want: expect(raw, |r| {
                r.props
                    .get("sar:polarizations")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|p| p == "HH"))
            }),
        },
        Case {
            get: "query=%7B%22sar%3Apolarizations%22%3A%7B%22eq%22%3A%22VH%22%7D%2C\
                  %22sat%3Aorbit_state%22%3A%7B%22eq%22%3A%22ascending%22%7D%7D"
                .into(),
            post: json!({"query": {"sar:polarizations": {"eq": "VH"},
                                   "sat:orbit_state": {"eq": "ascending"}}}),
            want: expect(raw, |r| {
                r.props
                    .get("sar:polarizations")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|p| p == "VH"))
                    && text(r, "sat:orbit_state") == Some("ascending")
            }),
        },
        Case {
            get: "query=%7B%22platform%22%3A%7B%22in%22%3A%5B%22Sentinel-2B%22%2C%22sentinel-2b%22%5D%7D%2C\
                  %22eo%3Acloud_cover%22%3A%7B%22gte%22%3A10%2C%22lte%22%3A30%7D%7D&limit=50"
                .into(),
            post: json!({"query": {"platform": {"in": ["Sentinel-2B", "sentinel-2b"]},
                                   "eo:cloud_cover": {"gte": 10, "lte": 30}}, "limit": 50}),
            want: expect(raw, |r| {
                matches!(text(r, "platform"), Some("Sentinel-2B" | "sentinel-2b"))
                    && num(r, "eo:cloud_cover").is_some_and(|c| (10.0..=30.0).contains(&c))
            }),
        },
        Case {
            get: "query=%7B%22sat%3Aorbit_state%22%3A%7B%22neq%22%3A%22descending%22%7D%7D&limit=100"
                .into(),
            post: json!({"query": {"sat:orbit_state": {"neq": "descending"}}, "limit": 100}),
            want: expect(raw, |r| {
                text(r, "sat:orbit_state").is_some_and(|s| s != "descending")
            }),
        },
        Case {
            get: "collections=sentinel-1-grd,sentinel1-rtc-aws".into(),
            post: json!({"collections": ["sentinel-1-grd", "sentinel1-rtc-aws"]}),
            want: expect(raw, |r| {
                r.collection == "sentinel-1-grd" || r.collection == "sentinel1-rtc-aws"
            }),
        },
        Case {
            get: format!(
                "collections={DEFAULT_COLLECTION}&ids=S2A_OPER_MSI_L2A_TL_2APS_20240109T203651_A044654_T60CWS,nope"
            ),
            post: json!({"collections": [DEFAULT_COLLECTION],
                         "ids": ["S2A_OPER_MSI_L2A_TL_2APS_20240109T203651_A044654_T60CWS", "nope"]}),
            want: expect(raw, |r| r.id == "S2A_OPER_MSI_L2A_TL_2APS_20240109T203651_A044654_T60CWS"),
        },
    ];
    for case in &cases {
        assert!(
            !case.want.is_empty(),
            "{}: the case should match something",
            case.get
        );
        assert!(
            case.want.len() < raw.len(),
            "{}: the case should filter",
            case.get
        );
        let uri = format!("/stac/search?{}", case.get);
        let (status, page) = get(&f.state, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {page}");
        assert_eq!(page["numberMatched"], case.want.len(), "{uri}");
        assert_eq!(
            id_set(&all_get(&f.state, &uri).await),
            case.want,
            "GET {uri}"
        );
        assert_eq!(
            id_set(&all_post(&f.state, &case.post).await),
            case.want,
            "POST {}",
            case.post
        );
    }
}

#[tokio::test]
async fn intersects_tests_geometries() {
    let f = fixture();
    // Rectangles as polygons: checked against clipping the items' own footprints.
    for r in [
        [-106.0, 39.0, -105.0, 40.0],
        [-105.3, 39.9, -105.2, 40.0],
        [179.5, -17.0, 180.0, -15.0],
        [-180.0, 60.0, -178.0, 70.0],
        [80.0, 77.0, 90.0, 80.0],
        [-180.0, -90.0, 180.0, -75.0],
    ] {
        let poly = json!({"type": "Polygon", "coordinates": [[
            [r[0], r[1]], [r[2], r[1]], [r[2], r[3]], [r[0], r[3]], [r[0], r[1]]]]});
        let want = expect(&f.raw, |it| geometry_hits_rect(&it.geometry, r));
        assert!(!want.is_empty(), "{r:?}");
        let got = all_post(&f.state, &json!({"intersects": poly, "limit": 25})).await;
        assert_eq!(id_set(&got), want, "{r:?}");
        // The same as a GET parameter.
        let uri = format!(
            "/stac/search?limit=1000&intersects={}",
            urlencode(&poly.to_string())
        );
        let (status, page) = get(&f.state, &uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(id_set(page["features"].as_array().expect("f")), want);
    }
    // Geometry, not bbox: the footprints of T01LAC stop short of their bbox's corners, so a
    // small box in that corner hits the bbox but not the geometry.
    let item = &f.raw["S2A_T01LAC_20200717T221944_L1C"];
    let b = item.bbox;
    let corner = [b[0], b[3] - 0.01, b[0] + 0.01, b[3]];
    assert!(!geometry_hits_rect(&item.geometry, corner));
    {
        let poly = json!({"type": "Polygon", "coordinates": [[
            [corner[0], corner[1]], [corner[2], corner[1]], [corner[2], corner[3]],
            [corner[0], corner[3]], [corner[0], corner[1]]]]});
        let got = all_post(&f.state, &json!({"intersects": poly})).await;
        assert!(!id_set(&got).contains(&item.id));
        let (_, by_bbox) = post(&f.state, "/stac/search", &json!({"bbox": corner})).await;
        assert!(ids(&by_bbox).contains(&item.id));
    }
    // A point inside the Kara Sea EW GRD footprint, and one in the open Pacific.
    let (_, page) = post(
        &f.state,
        "/stac/search",
        &json!({"intersects": {"type": "Point", "coordinates": [90.0, 79.5]}}),
    )
    .await;
    assert!(
        ids(&page)
            .iter()
            .any(|i| i.starts_with("S1A_EW_GRDM_1SDH_20221130"))
    );
    let (_, page) = post(
        &f.state,
        "/stac/search",
        &json!({"intersects": {"type": "Point", "coordinates": [-140.0, 0.0]}}),
    )
    .await;
    assert_eq!(page["numberMatched"], 0);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn sortby_orders_results() {
    let f = fixture();
    let uri =
        "/stac/search?collections=sentinel-2-l2a&sortby=-properties.eo:cloud_cover,id&limit=97";
    let got = all_get(&f.state, uri).await;
    let n = f
        .raw
        .values()
        .filter(|r| r.collection == "sentinel-2-l2a")
        .count();
    assert_eq!(id_set(&got).len(), n);
    let keys: Vec<(f64, String)> = got
        .iter()
        .map(|i| {
            (
                i["properties"]["eo:cloud_cover"].as_f64().expect("cc"),
                i["id"].as_str().expect("id").to_string(),
            )
        })
        .collect();
    for w in keys.windows(2) {
        assert!(
            w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1),
            "{w:?}"
        );
    }
    // POST, datetime ascending (start/end items sort by their datetime).
    let got = all_post(
        &f.state,
        &json!({"sortby": [{"field": "properties.datetime", "direction": "asc"}], "limit": 333}),
    )
    .await;
    assert_eq!(got.len(), f.raw.len());
    let times: Vec<String> = got
        .iter()
        .map(|i| f.raw[i["id"].as_str().expect("id")].datetime.clone())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    // Default: newest first.
    let (_, page) = get(&f.state, "/stac/search?limit=5").await;
    let newest = f
        .raw
        .values()
        .map(|r| r.datetime.clone())
        .max()
        .expect("max");
    assert_eq!(f.raw[&ids(&page)[0]].datetime, newest);
}

#[tokio::test]
async fn bad_parameters_are_400_naming_them() {
    let f = fixture();
    let cases = [
        ("bbox=1,2,3", "bbox"),
        ("bbox=0,10,1,5", "bbox"),
        ("bbox=a,b,c,d", "bbox"),
        (
            "bbox=0,0,1,1&intersects=%7B%22type%22%3A%22Point%22%2C%22coordinates%22%3A%5B0%2C0%5D%7D",
            "bbox",
        ),
        ("intersects=%7B%22type%22%3A%22Blob%22%7D", "intersects"),
        ("datetime=yesterday", "datetime"),
        (
            "datetime=2024-08-01T00:00:00Z/2024-07-01T00:00:00Z",
            "datetime",
        ),
        ("sortby=-properties.colour", "sortby"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("query=%7B%22colour%22%3A%7B%22eq%22%3A1%7D%7D", "query"),
        (
            "query=%7B%22eo%3Acloud_cover%22%3A%7B%22lt%22%3A%22low%22%7D%7D",
            "query",
        ),
        (
            "query=%7B%22eo%3Acloud_cover%22%3A%7B%22like%22%3A1%7D%7D",
            "query",
        ),
        ("token=zzz", "token"),
        ("filter=eo:cloud_cover%3C20", "filter"),
    ];
    for (q, field) in cases {
        let (status, body) = get(&f.state, &format!("/stac/search?{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        let msg = body["message"].as_str().expect("message");
        assert!(msg.starts_with(&format!("invalid {field}")), "{q}: {msg}");
    }
    let bodies = [
        (json!({"bbox": [1, 2, 3]}), "bbox"),
        (json!({"datetime": "2024-13-01T00:00:00Z"}), "datetime"),
        (
            json!({"sortby": [{"field": "properties.colour"}]}),
            "sortby",
        ),
        (
            json!({"sortby": [{"field": "id", "direction": "up"}]}),
            "sortby",
        ),
        (json!({"limit": 0}), "limit"),
        (json!({"collections": "a,b"}), "collections"),
        (
            json!({"query": {"sar:polarizations": {"lt": "VV"}}}),
            "query",
        ),
        (json!([1, 2]), "body"),
    ];
    for (b, field) in bodies {
        let (status, body) = post(&f.state, "/stac/search", &b).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {body}");
        let msg = body["message"].as_str().expect("message");
        assert!(msg.starts_with(&format!("invalid {field}")), "{b}: {msg}");
    }
    let resp = router(f.state.clone())
        .oneshot(
            Request::post("/stac/search")
                .body(Body::from("{not json"))
                .expect("req"),
        )
        .await
        .expect("resp");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Limits above the maximum are served with the maximum, not refused.
    let (status, page) = get(&f.state, "/stac/search?limit=20000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["numberReturned"], f.raw.len().min(10_000));
}

#[tokio::test]
async fn landing_page_and_conformance_advertise_search() {
    let f = fixture();
    let (_, landing) = get(&f.state, "/stac").await;
    let methods: BTreeSet<&str> = landing["links"]
        .as_array()
        .expect("links")
        .iter()
        .filter(|l| l["rel"] == "search")
        .map(|l| {
            assert!(l["href"].as_str().expect("href").ends_with("/stac/search"));
            l["method"].as_str().expect("method")
        })
        .collect();
    assert_eq!(methods, BTreeSet::from(["GET", "POST"]));
    // The OpenAPI description, with the media type its link announces.
    let desc = landing["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["rel"] == "service-desc")
        .expect("service-desc");
    let resp = router(f.state.clone())
        .oneshot(Request::get("/stac/api").body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        desc["type"].as_str().expect("type")
    );
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let doc: Value = serde_json::from_slice(&body).expect("json");
    assert!(doc["paths"]["/search"]["post"].is_object());
    // Searches and items answer GeoJSON, with links to this server.
    for uri in [
        "/stac/search?limit=1",
        "/stac/collections/sentinel-2-l2a/items?limit=1",
    ] {
        let resp = router(f.state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).expect("req"))
            .await
            .expect("resp");
        assert_eq!(
            resp.headers()["content-type"],
            "application/geo+json",
            "{uri}"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let page: Value = serde_json::from_slice(&body).expect("json");
        let item = &page["features"][0];
        let self_href = item["links"]
            .as_array()
            .expect("links")
            .iter()
            .find(|l| l["rel"] == "self")
            .and_then(|l| l["href"].as_str())
            .expect("self link");
        let want = format!(
            "http://127.0.0.1/stac/collections/{}/items/{}",
            item["collection"].as_str().expect("collection"),
            item["id"].as_str().expect("id")
        );
        assert_eq!(self_href, want);
    }
    let (_, conf) = get(&f.state, "/stac/conformance").await;
    let conf: Vec<&str> = conf["conformsTo"]
        .as_array()
        .expect("conformsTo")
        .iter()
        .map(|c| c.as_str().expect("str"))
        .collect();
    for c in [
        "https://api.stacspec.org/v1.0.0/item-search",
        "https://api.stacspec.org/v1.0.0/item-search#sort",
        "https://api.stacspec.org/v1.0.0-rc.1/item-search#query",
    ] {
        assert!(conf.contains(&c), "{c}");
    }
}

#[tokio::test]
async fn reingest_replaces_index_rows() {
    let f = fixture();
    let store = f.state.store.clone();
    let count_rows = |store: &Store| {
        let conn = rusqlite::Connection::open(store.path()).expect("open");
        let items: i64 = conn
            .query_row("SELECT COUNT(*) FROM search_items", [], |r| r.get(0))
            .expect("items");
        let boxes: i64 = conn
            .query_row("SELECT COUNT(*) FROM search_bbox", [], |r| r.get(0))
            .expect("boxes");
        (items, boxes)
    };
    let before = count_rows(&store);
    let crossing = f.raw.values().filter(|r| r.bbox[0] > r.bbox[2]).count();
    assert!(crossing >= 5, "{crossing} antimeridian items");
    assert_eq!(before.0 as usize, f.raw.len());
    assert_eq!(
        before.1 as usize,
        f.raw.len() + crossing,
        "two R*Tree rows per crossing item"
    );
    // Everything again: same rows, same answers.
    let options = IngestOptions {
        default_collection: Some(DEFAULT_COLLECTION.into()),
        ..IngestOptions::default()
    };
    ingest_paths(&store, &sources(), &options).expect("ingest again");
    assert_eq!(count_rows(&store), before);
    let (_, page) = get(&f.state, "/stac/search?bbox=170,-20,-170,70").await;
    let want = expect(&f.raw, |r| {
        bbox_hits(&r.bbox, &[170.0, -20.0, -170.0, 70.0])
    });
    assert_eq!(page["numberMatched"], want.len());
    // A reopened store (as `albedo serve` after `albedo ingest`) keeps its index.
    let reopened = Store::open(f._dir.path()).expect("reopen");
    assert_eq!(count_rows(&reopened), before);
    // A store whose products have no search rows (made before search existed) gets them
    // when opened.
    {
        let conn = rusqlite::Connection::open(store.path()).expect("open");
        conn.execute_batch(
            "DELETE FROM search_items; DELETE FROM search_bbox; DELETE FROM search_geometry;
             DELETE FROM search_meta;",
        )
        .expect("wipe");
    }
    assert_eq!(count_rows(&store), (0, 0));
    let reopened = Store::open(f._dir.path()).expect("reopen");
    assert_eq!(count_rows(&reopened), before);
    let state = AppState::new(reopened, Config::default()).expect("state");
    // An S1 item found only through its start/end range (needs the recomputed max span).
    let (_, page) = get(&state, "/stac/search?datetime=2022-11-30T01:44:00Z").await;
    let want = expect(&f.raw, |r| {
        time_hits(
            r,
            Some("2022-11-30T01:44:00Z"),
            Some("2022-11-30T01:44:00Z"),
        )
    });
    assert_eq!(want.len(), 1);
    assert_eq!(ids(&page).into_iter().collect::<BTreeSet<_>>(), want);
}
