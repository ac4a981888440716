//! The STAC API under `/stac`: landing page, conformance, collections and their items.
//!
//! What it is: STAC API - Core and - Features (OGC API Features) over the catalog store:
//! `GET /stac`, `/stac/conformance`, `/stac/collections`, `/stac/collections/{id}`,
//! `/stac/collections/{id}/items` (paged with `limit` and a `next` link) and
//! `/stac/collections/{id}/items/{item}`. Collections are derived from the items they hold,
//! completed by their STAC Collection document where one was ingested (see
//! [`crate::ingest`]); a collection ingested as a document alone is listed with no items.
//! `GET /stac/api` describes it all in OpenAPI 3.0 (the landing page's `service-desc`).
//! STAC API - Item Search with the Sort and Query extensions: `GET` and `POST /stac/search`
//! (parameters and their meaning in [`crate::search`]); results are paged by `next` links
//! that carry a `token` (in the query for GET; in a `body` with `merge: true` for POST).
//! `numberMatched` is exact up to [`crate::store::MAX_COUNTED`] matches and left out past it
//! (the `next` link does not depend on it).
//!
//! What it is not (yet): the Filter (CQL2), Fields and Transaction extensions; conformance
//! lists only what is implemented here.

use albedo_shared::rasterwire;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::catalog::Page;
use crate::error::BackendError;
use crate::search::{SearchParams, token_for};
use crate::store::CollectionSummary;

const STAC_VERSION: &str = "1.0.0";
const CONFORMS_TO: &[&str] = &[
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0-rc.1/item-search#query",
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
        .route("/search", get(search_get).post(search_post))
        .route("/api", get(openapi))
}

const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";

/// The OpenAPI 3.0 description of this API (the landing page's `service-desc`).
async fn openapi(headers: HeaderMap) -> Response {
    let b = base(&headers);
    let q = |name: &str, desc: &str, ty: &str| {
        json!({"name": name, "in": "query", "required": false, "description": desc,
               "schema": {"type": ty}})
    };
    let search_params = json!([
        q(
            "bbox",
            "west,south,east,north (west > east crosses the antimeridian)",
            "string"
        ),
        q("intersects", "a GeoJSON geometry, as JSON", "string"),
        q(
            "datetime",
            "an RFC 3339 instant or interval a/b, ../b, a/..",
            "string"
        ),
        q("collections", "comma-separated collection ids", "string"),
        q("ids", "comma-separated item ids", "string"),
        q("limit", "page size, 1..10000 (default 10)", "integer"),
        q("sortby", "e.g. -properties.datetime,id", "string"),
        q("query", "Query extension object, as JSON", "string"),
        q("token", "paging token of a next link", "string"),
    ]);
    let fc = json!({"200": {"description": "An ItemCollection",
        "content": {GEOJSON: {"schema": {"type": "object"}}}},
        "400": {"description": "An invalid parameter, named in the message"}});
    let obj = json!({"200": {"description": "OK",
        "content": {"application/json": {"schema": {"type": "object"}}}}});
    let path_param = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "Albedo STAC API", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": b}],
        "paths": {
            "/": {"get": {"summary": "Landing page", "responses": obj}},
            "/conformance": {"get": {"summary": "Conformance classes", "responses": obj}},
            "/collections": {"get": {"summary": "Collections", "responses": obj}},
            "/collections/{collectionId}": {"get": {"summary": "One collection",
                "parameters": [path_param("collectionId")], "responses": obj}},
            "/collections/{collectionId}/items": {"get": {"summary": "Items of a collection",
                "parameters": [path_param("collectionId"),
                    q("limit", "page size", "integer"), q("offset", "items to skip", "integer")],
                "responses": fc}},
            "/collections/{collectionId}/items/{itemId}": {"get": {"summary": "One item",
                "parameters": [path_param("collectionId"), path_param("itemId")],
                "responses": {"200": {"description": "A STAC Item",
                    "content": {GEOJSON: {"schema": {"type": "object"}}}}}}},
            "/search": {
                "get": {"summary": "Item search", "parameters": search_params, "responses": fc},
                "post": {"summary": "Item search", "requestBody": {"content":
                    {"application/json": {"schema": {"type": "object"}}}}, "responses": fc},
            },
        },
    });
    ([(CONTENT_TYPE, OPENAPI)], Json(doc)).into_response()
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
            link("service-desc", format!("{b}/api"), OPENAPI),
            json!({"rel": "search", "href": format!("{b}/search"),
                   "type": "application/geo+json", "method": "GET"}),
            json!({"rel": "search", "href": format!("{b}/search"),
                   "type": "application/geo+json", "method": "POST"}),
        ],
    }))
}

async fn conformance() -> Json<Value> {
    Json(json!({ "conformsTo": CONFORMS_TO }))
}

/// A collection as served: what its items say (count, extent), completed by its ingested
/// Collection document where there is one (title, description, license, keywords, providers,
/// summaries and its non-navigation links; its extent when it has no items here).
fn collection_json(b: &str, c: &CollectionSummary, stored: Option<&Value>) -> Value {
    let mut out = json!({
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
    });
    if let Some(Value::Object(doc)) = stored {
        // Not `stac_extensions` (nor the fields only an extension defines): a client that
        // validates the collection would have to fetch those extensions' schemas.
        for key in [
            "title",
            "description",
            "license",
            "keywords",
            "providers",
            "summaries",
        ] {
            if let Some(v) = doc.get(key) {
                out[key] = v.clone();
            }
        }
        if c.items == 0
            && let Some(extent) = doc.get("extent")
        {
            out["extent"] = extent.clone();
        }
        let extra = doc
            .get("links")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|l| {
                !matches!(
                    l["rel"].as_str(),
                    Some("self" | "root" | "parent" | "items" | "child" | "collection")
                )
            })
            .map(without_nulls);
        if let Some(links) = out["links"].as_array_mut() {
            links.extend(extra);
        }
    }
    out
}

/// Every collection: those with items, and those only ingested as documents; with their
/// documents.
fn all_collections(
    s: &crate::store::Store,
) -> Result<Vec<(CollectionSummary, Option<Value>)>, BackendError> {
    let mut docs: std::collections::BTreeMap<String, Value> =
        s.stored_collections()?.into_iter().collect();
    let mut out: Vec<(CollectionSummary, Option<Value>)> = s
        .collections()?
        .into_iter()
        .map(|c| {
            let doc = docs.remove(&c.id);
            (c, doc)
        })
        .collect();
    out.extend(docs.into_iter().map(|(id, doc)| {
        let summary = CollectionSummary {
            id,
            items: 0,
            bbox: None,
            start: None,
            end: None,
        };
        (summary, Some(doc))
    }));
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(out)
}

async fn collections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, BackendError> {
    let b = base(&headers);
    let cs = state.store.call(all_collections).await?;
    Ok(Json(json!({
        "collections": cs.iter().map(|(c, d)| collection_json(&b, c, d.as_ref())).collect::<Vec<_>>(),
        "links": [
            link("self", format!("{b}/collections"), "application/json"),
            link("root", b.clone(), "application/json"),
        ],
    })))
}

async fn find_collection(
    state: &AppState,
    id: String,
) -> Result<(CollectionSummary, Option<Value>), BackendError> {
    state
        .store
        .call(move |s| {
            all_collections(s)?
                .into_iter()
                .find(|(c, _)| c.id == id)
                .ok_or_else(|| BackendError::not_found(format!("collection '{id}'")))
        })
        .await
}

async fn collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, BackendError> {
    let (c, doc) = find_collection(&state, id).await?;
    Ok(Json(collection_json(&base(&headers), &c, doc.as_ref())))
}

async fn items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Result<Response, BackendError> {
    let (limit, offset) = page.resolve(DEFAULT_LIMIT, MAX_LIMIT)?;
    let (c, _) = find_collection(&state, id.clone()).await?;
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
    let features: Vec<Value> = features.into_iter().map(|f| localize_item(&b, f)).collect();
    Ok(geojson(json!({
        "type": "FeatureCollection",
        "features": features,
        "numberMatched": c.items,
        "numberReturned": features.len(),
        "links": links,
    })))
}

/// A JSON answer with the GeoJSON media type.
fn geojson(body: Value) -> Response {
    ([(CONTENT_TYPE, GEOJSON)], Json(body)).into_response()
}

async fn item(
    State(state): State<AppState>,
    Path((collection, item)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, BackendError> {
    let id = albedo_shared::catalog::ProductId(item);
    let stored = state.store.call(move |s| s.get_product(&id)).await?;
    if stored.product.collection != collection {
        return Err(BackendError::not_found(format!(
            "item '{}' in collection '{collection}'",
            stored.product.id
        )));
    }
    Ok(geojson(localize_item(&base(&headers), stored.stac_item)))
}

const GEOJSON: &str = "application/geo+json";

/// The item as this API serves it: its navigation links (self, root, parent, collection)
/// point here, not where it was ingested from; its other links are kept.
fn localize_item(b: &str, mut item: Value) -> Value {
    let id = item["id"].as_str().unwrap_or_default().to_string();
    let collection = item["collection"].as_str().unwrap_or_default().to_string();
    let mut links: Vec<Value> = item["links"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .filter(|l| {
                    !matches!(
                        l["rel"].as_str(),
                        Some("self" | "root" | "parent" | "collection")
                    )
                })
                .map(without_nulls)
                .collect()
        })
        .unwrap_or_default();
    let col = format!("{b}/collections/{collection}");
    links.extend([
        link("self", format!("{col}/items/{id}"), GEOJSON),
        link("root", b.to_string(), "application/json"),
        link("parent", col.clone(), "application/json"),
        link("collection", col, "application/json"),
    ]);
    let local = localize_assets(b, &id, &mut item);
    if let Some(obj) = item.as_object_mut() {
        obj.insert("links".into(), Value::Array(links));
    }
    if let Some(props) = item["properties"].as_object_mut() {
        props.insert(
            "albedo:pixels".into(),
            Value::from(if local { "local" } else { "remote" }),
        );
    }
    item
}

/// A link without its `null` fields. Some published items carry `"title": null` or
/// `"type": null` on their links; STAC's link fields are optional strings, so `null` is
/// invalid there (the 1.1.0 item schema rejects it) and says no more than leaving it out.
fn without_nulls(link: &Value) -> Value {
    match link {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Assets whose files are on this server (ingested from local files: their hrefs are paths
/// on its disk) are served through the raster API instead, and get a thumbnail; the server's
/// paths never leave it. Returns whether the item had any.
/// Whether an asset href is a path on this server: a `file:` URL or anything without a URL
/// scheme (absolute or relative paths; `C:\\` style drive letters count as paths).
fn is_local_href(href: &str) -> bool {
    let scheme = href.split_once(':').map(|(s, _)| s).filter(|s| {
        s.len() > 1
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    match scheme {
        None => true,
        Some(s) => s.eq_ignore_ascii_case("file"),
    }
}

fn localize_assets(b: &str, id: &str, item: &mut Value) -> bool {
    let origin = b.strip_suffix("/stac").unwrap_or(b);
    let product = format!("{origin}/api/products/{}", url_component(id));
    let Some(assets) = item["assets"].as_object_mut() else {
        return false;
    };
    let mut local = false;
    for (key, asset) in assets.iter_mut() {
        let Some(href) = asset["href"].as_str() else {
            continue;
        };
        if !is_local_href(href) {
            continue;
        }
        local = true;
        let names: Vec<String> = asset["eo:bands"]
            .as_array()
            .map(|bands| {
                bands
                    .iter()
                    .filter_map(|band| band["name"].as_str().map(url_component))
                    .collect()
            })
            .filter(|names: &Vec<String>| !names.is_empty())
            .unwrap_or_else(|| vec![url_component(key)]);
        if let Some(a) = asset.as_object_mut() {
            a.insert(
                "href".into(),
                Value::from(format!("{product}/raster?bands={}", names.join(","))),
            );
            a.insert("type".into(), Value::from(rasterwire::MEDIA_TYPE));
        }
    }
    if local {
        assets.insert(
            "thumbnail".into(),
            json!({"href": format!("{product}/quicklook.png"), "type": "image/png",
                   "roles": ["thumbnail"], "title": "Quick-look"}),
        );
    }
    local
}

/// The ItemCollection answer of a search; `next` is the link to the following page, if any.
fn item_collection(
    b: &str,
    page: crate::store::SearchPage,
    self_link: Value,
    next: Option<Value>,
) -> Response {
    let mut links = vec![self_link, link("root", b.to_string(), "application/json")];
    links.extend(next);
    let returned = page.features.len();
    let features: Vec<Value> = page
        .features
        .into_iter()
        .map(|f| localize_item(b, f))
        .collect();
    let mut body = json!({
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": returned,
        "links": links,
    });
    // Left out past store::MAX_COUNTED matches.
    if let Some(n) = page.matched {
        body["numberMatched"] = json!(n);
    }
    geojson(body)
}

async fn run_search(
    state: &AppState,
    params: SearchParams,
) -> Result<(crate::store::SearchPage, Option<u64>), BackendError> {
    let (offset, limit) = (params.offset, u64::from(params.limit));
    let page = state.store.call(move |s| s.search(&params)).await?;
    let next = page.more.then_some(offset + limit);
    Ok((page, next))
}

async fn search_get(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, BackendError> {
    let params = SearchParams::from_query(&pairs)?;
    let (page, next) = run_search(&state, params).await?;
    let b = base(&headers);
    // The next link repeats the request's own (still encoded) parameters with a new token.
    let kept: Vec<&str> = raw
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
        .collect();
    let href = |token: Option<u64>| {
        let mut q = kept.join("&");
        if let Some(t) = token {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(&format!("token={}", token_for(t)));
        }
        if q.is_empty() {
            format!("{b}/search")
        } else {
            format!("{b}/search?{q}")
        }
    };
    let self_link = link("self", href(None), GEOJSON);
    let next = next
        .map(|n| json!({"rel": "next", "href": href(Some(n)), "type": GEOJSON, "method": "GET"}));
    Ok(item_collection(&b, page, self_link, next))
}

async fn search_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BackendError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| BackendError::bad_request("body", format!("not JSON: {e}")))?
    };
    let params = SearchParams::from_body(&value)?;
    let (page, next) = run_search(&state, params).await?;
    let b = base(&headers);
    let self_link =
        json!({"rel": "self", "href": format!("{b}/search"), "type": GEOJSON, "method": "POST"});
    let next = next.map(|n| {
        json!({"rel": "next", "href": format!("{b}/search"), "type": GEOJSON, "method": "POST",
               "body": {"token": token_for(n)}, "merge": true})
    });
    Ok(item_collection(&b, page, self_link, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_without_a_scheme_are_local_and_never_leave_the_server() {
        for local in [
            "/data/x.tif",
            "file:///data/x.tif",
            "albedo-data/artifacts/x.tif",
            "x.tif",
        ] {
            assert!(is_local_href(local), "{local}");
        }
        for remote in ["https://e.org/x.tif", "s3://b/x.tif", "HTTP://e.org/x"] {
            assert!(!is_local_href(remote), "{remote}");
        }
        let mut item =
            json!({"assets": {"class": {"href": "albedo-data/artifacts/derived/x.tif"}}});
        assert!(localize_assets("http://h/stac", "p", &mut item));
        assert_eq!(
            item["assets"]["class"]["href"],
            "http://h/api/products/p/raster?bands=class"
        );
    }

    #[test]
    fn served_links_leave_out_null_fields() {
        let item = json!({
            "type": "Feature", "id": "a", "collection": "c", "properties": {}, "assets": {},
            "links": [
                {"rel": "license", "href": "https://example.org/l", "title": null, "type": null},
                {"rel": "self", "href": "https://elsewhere.example/a"},
            ],
        });
        let served = localize_item("http://127.0.0.1:1/stac", item);
        let links = served["links"].as_array().expect("links");
        assert_eq!(
            links[0],
            json!({"rel": "license", "href": "https://example.org/l"})
        );
        assert_eq!(
            links[1]["href"], "http://127.0.0.1:1/stac/collections/c/items/a",
            "navigation links point here"
        );
        assert!(
            links
                .iter()
                .all(|l| l.as_object().unwrap().values().all(|v| !v.is_null()))
        );
    }
}
