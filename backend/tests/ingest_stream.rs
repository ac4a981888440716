//! Ingest of inputs larger than the ingest's buffer: newline-delimited items stream through
//! the writer's one transaction in batches, and an error anywhere still leaves nothing; with
//! `commit_every`, the chunks committed before an error stay and the error says so.

use std::num::NonZeroUsize;
use std::path::Path;

use albedo_backend::ingest::{BUFFER_ITEMS, IngestOptions, ingest_paths};
use albedo_backend::search::SearchParams;
use albedo_backend::store::{MAX_COUNTED, Store};
use serde_json::json;

/// A minimal valid STAC item, number `k`.
fn item(k: usize) -> serde_json::Value {
    let lon = -170.0 + (k % 340) as f64;
    let lat = -60.0 + (k % 120) as f64;
    json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": format!("stream-{k}"),
        "collection": "stream-test",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "bbox": [lon, lat, lon, lat],
        "properties": {"datetime": "2024-05-01T10:00:00Z", "eo:cloud_cover": (k % 100) as f64},
        "links": [],
        "assets": {}
    })
}

/// `n` items as ndjson at `path`; item `bad`, if any, has an invalid datetime.
fn write_items(path: &Path, n: usize, bad: Option<usize>) {
    let mut text = String::new();
    for k in 0..n {
        let mut it = item(k);
        if Some(k) == bad {
            it["properties"]["datetime"] = json!("yesterday");
        }
        text.push_str(&it.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write items");
}

#[test]
fn a_stream_longer_than_the_buffer_is_still_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = BUFFER_ITEMS + 500;
    let bad = dir.path().join("bad.ndjson");
    write_items(&bad, n, Some(n - 1));

    let store = Store::open(&dir.path().join("one")).expect("store");
    let err = ingest_paths(
        &store,
        std::slice::from_ref(&bad),
        &IngestOptions::default(),
    )
    .expect_err("the last item is invalid");
    let message = err.to_string();
    assert!(
        message.contains(&format!("line {n}: properties.datetime")),
        "{message}"
    );
    assert!(!message.contains("committed"), "{message}");
    assert_eq!(store.count_products().unwrap(), 0, "rolled back whole");

    // Chunked commits keep what was committed before the error, and say how much.
    let chunked = Store::open(&dir.path().join("chunked")).expect("store");
    let options = IngestOptions {
        commit_every: NonZeroUsize::new(1000),
        ..IngestOptions::default()
    };
    let err = ingest_paths(&chunked, std::slice::from_ref(&bad), &options)
        .expect_err("the last item is invalid");
    let kept = (n - 1) / 1000 * 1000;
    assert!(
        err.to_string()
            .contains(&format!("{kept} products before it were committed")),
        "{err}"
    );
    assert_eq!(chunked.count_products().unwrap(), kept as u64);

    // The good input ingests whole.
    let good = dir.path().join("good.ndjson");
    write_items(&good, n, None);
    let report = ingest_paths(
        &store,
        std::slice::from_ref(&good),
        &IngestOptions::default(),
    )
    .expect("ingest");
    assert_eq!(report.ingested, n as u64);
    assert_eq!(report.products.len(), n);
    assert_eq!(store.count_products().unwrap(), n as u64);

    // Past MAX_COUNTED matches a search says no `numberMatched`, and still that more follow;
    // a narrower one counts exactly.
    let search = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        store
            .search(&SearchParams::from_query(&pairs).expect("params"))
            .expect("search")
    };
    let broad = search(&[("bbox", "-180,-90,180,90"), ("limit", "10")]);
    assert!(n as i64 > MAX_COUNTED);
    assert_eq!(broad.matched, None);
    assert!(broad.more);
    assert_eq!(broad.features.len(), 10);
    let narrow = search(&[("bbox", "-170.5,-60.5,-169.5,-59.5"), ("limit", "100")]);
    let expected = (0..n).filter(|k| k % 340 == 0 && k % 120 == 0).count() as u64;
    assert_eq!(narrow.matched, Some(expected));
    assert!(!narrow.more);
}
