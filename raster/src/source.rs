//! Where a local band's pixels are read from: a GeoTIFF band or one channel of a PNG.
//!
//! What it is: [`BandSource`], the one band-reading path that [`crate::product::read_bands`]
//! and [`crate::quicklook`] share. A GeoTIFF decodes only the chunks holding a sampled pixel
//! (see [`GeoTiff`]); a PNG (the ESA quick-look of a quick-look-only product) has no chunks
//! that can be read alone, so opening one decodes the whole image into memory once per
//! call (about 0.8 MB for the 522x510 RGB Kara Sea quick-look) and samples from that.
//!
//! What it is not: no caching across calls, no 16-bit or interlaced-specific handling beyond
//! what the `png` crate does: PNGs must decode to 8-bit samples (palette images are expanded).

use std::path::{Path, PathBuf};

use crate::{GeoTiff, RasterError, Window};

/// Whether `path` names a PNG by its extension (`.png`, any case).
pub fn is_png(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// A decoded 8-bit PNG: `channels` interleaved samples per pixel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngPixels {
    path: PathBuf,
    width: u32,
    height: u32,
    channels: u16,
    data: Vec<u8>,
}

fn png_err(path: &Path, e: png::DecodingError) -> RasterError {
    match e {
        png::DecodingError::IoError(source) => RasterError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => RasterError::Corrupt {
            path: path.to_path_buf(),
            what: format!("not a readable PNG: {other}"),
        },
    }
}

/// An 8-bit PNG opened past its header (palette expanded), with its output colour type.
fn png_reader(
    path: &Path,
) -> Result<
    (
        png::Reader<std::io::BufReader<std::fs::File>>,
        png::ColorType,
    ),
    RasterError,
> {
    let file = std::fs::File::open(path).map_err(|source| RasterError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let reader = decoder.read_info().map_err(|e| png_err(path, e))?;
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return Err(RasterError::Unsupported {
            path: path.to_path_buf(),
            what: format!("PNG of {depth:?} bits per sample (only 8-bit is read)"),
        });
    }
    Ok((reader, color))
}

/// Width, height and channel names' count of a PNG, from its header only (no pixel decoding).
pub fn png_info(path: &Path) -> Result<(u32, u32, u16), RasterError> {
    let (reader, color) = png_reader(path)?;
    let info = reader.info();
    Ok((info.width, info.height, color.samples() as u16))
}

impl PngPixels {
    /// Decodes the whole PNG (palette expanded; must be 8 bits per sample).
    pub fn open(path: &Path) -> Result<PngPixels, RasterError> {
        let (mut reader, color) = png_reader(path)?;
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| RasterError::Corrupt {
                path: path.to_path_buf(),
                what: "PNG dimensions overflow".into(),
            })?;
        let mut data = vec![0u8; size];
        let frame = reader.next_frame(&mut data).map_err(|e| png_err(path, e))?;
        let channels = color.samples();
        let expected = frame.width as usize * frame.height as usize * channels;
        if frame.line_size != frame.width as usize * channels || data.len() < expected {
            return Err(RasterError::Corrupt {
                path: path.to_path_buf(),
                what: format!("PNG decoded to {} bytes, expected {expected}", data.len()),
            });
        }
        data.truncate(expected);
        Ok(PngPixels {
            path: path.to_path_buf(),
            width: frame.width,
            height: frame.height,
            channels: channels as u16,
            data,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Samples per pixel (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA).
    pub fn channels(&self) -> u16 {
        self.channels
    }
}

/// An opened band file: a GeoTIFF or a decoded PNG.
#[derive(Debug)]
pub enum BandSource {
    /// A GeoTIFF, read chunk by chunk (boxed: its reader state is large).
    Tiff(Box<GeoTiff>),
    /// A PNG, decoded whole at open.
    Png(PngPixels),
}

impl BandSource {
    /// Opens `path` as a PNG when its extension says so, else as a GeoTIFF.
    pub fn open(path: &Path) -> Result<BandSource, RasterError> {
        if is_png(path) {
            PngPixels::open(path).map(BandSource::Png)
        } else {
            GeoTiff::open(path).map(|t| BandSource::Tiff(Box::new(t)))
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        match self {
            BandSource::Tiff(t) => t.width(),
            BandSource::Png(p) => p.width,
        }
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        match self {
            BandSource::Tiff(t) => t.height(),
            BandSource::Png(p) => p.height,
        }
    }

    /// The file's own nodata value (PNGs have none).
    pub fn nodata(&self) -> Option<f64> {
        match self {
            BandSource::Tiff(t) => t.nodata(),
            BandSource::Png(_) => None,
        }
    }

    /// Reads band (channel) `band` at every (`cols[i]`, `rows[j]`), handing each value to
    /// `sink(j * cols.len() + i, value)`; both lists sorted and inside the image (as
    /// [`GeoTiff`]'s indexed read, full-resolution level).
    pub(crate) fn read_indexed(
        &self,
        band: u16,
        cols: &[u32],
        rows: &[u32],
        mut sink: impl FnMut(usize, f64),
    ) -> Result<(), RasterError> {
        let p = match self {
            BandSource::Tiff(t) => return t.read_indexed(0, band, cols, rows, sink),
            BandSource::Png(p) => p,
        };
        if band >= p.channels {
            return Err(RasterError::BandOutOfRange {
                path: p.path.clone(),
                band,
                count: p.channels,
            });
        }
        let inside = |v: &[u32], limit: u32| v.iter().all(|&i| i < limit);
        if !inside(cols, p.width) || !inside(rows, p.height) {
            return Err(RasterError::WindowOutside {
                window: Window::spanned_by(cols, rows),
                width: p.width,
                height: p.height,
            });
        }
        let (w, c) = (p.width as usize, usize::from(p.channels));
        let out_w = cols.len();
        for (j, &row) in rows.iter().enumerate() {
            let base = row as usize * w;
            for (i, &col) in cols.iter().enumerate() {
                let at = (base + col as usize) * c + usize::from(band);
                sink(j * out_w + i, f64::from(p.data[at]));
            }
        }
        Ok(())
    }
}
