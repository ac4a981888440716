//! Catalog types: a product is a STAC item plus what Albedo knows of its local pixels.
//!
//! The backend stores the STAC item as it came (so `/stac` serves it unchanged) and derives a
//! [`Product`] from it for the JSON API and the browser.

use serde::{Deserialize, Serialize};

/// Identifier of a product: the STAC item id, unique across collections in one store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(pub String);

impl std::fmt::Display for ProductId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sample type of a band, as stored in its file and as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit (Sentinel-2 digital numbers).
    U16,
    /// Signed 16-bit.
    I16,
    /// Unsigned 32-bit.
    U32,
    /// Signed 32-bit.
    I32,
    /// 32-bit float (e.g. SAR backscatter in dB).
    F32,
    /// 64-bit float.
    F64,
}

impl Dtype {
    /// Size of one sample in bytes.
    pub fn size_bytes(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::U16 | Dtype::I16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

/// One band of a product with local pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// Band name as the mission names it (`B04`, `VV`, ...).
    pub name: String,
    /// STAC `eo:common_name` where one applies (`red`, `nir`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// Width of the band's own raster in pixels.
    pub width: u32,
    /// Height of the band's own raster in pixels.
    pub height: u32,
    /// Sample type.
    pub dtype: Dtype,
    /// Ground sample distance in metres, where the raster is georeferenced in metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsd_m: Option<f64>,
    /// The value that marks missing data, if the file declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodata: Option<f64>,
}

/// How a product's raster is tied to the Earth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Georeferencing {
    /// An affine transform in a projected or geographic CRS identified by EPSG code.
    Affine {
        /// EPSG code of the CRS.
        epsg: u32,
        /// GDAL-order geotransform: `[x0, dx, rx, y0, ry, dy]` of the product grid.
        geotransform: [f64; 6],
    },
    /// Only ground control points (radar geometry): the footprint is their hull, pixels are
    /// not on a map grid.
    GcpsOnly {
        /// Number of ground control points in the file.
        count: u32,
    },
    /// Corner coordinates from product metadata only (e.g. a quick-look image).
    CornersOnly,
    /// No georeferencing at all.
    None,
}

/// Where a product's pixels are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PixelAccess {
    /// Band files on this server's disk: the raster endpoint serves them.
    Local {
        /// Width of the product grid (the finest band) in pixels.
        width: u32,
        /// Height of the product grid in pixels.
        height: u32,
    },
    /// Only remote asset links (object stores this server cannot reach): metadata only.
    Remote,
}

/// A product as the JSON API and the browser see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Unique id (the STAC item id).
    pub id: ProductId,
    /// STAC collection id.
    pub collection: String,
    /// Human-readable title.
    pub title: String,
    /// Acquisition time, RFC 3339, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime: Option<String>,
    /// WGS84 bounding box `[west, south, east, north]`, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f64; 4]>,
    /// Platform (`sentinel-2a`, ...), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Processing level or product type (`L1C`, `GRD`, ...), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    /// `eo:cloud_cover` in percent, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_cover: Option<f64>,
    /// Bands with local pixels, in the product's own order (empty for remote products).
    #[serde(default)]
    pub bands: Vec<Band>,
    /// How the raster is georeferenced.
    pub georeferencing: Georeferencing,
    /// Where its pixels are.
    pub pixels: PixelAccess,
    /// Licence and attribution text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
}

/// Body of `GET /api/products`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductList {
    /// The products of this page.
    pub products: Vec<Product>,
    /// Number of products in the store matching the query.
    pub total: u64,
}
