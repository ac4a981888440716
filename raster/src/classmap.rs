//! Class rasters: the single-band `u8` GeoTIFFs a classify job writes.
//!
//! What it is: [`write_class_cog`] writes a class map (one byte per pixel, [`NODATA`] where
//! there is no class) as a Cloud-Optimised GeoTIFF: classic little-endian TIFF, 256x256
//! tiles, DEFLATE (zlib) compression, `PhotometricInterpretation` = Palette with a TIFF
//! `ColorMap` made from the classes' colours, GDAL's nodata tag (42113) = 255, the class
//! names in GDAL's metadata tag (42112), the georeferencing of the source band (pixel scale
//! and tiepoint, or a transformation matrix, or GCP tiepoints, with a GeoKey directory naming
//! the EPSG code), and internal overviews, each half the size of the level above (rounded
//! up) down to the first level that fits in one tile, each pixel the **mode** of the valid
//! pixels of its 2x2 block ([`overview`]). The overviews are exactly the levels of the tile
//! pyramid the backend serves, so coarse tiles show real classes, never averages of class
//! values. Layout as GDAL's COG driver: every image directory first, then the tile data
//! from the smallest overview to the full-resolution image. The file is written to a
//! temporary file of its own beside `<path>` (`.<name>.<pid>-<nonce>.part`, created new, so
//! two writers of one path, such as two attempts of one job, never share it) and renamed
//! into place, so a reader never sees half a file.
//!
//! What it is not: no BigTIFF (files stay under 4 GiB; a 10980x10980 class map compresses
//! far below that), no other sample types, no masks.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::georef::Gcp;
use crate::{GeoTiff, RasterError};

/// The value of pixels without a class.
pub const NODATA: u8 = 255;
/// The largest class value.
pub const MAX_CLASS_VALUE: u8 = 254;
/// Side of a tile in pixels.
pub const TILE_SIZE: u32 = 256;

/// One class of a class raster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassEntry {
    /// Pixel value (0..=[`MAX_CLASS_VALUE`]).
    pub value: u8,
    /// Name.
    pub name: String,
    /// Display colour (red, green, blue).
    pub color: [u8; 3],
}

/// Distinct colours for classes without one of their own (a qualitative palette).
const PALETTE: [[u8; 3]; 20] = [
    [0x1f, 0x77, 0xb4],
    [0x2c, 0xa0, 0x2c],
    [0xd6, 0x27, 0x28],
    [0xff, 0x7f, 0x0e],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22],
    [0x17, 0xbe, 0xcf],
    [0xae, 0xc7, 0xe8],
    [0x98, 0xdf, 0x8a],
    [0xff, 0x98, 0x96],
    [0xff, 0xbb, 0x78],
    [0xc5, 0xb0, 0xd5],
    [0xc4, 0x9c, 0x94],
    [0xf7, 0xb6, 0xd2],
    [0xc7, 0xc7, 0xc7],
    [0xdb, 0xdb, 0x8d],
    [0x9e, 0xda, 0xe5],
];

/// The colour of class `index` (0-based) in the default palette; it repeats after 20.
pub fn default_color(index: usize) -> [u8; 3] {
    PALETTE[index % PALETTE.len()]
}

/// `#rrggbb` of a colour.
pub fn color_hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// The classes of a model's class names, in order: value `i` for name `i`, colours from
/// [`default_color`]. Errors past 255 classes.
pub fn classes_of(names: &[String]) -> Result<Vec<ClassEntry>, RasterError> {
    if names.len() > usize::from(MAX_CLASS_VALUE) + 1 {
        return Err(RasterError::ClassRaster(format!(
            "{} classes do not fit in a u8 raster with nodata {NODATA}",
            names.len()
        )));
    }
    Ok(names
        .iter()
        .enumerate()
        .map(|(i, name)| ClassEntry {
            value: i as u8,
            name: name.clone(),
            color: default_color(i),
        })
        .collect())
}

/// Display colours by pixel value: `None` for values without a colour (nodata, values of no
/// class).
pub type Palette = [Option<[u8; 3]>; 256];

/// The palette of a class product's classes as its STAC property `albedo:classes` holds
/// them (`[{"value": 0, "name": "forest", "color": "#2ca02c"}, ...]`): each class value in
/// its colour (a class without a usable colour gets [`default_color`] of its value); `None`
/// when `classes` is not such a list. [`NODATA`] never gets a colour.
pub fn palette_of_classes(classes: &serde_json::Value) -> Option<Palette> {
    let list = classes.as_array().filter(|l| !l.is_empty())?;
    let mut palette: Palette = [None; 256];
    for c in list {
        let value = c
            .get("value")?
            .as_u64()
            .filter(|v| *v <= u64::from(MAX_CLASS_VALUE))?;
        let color = c
            .get("color")
            .and_then(serde_json::Value::as_str)
            .and_then(albedo_shared::api::parse_hex_rgb)
            .unwrap_or_else(|| default_color(value as usize));
        palette[value as usize] = Some(color);
    }
    Some(palette)
}

/// The `ColorMap` of the 8-bit palette TIFF at `path` (`PhotometricInterpretation` 3, as
/// [`write_class_cog`] writes), each 16-bit entry cut to 8 bits; `None` for any other file
/// (not a TIFF, not a palette image). Every value gets a colour: nodata is the reader's
/// (the file's nodata tag).
pub fn read_color_map(path: &Path) -> Result<Option<Palette>, RasterError> {
    use tiff::tags::Tag;
    let file = std::fs::File::open(path).map_err(|source| RasterError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let Ok(mut d) = tiff::decoder::Decoder::new(std::io::BufReader::new(file)) else {
        return Ok(None);
    };
    let photometric = d
        .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
        .ok()
        .flatten();
    let bits: Option<Vec<u16>> = d.find_tag_unsigned_vec(Tag::BitsPerSample).ok().flatten();
    if photometric != Some(3) || bits.as_deref() != Some(&[8]) {
        return Ok(None);
    }
    let Some(map) = d
        .find_tag_unsigned_vec::<u16>(Tag::ColorMap)
        .ok()
        .flatten()
        .filter(|m| m.len() == 3 * 256)
    else {
        return Ok(None);
    };
    let mut palette: Palette = [None; 256];
    for (i, slot) in palette.iter_mut().enumerate() {
        *slot = Some([
            (map[i] >> 8) as u8,
            (map[256 + i] >> 8) as u8,
            (map[512 + i] >> 8) as u8,
        ]);
    }
    Ok(Some(palette))
}

/// Georeferencing to write: what [`GeoTiff`] read from the source band.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassGeoref {
    /// Affine geotransform (GDAL order) of the grid.
    pub geotransform: Option<[f64; 6]>,
    /// EPSG code of the CRS.
    pub epsg: Option<u32>,
    /// Ground control points (written only without a geotransform).
    pub gcps: Vec<Gcp>,
}

impl ClassGeoref {
    /// The georeferencing of `tiff` (the source band on the class raster's grid).
    pub fn of(tiff: &GeoTiff) -> ClassGeoref {
        ClassGeoref {
            geotransform: tiff.geotransform(),
            epsg: tiff.epsg(),
            gcps: tiff.gcps().to_vec(),
        }
    }
}

/// One overview level down: `ceil(w/2) x ceil(h/2)`, each pixel the most frequent valid
/// value of its (up to) 2x2 block, the smaller value on a tie, [`NODATA`] if none is valid.
pub fn overview(data: &[u8], width: u32, height: u32) -> (Vec<u8>, u32, u32) {
    let (w, h) = (width as usize, height as usize);
    let (ow, oh) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = vec![NODATA; ow * oh];
    for j in 0..oh {
        for i in 0..ow {
            let mut vals = [NODATA; 4];
            let mut n = 0;
            for y in 2 * j..(2 * j + 2).min(h) {
                for x in 2 * i..(2 * i + 2).min(w) {
                    let v = data[y * w + x];
                    if v != NODATA {
                        vals[n] = v;
                        n += 1;
                    }
                }
            }
            let vals = &mut vals[..n];
            vals.sort_unstable();
            let mut best = NODATA;
            let mut best_count = 0;
            let mut k = 0;
            while k < vals.len() {
                let run = vals[k..].iter().take_while(|&&v| v == vals[k]).count();
                if run > best_count {
                    best = vals[k];
                    best_count = run;
                }
                k += run;
            }
            out[j * ow + i] = best;
        }
    }
    (out, ow as u32, oh as u32)
}

/// A TIFF field value.
enum Val {
    Short(Vec<u16>),
    Long(Vec<u32>),
    Double(Vec<f64>),
    Ascii(Vec<u8>),
}

impl Val {
    fn ascii(s: &str) -> Val {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        Val::Ascii(b)
    }

    fn type_code(&self) -> u16 {
        match self {
            Val::Ascii(_) => 2,
            Val::Short(_) => 3,
            Val::Long(_) => 4,
            Val::Double(_) => 12,
        }
    }

    fn count(&self) -> u32 {
        (match self {
            Val::Short(v) => v.len(),
            Val::Long(v) => v.len(),
            Val::Double(v) => v.len(),
            Val::Ascii(v) => v.len(),
        }) as u32
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Val::Short(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Val::Long(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Val::Double(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Val::Ascii(v) => v.clone(),
        }
    }
}

/// Bytes an IFD of `entries` takes with its out-of-line values.
fn ifd_len(entries: &[(u16, Val)]) -> u64 {
    let extra: u64 = entries
        .iter()
        .map(|(_, v)| v.bytes().len() as u64)
        .filter(|&n| n > 4)
        .map(|n| n + n % 2)
        .sum();
    2 + 12 * entries.len() as u64 + 4 + extra
}

/// Appends an IFD that starts at file offset `at`, its values after it, pointing at `next`.
fn write_ifd(out: &mut Vec<u8>, at: u64, entries: &[(u16, Val)], next: u32) {
    let mut extra: Vec<u8> = Vec::new();
    let extra_at = at + 2 + 12 * entries.len() as u64 + 4;
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, val) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&val.type_code().to_le_bytes());
        out.extend_from_slice(&val.count().to_le_bytes());
        let bytes = val.bytes();
        if bytes.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..bytes.len()].copy_from_slice(&bytes);
            out.extend_from_slice(&inline);
        } else {
            out.extend_from_slice(&((extra_at + extra.len() as u64) as u32).to_le_bytes());
            extra.extend_from_slice(&bytes);
            if extra.len() % 2 == 1 {
                extra.push(0);
            }
        }
    }
    out.extend_from_slice(&next.to_le_bytes());
    out.extend_from_slice(&extra);
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// GDAL's metadata XML (tag 42112): `CLASS_<value>` = name for each class, the band's
/// description `class`, and the `extra` items.
fn gdal_metadata(classes: &[ClassEntry], extra: &BTreeMap<String, String>) -> String {
    let mut xml = String::from("<GDALMetadata>\n");
    for c in classes {
        xml.push_str(&format!(
            "  <Item name=\"CLASS_{}\">{}</Item>\n",
            c.value,
            xml_escape(&c.name)
        ));
    }
    for (k, v) in extra {
        xml.push_str(&format!(
            "  <Item name=\"{}\">{}</Item>\n",
            xml_escape(k),
            xml_escape(v)
        ));
    }
    xml.push_str("  <Item name=\"DESCRIPTION\" sample=\"0\" role=\"description\">class</Item>\n");
    xml.push_str("</GDALMetadata>");
    xml
}

/// Tags 33550/33922/34264/34735 for `g` (empty when there is nothing to write).
fn geo_entries(g: &ClassGeoref) -> Result<Vec<(u16, Val)>, RasterError> {
    let mut out = Vec::new();
    let geographic = g.epsg.is_some_and(|e| (4000..5000).contains(&e));
    if let Some(gt) = g.geotransform {
        if gt[2] == 0.0 && gt[4] == 0.0 {
            out.push((33550, Val::Double(vec![gt[1], -gt[5], 0.0])));
            out.push((33922, Val::Double(vec![0.0, 0.0, 0.0, gt[0], gt[3], 0.0])));
        } else {
            out.push((
                34264,
                Val::Double(vec![
                    gt[1], gt[2], 0.0, gt[0], gt[4], gt[5], 0.0, gt[3], 0.0, 0.0, 0.0, 0.0, 0.0,
                    0.0, 0.0, 1.0,
                ]),
            ));
        }
    } else if !g.gcps.is_empty() {
        let tp = g
            .gcps
            .iter()
            .flat_map(|p| [p.pixel, p.line, 0.0, p.x, p.y, p.z])
            .collect();
        out.push((33922, Val::Double(tp)));
    } else {
        return Ok(out);
    }
    // GTModelType, GTRasterType = PixelIsArea, then the CRS key.
    let mut keys: Vec<[u16; 4]> = vec![[1024, 0, 1, if geographic { 2 } else { 1 }]];
    keys.push([1025, 0, 1, 1]);
    if let Some(epsg) = g.epsg {
        let code = u16::try_from(epsg).map_err(|_| {
            RasterError::ClassRaster(format!("EPSG code {epsg} does not fit a GeoKey"))
        })?;
        keys.push([if geographic { 2048 } else { 3072 }, 0, 1, code]);
    }
    let mut dir = vec![1, 1, 0, keys.len() as u16];
    dir.extend(keys.iter().flatten());
    out.push((34735, Val::Short(dir)));
    out.sort_by_key(|(t, _)| *t);
    Ok(out)
}

/// The compressed tiles of one level, row by row (edge tiles padded with [`NODATA`]).
fn compress_tiles(data: &[u8], width: u32, height: u32) -> Result<Vec<Vec<u8>>, RasterError> {
    let (w, t) = (width as usize, TILE_SIZE as usize);
    let (across, down) = (width.div_ceil(TILE_SIZE), height.div_ceil(TILE_SIZE));
    let mut out = Vec::with_capacity((across * down) as usize);
    let mut tile = vec![NODATA; t * t];
    for ty in 0..down as usize {
        for tx in 0..across as usize {
            tile.fill(NODATA);
            let x0 = tx * t;
            let cols = t.min(w - x0);
            for r in 0..t {
                let y = ty * t + r;
                if y >= height as usize {
                    break;
                }
                tile[r * t..r * t + cols].copy_from_slice(&data[y * w + x0..y * w + x0 + cols]);
            }
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&tile)
                .and_then(|()| enc.finish())
                .map(|bytes| out.push(bytes))
                .map_err(|e| RasterError::ClassRaster(format!("compressing a tile: {e}")))?;
        }
    }
    Ok(out)
}

/// A new temporary file beside `path` (`.<name>.<pid>-<nonce>.part`), created with
/// `create_new` so that no other writer holds it, where [`write_class_cog`] writes before
/// it renames.
fn create_part(path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pid = std::process::id();
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let nonce = NEXT.fetch_add(1, Ordering::Relaxed);
        let part = path.with_file_name(format!(".{name}.{pid}-{nonce}-{nanos}.part"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)
        {
            Ok(f) => return Ok((part, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The temporary files beside `path` that writers of `path` ([`write_class_cog`]) hold or
/// left (a writer that crashed mid-write).
pub fn part_files(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefix = format!(".{name}.");
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".part"))
        })
        .collect()
}

/// Writes `data` (`width * height` class values, row-major) as a class COG at `path`
/// (see the module docs). `extra` metadata items go into tag 42112 beside the class names.
/// Errors: a size mismatch, a class value above [`MAX_CLASS_VALUE`] or a file past 4 GiB
/// ([`RasterError::ClassRaster`]), and I/O errors (the temporary file is removed).
pub fn write_class_cog(
    path: &Path,
    width: u32,
    height: u32,
    data: &[u8],
    georef: &ClassGeoref,
    classes: &[ClassEntry],
    extra: &BTreeMap<String, String>,
) -> Result<(), RasterError> {
    if width == 0 || height == 0 || data.len() as u64 != u64::from(width) * u64::from(height) {
        return Err(RasterError::ClassRaster(format!(
            "{} values are not a {width}x{height} raster",
            data.len()
        )));
    }
    if let Some(c) = classes.iter().find(|c| c.value > MAX_CLASS_VALUE) {
        return Err(RasterError::ClassRaster(format!(
            "class '{}' has value {}, above {MAX_CLASS_VALUE} ({NODATA} is nodata)",
            c.name, c.value
        )));
    }
    // Levels: full resolution, then overviews until one tile holds the whole level.
    let mut levels: Vec<(Vec<u8>, u32, u32)> = Vec::new();
    let (mut w, mut h) = (width, height);
    while w > TILE_SIZE || h > TILE_SIZE {
        let (o, ow, oh) = overview(levels.last().map_or(data, |l| &l.0), w, h);
        levels.push((o, ow, oh));
        (w, h) = (ow, oh);
    }
    let mut tiles = vec![compress_tiles(data, width, height)?];
    for (d, w, h) in &levels {
        tiles.push(compress_tiles(d, *w, *h)?);
    }
    let sizes: Vec<(u32, u32)> = std::iter::once((width, height))
        .chain(levels.iter().map(|l| (l.1, l.2)))
        .collect();

    let mut colormap = vec![0u16; 3 * 256];
    for c in classes {
        for (band, &v) in c.color.iter().enumerate() {
            colormap[band * 256 + usize::from(c.value)] = u16::from(v) * 257;
        }
    }
    let geo = geo_entries(georef)?;
    let metadata = gdal_metadata(classes, extra);
    let entries_of = |level: usize, offsets: Vec<u32>, counts: Vec<u32>| {
        let (w, h) = sizes[level];
        let mut e: Vec<(u16, Val)> = vec![
            (254, Val::Long(vec![u32::from(level > 0)])),
            (256, Val::Long(vec![w])),
            (257, Val::Long(vec![h])),
            (258, Val::Short(vec![8])),
            (259, Val::Short(vec![8])),
            (262, Val::Short(vec![3])),
            (277, Val::Short(vec![1])),
            (284, Val::Short(vec![1])),
            (320, Val::Short(colormap.clone())),
            (322, Val::Short(vec![TILE_SIZE as u16])),
            (323, Val::Short(vec![TILE_SIZE as u16])),
            (324, Val::Long(offsets)),
            (325, Val::Long(counts)),
            (339, Val::Short(vec![1])),
        ];
        if level == 0 {
            for (t, v) in &geo {
                let v = match v {
                    Val::Short(x) => Val::Short(x.clone()),
                    Val::Long(x) => Val::Long(x.clone()),
                    Val::Double(x) => Val::Double(x.clone()),
                    Val::Ascii(x) => Val::Ascii(x.clone()),
                };
                e.push((*t, v));
            }
            e.push((42112, Val::ascii(&metadata)));
        }
        e.push((42113, Val::ascii("255")));
        e.sort_by_key(|(t, _)| *t);
        e
    };
    // First pass: the size of every directory (offsets are fixed-size placeholders).
    let mut at = 8u64;
    let mut ifd_at = Vec::new();
    for (level, t) in tiles.iter().enumerate() {
        ifd_at.push(at);
        at += ifd_len(&entries_of(level, vec![0; t.len()], vec![0; t.len()]));
        at += at % 2;
    }
    // Tile data: the smallest level first.
    let mut offsets: Vec<Vec<u32>> = vec![Vec::new(); tiles.len()];
    for (level, t) in tiles.iter().enumerate().rev() {
        for bytes in t {
            offsets[level].push(at as u32);
            at += bytes.len() as u64;
        }
    }
    if at > u64::from(u32::MAX) {
        return Err(RasterError::ClassRaster(format!(
            "the file would take {at} bytes, past the 4 GiB of a classic TIFF"
        )));
    }
    let mut out: Vec<u8> = Vec::with_capacity(at as usize);
    out.extend_from_slice(b"II");
    out.extend_from_slice(&42u16.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    for (level, t) in tiles.iter().enumerate() {
        let counts = t.iter().map(|b| b.len() as u32).collect();
        let entries = entries_of(level, offsets[level].clone(), counts);
        let next = ifd_at.get(level + 1).map_or(0, |&n| n as u32);
        debug_assert_eq!(out.len() as u64, ifd_at[level]);
        write_ifd(&mut out, ifd_at[level], &entries, next);
        if out.len() % 2 == 1 {
            out.push(0);
        }
    }
    for t in tiles.iter().rev() {
        for bytes in t {
            out.extend_from_slice(bytes);
        }
    }
    debug_assert_eq!(out.len() as u64, at);

    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| RasterError::Io { path: p, source }
    };
    let (part, mut file) = create_part(path).map_err(io(path))?;
    let written = file
        .write_all(&out)
        .and_then(|()| file.sync_all())
        .map_err(io(&part))
        .and_then(|()| {
            drop(file);
            std::fs::rename(&part, path).map_err(io(path))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}

#[cfg(test)]
mod tests {
    use tiff::decoder::Decoder;
    use tiff::tags::Tag;

    use super::*;
    use crate::Window;
    use crate::geotiff::tests::{B04, TempDir, data};

    #[test]
    fn overview_takes_the_mode_of_valid_pixels() {
        // 3x3 -> 2x2: blocks [[1,1],[2,255]] -> 1, [[2],[255]] -> 2, [[3,3]] -> 3, [255] -> 255.
        let d = [1, 1, 2, 2, NODATA, NODATA, 3, 3, NODATA];
        let (o, w, h) = overview(&d, 3, 3);
        assert_eq!((w, h), (2, 2));
        assert_eq!(o, vec![1, 2, 3, NODATA]);
        // A tie takes the smaller value.
        let (o, _, _) = overview(&[4, 2, 2, 4], 2, 2);
        assert_eq!(o, vec![2]);
    }

    fn classes() -> Vec<ClassEntry> {
        classes_of(&["forest".into(), "arable & <water>".into(), "pasture".into()]).unwrap()
    }

    #[test]
    fn a_class_cog_reads_back_with_its_georeferencing_colormap_and_overviews() {
        let src = GeoTiff::open(&data(B04)).expect("sample B04");
        let (w, h) = (src.width(), src.height());
        // Values from a formula with nodata stripes: every value is known.
        let value = |x: u32, y: u32| -> u8 {
            if (x + 2 * y).is_multiple_of(97) {
                NODATA
            } else {
                ((x / 37 + y / 53) % 3) as u8
            }
        };
        let values: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).map(move |x| value(x, y)))
            .collect();
        let dir = TempDir::new("classmap");
        let path = dir.0.join("classes.tif");
        let extra: BTreeMap<String, String> =
            [("albedo:model".to_string(), "m/v1".to_string())].into();
        write_class_cog(
            &path,
            w,
            h,
            &values,
            &ClassGeoref::of(&src),
            &classes(),
            &extra,
        )
        .expect("write");
        assert!(part_files(&path).is_empty());

        let t = GeoTiff::open(&path).expect("reads back");
        assert_eq!((t.width(), t.height()), (w, h));
        assert_eq!(t.dtype(), albedo_shared::catalog::Dtype::U8);
        assert_eq!(t.nodata(), Some(255.0));
        assert!(t.is_tiled());
        assert_eq!(t.chunk_size(), (256, 256));
        assert_eq!(t.georeferencing(), src.georeferencing());
        assert_eq!(t.epsg(), Some(32633));
        let all = t.read_window_f64(0, Window::full(w, h), 1).expect("read");
        assert!(all.iter().zip(&values).all(|(a, &b)| *a == f64::from(b)));
        // Overviews: 1536x768 -> 768x384 -> 384x192 -> 192x96, each the mode of the last.
        let mut expect = (values.clone(), w, h);
        let mut n = 0;
        while expect.1 > 256 || expect.2 > 256 {
            expect = overview(&expect.0, expect.1, expect.2);
            assert_eq!(t.overview_size(n), Some((expect.1, expect.2)));
            let got = t
                .read_overview_window_f64(n, 0, Window::full(expect.1, expect.2), 1)
                .expect("overview");
            assert!(got.iter().zip(&expect.0).all(|(a, &b)| *a == f64::from(b)));
            n += 1;
        }
        assert_eq!(t.overview_count(), n);
        assert_eq!(n, 3);

        // The palette, the class names and the tags GDAL reads, straight from the file.
        let mut d = Decoder::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(
            d.find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
                .unwrap(),
            Some(3)
        );
        let cmap: Vec<u16> = d.find_tag_unsigned_vec(Tag::ColorMap).unwrap().unwrap();
        assert_eq!(cmap.len(), 768);
        let c1 = default_color(1);
        assert_eq!(
            [cmap[1], cmap[256 + 1], cmap[512 + 1]],
            [
                u16::from(c1[0]) * 257,
                u16::from(c1[1]) * 257,
                u16::from(c1[2]) * 257
            ]
        );
        let md = d
            .find_tag(Tag::Unknown(42112))
            .unwrap()
            .unwrap()
            .into_string()
            .unwrap();
        assert!(md.contains("<Item name=\"CLASS_0\">forest</Item>"), "{md}");
        assert!(md.contains("arable &amp; &lt;water&gt;"), "{md}");
        assert!(
            md.contains("<Item name=\"albedo:model\">m/v1</Item>"),
            "{md}"
        );
        // COG layout: all directories before the first tile, smallest level's tiles first.
        let offs: Vec<u64> = d.find_tag_unsigned_vec(Tag::TileOffsets).unwrap().unwrap();
        let mut last_ifd_offsets: Vec<u64> = Vec::new();
        while d.more_images() {
            d.next_image().unwrap();
            last_ifd_offsets = d.find_tag_unsigned_vec(Tag::TileOffsets).unwrap().unwrap();
        }
        assert!(last_ifd_offsets[0] < offs[0]);
        // If GDAL is on this machine, it must agree.
        if let Ok(out) = std::process::Command::new("gdalinfo").arg(&path).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("Palette"), "{text}");
            assert!(text.contains("NoData Value=255"), "{text}");
            assert!(
                text.contains("Overviews: 768x384, 384x192, 192x96"),
                "{text}"
            );
        }
    }

    #[test]
    fn palettes_come_from_classes_or_the_color_map() {
        let p = palette_of_classes(&serde_json::json!([
            {"value": 0, "name": "a", "color": "#010203"},
            {"value": 4, "name": "b", "color": "not a colour"}
        ]))
        .unwrap();
        assert_eq!(p[0], Some([1, 2, 3]));
        assert_eq!(p[4], Some(default_color(4)));
        assert_eq!(p[1], None);
        assert_eq!(p[255], None);
        assert!(palette_of_classes(&serde_json::Value::Null).is_none());
        assert!(palette_of_classes(&serde_json::json!([{"value": 255}])).is_none());

        let dir = TempDir::new("classmap-palette");
        let path = dir.0.join("x.tif");
        let g = ClassGeoref::default();
        write_class_cog(
            &path,
            2,
            2,
            &[0, 1, 2, 255],
            &g,
            &classes(),
            &BTreeMap::new(),
        )
        .expect("write");
        let p = read_color_map(&path).unwrap().expect("a palette image");
        for c in classes() {
            assert_eq!(p[usize::from(c.value)], Some(c.color));
        }
        // Not a palette image.
        assert_eq!(read_color_map(&data(B04)).unwrap(), None);
    }

    #[test]
    fn bad_inputs_are_refused_and_leave_no_file() {
        let dir = TempDir::new("classmap-bad");
        let path = dir.0.join("x.tif");
        let g = ClassGeoref::default();
        assert!(write_class_cog(&path, 4, 4, &[0; 15], &g, &[], &BTreeMap::new()).is_err());
        let bad = [ClassEntry {
            value: 255,
            name: "x".into(),
            color: [0, 0, 0],
        }];
        assert!(write_class_cog(&path, 4, 4, &[0; 16], &g, &bad, &BTreeMap::new()).is_err());
        assert!(!path.exists() && part_files(&path).is_empty());
        // A small raster without georeferencing: one tile, no overviews.
        write_class_cog(
            &path,
            3,
            2,
            &[0, 1, 2, 255, 1, 0],
            &g,
            &classes(),
            &BTreeMap::new(),
        )
        .expect("write");
        let t = GeoTiff::open(&path).expect("open");
        assert_eq!(t.overview_count(), 0);
        assert_eq!(
            t.read_window_f64(0, Window::full(3, 2), 1).unwrap(),
            vec![0.0, 1.0, 2.0, 255.0, 1.0, 0.0]
        );
        assert_eq!(
            t.georeferencing(),
            &albedo_shared::catalog::Georeferencing::None
        );
    }

    #[test]
    fn each_writer_has_a_temporary_file_of_its_own() {
        let dir = TempDir::new("classmap-writers");
        let path = dir.0.join("x.tif");
        // Another attempt of the same job is writing: its temporary files stay its own.
        let theirs = [
            dir.0
                .join(format!(".x.tif.{}-0-0.part", std::process::id())),
            dir.0.join("x.tif.part"),
        ];
        for t in &theirs {
            std::fs::write(t, b"another writer").unwrap();
        }
        let g = ClassGeoref::default();
        let write = |v: u8| {
            write_class_cog(&path, 3, 2, &[v; 6], &g, &classes(), &BTreeMap::new()).expect("write")
        };
        std::thread::scope(|s| {
            s.spawn(|| write(1));
            s.spawn(|| write(2));
        });
        for t in &theirs {
            assert_eq!(std::fs::read(t).unwrap(), b"another writer");
        }
        let t = GeoTiff::open(&path).expect("a whole file");
        assert_eq!((t.width(), t.height()), (3, 2));
        assert_eq!(part_files(&path).len(), 1, "only the other writer's");
    }
}
