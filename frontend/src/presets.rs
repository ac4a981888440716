//! What the viewer shows for a product: band presets, the default selection, the fetch step.
//!
//! Pure functions of catalog data, so they read the same in tests and in the page.

use albedo_render::{Colormap, Composite};
use albedo_shared::catalog::{PixelAccess, Product};

/// A named band combination shown as R, G, B (one band: grey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    /// Label in the preset selector.
    pub name: String,
    /// Bands to fetch, in order; 3 for a colour composite, 1 for grey, 2 for an index.
    pub bands: Vec<String>,
    /// For an index view: `(a - b) / (a + b)` of the two bands through this colormap.
    pub index: Option<Colormap>,
}

impl Preset {
    /// Texture layer per output channel: `[0, 1, 2]`, or `[0, 0, 0]` for grey.
    pub fn channels(&self) -> [u32; 3] {
        if self.bands.len() >= 3 {
            [0, 1, 2]
        } else {
            [0, 0, 0]
        }
    }

    /// The composite of an index preset (layers 0 and 1 over `[-1, 1]`), `None` for others.
    pub fn index_composite(&self) -> Option<Composite> {
        self.index.map(|map| Composite::index(0, 1, map))
    }
}

/// Whether the product is from Sentinel-2 (by collection or platform).
pub fn is_sentinel2(product: &Product) -> bool {
    let s2 = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("sentinel-2") || s.contains("sentinel2")
    };
    s2(&product.collection) || product.platform.as_deref().is_some_and(s2)
}

/// Grid size of a product with local pixels.
pub fn local_grid(product: &Product) -> Option<(u32, u32)> {
    match product.pixels {
        PixelAccess::Local { width, height } => Some((width, height)),
        PixelAccess::Remote => None,
    }
}

/// The presets the viewer offers: for Sentinel-2 `True colour` (B04, B03, B02),
/// `False colour` (B08, B04, B03), `NDVI` ((B08 - B04) / (B08 + B04), brown to green) and
/// `NDWI` ((B03 - B08) / (B03 + B08), blues) where the product has those bands; otherwise (or
/// if none applies) a grey view of the first band.
pub fn presets_for(product: &Product) -> Vec<Preset> {
    let has = |b: &str| product.bands.iter().any(|band| band.name == b);
    let mut presets = Vec::new();
    if is_sentinel2(product) {
        for (name, bands) in [
            ("True colour", ["B04", "B03", "B02"]),
            ("False colour", ["B08", "B04", "B03"]),
        ] {
            if bands.iter().all(|b| has(b)) {
                presets.push(Preset {
                    name: name.to_string(),
                    bands: bands.iter().map(|b| b.to_string()).collect(),
                    index: None,
                });
            }
        }
        for (name, bands, map) in [
            ("NDVI", ["B08", "B04"], Colormap::BrownGreen),
            ("NDWI", ["B03", "B08"], Colormap::Blues),
        ] {
            if bands.iter().all(|b| has(b)) {
                presets.push(Preset {
                    name: name.to_string(),
                    bands: bands.iter().map(|b| b.to_string()).collect(),
                    index: Some(map),
                });
            }
        }
    }
    if presets.is_empty()
        && let Some(first) = product.bands.first()
    {
        presets.push(Preset {
            name: format!("{} (grey)", first.name),
            bands: vec![first.name.clone()],
            index: None,
        });
    }
    presets
}

/// The product selected when the list arrives: the first Sentinel-2 product with local
/// pixels, else the first product with local pixels.
pub fn default_selection(products: &[Product]) -> Option<&Product> {
    let local = |p: &&Product| local_grid(p).is_some() && !p.bands.is_empty();
    products
        .iter()
        .filter(local)
        .find(|p| is_sentinel2(p))
        .or_else(|| products.iter().find(local))
}

/// Grid pixels per fetched sample so a `grid_w` x `grid_h` window fits a
/// `canvas_w` x `canvas_h` canvas: `max(1, floor(max(grid_w / canvas_w, grid_h / canvas_h)))`.
pub fn fetch_step(grid_w: u32, grid_h: u32, canvas_w: u32, canvas_h: u32) -> u32 {
    let ratio = (f64::from(grid_w) / f64::from(canvas_w.max(1)))
        .max(f64::from(grid_h) / f64::from(canvas_h.max(1)));
    // `ratio` is at most u32::MAX, so the cast cannot saturate in practice.
    (ratio.floor() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use albedo_shared::catalog::{Band, Dtype, Georeferencing, ProductId};

    fn product(collection: &str, bands: &[&str], local: bool) -> Product {
        Product {
            id: ProductId(format!("{collection}-x")),
            collection: collection.to_string(),
            title: "t".to_string(),
            datetime: None,
            bbox: None,
            platform: None,
            product_type: None,
            cloud_cover: None,
            bands: bands
                .iter()
                .map(|b| Band {
                    name: b.to_string(),
                    common_name: None,
                    width: 10,
                    height: 10,
                    dtype: Dtype::U16,
                    gsd_m: None,
                    nodata: None,
                })
                .collect(),
            georeferencing: Georeferencing::None,
            pixels: if local {
                PixelAccess::Local {
                    width: 10,
                    height: 10,
                }
            } else {
                PixelAccess::Remote
            },
            attribution: None,
        }
    }

    #[test]
    fn sentinel2_gets_colour_presets_others_grey() {
        let s2 = product("sentinel-2-l1c", &["B02", "B03", "B04", "B08"], true);
        let names: Vec<_> = presets_for(&s2).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["True colour", "False colour", "NDVI", "NDWI"]);
        assert_eq!(presets_for(&s2)[1].bands, ["B08", "B04", "B03"]);
        let ndvi = &presets_for(&s2)[2];
        assert_eq!(ndvi.bands, ["B08", "B04"]);
        assert_eq!(ndvi.index, Some(Colormap::BrownGreen));
        let comp = ndvi.index_composite().expect("index composite");
        assert_eq!(comp.channels[..2], [0, 1]);
        assert_eq!((comp.min[0], comp.max[0]), (-1.0, 1.0));
        assert_eq!(presets_for(&s2)[3].bands, ["B03", "B08"]);
        assert_eq!(presets_for(&s2)[0].index_composite(), None);
        // Without B08 there is no index.
        let rgb = product("sentinel-2-l1c", &["B02", "B03", "B04"], true);
        assert_eq!(presets_for(&rgb).len(), 1);
        let s1 = product("sentinel-1-grd", &["VV", "VH"], true);
        let grey = presets_for(&s1);
        assert_eq!(grey.len(), 1);
        assert_eq!(grey[0].bands, ["VV"]);
        assert_eq!(grey[0].channels(), [0, 0, 0]);
        assert!(presets_for(&product("sentinel-2-l2a", &[], false)).is_empty());
    }

    #[test]
    fn default_is_first_local_sentinel2() {
        let list = [
            product("sentinel-2-l2a", &[], false),
            product("sentinel-1-grd", &["VV"], true),
            product("sentinel-2-l1c", &["B04"], true),
        ];
        assert_eq!(
            default_selection(&list).map(|p| p.collection.as_str()),
            Some("sentinel-2-l1c")
        );
        assert_eq!(
            default_selection(&list[..2]).map(|p| p.collection.as_str()),
            Some("sentinel-1-grd")
        );
        assert_eq!(default_selection(&list[..1]), None);
    }

    #[test]
    fn step_fits_the_canvas() {
        assert_eq!(fetch_step(1536, 768, 768, 512), 2);
        assert_eq!(fetch_step(100, 101, 768, 512), 1);
        assert_eq!(fetch_step(1280, 837, 768, 512), 1);
        assert_eq!(fetch_step(10980, 10980, 768, 512), 21);
    }
}
