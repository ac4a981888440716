//! The STAC API under `/stac`: landing page, conformance, collections and their items.
//!
//! What it is: STAC API - Core and - Features (OGC API Features) over the catalog store:
//! `GET /stac`, `/stac/conformance`, `/stac/collections`, `/stac/collections/{id}`,
//! `/stac/collections/{id}/items` (paged with `limit` and a `next` link) and
//! `/stac/collections/{id}/items/{item}`. Collections are derived from the items they hold.
//!
//! What it is not (yet): item search (`/search`), filters and sorting come with the catalog
//! issue; conformance lists only what is implemented here.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::HOST;
use axum::response::Json;
use axum::routing::get;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::catalog::Page;
use crate::error::BackendError;
use crate::store::CollectionSummary;

const STAC_VERSION: &str = "1.0.0";
const CONFORMS_TO: &[&str] = &[
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
];
const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 10_000;

/// Routes of this module (mounted at `/stac`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/conformance", get(conformance))
        .route("/collections", get(collections))
        .route("/collections/{collection}", get(collection))
        .route("/collections/{collection}/items", get(items))
        .route("/collections/{collection}/items/{item}", get(item))
}

/// The absolute base URL of the STAC API as the client addressed it.
fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        })
        .unwrap_or("127.0.0.1");
    format!("http://{host}/stac")
}

fn link(rel: &str, href: String, media: &str) -> Value {
    json!({"rel": rel, "href": href, "type": media})
}

async fn landing(headers: HeaderMap) -> Json<Value> {
    let b = base(&headers);
    Json(json!({
        "type": "Catalog",
        "id": "albedo",
        "title": "Albedo catalog",
        "description": "Copernicus Sentinel products known to this Albedo server.",
        "stac_version": STAC_VERSION,
        "conformsTo": CONFORMS_TO,
        "links": [
            link("self", b.clone(), "application/json"),
            link("root", b.clone(), "application/json"),
            link("conformance", format!("{b}/conformance"), "application/json"),
            link("data", format!("{b}/collections"), "application/json"),
        ],
    }))
}

async fn conformance() -> Json<Value> {
    Json(json!({ "conformsTo": CONFORMS_TO }))
}

fn collection_json(b: &str, c: &CollectionSummary) -> Value {
    json!({
        "type": "Collection",
        "id": c.id,
        "stac_version": STAC_VERSION,
        "description": format!("{} products in this Albedo catalog.", c.items),
        "license": "other",
        "extent": {
            "spatial": {"bbox": [c.bbox.unwrap_or([-180.0, -90.0, 180.0, 90.0])]},
            "temporal": {"interval": [[c.start, c.end]]},
        },
        "links": [
            link("self", format!("{b}/collections/{}", c.id), "application/json"),
            link("root", b.to_string(), "application/json"),
            link("parent", b.to_string(), "application/json"),
            link("items", format!("{b}/collections/{}/items", c.id), "application/geo+json"),
        ],
    })
}

async fn collections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, BackendError> {
    let b = base(&headers);
    let cs = state.store.call(|s| s.collections()).await?;
    Ok(Json(json!({
        "collections": cs.iter().map(|c| collection_json(&b, c)).collect::<Vec<_>>(),
        "links": [
            link("self", format!("{b}/collections"), "application/json"),
            link("root", b.clone(), "application/json"),
        ],
    })))
}

async fn find_collection(state: &AppState, id: String) -> Result<CollectionSummary, BackendError> {
    state
        .store
        .call(move |s| {
            s.collections()?
                .into_iter()
                .find(|c| c.id == id)
                .ok_or_else(|| BackendError::not_found(format!("collection '{id}'")))
        })
        .await
}

async fn collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, BackendError> {
    let c = find_collection(&state, id).await?;
    Ok(Json(collection_json(&base(&headers), &c)))
}

async fn items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Result<Json<Value>, BackendError> {
    let (limit, offset) = page.resolve(DEFAULT_LIMIT, MAX_LIMIT)?;
    let c = find_collection(&state, id.clone()).await?;
    let cid = id.clone();
    let features = state
        .store
        .call(move |s| s.stac_items(Some(&cid), limit, offset))
        .await?;
    let b = base(&headers);
    let mut links = vec![
        link(
            "self",
            format!("{b}/collections/{id}/items"),
            "application/geo+json",
        ),
        link("root", b.clone(), "application/json"),
        link(
            "collection",
            format!("{b}/collections/{id}"),
            "application/json",
        ),
    ];
    let next = offset + u64::from(limit);
    if next < c.items {
        links.push(link(
            "next",
            format!("{b}/collections/{id}/items?limit={limit}&offset={next}"),
            "application/geo+json",
        ));
    }
    Ok(Json(json!({
        "type": "FeatureCollection",
        "features": features,
        "numberMatched": c.items,
        "numberReturned": features.len(),
        "links": links,
    })))
}

async fn item(
    State(state): State<AppState>,
    Path((collection, item)): Path<(String, String)>,
) -> Result<Json<Value>, BackendError> {
    let id = albedo_shared::catalog::ProductId(item);
    let stored = state.store.call(move |s| s.get_product(&id)).await?;
    if stored.product.collection != collection {
        return Err(BackendError::not_found(format!(
            "item '{}' in collection '{collection}'",
            stored.product.id
        )));
    }
    Ok(Json(stored.stac_item))
}
