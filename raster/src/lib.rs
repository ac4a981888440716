//! `albedo-raster`: local Sentinel pixels for Albedo.
//!
//! What it is: the synchronous, pure-Rust code that
//! - opens GeoTIFF / Cloud-Optimised GeoTIFF files and reads **windows** of one band, tile by
//!   tile (a window read decodes only the tiles or strips it overlaps, and with a step > 1 only
//!   those holding a sampled pixel), plus their internal overviews;
//! - parses their georeferencing (GeoTIFF model tags and GeoKeys, GDAL's nodata tag) into
//!   [`Georeferencing`](albedo_shared::catalog::Georeferencing), and reprojects UTM / WGS84
//!   coordinates to longitude / latitude for footprints;
//! - scans local Sentinel-1 / Sentinel-2 product folders (one file per band, or multi-band
//!   stacks) into catalog [`Product`](albedo_shared::catalog::Product)s with a STAC 1.0.0 item;
//! - reads a product's bands over a window of its grid for the renderer, encoded as
//!   [`albedo_shared::rasterwire`] payloads;
//! - builds versioned training datasets of labelled patches ([`dataset`]): from BigEarthNet
//!   patches, a label raster over a product or labelled polygons over a product, with bands
//!   resampled onto one grid, derived features (NDVI, NDWI, NDBI), seeded stratified splits
//!   and train-split statistics, stored as a manifest and safetensors shards, and read back
//!   for training.
//!
//! What it is not: no HTTP, no async, no database, no caching across calls, no network reads
//! (files are local paths); no GDAL, no general CRS engine (only WGS84 UTM zones and EPSG:4326);
//! no band math beyond the dataset's normalised-difference features; resampling is nearest
//! neighbour for product reads and bilinear (or nearest) for dataset patches.
//! Quick-look-only products (a PNG with KML corners, such as the Kara Sea sample) are scanned
//! with [`Georeferencing::CornersOnly`](albedo_shared::catalog::Georeferencing) and their PNG
//! channels as 8-bit bands; a read of a PNG band decodes the whole PNG once per call.
//!
//! Modules:
//! - [`geotiff`]: [`GeoTiff`], an opened file: size, bands, sample type, nodata, tile layout,
//!   overviews, windowed reads.
//! - [`georef`]: GeoTIFF tags and GeoKeys to a geotransform, EPSG code or ground control points.
//! - [`proj`]: UTM (WGS84, Krüger series) and EPSG:4326 to longitude / latitude and back.
//! - [`footprint`]: WGS84 footprints (densified edges of a grid, or the hull of GCPs) and bboxes.
//! - [`product`]: scanning product folders into [`product::LocalProduct`]s, and
//!   [`product::read_bands`] for the wire format.
//! - [`source`]: [`source::BandSource`], a band's file opened for reading (GeoTIFF or PNG),
//!   the one path product reads and quick-looks share.
//! - [`quicklook`]: a product's PNG quick-look (true colour, VV in dB, or its first band),
//!   percentile-stretched, decimated by reading only the sampled pixels' tiles.
//! - [`dataset`]: training datasets: [`dataset::build`] a [`dataset::DatasetSpec`] into
//!   `<root>/<name>/v<N>/` (manifest.json + safetensors shards, written atomically), and
//!   [`dataset::Dataset`] to open, validate and read a version.
//! - [`classmap`]: writing class rasters (a classify job's output): single-band `u8` COGs
//!   with a palette, class names, nodata 255 and mode overviews, read back by [`geotiff`].
//! - [`error`]: [`RasterError`], the one error type of this crate.

pub mod classmap;
pub mod dataset;
pub mod error;
pub mod footprint;
pub mod georef;
pub mod geotiff;
pub mod product;
pub mod proj;
pub mod quicklook;
pub mod source;

pub use error::RasterError;
pub use geotiff::GeoTiff;

/// A rectangle of pixels: columns `x .. x + width`, rows `y .. y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// First column.
    pub x: u32,
    /// First row.
    pub y: u32,
    /// Number of columns.
    pub width: u32,
    /// Number of rows.
    pub height: u32,
}

impl Window {
    /// The window spanned by sampled column and row indices (used to report a read whose
    /// indices fall outside a raster): from the first index to the last, inclusive.
    pub(crate) fn spanned_by(cols: &[u32], rows: &[u32]) -> Window {
        let span = |v: &[u32]| match (v.first(), v.last()) {
            (Some(&first), Some(&last)) => (first, last.saturating_add(1).saturating_sub(first)),
            _ => (0, 0),
        };
        let ((x, width), (y, height)) = (span(cols), span(rows));
        Window {
            x,
            y,
            width,
            height,
        }
    }

    /// The whole of a `width` x `height` raster.
    pub fn full(width: u32, height: u32) -> Window {
        Window {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// Whether the window is non-empty and lies inside a `width` x `height` raster.
    pub fn fits_in(&self, width: u32, height: u32) -> bool {
        self.width > 0
            && self.height > 0
            && u64::from(self.x) + u64::from(self.width) <= u64::from(width)
            && u64::from(self.y) + u64::from(self.height) <= u64::from(height)
    }

    /// Output size of a read with `step`: `ceil(width / step)` x `ceil(height / step)`
    /// (step 0 is treated as 1; callers reject it first).
    pub fn output_size(&self, step: u32) -> (u32, u32) {
        let step = step.max(1);
        (self.width.div_ceil(step), self.height.div_ceil(step))
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{} at ({}, {})",
            self.width, self.height, self.x, self.y
        )
    }
}

/// The `png` crate this crate encodes quick-looks with, for callers that decode them.
pub use png;
