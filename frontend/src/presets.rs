//! What the viewer shows for a product: band presets, the default selection, the fetch step.
//!
//! Pure functions of catalog data, so they read the same in tests and in the page.

use albedo_render::{Colormap, Composite, ValueScale, percentile_stretch};
use albedo_shared::catalog::{Dtype, PixelAccess, Product};

/// Percentiles of the auto-stretch.
pub const STRETCH_PERCENTILES: (f32, f32) = (2.0, 98.0);

/// A named band combination shown as R, G, B (one band: grey).
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// Label in the preset selector.
    pub name: String,
    /// Bands it shows, in order; 3 for a colour composite, 1 for grey, 2 for an index or a
    /// ratio.
    pub bands: Vec<String>,
    /// For an index view: `(a - b) / (a + b)` of the two bands through this colormap.
    pub index: Option<Colormap>,
    /// Conversion of the values before the stretch (SAR presets: decibels).
    pub scale: ValueScale,
    /// Per output channel: `Some((a, b))` shows band `a` minus band `b` (after the
    /// conversion; in dB that is the ratio `a / b`), `None` the channel's own band. Indexes are
    /// into [`Preset::bands`].
    pub ratio: [Option<(usize, usize)>; 3],
    /// Fixed default stretch per channel (calibrated SAR backscatter in dB); `None` stretches
    /// between the 2nd and 98th percentiles of the fetched values.
    pub range: Option<[(f32, f32); 3]>,
    /// What the values are, in words, shown under the view (units, calibration).
    pub note: Option<String>,
}

impl Preset {
    fn plain(name: &str, bands: &[&str]) -> Self {
        Preset {
            name: name.to_string(),
            bands: bands.iter().map(|b| b.to_string()).collect(),
            index: None,
            scale: ValueScale::Linear,
            ratio: [None; 3],
            range: None,
            note: None,
        }
    }

    /// Band index (into [`Preset::bands`]) per output channel: `[0, 1, 2]`, or `[0, 0, 0]`
    /// for grey.
    pub fn channels(&self) -> [u32; 3] {
        if self.bands.len() >= 3 {
            [0, 1, 2]
        } else {
            [0, 0, 0]
        }
    }

    /// The composite of this preset over the texture layers `layers` (the band names uploaded,
    /// in layer order), stretched with its fixed range or from the percentiles of `values`
    /// (one slice per layer; `nodata` and missing values excluded). `None` when a band is not
    /// among the layers.
    pub fn composite(
        &self,
        layers: &[String],
        values: &[&[f32]],
        nodata: Option<f32>,
    ) -> Option<Composite> {
        let layer_of = |band: usize| -> Option<u32> {
            let name = self.bands.get(band)?;
            layers
                .iter()
                .position(|l| l == name)
                .and_then(|p| u32::try_from(p).ok())
        };
        if let Some(map) = self.index {
            let mut c = Composite::index(layer_of(0)?, layer_of(1)?, map);
            c.nodata = nodata;
            return Some(c);
        }
        let own = self.channels();
        let mut channels = [0u32; 3];
        let mut minus = [None; 3];
        for c in 0..3 {
            match self.ratio[c] {
                Some((a, b)) => {
                    channels[c] = layer_of(a)?;
                    minus[c] = Some(layer_of(b)?);
                }
                None => channels[c] = layer_of(own[c] as usize)?,
            }
        }
        let mut composite = Composite {
            channels,
            minus,
            scale: self.scale,
            min: [0.0; 3],
            max: [1.0; 3],
            gamma: [1.0; 3],
            index: None,
            nodata,
        };
        match self.range {
            Some(range) => {
                composite.min = range.map(|r| r.0);
                composite.max = range.map(|r| r.1);
            }
            None => {
                for c in 0..3 {
                    let (lo, hi) = channel_percentiles(&composite, values, c);
                    composite.min[c] = lo;
                    composite.max[c] = hi;
                }
            }
        }
        Some(composite)
    }

    /// Whether the values are shown in decibels.
    pub fn in_db(&self) -> bool {
        matches!(self.scale, ValueScale::Decibel { .. })
            || self.note.as_deref().is_some_and(|n| n.contains("dB"))
    }
}

/// The 2nd and 98th percentiles of what channel `c` of `composite` stretches (after the dB
/// conversion and the ratio), over the texels that are not missing data.
pub fn channel_percentiles(composite: &Composite, values: &[&[f32]], c: usize) -> (f32, f32) {
    let n = values.first().map_or(0, |b| b.len());
    let shown: Vec<f32> = (0..n)
        .filter_map(|i| composite.channel_value(values, i, c))
        .collect();
    percentile_stretch(&shown, None, STRETCH_PERCENTILES.0, STRETCH_PERCENTILES.1)
}

/// Smallest and largest value channel `c` of `composite` shows (the sliders' range), over
/// texels that are not missing data; `(0, 1)` when there is none.
pub fn channel_range(composite: &Composite, values: &[&[f32]], c: usize) -> (f32, f32) {
    let n = values.first().map_or(0, |b| b.len());
    let mut range: Option<(f32, f32)> = None;
    for v in (0..n).filter_map(|i| composite.channel_value(values, i, c)) {
        if !v.is_finite() {
            continue;
        }
        range = Some(match range {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
    }
    range.unwrap_or((0.0, 1.0))
}

/// Whether the product is from Sentinel-2 (by collection or platform).
pub fn is_sentinel2(product: &Product) -> bool {
    mission(product, &["sentinel-2", "sentinel2"])
}

/// Whether the product is from Sentinel-1 (by collection or platform).
pub fn is_sentinel1(product: &Product) -> bool {
    mission(product, &["sentinel-1", "sentinel1"])
}

fn mission(product: &Product, names: &[&str]) -> bool {
    let hit = |s: &str| {
        let s = s.to_ascii_lowercase();
        names.iter().any(|n| s.contains(n))
    };
    hit(&product.collection) || product.platform.as_deref().is_some_and(hit)
}

/// Grid size of a product with local pixels.
pub fn local_grid(product: &Product) -> Option<(u32, u32)> {
    match product.pixels {
        PixelAccess::Local { width, height } => Some((width, height)),
        PixelAccess::Remote => None,
    }
}

/// What the pixels of a Sentinel-1 band are, read from its sample type and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SarValues {
    /// Integer digital numbers of a GRD product: amplitudes, not calibrated. `20 log10(DN)`
    /// (= `10 log10(DN^2)`, proportional to intensity) gives relative dB, offset from sigma0
    /// by the product's calibration constant, so the stretch comes from the data.
    AmplitudeDn,
    /// Floating-point values already in dB (processed backscatter, e.g. pyroSAR's `_db`
    /// products): shown as they are, on the calibrated ranges.
    Decibel,
    /// Floating-point linear backscatter (sigma0 or gamma0 power): `10 log10(v)`, calibrated
    /// ranges.
    LinearPower,
}

/// How the bands of a Sentinel-1 product are stored (see [`SarValues`]).
pub fn sar_values(product: &Product, band: &str) -> SarValues {
    let dtype = product
        .bands
        .iter()
        .find(|b| b.name == band)
        .map(|b| b.dtype);
    let floating = matches!(dtype, Some(Dtype::F32 | Dtype::F64));
    let named_db = [&product.id.0, &product.title, &product.collection]
        .iter()
        .any(|s| {
            let s = s.to_ascii_lowercase();
            s.contains("_db") || s.ends_with("db") || s.contains("-db") || s.contains(" db")
        });
    match (floating, named_db) {
        (false, _) => SarValues::AmplitudeDn,
        (true, true) => SarValues::Decibel,
        (true, false) => SarValues::LinearPower,
    }
}

/// Default display ranges of calibrated backscatter in dB: co-polarised, cross-polarised,
/// and their ratio (co minus cross).
pub const SAR_DB_RANGES: [(f32, f32); 3] = [(-25.0, 0.0), (-30.0, -5.0), (0.0, 15.0)];

/// The nodata value the viewer uses for a product whose raster declares none: 0 for
/// Sentinel-2 (the L1C/L2A `NO_DATA` value, e.g. the wedge outside the swath) and for
/// Sentinel-1 integer digital numbers (GRD border and quick-look fill), else none.
pub fn implied_nodata(product: &Product) -> Option<f64> {
    let integer = product
        .bands
        .iter()
        .all(|b| !matches!(b.dtype, Dtype::F32 | Dtype::F64));
    ((is_sentinel2(product) || is_sentinel1(product)) && integer && !product.bands.is_empty())
        .then_some(0.0)
}

/// SAR presets for one co/cross polarisation pair present in the product.
fn sar_presets(product: &Product, co: &str, cross: &str, out: &mut Vec<Preset>) {
    let has = |b: &str| product.bands.iter().any(|band| band.name == b);
    let values = sar_values(product, co);
    let (scale, calibrated, note) = match values {
        SarValues::AmplitudeDn => (
            ValueScale::Decibel { factor: 20.0 },
            false,
            "dB of uncalibrated amplitude DN: 20·log10(DN), relative (not sigma0), \
             stretched 2–98 %",
        ),
        SarValues::Decibel => (
            ValueScale::Linear,
            true,
            "backscatter stored in dB, default range of sigma0",
        ),
        SarValues::LinearPower => (
            ValueScale::Decibel { factor: 10.0 },
            true,
            "10·log10 of linear backscatter, default range of sigma0",
        ),
    };
    let mut push = |name: String,
                    bands: Vec<&str>,
                    ratio: [Option<(usize, usize)>; 3],
                    range: [(f32, f32); 3]| {
        out.push(Preset {
            name,
            bands: bands.iter().map(|b| b.to_string()).collect(),
            index: None,
            scale,
            ratio,
            range: calibrated.then_some(range),
            note: Some(note.to_string()),
        });
    };
    let [co_range, cross_range, ratio_range] = SAR_DB_RANGES;
    if has(co) {
        push(format!("{co} dB"), vec![co], [None; 3], [co_range; 3]);
    }
    if has(cross) {
        push(
            format!("{cross} dB"),
            vec![cross],
            [None; 3],
            [cross_range; 3],
        );
    }
    if has(co) && has(cross) {
        push(
            format!("{co}/{cross} dB"),
            vec![co, cross],
            [Some((0, 1)); 3],
            [ratio_range; 3],
        );
        push(
            format!("{co}, {cross}, {co}/{cross} dB"),
            vec![co, cross],
            [None, None, Some((0, 1))],
            [co_range, cross_range, ratio_range],
        );
    }
}

/// The presets the viewer offers.
///
/// - Sentinel-2: `True colour` (B04, B03, B02), `False colour` (B08, B04, B03), `NDVI`
///   ((B08 - B04) / (B08 + B04), brown to green) and `NDWI` ((B03 - B08) / (B03 + B08), blues)
///   where the product has those bands.
/// - Sentinel-1: `VV dB`, `VH dB`, `VV/VH dB` and a `VV, VH, VV/VH dB` colour composite (and
///   the same for HH/HV), in decibels as [`SarValues`] says; an `R, G, B` quick-look as colour.
/// - Otherwise (or if none applies) a grey view of the first band.
pub fn presets_for(product: &Product) -> Vec<Preset> {
    let has = |b: &str| product.bands.iter().any(|band| band.name == b);
    let mut presets = Vec::new();
    if is_sentinel2(product) {
        for (name, bands) in [
            ("True colour", ["B04", "B03", "B02"]),
            ("False colour", ["B08", "B04", "B03"]),
        ] {
            if bands.iter().all(|b| has(b)) {
                presets.push(Preset::plain(name, &bands));
            }
        }
        for (name, bands, map) in [
            ("NDVI", ["B08", "B04"], Colormap::BrownGreen),
            ("NDWI", ["B03", "B08"], Colormap::Blues),
        ] {
            if bands.iter().all(|b| has(b)) {
                let mut p = Preset::plain(name, &bands);
                p.index = Some(map);
                presets.push(p);
            }
        }
    }
    if is_sentinel1(product) {
        sar_presets(product, "VV", "VH", &mut presets);
        sar_presets(product, "HH", "HV", &mut presets);
    }
    if presets.is_empty() && ["R", "G", "B"].iter().all(|b| has(b)) {
        presets.push(Preset::plain("Colour (R, G, B)", &["R", "G", "B"]));
    }
    if presets.is_empty()
        && let Some(first) = product.bands.first()
    {
        presets.push(Preset::plain(
            &format!("{} (grey)", first.name),
            &[&first.name],
        ));
    }
    presets
}

/// Every band any preset of the product shows, in first-use order: what the viewer fetches
/// once, so that switching presets needs no new fetch.
pub fn preset_bands(presets: &[Preset]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in presets.iter().flat_map(|p| &p.bands) {
        if !out.contains(b) {
            out.push(b.clone());
        }
    }
    out
}

/// Collection of the products classify jobs make (class rasters, shown over their source).
pub const CLASSIFIED_COLLECTION: &str = "albedo-classified";

/// The product selected when the list arrives: the first Sentinel-2 product with local
/// pixels, else the first product with local pixels (never a classified product: its
/// classes are drawn over its source, not shown by themselves).
pub fn default_selection(products: &[Product]) -> Option<&Product> {
    let local = |p: &&Product| {
        local_grid(p).is_some() && !p.bands.is_empty() && p.collection != CLASSIFIED_COLLECTION
    };
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
    use albedo_shared::catalog::{Band, Georeferencing, ProductId};

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
        let layers = preset_bands(&presets_for(&s2));
        assert_eq!(layers, ["B04", "B03", "B02", "B08"]);
        let comp = ndvi
            .composite(&layers, &[], Some(0.0))
            .expect("index composite");
        assert_eq!(comp.channels[..2], [3, 0]);
        assert_eq!((comp.min[0], comp.max[0]), (-1.0, 1.0));
        assert_eq!(comp.nodata, Some(0.0));
        assert_eq!(presets_for(&s2)[3].bands, ["B03", "B08"]);
        // Without B08 there is no index.
        let rgb = product("sentinel-2-l1c", &["B02", "B03", "B04"], true);
        assert_eq!(presets_for(&rgb).len(), 1);
        let other = product("landsat", &["SR1", "SR2"], true);
        let grey = presets_for(&other);
        assert_eq!(grey.len(), 1);
        assert_eq!(grey[0].bands, ["SR1"]);
        assert_eq!(grey[0].channels(), [0, 0, 0]);
        assert!(presets_for(&product("sentinel-2-l2a", &[], false)).is_empty());
    }

    #[test]
    fn sentinel1_gets_decibel_presets() {
        // u16 digital numbers: amplitude, uncalibrated: 20 log10, percentile stretch.
        let s1 = product("sentinel-1-grd", &["VV", "VH"], true);
        let presets = presets_for(&s1);
        let names: Vec<_> = presets.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["VV dB", "VH dB", "VV/VH dB", "VV, VH, VV/VH dB"]);
        assert_eq!(presets[0].scale, ValueScale::Decibel { factor: 20.0 });
        assert_eq!(presets[0].range, None);
        assert!(presets[0].note.as_deref().unwrap().contains("uncalibrated"));
        assert_eq!(implied_nodata(&s1), Some(0.0));
        // VV/VH: VV minus VH in dB; DN 100 and 10 give 20 dB everywhere.
        let layers = preset_bands(&presets);
        assert_eq!(layers, ["VV", "VH"]);
        let vv = [100.0, 1000.0, 0.0, 10.0];
        let vh = [10.0, 100.0, 5.0, 1.0];
        let ratio = presets[2]
            .composite(&layers, &[&vv, &vh], Some(0.0))
            .unwrap();
        assert_eq!(ratio.channels, [0, 0, 0]);
        assert_eq!(ratio.minus, [Some(1); 3]);
        let (lo, hi) = (ratio.min[0], ratio.max[0]);
        assert!(
            (lo - 20.0).abs() < 1e-3 && (hi - 20.0).abs() < 1e-3,
            "{lo} {hi}"
        );
        // The nodata texel (VV 0) is left out of the percentiles: VV dB over 20..60.
        let vv_db = presets[0]
            .composite(&layers, &[&vv, &vh], Some(0.0))
            .unwrap();
        assert!(vv_db.min[0] > 20.0 && vv_db.max[0] < 60.0 && vv_db.max[0] > 58.0);
        assert_eq!(channel_range(&vv_db, &[&vv, &vh], 0).0, 20.0);
        // Float bands named dB are shown as they are, on calibrated ranges; HH/HV likewise.
        let mut db = product("sentinel-1-db", &["HH", "HV"], true);
        db.id = ProductId("S1A_x_HH_db".into());
        for b in &mut db.bands {
            b.dtype = Dtype::F32;
        }
        let presets = presets_for(&db);
        assert_eq!(presets[0].name, "HH dB");
        assert_eq!(presets[0].scale, ValueScale::Linear);
        assert_eq!(presets[0].range, Some([SAR_DB_RANGES[0]; 3]));
        assert_eq!(presets[1].range, Some([SAR_DB_RANGES[1]; 3]));
        assert_eq!(implied_nodata(&db), None);
        // Float linear power: 10 log10.
        db.id = ProductId("S1A_sigma0".into());
        db.collection = "sentinel-1-grd".into();
        assert_eq!(sar_values(&db, "HH"), SarValues::LinearPower);
        assert_eq!(
            presets_for(&db)[0].scale,
            ValueScale::Decibel { factor: 10.0 }
        );
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
        let classified = [product(CLASSIFIED_COLLECTION, &["class"], true)];
        assert_eq!(default_selection(&classified), None);
    }

    #[test]
    fn step_fits_the_canvas() {
        assert_eq!(fetch_step(1536, 768, 768, 512), 2);
        assert_eq!(fetch_step(100, 101, 768, 512), 1);
        assert_eq!(fetch_step(1280, 837, 768, 512), 1);
        assert_eq!(fetch_step(10980, 10980, 768, 512), 21);
    }
}
