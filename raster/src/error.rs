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
    /// A training-dataset option is out of range or inconsistent (patch size 0, split
    /// fractions not summing to 1, an empty class mapping, a bad dataset name, ...).
    #[error("invalid dataset option {option}: {reason}")]
    DatasetOption {
        /// The option, as named in [`crate::dataset::DatasetSpec`].
        option: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A requested dataset channel is neither a band of the source nor a known derived
    /// feature.
    #[error("unknown band or feature '{channel}' (bands of the source: {}; features: {})", bands.join(", "), features.join(", "))]
    UnknownChannel {
        /// The requested name.
        channel: String,
        /// The bands the source has.
        bands: Vec<String>,
        /// The derived features that exist.
        features: Vec<String>,
    },
    /// A derived feature needs a band the source does not have (NDBI on a product without
    /// B11, NDVI on Sentinel-1).
    #[error("feature {feature} needs band {missing}, which the source does not have (it has {})", bands.join(", "))]
    FeatureInputMissing {
        /// The feature.
        feature: String,
        /// The band it needs.
        missing: String,
        /// The bands the source has.
        bands: Vec<String>,
    },
    /// Building a dataset found no patch that carries a class of the mapping.
    #[error("no labelled patches in {source_name}: {detail}")]
    NoLabelledPatches {
        /// The source, described.
        source_name: String,
        /// What was seen (patches considered, skipped and why).
        detail: String,
    },
    /// Labels could not be used (a GeoJSON without features, a class property missing, a
    /// label raster that does not overlap the imagery, an unsupported labels CRS).
    #[error("{}: unusable labels: {what}", path.display())]
    BadLabels {
        /// The labels file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// No such dataset or dataset version under the dataset root.
    #[error("no dataset {name}{} under {}", version.map(|v| format!(" version {v}")).unwrap_or_default(), root.display())]
    DatasetNotFound {
        /// The dataset root folder.
        root: PathBuf,
        /// The dataset name.
        name: String,
        /// The version asked for, if one was.
        version: Option<u32>,
    },
    /// A stored dataset disagrees with itself: manifest and shards differ, a shard is
    /// missing or not valid safetensors.
    #[error("{}: invalid dataset: {what}", path.display())]
    BadDataset {
        /// The manifest or shard.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A dataset build was stopped by its progress callback; nothing was kept.
    #[error("dataset build cancelled")]
    Cancelled,
    /// A class raster cannot be written as asked (size, values, classes).
    #[error("class raster: {0}")]
    ClassRaster(String),
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
                | RasterError::DatasetOption { .. }
                | RasterError::UnknownChannel { .. }
                | RasterError::FeatureInputMissing { .. }
                | RasterError::NoLabelledPatches { .. }
        )
    }

    /// Whether the error says that a named thing (a dataset or one of its versions) does
    /// not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RasterError::DatasetNotFound { .. })
    }
}
