//! The one error type of `albedo-render`.

use crate::{Placement, View};

/// What can go wrong while setting up the GPU or drawing.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The canvas or window could not get a GPU surface (e.g. no WebGL2 in this browser).
    #[error("could not create a drawing surface: {0}")]
    Surface(String),
    /// No adapter on the enabled backends can present to the surface.
    #[error("no GPU adapter for this surface: {0}")]
    Adapter(String),
    /// The adapter refused the device (limits or features).
    #[error("could not open the GPU device: {0}")]
    Device(String),
    /// The surface supports no non-sRGB 8-bit format; exact output bytes need one.
    #[error("unsupported colour format {0}: need Rgba8Unorm or Bgra8Unorm")]
    Format(String),
    /// A surface or readback target of zero size.
    #[error("empty render target {width}x{height}")]
    EmptyTarget {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
    /// No band, or a zero-sized band.
    #[error("no pixels to upload: {bands} bands of {width}x{height}")]
    EmptyBands {
        /// Width in texels.
        width: u32,
        /// Height in texels.
        height: u32,
        /// Number of bands given.
        bands: usize,
    },
    /// A band's sample count is not `width * height`.
    #[error("band {index} has {len} values, expected {expected}")]
    BandLength {
        /// Index of the band in the call.
        index: usize,
        /// Values it has.
        len: usize,
        /// Values it should have.
        expected: usize,
    },
    /// The bands exceed the device's texture limits.
    #[error(
        "{bands} bands of {width}x{height} exceed this GPU's limits \
         ({max_side} texels a side, {max_layers} layers)"
    )]
    TooLarge {
        /// Width in texels.
        width: u32,
        /// Height in texels.
        height: u32,
        /// Number of bands.
        bands: u32,
        /// Largest texture side.
        max_side: u32,
        /// Most array layers.
        max_layers: u32,
    },
    /// Drawing before any band was uploaded.
    #[error("no bands uploaded yet")]
    NoBands,
    /// A composite channel names a layer that was not uploaded.
    #[error("composite uses layer {layer} but only {bands} bands are uploaded")]
    Channel {
        /// The layer asked for.
        layer: u32,
        /// Bands uploaded.
        bands: u32,
    },
    /// A view with a non-finite origin or a non-positive scale.
    #[error("invalid view {0:?}: origin must be finite, texels_per_pixel positive")]
    View(View),
    /// A layer placement with a non-finite origin or a non-positive scale.
    #[error("invalid layer placement {0:?}: origin must be finite, scale positive")]
    Placement(Placement),
    /// Classes for a layer that was not uploaded.
    #[error("no layer {0} on the GPU")]
    NoLayer(u64),
    /// A non-positive or non-finite gamma.
    #[error("invalid gamma {0:?}: each must be positive")]
    Gamma([f32; 3]),
    /// The swap chain gave no frame (timeout, occluded, lost twice).
    #[error("no frame from the surface: {0}")]
    Frame(String),
    /// An error the GPU reported (validation, out of memory, device lost, mapping).
    #[error("GPU error: {0}")]
    Gpu(String),
}
