//! Calls to the backend's JSON and raster API (same origin), through `fetch`.

use albedo_shared::api::ErrorBody;
use albedo_shared::catalog::{ProductId, ProductList};
use albedo_shared::rasterwire::{RasterHeader, payload_to_f32};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::error::FrontendError;

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
    let response = fetch("/api/products").await?;
    let text = JsFuture::from(response.text().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .as_string()
        .unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| FrontendError::Decode(format!("product list: {e}")))
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
    let response = fetch(&url).await?;
    let buffer = JsFuture::from(response.array_buffer().map_err(js_error)?)
        .await
        .map_err(js_error)?;
    let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
    let (header, payload) =
        RasterHeader::decode(&bytes).map_err(|e| FrontendError::Decode(e.to_string()))?;
    if usize::from(header.bands) != bands.len() {
        return Err(FrontendError::Decode(format!(
            "asked for {} bands, got {}",
            bands.len(),
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
    let window =
        web_sys::window().ok_or_else(|| FrontendError::Network("no window".to_string()))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
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
        },
        Err(_) => FrontendError::Http {
            status,
            code: "http".to_string(),
            message: if text.trim().is_empty() {
                response.status_text()
            } else {
                text.trim().chars().take(300).collect()
            },
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
