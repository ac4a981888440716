//! Reading a product's bands over a window of its grid, for the wire.

use std::collections::HashMap;
use std::path::Path;

use albedo_shared::catalog::{Dtype, PixelAccess};
use albedo_shared::rasterwire::RasterHeader;

use super::{LocalBand, LocalProduct};
use crate::source::BandSource;
use crate::{RasterError, Window};

/// Most samples (all bands together) one [`read_bands`] call returns: 64 Mi.
pub const MAX_OUTPUT_SAMPLES: u64 = 64 * 1024 * 1024;

/// Band pixel of each sampled grid pixel along one axis: grid pixel `g` maps to band pixel
/// `floor(g * band_len / grid_len)` (nearest neighbour for bands coarser than the grid).
fn band_indices(start: u32, count: u32, step: u32, band_len: u32, grid_len: u32) -> Vec<u32> {
    (0..count)
        .map(|i| {
            let g = u64::from(start) + u64::from(i) * u64::from(step);
            (g * u64::from(band_len) / u64::from(grid_len)) as u32
        })
        .collect()
}

/// Writes `value` as one little-endian sample of `dtype` (a lossless copy when the value came
/// from a band of that same type; `as` casts otherwise).
fn put_sample(out: &mut [u8], dtype: Dtype, value: f64) {
    match dtype {
        Dtype::U8 => out[0] = value as u8,
        Dtype::U16 => out.copy_from_slice(&(value as u16).to_le_bytes()),
        Dtype::I16 => out.copy_from_slice(&(value as i16).to_le_bytes()),
        Dtype::U32 => out.copy_from_slice(&(value as u32).to_le_bytes()),
        Dtype::I32 => out.copy_from_slice(&(value as i32).to_le_bytes()),
        Dtype::F32 => out.copy_from_slice(&(value as f32).to_le_bytes()),
        Dtype::F64 => out.copy_from_slice(&value.to_le_bytes()),
    }
}

/// Reads the named bands over a window of the product grid (the grid of its finest band; coarser bands are
/// resampled by nearest neighbour: grid pixel gx maps to band pixel floor(gx * band_width / grid_width)),
/// every `step`-th grid pixel, and returns the wire header plus the band-sequential little-endian payload
/// (see albedo_shared::rasterwire). The output dtype is the bands' dtype when they share one, else f32.
/// Reject unknown band names, empty band lists, windows outside the grid, and outputs over 64 Mi samples.
///
/// The header's nodata is the bands' common nodata value, or none when they differ.
///
/// Bands in GeoTIFFs decode only the chunks holding a sampled pixel; bands in a PNG (a
/// quick-look product's channels) decode the whole PNG once per call and file.
pub fn read_bands(
    product: &LocalProduct,
    bands: &[&str],
    window: Window,
    step: u32,
) -> Result<(RasterHeader, Vec<u8>), RasterError> {
    let id = &product.product.id.0;
    if bands.is_empty() {
        return Err(RasterError::NoBands);
    }
    let selected: Vec<&LocalBand> = bands
        .iter()
        .map(|name| {
            product
                .bands
                .iter()
                .find(|b| b.band.name == *name)
                .or_else(|| {
                    product
                        .bands
                        .iter()
                        .find(|b| b.band.name.eq_ignore_ascii_case(name))
                })
                .ok_or_else(|| RasterError::UnknownBand {
                    product: id.clone(),
                    band: (*name).to_string(),
                    available: product.bands.iter().map(|b| b.band.name.clone()).collect(),
                })
        })
        .collect::<Result<_, _>>()?;
    let (grid_w, grid_h) = match product.product.pixels {
        PixelAccess::Local { width, height } => (width, height),
        PixelAccess::Remote => {
            return Err(RasterError::NotLocal {
                product: id.clone(),
            });
        }
    };
    if step == 0 {
        return Err(RasterError::ZeroStep);
    }
    if !window.fits_in(grid_w, grid_h) {
        return Err(RasterError::WindowOutside {
            window,
            width: grid_w,
            height: grid_h,
        });
    }
    let (out_w, out_h) = window.output_size(step);
    let per_band = u64::from(out_w) * u64::from(out_h);
    let samples = per_band * selected.len() as u64;
    if samples > MAX_OUTPUT_SAMPLES {
        return Err(RasterError::TooLarge {
            samples,
            limit: MAX_OUTPUT_SAMPLES,
        });
    }
    let first = &selected[0].band;
    let dtype = if selected.iter().all(|b| b.band.dtype == first.dtype) {
        first.dtype
    } else {
        Dtype::F32
    };
    let same_nodata = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
        (None, None) => true,
        _ => false,
    };
    let nodata = if selected
        .iter()
        .all(|b| same_nodata(b.band.nodata, first.nodata))
    {
        first.nodata
    } else {
        tracing::debug!(product = %id, "bands declare different nodata values; none is sent");
        None
    };

    let size = dtype.size_bytes();
    let per_band = per_band as usize;
    let mut payload = vec![0u8; samples as usize * size];
    let mut open: HashMap<&Path, BandSource> = HashMap::new();
    for (k, local) in selected.iter().enumerate() {
        if !open.contains_key(local.path.as_path()) {
            open.insert(local.path.as_path(), BandSource::open(&local.path)?);
        }
        let tif = &open[local.path.as_path()];
        let (bw, bh) = (tif.width(), tif.height());
        if (bw, bh) != (local.band.width, local.band.height) {
            return Err(RasterError::Inconsistent {
                path: local.path.clone(),
                what: format!(
                    "band {} is {bw}x{bh} pixels on disk, the catalog says {}x{}",
                    local.band.name, local.band.width, local.band.height
                ),
            });
        }
        let cols = band_indices(window.x, out_w, step, bw, grid_w);
        let rows = band_indices(window.y, out_h, step, bh, grid_h);
        let band_out = &mut payload[k * per_band * size..(k + 1) * per_band * size];
        tif.read_indexed(local.index, &cols, &rows, |idx, v| {
            put_sample(&mut band_out[idx * size..(idx + 1) * size], dtype, v);
        })?;
    }
    let header = RasterHeader {
        dtype,
        bands: selected.len() as u16,
        width: out_w,
        height: out_h,
        nodata,
    };
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_band_pixels() {
        // A 20 m band under a 10 m grid: two grid pixels per band pixel.
        assert_eq!(band_indices(0, 6, 1, 768, 1536), vec![0, 0, 1, 1, 2, 2]);
        assert_eq!(band_indices(3, 3, 3, 768, 1536), vec![1, 3, 4]);
        // Same resolution: identity.
        assert_eq!(band_indices(5, 3, 2, 100, 100), vec![5, 7, 9]);
        // The last grid pixel maps inside the band.
        assert_eq!(band_indices(1535, 1, 1, 256, 1536), vec![255]);
    }

    #[test]
    fn samples_are_little_endian() {
        let mut b = [0u8; 2];
        put_sample(&mut b, Dtype::U16, 1632.0);
        assert_eq!(u16::from_le_bytes(b), 1632);
        let mut b = [0u8; 4];
        // A value read from an f32 file goes back to the same f32.
        let value = f64::from(-10.147_89_f32);
        put_sample(&mut b, Dtype::F32, value);
        assert_eq!(f64::from(f32::from_le_bytes(b)), value);
    }
}
