//! The one error enum of `albedo-shared`.

/// Errors from decoding the binary formats defined in this crate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SharedError {
    /// The buffer does not start with the expected magic bytes.
    #[error("not an Albedo raster: bad magic bytes {found:?}")]
    BadMagic {
        /// The first four bytes seen.
        found: [u8; 4],
    },
    /// The header names a version this build cannot read.
    #[error("unsupported raster wire version {0}")]
    UnsupportedVersion(u8),
    /// The header names an unknown data type code.
    #[error("unknown raster data type code {0}")]
    UnknownDtype(u8),
    /// The buffer is shorter than its header says.
    #[error("raster buffer truncated: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the header implies.
        needed: usize,
        /// Bytes present.
        have: usize,
    },
    /// Width, height or band count multiply past what memory can address.
    #[error("raster dimensions overflow: {width} x {height} x {bands}")]
    Overflow {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Number of bands.
        bands: u16,
    },
}
