//! `/api/products`: the catalog as the browser sees it, and raster windows for the renderer.
//!
//! - `GET /api/products?limit=&offset=`: a page of [`ProductList`] (local products first).
//! - `GET /api/products/{id}`: one [`Product`].
//! - `GET /api/products/{id}/raster?bands=B04,B03,B02&x=&y=&width=&height=&step=`: the bands
//!   over a window of the product grid (default: the whole grid), every `step`-th pixel, as
//!   `application/x-albedo-raster` (see `albedo_shared::rasterwire`). Remote-only products
//!   answer 409 with "pixels not available here".
//! - `GET /api/products/{id}/quicklook.png?size=`: a PNG quick-look, longest side `size`
//!   pixels (default 256, at most 1024), rendered by `albedo_raster::quicklook` (true colour
//!   for Sentinel-2, VV in dB for Sentinel-1, else the first band; 2-98 % stretch; nodata
//!   transparent). Remote-only products answer 409 like the raster route.
//!
//! Nothing in a request is trusted: band names must be the product's, windows must lie in
//! its grid, and outputs are capped at [`MAX_OUTPUT_SAMPLES`]. File paths come only from the
//! store, never from a request.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Deserialize;

use albedo_raster::Window;
use albedo_raster::product::LocalProduct;
use albedo_shared::catalog::{PixelAccess, Product, ProductId, ProductList};
use albedo_shared::rasterwire::MEDIA_TYPE;

use crate::app::AppState;
use crate::error::BackendError;
use crate::store::StoredProduct;

/// Largest number of samples (pixels x bands) one raster request may return.
pub const MAX_OUTPUT_SAMPLES: u64 = 16 * 1024 * 1024;
/// Largest page of products.
pub const MAX_PAGE: u32 = 1000;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/products", get(list))
        .route("/products/{id}", get(get_one))
        .route("/products/{id}/raster", get(raster))
        .route("/products/{id}/quicklook.png", get(quicklook))
}

/// `limit` and `offset` of a paged listing.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// Items per page.
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u64>,
}

impl Page {
    /// The limit (default `default`, at most `max`) and offset of this page.
    pub fn resolve(&self, default: u32, max: u32) -> Result<(u32, u64), BackendError> {
        let limit = self.limit.unwrap_or(default);
        if limit == 0 || limit > max {
            return Err(BackendError::bad_request(
                "limit",
                format!("must be between 1 and {max}"),
            ));
        }
        Ok((limit, self.offset.unwrap_or(0)))
    }
}

async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<ProductList>, BackendError> {
    let (limit, offset) = page.resolve(100, MAX_PAGE)?;
    let (products, total) = state
        .store
        .call(move |s| Ok((s.list_products(limit, offset)?, s.count_products()?)))
        .await?;
    Ok(Json(ProductList { products, total }))
}

async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Product>, BackendError> {
    let id = ProductId(id);
    let stored = state.store.call(move |s| s.get_product(&id)).await?;
    Ok(Json(stored.product))
}

/// Query of the raster route.
#[derive(Debug, Deserialize)]
pub struct RasterQuery {
    /// Comma-separated band names.
    pub bands: Option<String>,
    /// Window origin and size in product-grid pixels.
    pub x: Option<u32>,
    /// See `x`.
    pub y: Option<u32>,
    /// See `x`.
    pub width: Option<u32>,
    /// See `x`.
    pub height: Option<u32>,
    /// Decimation step, 1 = full resolution.
    pub step: Option<u32>,
}

/// The answer of every pixel route for a product whose pixels are not on this host.
fn pixels_unavailable(id: &ProductId) -> BackendError {
    BackendError::Unavailable(format!(
        "pixels not available here: product '{id}' has only remote assets; its metadata is in \
         the catalog"
    ))
}

/// The local band files of a stored product, or [`pixels_unavailable`].
fn local_pixels(stored: StoredProduct) -> Result<LocalProduct, BackendError> {
    match (&stored.product.pixels, stored.local) {
        (PixelAccess::Local { .. }, Some(local)) => Ok(local),
        _ => Err(pixels_unavailable(&stored.product.id)),
    }
}

/// Checks a raster query against a product and returns the band names, window and step.
pub fn validate_raster_query(
    product: &Product,
    q: &RasterQuery,
) -> Result<(Vec<String>, Window, u32), BackendError> {
    let PixelAccess::Local { width, height } = product.pixels else {
        return Err(pixels_unavailable(&product.id));
    };
    let bands: Vec<String> = match &q.bands {
        Some(list) => list.split(',').map(|b| b.trim().to_string()).collect(),
        None => return Err(BackendError::bad_request("bands", "name at least one band")),
    };
    if bands.is_empty() || bands.iter().any(String::is_empty) {
        return Err(BackendError::bad_request("bands", "empty band name"));
    }
    if bands.len() > 16 {
        return Err(BackendError::bad_request(
            "bands",
            "at most 16 bands at once",
        ));
    }
    for b in &bands {
        if !product.bands.iter().any(|pb| &pb.name == b) {
            let known: Vec<&str> = product.bands.iter().map(|pb| pb.name.as_str()).collect();
            return Err(BackendError::bad_request(
                "bands",
                format!("product has no band '{b}' (it has {})", known.join(", ")),
            ));
        }
    }
    let x = q.x.unwrap_or(0);
    let y = q.y.unwrap_or(0);
    if x >= width || y >= height {
        return Err(BackendError::bad_request(
            "x/y",
            format!("window origin ({x}, {y}) is outside the {width}x{height} grid"),
        ));
    }
    let w = q.width.unwrap_or(width - x);
    let h = q.height.unwrap_or(height - y);
    if w == 0 || h == 0 || u64::from(x) + u64::from(w) > u64::from(width) {
        return Err(BackendError::bad_request(
            "width",
            format!("window must be non-empty and inside the {width}x{height} grid"),
        ));
    }
    if u64::from(y) + u64::from(h) > u64::from(height) {
        return Err(BackendError::bad_request(
            "height",
            format!("window must be inside the {width}x{height} grid"),
        ));
    }
    let step = q.step.unwrap_or(1);
    if step == 0 || step > 4096 {
        return Err(BackendError::bad_request(
            "step",
            "must be between 1 and 4096",
        ));
    }
    let out_samples =
        u64::from(w.div_ceil(step)) * u64::from(h.div_ceil(step)) * bands.len() as u64;
    if out_samples > MAX_OUTPUT_SAMPLES {
        return Err(BackendError::bad_request(
            "step",
            format!(
                "the request would return {out_samples} samples (limit {MAX_OUTPUT_SAMPLES}): \
                 use a smaller window or a larger step"
            ),
        ));
    }
    Ok((
        bands,
        Window {
            x,
            y,
            width: w,
            height: h,
        },
        step,
    ))
}

async fn raster(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RasterQuery>,
) -> Result<Response, BackendError> {
    let id = ProductId(id);
    let bytes = state
        .store
        .call(move |s| {
            let stored = s.get_product(&id)?;
            let (bands, window, step) = validate_raster_query(&stored.product, &q)?;
            let local = local_pixels(stored)?;
            let names: Vec<&str> = bands.iter().map(String::as_str).collect();
            let (header, payload) =
                albedo_raster::product::read_bands(&local, &names, window, step)?;
            let mut out = Vec::with_capacity(albedo_shared::rasterwire::HEADER_LEN + payload.len());
            out.extend_from_slice(&header.encode());
            out.extend_from_slice(&payload);
            Ok(out)
        })
        .await?;
    Ok(([(CONTENT_TYPE, MEDIA_TYPE)], bytes).into_response())
}

/// Query of the quick-look route.
#[derive(Debug, Deserialize)]
pub struct QuicklookQuery {
    /// Longest side in pixels.
    pub size: Option<u32>,
}

async fn quicklook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<QuicklookQuery>,
) -> Result<Response, BackendError> {
    use albedo_raster::quicklook::{DEFAULT_SIZE, MAX_SIZE, render_png};
    let size = q.size.unwrap_or(DEFAULT_SIZE);
    if size == 0 || size > MAX_SIZE {
        return Err(BackendError::bad_request(
            "size",
            format!("must be between 1 and {MAX_SIZE}"),
        ));
    }
    let id = ProductId(id);
    let bytes = state
        .store
        .call(move |s| Ok(render_png(&local_pixels(s.get_product(&id)?)?, size)?))
        .await?;
    Ok(([(CONTENT_TYPE, "image/png")], bytes).into_response())
}
