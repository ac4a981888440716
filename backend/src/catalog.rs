//! `/api/products`: the catalog as the browser sees it, and raster windows for the renderer.
//!
//! - `GET /api/products?limit=&offset=`: a page of [`ProductList`] (local products first).
//! - `GET /api/products/{id}`: one [`Product`].
//! - `GET /api/products/{id}/raster?bands=B04,B03,B02&x=&y=&width=&height=&step=`: the bands
//!   over a window of the product grid (default: the whole grid), every `step`-th pixel, as
//!   `application/x-albedo-raster` (see `albedo_shared::rasterwire`). Remote-only products
//!   answer 409 with "pixels not available here".
//! - `GET /api/products/{id}/tiles/{z}/{x}/{y}?bands=B04,B03,B02`: one tile of the product's
//!   pixel-space pyramid, in the same wire format as `/raster` (see [`tiles`] for the scheme:
//!   256x256 tiles, `z = max` native resolution, each lower zoom halves it, edge tiles
//!   cropped to the grid). Zooms and tiles outside the pyramid answer 404 naming its extent.
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
        .route("/products/{id}/tiles/{z}/{x}/{y}", get(tile))
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

/// The band names of a `bands=` list, each one of the product's (at most 16).
pub fn parse_bands(product: &Product, list: Option<&str>) -> Result<Vec<String>, BackendError> {
    let bands: Vec<String> = match list {
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
    Ok(bands)
}

/// Checks a raster query against a product and returns the band names, window and step.
pub fn validate_raster_query(
    product: &Product,
    q: &RasterQuery,
) -> Result<(Vec<String>, Window, u32), BackendError> {
    let PixelAccess::Local { width, height } = product.pixels else {
        return Err(pixels_unavailable(&product.id));
    };
    let bands = parse_bands(product, q.bands.as_deref())?;
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

/// Query of the tile route.
#[derive(Debug, Deserialize)]
pub struct TileQuery {
    /// Comma-separated band names.
    pub bands: Option<String>,
}

fn tile_coordinate(name: &str, v: &str) -> Result<u32, BackendError> {
    v.parse::<u32>().map_err(|_| {
        BackendError::bad_request(name, format!("'{v}' is not a non-negative integer"))
    })
}

async fn tile(
    State(state): State<AppState>,
    Path((id, z, x, y)): Path<(String, String, String, String)>,
    Query(q): Query<TileQuery>,
) -> Result<Response, BackendError> {
    let (z, x, y) = (
        tile_coordinate("z", &z)?,
        tile_coordinate("x", &x)?,
        tile_coordinate("y", &y)?,
    );
    let id = ProductId(id);
    let cache = state.config.tile_cache.clone();
    let bytes = state
        .store
        .call(move |s| {
            let stored = s.get_product(&id)?;
            if !matches!(stored.product.pixels, PixelAccess::Local { .. }) {
                return Err(pixels_unavailable(&stored.product.id));
            }
            let bands = parse_bands(&stored.product, q.bands.as_deref())?;
            let local = local_pixels(stored)?;
            let names: Vec<&str> = bands.iter().map(String::as_str).collect();
            let (header, payload) = tiles::read_tile(&cache, &local, &names, z, x, y)?;
            let mut out = Vec::with_capacity(albedo_shared::rasterwire::HEADER_LEN + payload.len());
            out.extend_from_slice(&header.encode());
            out.extend_from_slice(&payload);
            Ok(out)
        })
        .await?;
    Ok(([(CONTENT_TYPE, MEDIA_TYPE)], bytes).into_response())
}

pub use tiles::TileCache;

/// The tile pyramid of a local product, for `GET /api/products/{id}/tiles/{z}/{x}/{y}`.
///
/// Scheme (pixel space, no map projection): the product grid (the grid of its finest band,
/// `W` x `H` pixels, as `/raster` addresses it) is level 0. Level `L + 1` halves level `L`:
/// it is `ceil(W / 2^(L+1))` x `ceil(H / 2^(L+1))` pixels, pixel `(i, j)` covering level-`L`
/// pixels `2i..2i+1` x `2j..2j+1` (those inside the grid). The top level `Lmax` is the first
/// whose both sides are at most [`TILE_SIZE`]. Zoom `z = Lmax - L`: `z = 0` is one tile of the
/// whole product, `z = Lmax` (the "max zoom") is native resolution. Each level is cut into
/// [`TILE_SIZE`]-pixel tiles from its top-left corner; tile `(x, y)` of zoom `z` holds level
/// pixels `x*256 .. min(x*256 + 256, level width)` (edge tiles are cropped, never padded).
///
/// Values: at native resolution, exactly what `/raster` gives for the same window (coarser
/// bands resampled by nearest neighbour onto the grid). Below it, a band read from a GeoTIFF
/// with an internal overview of exactly the level's size (and a band at grid resolution)
/// takes the overview's pixels (each counted as one sample); otherwise the level is built on
/// the fly as the mean of the valid (not nodata) samples under each pixel, weighted by how
/// many level-0 samples each holds, so a built tile equals the box average of a full
/// resolution window over the same area. A pixel with no valid sample is nodata. Integer
/// bands are rounded to the nearest integer; the wire dtype and nodata are those `/raster`
/// would use for the same bands.
///
/// Built tiles (and the native tiles they are built from) are kept in a [`TileCache`]: a
/// least-recently-used map bounded by the bytes it holds, keyed by the band file's path, size
/// and modification time, so a changed file is never served from stale entries.
pub mod tiles {
    use std::collections::{BTreeMap, HashMap};
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

    use albedo_raster::Window;
    use albedo_raster::product::{LocalBand, LocalProduct, is_tiff};
    use albedo_shared::catalog::{Dtype, PixelAccess};
    use albedo_shared::rasterwire::RasterHeader;

    use crate::error::BackendError;

    /// Side of a tile in pixels.
    pub const TILE_SIZE: u32 = 256;
    /// Default capacity of a [`TileCache`]: 256 MiB.
    pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

    /// Size of level `level` of a `width` x `height` grid.
    pub fn level_size(width: u32, height: u32, level: u32) -> (u32, u32) {
        let f = 1u64 << level.min(40);
        (
            u64::from(width).div_ceil(f) as u32,
            u64::from(height).div_ceil(f) as u32,
        )
    }

    /// The largest zoom (native resolution) of a `width` x `height` grid.
    pub fn max_zoom(width: u32, height: u32) -> u32 {
        let mut level = 0;
        loop {
            let (w, h) = level_size(width, height, level);
            if w <= TILE_SIZE && h <= TILE_SIZE {
                return level;
            }
            level += 1;
        }
    }

    /// Tiles across and down at zoom `z` of a `width` x `height` grid.
    pub fn tiles_at(width: u32, height: u32, z: u32) -> (u32, u32) {
        let (w, h) = level_size(width, height, max_zoom(width, height) - z);
        (w.div_ceil(TILE_SIZE), h.div_ceil(TILE_SIZE))
    }

    /// One band over one tile of one level: the sum and count of valid samples per pixel.
    #[derive(Debug)]
    struct Acc {
        width: u32,
        height: u32,
        sum: Vec<f64>,
        count: Vec<u32>,
    }

    impl Acc {
        fn bytes(&self) -> u64 {
            (self.sum.len() * 8 + self.count.len() * 4 + 64) as u64
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    struct Key {
        path: PathBuf,
        len: u64,
        modified: Option<SystemTime>,
        index: u16,
        grid: (u32, u32),
        level: u32,
        tile: (u32, u32),
    }

    #[derive(Default)]
    struct Lru {
        capacity: u64,
        used: u64,
        tick: u64,
        map: HashMap<Key, (Arc<Acc>, u64)>,
        order: BTreeMap<u64, Key>,
    }

    /// A least-recently-used cache of decoded and built tiles, bounded by the bytes it holds
    /// (cheap to clone: clones share it).
    #[derive(Clone)]
    pub struct TileCache {
        inner: Arc<Mutex<Lru>>,
    }

    impl std::fmt::Debug for TileCache {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let (entries, bytes) = self.usage();
            f.debug_struct("TileCache")
                .field("entries", &entries)
                .field("bytes", &bytes)
                .field("capacity", &self.lock().capacity)
                .finish()
        }
    }

    impl Default for TileCache {
        fn default() -> Self {
            TileCache::with_capacity(DEFAULT_CACHE_BYTES)
        }
    }

    impl TileCache {
        /// An empty cache holding at most `bytes` bytes of tiles.
        pub fn with_capacity(bytes: u64) -> Self {
            TileCache {
                inner: Arc::new(Mutex::new(Lru {
                    capacity: bytes,
                    ..Lru::default()
                })),
            }
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
            self.inner.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Entries held and the bytes they count for.
        pub fn usage(&self) -> (usize, u64) {
            let l = self.lock();
            (l.map.len(), l.used)
        }

        fn get(&self, key: &Key) -> Option<Arc<Acc>> {
            let mut l = self.lock();
            l.tick += 1;
            let tick = l.tick;
            let (acc, old) = {
                let entry = l.map.get_mut(key)?;
                let old = entry.1;
                entry.1 = tick;
                (entry.0.clone(), old)
            };
            l.order.remove(&old);
            l.order.insert(tick, key.clone());
            Some(acc)
        }

        fn put(&self, key: Key, acc: Arc<Acc>) {
            let size = acc.bytes();
            let mut l = self.lock();
            if size > l.capacity {
                return;
            }
            l.tick += 1;
            let tick = l.tick;
            if let Some((old, old_tick)) = l.map.insert(key.clone(), (acc, tick)) {
                l.used -= old.bytes();
                l.order.remove(&old_tick);
            }
            l.order.insert(tick, key);
            l.used += size;
            while l.used > l.capacity {
                let Some((_, oldest)) = l.order.pop_first() else {
                    break;
                };
                if let Some((gone, _)) = l.map.remove(&oldest) {
                    l.used -= gone.bytes();
                }
            }
        }
    }

    /// One band of the product as the pyramid reads it.
    struct BandCtx<'a> {
        product: &'a LocalProduct,
        band: &'a LocalBand,
        grid: (u32, u32),
        len: u64,
        modified: Option<SystemTime>,
        /// Internal overviews (index, width, height) of a band at grid resolution.
        overviews: Vec<(usize, u32, u32)>,
    }

    impl BandCtx<'_> {
        fn key(&self, level: u32, tile: (u32, u32)) -> Key {
            Key {
                path: self.band.path.clone(),
                len: self.len,
                modified: self.modified,
                index: self.band.index,
                grid: self.grid,
                level,
                tile,
            }
        }

        fn valid(&self, v: f64) -> bool {
            match self.band.band.nodata {
                Some(nd) if nd.is_nan() => !v.is_nan(),
                Some(nd) => v != nd,
                None => !v.is_nan(),
            }
        }

        /// The level-`level` pixels of tile `tile`, as a window of that level.
        fn window(&self, level: u32, (tx, ty): (u32, u32)) -> Window {
            let (w, h) = level_size(self.grid.0, self.grid.1, level);
            let (x, y) = (tx * TILE_SIZE, ty * TILE_SIZE);
            Window {
                x,
                y,
                width: TILE_SIZE.min(w - x),
                height: TILE_SIZE.min(h - y),
            }
        }

        fn tile(
            &self,
            cache: &TileCache,
            level: u32,
            tile: (u32, u32),
        ) -> Result<Arc<Acc>, BackendError> {
            let key = self.key(level, tile);
            if let Some(hit) = cache.get(&key) {
                return Ok(hit);
            }
            let win = self.window(level, tile);
            let acc = if level == 0 {
                self.native(win)?
            } else if let Some(&(ov, _, _)) = self
                .overviews
                .iter()
                .find(|&&(_, w, h)| (w, h) == level_size(self.grid.0, self.grid.1, level))
            {
                let tif = albedo_raster::GeoTiff::open(&self.band.path)?;
                let values = tif.read_overview_window_f64(ov, self.band.index, win, 1)?;
                self.accumulate(win, values)
            } else {
                self.built(cache, level, tile, win)?
            };
            let acc = Arc::new(acc);
            cache.put(key, acc.clone());
            Ok(acc)
        }

        fn accumulate(&self, win: Window, values: Vec<f64>) -> Acc {
            let count = values.iter().map(|&v| u32::from(self.valid(v))).collect();
            let sum = values
                .into_iter()
                .map(|v| if self.valid(v) { v } else { 0.0 })
                .collect();
            Acc {
                width: win.width,
                height: win.height,
                sum,
                count,
            }
        }

        /// A native-resolution tile: exactly what `/raster` reads.
        fn native(&self, win: Window) -> Result<Acc, BackendError> {
            let name = self.band.band.name.as_str();
            let (header, payload) =
                albedo_raster::product::read_bands(self.product, &[name], win, 1)?;
            Ok(self.accumulate(win, decode(header.dtype, payload.as_slice())))
        }

        /// A tile built from the (up to four) tiles of the level below.
        fn built(
            &self,
            cache: &TileCache,
            level: u32,
            (tx, ty): (u32, u32),
            win: Window,
        ) -> Result<Acc, BackendError> {
            let below = level - 1;
            let (bw, bh) = level_size(self.grid.0, self.grid.1, below);
            let (nx, ny) = (bw.div_ceil(TILE_SIZE), bh.div_ceil(TILE_SIZE));
            let mut children: [[Option<Arc<Acc>>; 2]; 2] = Default::default();
            for (dy, row) in children.iter_mut().enumerate() {
                for (dx, child) in row.iter_mut().enumerate() {
                    let (cx, cy) = (2 * tx + dx as u32, 2 * ty + dy as u32);
                    if cx < nx && cy < ny {
                        *child = Some(self.tile(cache, below, (cx, cy))?);
                    }
                }
            }
            let n = (win.width * win.height) as usize;
            let mut sum = vec![0.0; n];
            let mut count = vec![0u32; n];
            for j in 0..win.height {
                for i in 0..win.width {
                    let out = (j * win.width + i) as usize;
                    for (py, px) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let (gx, gy) = (2 * (win.x + i) + px, 2 * (win.y + j) + py);
                        if gx >= bw || gy >= bh {
                            continue;
                        }
                        let child = &children[(gy / TILE_SIZE - 2 * ty) as usize]
                            [(gx / TILE_SIZE - 2 * tx) as usize];
                        let Some(c) = child else {
                            continue;
                        };
                        let at = ((gy % TILE_SIZE) * c.width + gx % TILE_SIZE) as usize;
                        sum[out] += c.sum[at];
                        count[out] += c.count[at];
                    }
                }
            }
            Ok(Acc {
                width: win.width,
                height: win.height,
                sum,
                count,
            })
        }
    }

    /// Little-endian samples of `dtype` as f64 (exact for every wire dtype).
    fn decode(dtype: Dtype, payload: &[u8]) -> Vec<f64> {
        let size = dtype.size_bytes();
        payload
            .chunks_exact(size)
            .map(|b| match dtype {
                Dtype::U8 => f64::from(b[0]),
                Dtype::U16 => f64::from(u16::from_le_bytes([b[0], b[1]])),
                Dtype::I16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
                Dtype::U32 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Dtype::I32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Dtype::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Dtype::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            })
            .collect()
    }

    /// Writes `value` as one little-endian sample of `dtype`, rounding for integer types.
    fn put(out: &mut Vec<u8>, dtype: Dtype, value: f64) {
        let r = value.round();
        match dtype {
            Dtype::U8 => out.push(r as u8),
            Dtype::U16 => out.extend_from_slice(&(r as u16).to_le_bytes()),
            Dtype::I16 => out.extend_from_slice(&(r as i16).to_le_bytes()),
            Dtype::U32 => out.extend_from_slice(&(r as u32).to_le_bytes()),
            Dtype::I32 => out.extend_from_slice(&(r as i32).to_le_bytes()),
            Dtype::F32 => out.extend_from_slice(&(value as f32).to_le_bytes()),
            Dtype::F64 => out.extend_from_slice(&value.to_le_bytes()),
        }
    }

    /// Tile `(x, y)` of zoom `z` of `bands` of a local product, as a wire header and payload
    /// (see the module docs). Zooms and tiles outside the pyramid are
    /// [`BackendError::NotFound`].
    pub fn read_tile(
        cache: &TileCache,
        product: &LocalProduct,
        bands: &[&str],
        z: u32,
        x: u32,
        y: u32,
    ) -> Result<(RasterHeader, Vec<u8>), BackendError> {
        let id = &product.product.id;
        let PixelAccess::Local { width, height } = product.product.pixels else {
            return Err(BackendError::Unavailable(format!(
                "pixels not available here: product '{id}' has only remote assets"
            )));
        };
        let zmax = max_zoom(width, height);
        if z > zmax {
            return Err(BackendError::not_found(format!(
                "zoom {z} of product '{id}' (its {width}x{height} grid has zooms 0 to {zmax}; \
                 {zmax} is native resolution)"
            )));
        }
        let (nx, ny) = tiles_at(width, height, z);
        if x >= nx || y >= ny {
            return Err(BackendError::not_found(format!(
                "tile {z}/{x}/{y} of product '{id}' (zoom {z} has x 0 to {} and y 0 to {})",
                nx - 1,
                ny - 1
            )));
        }
        let level = zmax - z;
        let selected: Vec<&LocalBand> = bands
            .iter()
            .map(|name| {
                product
                    .bands
                    .iter()
                    .find(|b| b.band.name == *name)
                    .ok_or_else(|| {
                        BackendError::bad_request("bands", format!("product has no band '{name}'"))
                    })
            })
            .collect::<Result<_, _>>()?;
        if selected.is_empty() {
            return Err(BackendError::bad_request("bands", "name at least one band"));
        }
        let first = &selected[0].band;
        let dtype = if selected.iter().all(|b| b.band.dtype == first.dtype) {
            first.dtype
        } else {
            Dtype::F32
        };
        let nodata = if selected.iter().all(|b| {
            b.band.nodata == first.nodata
                || b.band
                    .nodata
                    .zip(first.nodata)
                    .is_some_and(|(a, c)| a.is_nan() && c.is_nan())
        }) {
            first.nodata
        } else {
            None
        };
        let mut payload = Vec::new();
        let mut size = (0, 0);
        for band in selected {
            let meta = std::fs::metadata(&band.path).map_err(|source| BackendError::Io {
                context: format!("reading {}", band.path.display()),
                source,
            })?;
            let mut overviews = Vec::new();
            if level > 0
                && is_tiff(&band.path)
                && (band.band.width, band.band.height) == (width, height)
            {
                let tif = albedo_raster::GeoTiff::open(&band.path)?;
                for k in 0..tif.overview_count() {
                    if let Some((w, h)) = tif.overview_size(k) {
                        overviews.push((k, w, h));
                    }
                }
            }
            let ctx = BandCtx {
                product,
                band,
                grid: (width, height),
                len: meta.len(),
                modified: meta.modified().ok(),
                overviews,
            };
            let acc = ctx.tile(cache, level, (x, y))?;
            size = (acc.width, acc.height);
            let fill = band.band.nodata.or(nodata).unwrap_or(0.0);
            for (s, &c) in acc.sum.iter().zip(&acc.count) {
                let v = if c == 0 { fill } else { s / f64::from(c) };
                put(&mut payload, dtype, v);
            }
        }
        let header = RasterHeader {
            dtype,
            bands: bands.len() as u16,
            width: size.0,
            height: size.1,
            nodata,
        };
        Ok((header, payload))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn pyramid_levels_halve_up_to_one_tile() {
            assert_eq!(max_zoom(256, 100), 0);
            assert_eq!(max_zoom(257, 100), 1);
            assert_eq!(max_zoom(1536, 768), 3);
            assert_eq!(level_size(1536, 768, 3), (192, 96));
            assert_eq!(tiles_at(1536, 768, 3), (6, 3));
            assert_eq!(tiles_at(1536, 768, 0), (1, 1));
            assert_eq!(level_size(1280, 837, 1), (640, 419));
            assert_eq!(max_zoom(10980, 10980), 6);
        }

        #[test]
        fn the_cache_stays_within_its_byte_budget_and_evicts_the_oldest() {
            let acc = |n: usize| {
                Arc::new(Acc {
                    width: n as u32,
                    height: 1,
                    sum: vec![0.0; n],
                    count: vec![0; n],
                })
            };
            let key = |i: u32| Key {
                path: PathBuf::from("/x.tif"),
                len: 1,
                modified: None,
                index: 0,
                grid: (1, 1),
                level: 0,
                tile: (i, 0),
            };
            let one = acc(100).bytes();
            let cache = TileCache::with_capacity(3 * one);
            for i in 0..3 {
                cache.put(key(i), acc(100));
            }
            assert_eq!(cache.usage(), (3, 3 * one));
            // Touch 0, so that 1 is the least recently used.
            assert!(cache.get(&key(0)).is_some());
            cache.put(key(3), acc(100));
            assert_eq!(cache.usage(), (3, 3 * one));
            assert!(cache.get(&key(1)).is_none());
            assert!(cache.get(&key(0)).is_some());
            // Too large to hold at all: not kept, nothing evicted.
            cache.put(key(9), acc(1000));
            assert!(cache.get(&key(9)).is_none());
            assert_eq!(cache.usage().0, 3);
        }
    }
}
