//! A product's quick-look: a small PNG rendered on the CPU.
//!
//! What it shows:
//! - Sentinel-2 (and any product with bands `B04`, `B03`, `B02`): true colour, red = B04,
//!   green = B03, blue = B02;
//! - Sentinel-1: the VV band (else the first band) in grey, in decibels: linear amplitude
//!   (`sentinel-1-grd`, integer samples) becomes `10 * log10(v)`, products already in dB
//!   (`sentinel-1-db`, float samples) are shown as they are;
//! - a product with bands `R`, `G`, `B` (a quick-look product's PNG channels): those
//!   channels as red, green, blue;
//! - a class product (one `u8` band with a palette: the STAC property `albedo:classes` of a
//!   classify job's product, else the band file's own TIFF `ColorMap`): each class in its
//!   colour, no stretch; nodata and values of no class are transparent ([`palette`]);
//! - anything else: its first band in grey.
//!
//! Each other channel is stretched linearly between its 2nd and 98th percentile of the valid
//! samples (nodata, NaN and, for linear amplitude, values `<= 0` are not valid). A pixel where
//! any channel is not valid is transparent (alpha 0); the others are opaque.
//!
//! Size: the longest side is `min(size, grid side)` pixels, the other side keeps the aspect
//! ratio. Output pixel `i` samples grid pixel `floor(i * grid_len / out_len)` (nearest
//! neighbour), so only the tiles holding a sampled pixel are decoded.
//!
//! What it is not: no resampling filter, no overviews yet (a quick-look of a huge file decodes
//! every tile a sampled row crosses), no caching.

use albedo_shared::catalog::{Dtype, PixelAccess};

use crate::RasterError;
use crate::classmap::{self, Palette};
use crate::product::{LocalBand, LocalProduct};
use crate::source::BandSource;

/// Longest side of a quick-look when none is asked for.
pub const DEFAULT_SIZE: u32 = 256;
/// Largest longest side of a quick-look.
pub const MAX_SIZE: u32 = 1024;
/// Lower percentile of the stretch.
pub const LOW_PERCENTILE: f64 = 0.02;
/// Upper percentile of the stretch.
pub const HIGH_PERCENTILE: f64 = 0.98;

/// How the channels' values are turned into displayed values before the stretch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Values as they are.
    AsIs,
    /// `10 * log10(v)`; values `<= 0` are not valid.
    Decibel,
}

/// Which bands a quick-look shows and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// One band name (grey) or three (red, green, blue).
    pub bands: Vec<String>,
    /// Value transform before the stretch.
    pub scale: Scale,
}

/// The bands and scale [`render`] uses for `product` (see the module documentation).
pub fn recipe(product: &LocalProduct) -> Recipe {
    let p = &product.product;
    let has = |name: &str| product.bands.iter().any(|b| b.band.name == name);
    if has("B04") && has("B03") && has("B02") {
        return Recipe {
            bands: vec!["B04".into(), "B03".into(), "B02".into()],
            scale: Scale::AsIs,
        };
    }
    // An image's own colour channels (a quick-look product's PNG), in their own colours.
    if has("R") && has("G") && has("B") {
        return Recipe {
            bands: vec!["R".into(), "G".into(), "B".into()],
            scale: Scale::AsIs,
        };
    }
    let is_s1 = p.collection.starts_with("sentinel-1")
        || p.platform
            .as_deref()
            .is_some_and(|pl| pl.starts_with("sentinel-1"));
    let first = product
        .bands
        .first()
        .map(|b| b.band.name.clone())
        .unwrap_or_default();
    if is_s1 {
        let vv = product
            .bands
            .iter()
            .find(|b| b.band.name.eq_ignore_ascii_case("vv"))
            .map(|b| b.band.name.clone())
            .unwrap_or(first);
        let band = product.bands.iter().find(|b| b.band.name == vv);
        let is_float = band.is_some_and(|b| matches!(b.band.dtype, Dtype::F32 | Dtype::F64));
        let already_db = p.collection == "sentinel-1-db" || is_float;
        return Recipe {
            bands: vec![vv],
            scale: if already_db {
                Scale::AsIs
            } else {
                Scale::Decibel
            },
        };
    }
    Recipe {
        bands: vec![first],
        scale: Scale::AsIs,
    }
}

/// The colours of a class product: a product whose quick-look shows one band (see
/// [`recipe`]) of type `u8`, with classes in its STAC property `albedo:classes`
/// (`[{value, name, color: "#rrggbb"}]`) or else a TIFF `ColorMap` in that band's file
/// (a palette image, such as a class raster of [`crate::classmap`]). `None` for any other
/// product.
pub fn palette(product: &LocalProduct) -> Result<Option<Palette>, RasterError> {
    let recipe = recipe(product);
    let [name] = recipe.bands.as_slice() else {
        return Ok(None);
    };
    let Some(local) = product.bands.iter().find(|b| &b.band.name == name) else {
        return Ok(None);
    };
    if local.band.dtype != Dtype::U8 || recipe.scale != Scale::AsIs {
        return Ok(None);
    }
    let classes = &product.stac_item["properties"]["albedo:classes"];
    if let Some(p) = classmap::palette_of_classes(classes) {
        return Ok(Some(p));
    }
    classmap::read_color_map(&local.path)
}

/// A rendered quick-look: 8-bit RGBA, row-major, `width * height * 4` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA samples.
    pub rgba: Vec<u8>,
}

/// Output size for a `grid_w` x `grid_h` grid and a longest side of `size` (never larger than
/// the grid).
pub fn output_size(grid_w: u32, grid_h: u32, size: u32) -> (u32, u32) {
    let long = grid_w.max(grid_h).max(1);
    let out_long = size.min(long).max(1);
    let scale = |side: u32| -> u32 {
        let v = (u64::from(side) * u64::from(out_long) + u64::from(long) / 2) / u64::from(long);
        (v as u32).clamp(1, side.max(1))
    };
    if grid_w >= grid_h {
        (out_long, scale(grid_h))
    } else {
        (scale(grid_w), out_long)
    }
}

/// Grid pixel of each output pixel along one axis, then mapped onto a band of `band_len`
/// pixels (nearest neighbour for bands coarser than the grid).
pub fn sample_indices(out_len: u32, grid_len: u32, band_len: u32) -> Vec<u32> {
    (0..out_len)
        .map(|i| {
            let g = u64::from(i) * u64::from(grid_len) / u64::from(out_len);
            (g * u64::from(band_len) / u64::from(grid_len)) as u32
        })
        .collect()
}

/// The value at fraction `p` of the sorted `values` (index `round(p * (n - 1))`); `None` when
/// empty. Reorders `values`.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let k = ((values.len() - 1) as f64 * p).round() as usize;
    let (_, v, _) = values.select_nth_unstable_by(k, f64::total_cmp);
    Some(*v)
}

/// Maps `v` into 0..=255 between `lo` and `hi` (0 when `hi <= lo`).
pub fn stretch(v: f64, lo: f64, hi: f64) -> u8 {
    if hi <= lo {
        return 0;
    }
    (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8
}

/// One channel's displayed values at the sampled pixels; `None` where not valid.
fn read_channel(
    local: &LocalBand,
    grid: (u32, u32),
    out: (u32, u32),
    scale: Scale,
) -> Result<Vec<Option<f64>>, RasterError> {
    let tif = BandSource::open(&local.path)?;
    let cols = sample_indices(out.0, grid.0, tif.width());
    let rows = sample_indices(out.1, grid.1, tif.height());
    let nodata = local.band.nodata.or(tif.nodata());
    let mut values = vec![None; out.0 as usize * out.1 as usize];
    tif.read_indexed(local.index, &cols, &rows, |idx, v| {
        let is_nodata = v.is_nan() || nodata.is_some_and(|nd| v == nd);
        values[idx] = if is_nodata {
            None
        } else {
            match scale {
                Scale::AsIs => Some(v),
                Scale::Decibel if v > 0.0 => Some(10.0 * v.log10()),
                Scale::Decibel => None,
            }
        };
    })?;
    Ok(values)
}

/// Renders the quick-look of `product` with a longest side of `size` pixels (1..=[`MAX_SIZE`]).
pub fn render(product: &LocalProduct, size: u32) -> Result<Image, RasterError> {
    let id = &product.product.id.0;
    if size == 0 || size > MAX_SIZE {
        return Err(RasterError::QuicklookSize {
            size,
            max: MAX_SIZE,
        });
    }
    let PixelAccess::Local { width, height } = product.product.pixels else {
        return Err(RasterError::NotLocal {
            product: id.clone(),
        });
    };
    let recipe = recipe(product);
    let out = output_size(width, height, size);
    if let Some(colours) = palette(product)? {
        let local = product
            .bands
            .iter()
            .find(|b| b.band.name == recipe.bands[0])
            .ok_or(RasterError::NoBands)?;
        let values = read_channel(local, (width, height), out, Scale::AsIs)?;
        let mut rgba = vec![0u8; values.len() * 4];
        for (v, px) in values.iter().zip(rgba.chunks_exact_mut(4)) {
            let colour = v
                .filter(|v| (0.0..=255.0).contains(v))
                .and_then(|v| colours[v as usize]);
            if let Some([r, g, b]) = colour {
                px.copy_from_slice(&[r, g, b, 255]);
            }
        }
        return Ok(Image {
            width: out.0,
            height: out.1,
            rgba,
        });
    }
    let mut channels = Vec::with_capacity(recipe.bands.len());
    for name in &recipe.bands {
        let local = product
            .bands
            .iter()
            .find(|b| &b.band.name == name)
            .ok_or(RasterError::NoBands)?;
        channels.push(read_channel(local, (width, height), out, recipe.scale)?);
    }
    let ranges: Vec<(f64, f64)> = channels
        .iter()
        .map(|c| {
            let mut valid: Vec<f64> = c.iter().flatten().copied().collect();
            let lo = percentile(&mut valid, LOW_PERCENTILE).unwrap_or(0.0);
            let hi = percentile(&mut valid, HIGH_PERCENTILE).unwrap_or(0.0);
            (lo, hi)
        })
        .collect();
    let n = out.0 as usize * out.1 as usize;
    let mut rgba = vec![0u8; n * 4];
    for (i, px) in rgba.chunks_exact_mut(4).enumerate() {
        let mut rgb = [0u8; 3];
        let mut valid = true;
        for (k, slot) in rgb.iter_mut().enumerate() {
            let c = k.min(channels.len() - 1);
            match channels[c][i] {
                Some(v) => *slot = stretch(v, ranges[c].0, ranges[c].1),
                None => valid = false,
            }
        }
        if valid {
            px.copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
        }
    }
    Ok(Image {
        width: out.0,
        height: out.1,
        rgba,
    })
}

/// Encodes an [`Image`] as an 8-bit RGBA PNG.
pub fn encode_png(image: &Image) -> Result<Vec<u8>, RasterError> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, image.width, image.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| RasterError::Png(e.to_string()))?;
        writer
            .write_image_data(&image.rgba)
            .map_err(|e| RasterError::Png(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| RasterError::Png(e.to_string()))?;
    }
    Ok(bytes)
}

/// [`render`] then [`encode_png`].
pub fn render_png(product: &LocalProduct, size: u32) -> Result<Vec<u8>, RasterError> {
    encode_png(&render(product, size)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_the_aspect_and_never_upsample() {
        assert_eq!(output_size(1536, 1536, 256), (256, 256));
        assert_eq!(output_size(268, 217, 256), (256, 207));
        assert_eq!(output_size(217, 268, 100), (81, 100));
        assert_eq!(output_size(100, 50, 1024), (100, 50));
        assert_eq!(output_size(5000, 1, 256), (256, 1));
    }

    #[test]
    fn indices_sample_the_grid_then_the_band() {
        assert_eq!(sample_indices(4, 8, 8), vec![0, 2, 4, 6]);
        // A band at half the grid resolution.
        assert_eq!(sample_indices(4, 8, 4), vec![0, 1, 2, 3]);
        assert_eq!(sample_indices(3, 3, 3), vec![0, 1, 2]);
    }

    #[test]
    fn percentiles_and_stretch() {
        let mut v: Vec<f64> = (0..=100).map(f64::from).rev().collect();
        assert_eq!(percentile(&mut v, 0.02), Some(2.0));
        assert_eq!(percentile(&mut v, 0.98), Some(98.0));
        assert_eq!(percentile(&mut [], 0.5), None);
        assert_eq!(stretch(2.0, 2.0, 98.0), 0);
        assert_eq!(stretch(98.0, 2.0, 98.0), 255);
        assert_eq!(stretch(50.0, 2.0, 98.0), 128);
        assert_eq!(stretch(500.0, 2.0, 98.0), 255);
        assert_eq!(stretch(5.0, 5.0, 5.0), 0);
    }

    #[test]
    fn a_class_raster_is_drawn_in_its_class_colours_with_nodata_transparent() {
        use crate::classmap::{ClassGeoref, NODATA, classes_of, default_color, write_class_cog};
        let src = crate::GeoTiff::open(&crate::geotiff::tests::data(crate::geotiff::tests::B04))
            .expect("sample B04");
        let dir = crate::geotiff::tests::TempDir::new("quicklook-classes");
        let path = dir.0.join("classes.tif");
        let (w, h) = (48u32, 24u32);
        let values: Vec<u8> = (0..w * h)
            .map(|i| if i % 7 == 0 { NODATA } else { (i % 3) as u8 })
            .collect();
        let names = ["forest".to_string(), "water".into(), "urban".into()];
        let classes = classes_of(&names).unwrap();
        let georef = ClassGeoref::of(&src);
        write_class_cog(&path, w, h, &values, &georef, &classes, &Default::default()).unwrap();
        let mut p = crate::product::scan(&path).unwrap().remove(0);
        assert_eq!(p.bands.len(), 1);
        assert_eq!(p.bands[0].band.dtype, Dtype::U8);

        // The file's own ColorMap.
        let image = render(&p, 1024).unwrap();
        assert_eq!((image.width, image.height), (w, h));
        for (v, px) in values.iter().zip(image.rgba.chunks_exact(4)) {
            if *v == NODATA {
                assert_eq!(px[3], 0);
            } else {
                let c = default_color(usize::from(*v));
                assert_eq!(px, [c[0], c[1], c[2], 255], "value {v}");
            }
        }

        // The product's classes win; a value of no class is transparent.
        p.stac_item["properties"]["albedo:classes"] = serde_json::json!([
            {"value": 0, "name": "forest", "color": "#ff0000"},
            {"value": 1, "name": "water", "color": "#0000FF"}
        ]);
        let image = render(&p, 1024).unwrap();
        for (v, px) in values.iter().zip(image.rgba.chunks_exact(4)) {
            let expect = match v {
                0 => [255, 0, 0, 255],
                1 => [0, 0, 255, 255],
                _ => [0, 0, 0, 0],
            };
            assert_eq!(px, expect, "value {v}");
        }
        let png = encode_png(&image).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn declared_nodata_is_transparent_and_left_out_of_the_stretch() {
        let folder = crate::geotiff::tests::data("s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR");
        let mut products = crate::product::scan(&folder).unwrap();
        assert_eq!(products.len(), 1);
        let mut p = products.remove(0);
        let before = render(&p, 1024).unwrap();
        assert!(before.rgba.chunks_exact(4).all(|px| px[3] == 255));
        // Declare the value of the first pixel as nodata: every pixel holding it turns
        // transparent, the others stay opaque.
        let tif = crate::GeoTiff::open(&p.bands[0].path).unwrap();
        let values = tif
            .read_window_f64(0, crate::Window::full(tif.width(), tif.height()), 1)
            .unwrap();
        p.bands[0].band.nodata = Some(values[0]);
        let after = render(&p, 1024).unwrap();
        assert_eq!((after.width, after.height), (tif.width(), tif.height()));
        for (v, px) in values.iter().zip(after.rgba.chunks_exact(4)) {
            assert_eq!(px[3] == 0, *v == values[0]);
        }
        let png = encode_png(&after).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
