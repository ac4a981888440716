//! Calls to the backend's JSON and raster API (same origin), through `fetch`.

use albedo_shared::api::{
    AblationReport, ErrorBody, ExperimentSummary, TrialInfo, TrialSeries, WorkerInfo,
};
use albedo_shared::catalog::{Product, ProductId, ProductList};
use albedo_shared::experiment::{ExperimentId, ExperimentSpec};
use albedo_shared::rasterwire::{RasterHeader, payload_to_f32};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::error::FrontendError;
use crate::search::{SearchPage, parse_item_collection};

/// A window of the product grid, in grid pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridWindow {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

/// Band values of a raster answer, as `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    /// Width in samples.
    pub width: u32,
    /// Height in samples.
    pub height: u32,
    /// One `width * height` vector per requested band, in request order.
    pub bands: Vec<Vec<f32>>,
    /// The nodata value the file declares, if any.
    pub nodata: Option<f64>,
}

/// `GET /api/products`: the first page of the catalog (local products first).
pub async fn fetch_products() -> Result<ProductList, FrontendError> {
    let text = fetch_text("/api/products").await?;
    serde_json::from_str(&text).map_err(|e| FrontendError::Decode(format!("product list: {e}")))
}

/// The products whose pixels are on this server (at most `max`), and how many products the
/// catalog holds in all. `GET /api/products` lists local products first, so its pages are
/// read until one holds a remote product.
pub async fn fetch_local_ids(max: usize) -> Result<(Vec<ProductId>, u64), FrontendError> {
    const PAGE: usize = 1000;
    let mut ids = Vec::new();
    loop {
        let text = fetch_text(&format!("/api/products?limit={PAGE}&offset={}", ids.len())).await?;
        let list: ProductList = serde_json::from_str(&text)
            .map_err(|e| FrontendError::Decode(format!("product list: {e}")))?;
        let n = list.products.len();
        let local: Vec<ProductId> = list
            .products
            .into_iter()
            .take_while(|p| matches!(p.pixels, albedo_shared::catalog::PixelAccess::Local { .. }))
            .map(|p| p.id)
            .collect();
        let all_local = local.len() == n;
        ids.extend(local);
        if !all_local || n < PAGE || ids.len() >= max {
            ids.truncate(max);
            return Ok((ids, list.total));
        }
    }
}

/// `GET /api/products/{id}`: one product, with where its pixels are.
pub async fn fetch_product(id: &ProductId) -> Result<Product, FrontendError> {
    let text = fetch_text(&format!("/api/products/{}", encode(&id.0))).await?;
    serde_json::from_str(&text).map_err(|e| FrontendError::Decode(format!("product {id}: {e}")))
}

/// The URL of a product's PNG quick-look, longest side `size` pixels.
pub fn quicklook_url(id: &ProductId, size: u32) -> String {
    format!("/api/products/{}/quicklook.png?size={size}", encode(&id.0))
}

/// A collection of the STAC API, as the search form offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    /// Collection id.
    pub id: String,
    /// First and last day of its items, where known (`YYYY-MM-DD`).
    pub days: (Option<String>, Option<String>),
}

/// `GET /stac/collections`: the collections, sorted by id.
pub async fn fetch_collections() -> Result<Vec<CollectionInfo>, FrontendError> {
    let text = fetch_text("/stac/collections").await?;
    parse_collections(&text)
}

/// Reads the body of `GET /stac/collections`.
pub fn parse_collections(text: &str) -> Result<Vec<CollectionInfo>, FrontendError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| FrontendError::Decode(format!("collections: {e}")))?;
    let list = v["collections"]
        .as_array()
        .ok_or_else(|| FrontendError::Decode("collections: no `collections` array".into()))?;
    let day = |x: &serde_json::Value| x.as_str().map(|s| s.get(..10).unwrap_or(s).to_string());
    let mut out: Vec<CollectionInfo> = list
        .iter()
        .filter_map(|c| {
            let interval = &c["extent"]["temporal"]["interval"][0];
            Some(CollectionInfo {
                id: c["id"].as_str()?.to_string(),
                days: (day(&interval[0]), day(&interval[1])),
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// `POST /stac/search` with `body`: one page of results.
pub async fn search(body: &serde_json::Value) -> Result<SearchPage, FrontendError> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&body.to_string()));
    let request =
        web_sys::Request::new_with_str_and_init("/stac/search", &init).map_err(js_error)?;
    request
        .headers()
        .set("Content-Type", "application/json")
        .map_err(js_error)?;
    let response = send(&request).await?;
    let text = response_text(&response).await?;
    parse_item_collection(&text, body).map_err(FrontendError::Decode)
}

/// `GET url` decoded from JSON; `what` names the answer in errors.
pub async fn fetch_json<T: serde::de::DeserializeOwned>(
    url: &str,
    what: &str,
) -> Result<T, FrontendError> {
    let text = fetch_text(url).await?;
    serde_json::from_str(&text).map_err(|e| FrontendError::Decode(format!("{what}: {e}")))
}

/// `POST url` with a JSON body (or none) and the user token as a bearer header: every change
/// through the API goes here. Returns the answer's text.
pub async fn post_json(
    url: &str,
    body: Option<&serde_json::Value>,
    token: Option<&str>,
) -> Result<String, FrontendError> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(&body.to_string()));
    }
    let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(js_error)?;
    let headers = request.headers();
    if body.is_some() {
        headers
            .set("Content-Type", "application/json")
            .map_err(js_error)?;
    }
    if let Some(t) = token {
        headers
            .set("Authorization", &format!("Bearer {t}"))
            .map_err(js_error)?;
    }
    let response = send(&request).await?;
    response_text(&response).await
}

/// `POST url` like [`post_json`], its answer decoded from JSON; `what` names it in errors.
pub async fn post_for<T: serde::de::DeserializeOwned>(
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
    what: &str,
) -> Result<T, FrontendError> {
    let text = post_json(url, Some(body), token).await?;
    serde_json::from_str(&text).map_err(|e| FrontendError::Decode(format!("{what}: {e}")))
}

/// `GET /api/experiments`.
pub async fn fetch_experiments() -> Result<Vec<ExperimentSummary>, FrontendError> {
    fetch_json("/api/experiments", "experiment list").await
}

/// `GET /api/experiments/{id}`.
pub async fn fetch_experiment(id: &ExperimentId) -> Result<ExperimentSummary, FrontendError> {
    fetch_json(&format!("/api/experiments/{}", encode(&id.0)), "experiment").await
}

/// `GET /api/experiments/{id}/trials`.
pub async fn fetch_trials(id: &ExperimentId) -> Result<Vec<TrialInfo>, FrontendError> {
    fetch_json(
        &format!("/api/experiments/{}/trials", encode(&id.0)),
        "trials",
    )
    .await
}

/// `GET /api/experiments/{id}/metrics`.
pub async fn fetch_metrics(id: &ExperimentId) -> Result<Vec<TrialSeries>, FrontendError> {
    fetch_json(
        &format!("/api/experiments/{}/metrics", encode(&id.0)),
        "metrics",
    )
    .await
}

/// `GET /api/experiments/{id}/ablation`.
pub async fn fetch_ablation(id: &ExperimentId) -> Result<AblationReport, FrontendError> {
    fetch_json(
        &format!("/api/experiments/{}/ablation", encode(&id.0)),
        "ablation",
    )
    .await
}

/// The URL of an experiment's live events (Server-Sent Events).
pub fn events_url(id: &ExperimentId) -> String {
    format!("/api/experiments/{}/events", encode(&id.0))
}

/// The URL of an experiment's live events after event `after` (those a snapshot that
/// included event `after` lacks).
pub fn events_url_after(id: &ExperimentId, after: u64) -> String {
    format!("{}?after={after}", events_url(id))
}

/// Opens `url` for reading as it comes (an event stream), cancelled by `signal`; an error
/// status becomes [`FrontendError::Http`].
pub async fn open_stream(
    url: &str,
    signal: &web_sys::AbortSignal,
) -> Result<ChunkReader, FrontendError> {
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(signal));
    let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(js_error)?;
    request
        .headers()
        .set("Accept", "text/event-stream")
        .map_err(js_error)?;
    let response = send(&request).await?;
    let body = response
        .body()
        .ok_or_else(|| FrontendError::Network("the answer has no body".to_string()))?;
    let reader = body
        .get_reader()
        .dyn_into()
        .map_err(|o| js_error(o.into()))?;
    Ok(ChunkReader {
        reader,
        pending: None,
    })
}

/// Reads a response body by what is at hand: the browser queues the body in chunks as they
/// come off the network (one per message the server flushed), and a reader that took them
/// one at a time, a task each, would cost as much as the messages themselves.
#[derive(Debug)]
pub struct ChunkReader {
    reader: web_sys::ReadableStreamDefaultReader,
    /// A read asked for and not yet answered (the queue was empty).
    pending: Option<js_sys::Promise>,
}

impl ChunkReader {
    /// Waits for bytes, then takes every chunk already queued too; `None` at the end.
    pub async fn read_at_hand(&mut self) -> Result<Option<Vec<u8>>, FrontendError> {
        let first = self.pending.take().unwrap_or_else(|| self.reader.read());
        let mut bytes = Vec::new();
        if !take_chunk(JsFuture::from(first).await.map_err(js_error)?, &mut bytes) {
            return Ok(None);
        }
        loop {
            // A read of a queued chunk is answered at once: it wins the race against a
            // promise already resolved. One that has to wait is kept for the next call.
            let read = self.reader.read();
            let at_once = js_sys::Promise::race(&js_sys::Array::of2(
                &read,
                &js_sys::Promise::resolve(&JsValue::UNDEFINED),
            ));
            let result = JsFuture::from(at_once).await.map_err(js_error)?;
            if result.is_undefined() {
                self.pending = Some(read);
                return Ok(Some(bytes));
            }
            if !take_chunk(result, &mut bytes) {
                // The end: the bytes taken first still count.
                return Ok(Some(bytes));
            }
        }
    }
}

/// Appends the bytes of a `read()` result to `out`; false when the stream has ended.
fn take_chunk(result: JsValue, out: &mut Vec<u8>) -> bool {
    let result: web_sys::ReadableStreamReadResult = result.unchecked_into();
    if result.get_done() == Some(true) {
        return false;
    }
    let chunk = js_sys::Uint8Array::new(&result.get_value());
    let at = out.len();
    out.resize(at + chunk.length() as usize, 0);
    chunk.copy_to(&mut out[at..]);
    true
}

/// `GET /api/experiments/{id}/snapshot`: what the live view starts from, and the number of
/// the last event it includes.
pub async fn fetch_snapshot(
    id: &ExperimentId,
) -> Result<albedo_shared::api::ExperimentSnapshot, FrontendError> {
    fetch_json(
        &format!("/api/experiments/{}/snapshot", encode(&id.0)),
        "snapshot",
    )
    .await
}

/// `POST /api/experiments` with the user token: the created experiment.
pub async fn create_experiment(
    spec: &ExperimentSpec,
    token: Option<&str>,
) -> Result<ExperimentSummary, FrontendError> {
    let body = serde_json::to_value(spec)
        .map_err(|e| FrontendError::Decode(format!("spec to JSON: {e}")))?;
    post_for("/api/experiments", &body, token, "experiment").await
}

/// `POST /api/experiments/{id}/cancel` with the user token.
pub async fn cancel_experiment(
    id: &ExperimentId,
    token: Option<&str>,
) -> Result<ExperimentSummary, FrontendError> {
    let text = post_json(
        &format!("/api/experiments/{}/cancel", encode(&id.0)),
        None,
        token,
    )
    .await?;
    serde_json::from_str(&text).map_err(|e| FrontendError::Decode(format!("experiment: {e}")))
}

/// `GET /api/workers`.
pub async fn fetch_workers() -> Result<Vec<WorkerInfo>, FrontendError> {
    fetch_json("/api/workers", "workers").await
}

/// `GET url` as text (an error status becomes [`FrontendError::Http`]).
pub async fn fetch_text(url: &str) -> Result<String, FrontendError> {
    let response = fetch(url).await?;
    response_text(&response).await
}

async fn response_text(response: &web_sys::Response) -> Result<String, FrontendError> {
    Ok(JsFuture::from(response.text().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .as_string()
        .unwrap_or_default())
}

fn encode(s: &str) -> String {
    js_sys::encode_uri_component(s).into()
}

/// The URL of a raster window: `bands` over `window`, every `step`-th grid pixel.
pub fn raster_url(id: &ProductId, bands: &[String], window: GridWindow, step: u32) -> String {
    let id: String = js_sys::encode_uri_component(&id.0).into();
    let bands: String = js_sys::encode_uri_component(&bands.join(",")).into();
    format!(
        "/api/products/{id}/raster?bands={bands}&x={}&y={}&width={}&height={}&step={step}",
        window.x, window.y, window.width, window.height
    )
}

/// `GET /api/products/{id}/raster`: decodes the wire format into one `f32` vector a band.
pub async fn fetch_raster(
    id: &ProductId,
    bands: &[String],
    window: GridWindow,
    step: u32,
) -> Result<Raster, FrontendError> {
    let url = raster_url(id, bands, window, step);
    tracing::debug!(%url, "fetching raster");
    fetch_wire(&url, bands.len()).await
}

/// `GET /api/products/{id}/tiles/{z}/{x}/{y}?bands=...`: one tile of the product's pyramid,
/// decoded like [`fetch_raster`].
pub async fn fetch_tile(
    id: &ProductId,
    z: u32,
    x: u32,
    y: u32,
    bands: &[String],
) -> Result<Raster, FrontendError> {
    let url = format!(
        "/api/products/{}/tiles/{z}/{x}/{y}?bands={}",
        encode(&id.0),
        encode(&bands.join(","))
    );
    fetch_wire(&url, bands.len()).await
}

/// Fetches `url` and decodes its `application/x-albedo-raster` answer of `band_count` bands.
async fn fetch_wire(url: &str, band_count: usize) -> Result<Raster, FrontendError> {
    let response = fetch(url).await?;
    let buffer = JsFuture::from(response.array_buffer().map_err(js_error)?)
        .await
        .map_err(js_error)?;
    let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
    let (header, payload) =
        RasterHeader::decode(&bytes).map_err(|e| FrontendError::Decode(e.to_string()))?;
    if usize::from(header.bands) != band_count {
        return Err(FrontendError::Decode(format!(
            "asked for {band_count} bands, got {}",
            header.bands
        )));
    }
    let values = payload_to_f32(&header, payload);
    let per_band = header.width as usize * header.height as usize;
    Ok(Raster {
        width: header.width,
        height: header.height,
        bands: values
            .chunks_exact(per_band.max(1))
            .map(<[f32]>::to_vec)
            .collect(),
        nodata: header.nodata,
    })
}

/// Fetches `url`; an error status becomes [`FrontendError::Http`] with the `ErrorBody`.
async fn fetch(url: &str) -> Result<web_sys::Response, FrontendError> {
    let request = web_sys::Request::new_with_str(url).map_err(js_error)?;
    send(&request).await
}

/// Sends `request`; an error status becomes [`FrontendError::Http`] with the `ErrorBody`.
async fn send(request: &web_sys::Request) -> Result<web_sys::Response, FrontendError> {
    let window =
        web_sys::window().ok_or_else(|| FrontendError::Network("no window".to_string()))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(request))
        .await
        .map_err(|e| FrontendError::Network(js_message(&e)))?
        .dyn_into()
        .map_err(|e| FrontendError::Network(js_message(&e)))?;
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    Err(match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => FrontendError::Http {
            status,
            code: body.code,
            message: body.message,
            field: body.field,
        },
        Err(_) => FrontendError::Http {
            status,
            code: "http".to_string(),
            message: if text.trim().is_empty() {
                response.status_text()
            } else {
                text.trim().chars().take(300).collect()
            },
            field: None,
        },
    })
}

fn js_error(e: JsValue) -> FrontendError {
    FrontendError::Network(js_message(&e))
}

/// The message of a JS exception, or its debug form.
fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|err| String::from(err.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_are_read_with_their_days() {
        let text = r#"{"collections": [
            {"id": "sentinel-2-l2a", "extent": {"temporal": {"interval":
                [["2024-03-26T17:49:51.024Z", "2024-12-03T17:46:29.024Z"]]}}},
            {"id": "docs-only", "extent": {"temporal": {"interval": [[null, null]]}}},
            {"title": "no id: skipped"}
        ], "links": []}"#;
        let list = parse_collections(text).unwrap();
        assert_eq!(
            list,
            vec![
                CollectionInfo {
                    id: "docs-only".into(),
                    days: (None, None)
                },
                CollectionInfo {
                    id: "sentinel-2-l2a".into(),
                    days: (Some("2024-03-26".into()), Some("2024-12-03".into()))
                },
            ]
        );
        assert!(parse_collections("<html>").is_err());
        assert!(parse_collections("{}").is_err());
    }
}
