//! The one error enum of `albedo-raster`.
//!
//! Every variant that concerns a file names it; errors about corrupt input say what is wrong
//! (the tag, the tile and its byte offset). The backend maps these to HTTP statuses in one
//! place: [`RasterError::is_bad_request`] tells a caller's mistake from a server-side problem.

use std::path::PathBuf;

use crate::Window;

/// Errors from opening, reading and scanning rasters.
#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    /// The file or folder could not be read from disk.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The TIFF decoder rejected the file's structure (header, IFD, tags).
    #[error("{}: not a readable TIFF: {source}", path.display())]
    Tiff {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: tiff::TiffError,
    },
    /// A tile or strip could not be decoded (truncated or corrupt compressed data).
    #[error(
        "{}: {kind} {chunk} (at byte offset {offset}, {byte_count} bytes) is corrupt: {source}",
        path.display()
    )]
    Chunk {
        /// The file.
        path: PathBuf,
        /// `tile` or `strip`.
        kind: &'static str,
        /// Index of the tile or strip in the file.
        chunk: u32,
        /// Byte offset of its compressed data in the file.
        offset: u64,
        /// Length of its compressed data.
        byte_count: u64,
        /// The decoder's error.
        #[source]
        source: tiff::TiffError,
    },
    /// The file is a TIFF but something in it is inconsistent (a tag's value, a chunk's extent).
    #[error("{}: corrupt: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the tag or byte offset.
        what: String,
    },
    /// The file uses a TIFF or GeoTIFF feature this crate does not read.
    #[error("{}: unsupported: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The feature.
        what: String,
    },
    /// A side-car metadata file (`metadata.json`, `productInfo.json`, ...) is not valid JSON.
    #[error("{}: invalid JSON metadata: {source}", path.display())]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The files of one product disagree (e.g. bands in different CRSs).
    #[error("{}: inconsistent product: {what}", path.display())]
    Inconsistent {
        /// The product folder or file.
        path: PathBuf,
        /// What disagrees.
        what: String,
    },
    /// The path is not something `scan` can turn into a product.
    #[error("{}: not a raster product: {reason}", path.display())]
    NotAProduct {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A band index past the file's samples per pixel.
    #[error("{}: band {band} does not exist (the file has {count} bands, counted from 0)", path.display())]
    BandOutOfRange {
        /// The file.
        path: PathBuf,
        /// The requested 0-based band.
        band: u16,
        /// Bands in the file.
        count: u16,
    },
    /// An overview index past the file's overviews.
    #[error("{}: overview {overview} does not exist (the file has {count})", path.display())]
    OverviewOutOfRange {
        /// The file.
        path: PathBuf,
        /// The requested 0-based overview.
        overview: usize,
        /// Overviews in the file.
        count: usize,
    },
    /// The window is empty or reaches outside the raster.
    #[error("window {window} is empty or outside the {width}x{height} raster")]
    WindowOutside {
        /// The requested window.
        window: Window,
        /// Raster width.
        width: u32,
        /// Raster height.
        height: u32,
    },
    /// A read step of zero.
    #[error("step must be at least 1")]
    ZeroStep,
    /// The read would return more samples than allowed.
    #[error("the read would return {samples} samples, more than the limit of {limit}")]
    TooLarge {
        /// Samples the read would return.
        samples: u64,
        /// The limit.
        limit: u64,
    },
    /// `read_bands` was given no band names.
    #[error("no bands requested")]
    NoBands,
    /// A band name the product does not have.
    #[error("product '{product}' has no band '{band}' (it has {})", available.join(", "))]
    UnknownBand {
        /// The product id.
        product: String,
        /// The requested name.
        band: String,
        /// The product's band names.
        available: Vec<String>,
    },
    /// The product has no local pixels.
    #[error("product '{product}' has no local pixels")]
    NotLocal {
        /// The product id.
        product: String,
    },
    /// A quick-look size outside `1..=MAX_SIZE`.
    #[error("quick-look size {size} must be between 1 and {max}")]
    QuicklookSize {
        /// The requested size.
        size: u32,
        /// The largest allowed size.
        max: u32,
    },
    /// Encoding a PNG failed.
    #[error("encoding the PNG failed: {0}")]
    Png(String),
}

impl RasterError {
    /// Whether the error is the caller's mistake (bad window, step, band name) rather than a
    /// problem with the files or the disk.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            RasterError::BandOutOfRange { .. }
                | RasterError::OverviewOutOfRange { .. }
                | RasterError::WindowOutside { .. }
                | RasterError::ZeroStep
                | RasterError::TooLarge { .. }
                | RasterError::NoBands
                | RasterError::UnknownBand { .. }
                | RasterError::QuicklookSize { .. }
        )
    }
}
