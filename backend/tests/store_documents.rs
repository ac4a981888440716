//! How the store keeps products' documents: compressed BLOBs that read back exactly, and
//! rows of older stores (JSON TEXT) that still read.

use albedo_backend::ingest::{IngestOptions, ingest_paths};
use albedo_backend::store::Store;
use albedo_shared::catalog::ProductId;
use rusqlite::{Connection, params};
use serde_json::Value;

#[allow(dead_code)]
mod common;

fn items() -> std::path::PathBuf {
    common::data_root().join("stac/sentinel-2-l2a_100_items_planetary-computer_13TDE_2024.ndjson")
}

/// The source's items by id, as the file holds them.
fn source_items() -> Vec<Value> {
    std::fs::read_to_string(items())
        .expect("read items")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("item"))
        .collect()
}

/// A store in a temporary folder with the 100 items ingested.
fn ingested() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    ingest_paths(&store, &[items()], &IngestOptions::default()).expect("ingest");
    (dir, store)
}

#[test]
fn documents_are_stored_compressed_and_read_back_exactly() {
    let (dir, store) = ingested();
    let source = source_items();
    assert_eq!(source.len(), 100);

    let db = Connection::open(dir.path().join("albedo.sqlite")).expect("open the file");
    let (kinds, stored, json): (String, i64, i64) = db
        .query_row(
            "SELECT group_concat(DISTINCT typeof(stac_json) || '/' || typeof(product_json)),
                    SUM(length(stac_json)), SUM(length(CAST(stac_json AS BLOB)))
             FROM products",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("query");
    assert_eq!(kinds, "blob/blob");
    assert_eq!(stored, json);
    let source_bytes: usize = source
        .iter()
        .map(|i| serde_json::to_string(i).expect("json").len())
        .sum();
    assert!(
        (stored as usize) * 4 < source_bytes,
        "the items take {stored} bytes stored, {source_bytes} as JSON"
    );

    for item in &source {
        let id = item["id"].as_str().expect("id");
        let got = store.get_product(&ProductId(id.into())).expect("product");
        assert_eq!(got.stac_item["properties"], item["properties"], "{id}");
        assert_eq!(got.stac_item["assets"], item["assets"], "{id}");
        assert_eq!(got.stac_item["geometry"], item["geometry"], "{id}");
    }
}

#[test]
fn rows_of_older_stores_written_as_json_text_still_read() {
    let (dir, store) = ingested();
    let item = &source_items()[7];
    let id = ProductId(item["id"].as_str().expect("id").into());
    let before = store.get_product(&id).expect("product");
    drop(store);

    // As a store made before compression holds it.
    let db = Connection::open(dir.path().join("albedo.sqlite")).expect("open the file");
    let changed = db
        .execute(
            "UPDATE products SET stac_json = ?1, product_json = ?2 WHERE id = ?3",
            params![
                serde_json::to_string(&before.stac_item).expect("json"),
                serde_json::to_string(&before.product).expect("json"),
                id.0
            ],
        )
        .expect("update");
    assert_eq!(changed, 1);
    let kind: String = db
        .query_row(
            "SELECT typeof(stac_json) FROM products WHERE id = ?1",
            params![id.0],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(kind, "text");
    drop(db);

    let store = Store::open(dir.path()).expect("store");
    let after = store.get_product(&id).expect("product");
    assert_eq!(after.stac_item, before.stac_item);
    assert_eq!(after.product, before.product);
    assert_eq!(store.count_products().expect("count"), 100);
}

#[test]
fn a_document_that_does_not_inflate_is_an_error_not_a_panic() {
    let (dir, store) = ingested();
    let item = &source_items()[3];
    let id = ProductId(item["id"].as_str().expect("id").into());
    let db = Connection::open(dir.path().join("albedo.sqlite")).expect("open the file");
    db.execute(
        "UPDATE products SET stac_json = x'00ff00ff13' WHERE id = ?1",
        params![id.0],
    )
    .expect("update");
    let err = store.get_product(&id).expect_err("a broken document");
    assert!(err.to_string().contains("does not inflate"), "{err}");
}
