//! Local Sentinel products: scanning folders into catalog products, reading their bands.
//!
//! What it is: [`scan`] turns a product folder or a single GeoTIFF into [`LocalProduct`]s: the
//! catalog [`Product`], where each band's pixels are ([`LocalBand`]) and a STAC 1.0.0 Item.
//! [`read_bands`] reads bands of a product over a window of its grid into the renderer's
//! wire format.
//!
//! How a folder is read (only the files directly in it; the caller walks sub-folders):
//! - files whose name ends in a band token (`B04.tif`, `*_B8A.tif`, `iw-vv.tiff`,
//!   `*_VV_*.tif`) are single bands; files sharing the text before that token form one product
//!   (one COG per band, e.g. the T33UUU tile or a BigEarthNet patch, or a VV + VH pair);
//! - a multi-band file whose band count equals the `bands` list of `metadata.json` is a stack
//!   and becomes a product of its own (each Slovenia date, each T19UDP resolution);
//! - everything else is not imagery for the catalog and is skipped with a `debug` log: previews
//!   (`preview*`), single-band files without a band name (`LULC.tif`, `DEM.tif`), stacks of
//!   another band count (the 68-date time series), labels and other side files.
//!
//! A single GeoTIFF given directly always becomes a product; its bands are named by its file
//! name, by `metadata.json`, or `b1`, `b2`, ...
//!
//! Metadata comes from `metadata.json`, `productInfo.json`, `timestamps.json` and BigEarthNet's
//! `*_labels_metadata.json` beside the files, then from the file names: platform, processing
//! level, tile, acquisition time (RFC 3339 UTC; a day alone gives its start, and the STAC item
//! then says `start_datetime` / `end_datetime` for the day), licence. Where the unit is not
//! named but only one was in orbit (Sentinel-2 before 2017-03-07, Sentinel-1 before
//! 2016-04-25), the platform is that unit. Ids keep real product names where the files carry
//! one, else follow the Sentinel naming (`S2A_MSIL1C_20170216T102101_T33UUU`).
//!
//! The footprint of a map grid is its outline, sampled along every edge and reprojected; of a
//! radar-geometry product (GCPs only), the convex hull of its GCPs.
//!
//! A folder without GeoTIFFs that holds a KML overlay with four corners and its PNG (the
//! Kara Sea quick-look) becomes one quick-look product: [`Georeferencing::CornersOnly`], the
//! footprint from the KML corners, the PNG's 8-bit channels as bands (see `overlay.rs`).
//!
//! What it is not: no SAFE measurement or JP2 reading, no cloud cover (not in the sample
//! metadata), no remote assets.

mod names;
mod overlay;
mod read;
mod sidecar;
mod stac;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use albedo_shared::catalog::{Band, Dtype, Georeferencing, PixelAccess, Product, ProductId};
use serde::{Deserialize, Serialize};

pub use overlay::is_kml;
pub use read::{MAX_OUTPUT_SAMPLES, read_bands};

use self::names::{Mission, When};
use self::sidecar::{Sidecar, field};
use crate::footprint::{EDGE_SAMPLES, Footprint};
use crate::{GeoTiff, RasterError, proj};

/// One band of a local product and where its pixels are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalBand {
    /// The band as the catalog shows it.
    pub band: Band,
    /// Absolute path of the file holding it: a GeoTIFF, or a PNG (by its `.png` extension)
    /// for a quick-look product.
    pub path: PathBuf,
    /// 0-based band index inside that file (the channel, for a PNG).
    pub index: u16,
}

/// A product with local pixels: the catalog product, its bands' files and its STAC item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalProduct {
    /// The product as the JSON API shows it (`pixels` is [`PixelAccess::Local`]).
    pub product: Product,
    /// Its bands, in the order of `product.bands`.
    pub bands: Vec<LocalBand>,
    /// A STAC 1.0.0 Item whose asset hrefs are the absolute local file paths.
    pub stac_item: serde_json::Value,
}

/// Scans a product folder (one COG per band, named like B04.tif or *_B04.tif, VV/VH files, or one or more multi-band stacks)
/// or a single GeoTIFF file, reading `metadata.json` / `productInfo.json` beside it where present.
///
/// A folder without GeoTIFFs gives its quick-look product where it holds a KML overlay and
/// its PNG (such as the Kara Sea sample), else an empty list.
pub fn scan(path: &Path) -> Result<Vec<LocalProduct>, RasterError> {
    let io = |source| RasterError::Io {
        path: path.to_path_buf(),
        source,
    };
    let path = std::path::absolute(path).map_err(io)?;
    let meta = std::fs::metadata(&path).map_err(io)?;
    let drafts = if meta.is_dir() {
        scan_folder(&path)?
    } else {
        scan_file(&path)?
    };
    let drafts = dedupe_ids(drafts);
    Ok(drafts.into_iter().map(Draft::finish).collect())
}

/// Whether `path` names a GeoTIFF by its extension (`.tif`, `.tiff`, any case).
pub fn is_tiff(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("tif" | "tiff")
    )
}

fn stem_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, RasterError> {
    let io = |source| RasterError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()).map_err(io))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

/// A band as found on disk, before it becomes a [`LocalBand`].
#[derive(Debug, Clone)]
struct BandDraft {
    name: String,
    path: PathBuf,
    index: u16,
    width: u32,
    height: u32,
    dtype: Dtype,
    nodata: Option<f64>,
    epsg: Option<u32>,
    geotransform: Option<[f64; 6]>,
    tiled: bool,
    format: FileFormat,
}

/// The kind of file a band is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileFormat {
    GeoTiff,
    Png,
}

impl BandDraft {
    fn new(name: String, tif: &GeoTiff, index: u16) -> BandDraft {
        BandDraft {
            name,
            path: tif.path().to_path_buf(),
            index,
            width: tif.width(),
            height: tif.height(),
            dtype: tif.dtype(),
            nodata: tif.nodata(),
            epsg: match tif.georeferencing() {
                Georeferencing::Affine { epsg, .. } => Some(*epsg),
                _ => None,
            },
            geotransform: tif.geotransform(),
            tiled: tif.is_tiled(),
            format: FileFormat::GeoTiff,
        }
    }

    /// Ground sample distance in metres, where the grid is in a metric CRS.
    fn gsd_m(&self) -> Option<f64> {
        let gt = self.geotransform?;
        self.epsg
            .filter(|&e| proj::is_metric(e))
            .map(|_| gt[1].hypot(gt[4]))
    }

    fn band(&self) -> Band {
        Band {
            name: self.name.clone(),
            common_name: names::s2_band_info(&self.name).map(|(c, _)| c.to_string()),
            width: self.width,
            height: self.height,
            dtype: self.dtype,
            gsd_m: self.gsd_m(),
            nodata: self.nodata,
        }
    }
}

/// Whether the product is one file per band or one multi-band file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    BandFiles,
    Stack,
}

/// Everything known of a product before its id is final.
#[derive(Debug, Clone)]
struct Draft {
    id: String,
    title: String,
    collection: String,
    mission: Mission,
    layout: Layout,
    when: Option<When>,
    end: Option<When>,
    platform: Option<String>,
    product_type: Option<String>,
    instrument_mode: Option<String>,
    mgrs_tile: Option<String>,
    attribution: Option<String>,
    description: Option<String>,
    bands: Vec<BandDraft>,
    /// Index in `bands` of the finest band, whose grid is the product grid.
    grid_band: usize,
    georeferencing: Georeferencing,
    footprint: Option<Footprint>,
    /// A file stem that tells this product apart from its siblings.
    file_stem: String,
    /// Polarisations the product holds, where its bands are not named by them (quick-looks).
    polarizations: Vec<String>,
    /// `ascending` / `descending`, where known.
    orbit_state: Option<String>,
    absolute_orbit: Option<u32>,
    relative_orbit: Option<u32>,
}

/// What a product is made of, as found in a folder.
struct Found<'a> {
    dir: &'a Path,
    sidecar: &'a Sidecar,
    /// The group prefix (band files) or the file stem (stacks, single files).
    name: String,
    /// File name, for a product of one file.
    file_name: Option<String>,
    layout: Layout,
    bands: Vec<BandDraft>,
    /// The finest band's file, for GCPs.
    grid_tif: &'a GeoTiff,
}

fn scan_folder(dir: &Path) -> Result<Vec<Draft>, RasterError> {
    let entries = list_dir(dir)?;
    let sidecar = Sidecar::load(dir, &entries)?;
    let stack_bands = sidecar.band_list();
    let mut groups: BTreeMap<String, Vec<(String, GeoTiff)>> = BTreeMap::new();
    let mut stacks: Vec<GeoTiff> = Vec::new();
    for path in &entries {
        if path.is_dir() {
            tracing::debug!(path = %path.display(), "sub-folder: not part of this product folder's scan");
            continue;
        }
        if !is_tiff(path) {
            tracing::debug!(path = %path.display(), "not a GeoTIFF: read as side-car metadata or skipped");
            continue;
        }
        let stem = stem_of(path);
        if stem.to_ascii_lowercase().contains("preview") {
            tracing::debug!(path = %path.display(), "preview image: not a product of its own");
            continue;
        }
        let tif = GeoTiff::open(path)?;
        match names::band_file(&stem) {
            Some((band, prefix)) if tif.band_count() == 1 => {
                groups.entry(prefix).or_default().push((band, tif));
            }
            Some((band, _)) => {
                tracing::debug!(path = %path.display(), band, bands = tif.band_count(), "named like one band but holds several: skipped");
            }
            None if tif.band_count() > 1 && usize::from(tif.band_count()) == stack_bands.len() => {
                stacks.push(tif);
            }
            None => {
                tracing::debug!(
                    path = %path.display(),
                    bands = tif.band_count(),
                    listed = stack_bands.len(),
                    "neither a band file nor a stack of the bands metadata.json lists \
                     (labels, DEM, time series or similar): skipped"
                );
            }
        }
    }

    let mut drafts = Vec::new();
    if groups.is_empty()
        && stacks.is_empty()
        && let Some(d) = overlay::scan_quick_look(dir, &entries, &sidecar)?
    {
        drafts.push(d);
    }
    for (prefix, files) in &groups {
        let mut bands: Vec<(BandDraft, &GeoTiff)> = files
            .iter()
            .map(|(name, tif)| (BandDraft::new(name.clone(), tif, 0), tif))
            .collect();
        bands.sort_by_key(|(b, _)| names::band_order(&b.name));
        if let Some(w) = bands.windows(2).find(|w| w[0].0.name == w[1].0.name) {
            return Err(RasterError::Inconsistent {
                path: dir.to_path_buf(),
                what: format!(
                    "band {} is in two files: {} and {}",
                    w[0].0.name,
                    w[0].0.path.display(),
                    w[1].0.path.display()
                ),
            });
        }
        let grid = finest(bands.iter().map(|(b, _)| b));
        let grid_tif = bands[grid].1;
        let single = files.len() == 1;
        let name = if single {
            stem_of(grid_tif.path())
        } else {
            prefix.clone()
        };
        drafts.push(draft(Found {
            dir,
            sidecar: &sidecar,
            name,
            file_name: single.then(|| file_name_of(grid_tif.path())),
            layout: Layout::BandFiles,
            bands: bands.into_iter().map(|(b, _)| b).collect(),
            grid_tif,
        })?);
    }
    for tif in &stacks {
        let bands = (0..tif.band_count())
            .map(|i| BandDraft::new(stack_bands[usize::from(i)].clone(), tif, i))
            .collect();
        drafts.push(draft(Found {
            dir,
            sidecar: &sidecar,
            name: stem_of(tif.path()),
            file_name: Some(file_name_of(tif.path())),
            layout: Layout::Stack,
            bands,
            grid_tif: tif,
        })?);
    }
    Ok(drafts)
}

fn scan_file(path: &Path) -> Result<Vec<Draft>, RasterError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tif = GeoTiff::open(path)?;
    let entries = list_dir(dir)?;
    let sidecar = Sidecar::load(dir, &entries)?;
    let stem = stem_of(path);
    let stack_bands = sidecar.band_list();
    let (layout, bands): (Layout, Vec<BandDraft>) = match names::band_file(&stem) {
        Some((band, _)) if tif.band_count() == 1 => {
            (Layout::BandFiles, vec![BandDraft::new(band, &tif, 0)])
        }
        _ => {
            let named = usize::from(tif.band_count()) == stack_bands.len();
            let bands = (0..tif.band_count())
                .map(|i| {
                    let name = if named {
                        stack_bands[usize::from(i)].clone()
                    } else {
                        format!("b{}", i + 1)
                    };
                    BandDraft::new(name, &tif, i)
                })
                .collect();
            (Layout::Stack, bands)
        }
    };
    let mut d = draft(Found {
        dir,
        sidecar: &sidecar,
        name: stem.clone(),
        file_name: Some(file_name_of(path)),
        layout,
        bands,
        grid_tif: &tif,
    })?;
    if layout == Layout::BandFiles && !names::is_product_name(&stem) && d.mission != Mission::Other
    {
        // One band of a product folder (`B04.tif`): not the whole product, so not its id.
        let band = d.bands[0].name.clone();
        d.id = format!("{}_{band}", d.id);
        d.title = format!("{}, band {band}", d.title);
    }
    Ok(vec![d])
}

/// Index of the band with the most pixels (the first of equals).
fn finest<'a>(bands: impl Iterator<Item = &'a BandDraft>) -> usize {
    let mut best = (0usize, 0u64);
    for (i, b) in bands.enumerate() {
        let n = u64::from(b.width) * u64::from(b.height);
        if n > best.1 {
            best = (i, n);
        }
    }
    best.0
}

fn sanitize_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `sentinel-2a` as a title: `Sentinel-2A`; the constellation's title when the unit is unknown.
fn platform_title(platform: Option<&str>, constellation_title: &str) -> String {
    let Some(p) = platform else {
        return constellation_title.to_string();
    };
    let mut chars: Vec<char> = p.chars().collect();
    if let Some(c) = chars.first_mut() {
        *c = c.to_ascii_uppercase();
    }
    for i in 1..chars.len() {
        if chars[i - 1].is_ascii_digit() {
            chars[i] = chars[i].to_ascii_uppercase();
        }
    }
    chars.into_iter().collect()
}

fn draft(found: Found<'_>) -> Result<Draft, RasterError> {
    let Found {
        dir,
        sidecar,
        name,
        file_name,
        layout,
        bands,
        grid_tif,
    } = found;
    let grid_band = finest(bands.iter());
    let grid = bands[grid_band].clone();

    // Bands of one product must share a CRS; their extents should agree.
    if let (Some(epsg), Some(gt)) = (grid.epsg, grid.geotransform) {
        for b in &bands {
            if b.epsg != Some(epsg) {
                return Err(RasterError::Inconsistent {
                    path: b.path.clone(),
                    what: format!(
                        "band {} is in EPSG:{:?}, band {} in EPSG:{epsg}",
                        b.name, b.epsg, grid.name
                    ),
                });
            }
            if let Some(bgt) = b.geotransform {
                let ext = |g: [f64; 6], w: u32, h: u32| {
                    [
                        g[0],
                        g[3],
                        g[0] + f64::from(w) * g[1],
                        g[3] + f64::from(h) * g[5],
                    ]
                };
                let (a, c) = (
                    ext(gt, grid.width, grid.height),
                    ext(bgt, b.width, b.height),
                );
                let tolerance = bgt[1].abs().max(bgt[5].abs());
                if a.iter().zip(&c).any(|(x, y)| (x - y).abs() > tolerance) {
                    tracing::warn!(band = %b.name, path = %b.path.display(), "band extent differs from the product grid by more than a pixel");
                }
            }
        }
    }

    let georeferencing = grid_tif.georeferencing().clone();
    let footprint = match (&georeferencing, grid.geotransform) {
        (Georeferencing::Affine { epsg, .. }, Some(gt)) => {
            Footprint::from_grid(*epsg, &gt, grid.width, grid.height, EDGE_SAMPLES)
        }
        (Georeferencing::GcpsOnly { .. }, _) => grid_tif.epsg().and_then(|epsg| {
            let pts: Option<Vec<(f64, f64)>> = grid_tif
                .gcps()
                .iter()
                .map(|g| proj::to_wgs84(epsg, g.x, g.y))
                .collect();
            Footprint::from_points(&pts?)
        }),
        _ => None,
    };

    let band_names: Vec<String> = bands.iter().map(|b| b.name.clone()).collect();
    let mission = names::mission_of(&band_names);
    let docs = sidecar.documents(&name);
    let folder_name = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let product_field = field(&docs, &["product", "id"]);
    let name_texts: Vec<&str> = [
        Some(name.as_str()),
        product_field,
        field(&docs, &["sensor", "missionId", "platform"]),
        field(&docs, &["tile_source", "scene_source"]),
    ]
    .into_iter()
    .flatten()
    .collect();

    // When.
    let mut when = field(
        &docs,
        &[
            "sensing_datetime",
            "startTime",
            "acquisition_time",
            "acquisition_date",
            "datetime",
            "sensing_date",
        ],
    )
    .and_then(names::find_when)
    .or_else(|| names::find_when(&name))
    .or_else(|| product_field.and_then(names::find_when));
    if let Some(w) = when.filter(|w| w.time.is_none()) {
        let same_day: Vec<When> = sidecar
            .timestamps
            .iter()
            .filter_map(|t| names::find_when(t))
            .filter(|t| t.time.is_some() && t.same_day(&w))
            .collect();
        if let [only] = same_day.as_slice() {
            when = Some(*only);
        }
    }
    let end = field(&docs, &["stopTime"]).and_then(names::find_when);

    // Who.
    let mut platform = name_texts.iter().find_map(|t| names::platform_of(t));
    if platform.is_none() {
        // Only one unit was in orbit before the second one's launch.
        let only_unit = match mission {
            Mission::Sentinel2 => Some(((2017, 3, 7), "sentinel-2a")),
            Mission::Sentinel1 => Some(((2016, 4, 25), "sentinel-1a")),
            Mission::Other => None,
        };
        if let (Some((launch, unit)), Some(w)) = (only_unit, when)
            && (w.year, w.month, w.day) < launch
        {
            platform = Some(unit.to_string());
        }
    }
    if mission == Mission::Other {
        platform = None;
    }
    let unit_code = platform
        .as_deref()
        .and_then(|p| p.strip_prefix("sentinel-"))
        .map(|u| format!("S{}", u.to_ascii_uppercase()));

    let mgrs_tile = field(&docs, &["mgrs_tile"])
        .and_then(names::mgrs_tile_of)
        .or_else(|| names::mgrs_tile_of(&name))
        .or_else(|| field(&docs, &["tile_source"]).and_then(names::mgrs_tile_of));
    let site = match &mgrs_tile {
        Some(t) => format!("T{t}"),
        None => names::tokens(&folder_name)
            .first()
            .map(|s| sanitize_id(s))
            .unwrap_or_else(|| "local".into()),
    };
    let is_float = matches!(grid.dtype, Dtype::F32 | Dtype::F64);
    let gsd_text = grid.gsd_m().map(|g| format!("{}", g.round() as i64));

    let note = file_name
        .as_deref()
        .and_then(|f| sidecar.file_note("scenes", f));
    let description = file_name
        .as_deref()
        .and_then(|f| sidecar.file_note("files", f))
        .or_else(|| note.clone());

    let (collection, product_type, instrument_mode, synthesized, title) = match mission {
        Mission::Sentinel2 => {
            let level = names::s2_level_of(&name)
                .or_else(|| {
                    field(&docs, &["level", "processingLevel"]).and_then(names::s2_level_of)
                })
                .or_else(|| product_field.and_then(names::s2_level_of));
            let collection = match level {
                Some("L2A") => "sentinel-2-l2a",
                Some(_) => "sentinel-2-l1c",
                None => "sentinel-2",
            };
            let synthesized = format!(
                "{}_MSI{}_{}_{site}",
                unit_code.as_deref().unwrap_or("S2"),
                level.unwrap_or(""),
                when.map(|w| w.compact())
                    .unwrap_or_else(|| "undated".into()),
            );
            let mut title = format!(
                "{} MSI{}",
                platform_title(platform.as_deref(), "Sentinel-2"),
                level.map(|l| format!(" {l}")).unwrap_or_default()
            );
            match &mgrs_tile {
                Some(t) => title.push_str(&format!(", tile {t}")),
                None => title.push_str(&format!(", {site}")),
            }
            if let Some(w) = when {
                title.push_str(&format!(", {}", w.human()));
            }
            if layout == Layout::Stack {
                title.push_str(&format!(", {}-band stack", bands.len()));
                if let Some(g) = &gsd_text {
                    title.push_str(&format!(" at {g} m"));
                }
            }
            if let Some(n) = &note {
                title.push_str(&format!(" ({n})"));
            }
            (
                collection.to_string(),
                level.map(str::to_string),
                None,
                synthesized,
                title,
            )
        }
        Mission::Sentinel1 => {
            let mode = field(&docs, &["mode"])
                .and_then(names::s1_mode_of)
                .or_else(|| names::s1_mode_of(&name))
                .or_else(|| product_field.and_then(names::s1_mode_of));
            let ptype = field(&docs, &["productType"])
                .and_then(names::s1_product_type_of)
                .or_else(|| names::s1_product_type_of(&name))
                .or_else(|| product_field.and_then(names::s1_product_type_of))
                .or_else(|| field(&docs, &["scene_source"]).and_then(names::s1_product_type_of));
            let collection = if is_float {
                "sentinel-1-db"
            } else {
                "sentinel-1-grd"
            };
            let synthesized = format!(
                "{}_{}_{}_{}_{site}",
                unit_code.as_deref().unwrap_or("S1"),
                mode.unwrap_or("XX"),
                ptype.unwrap_or("GRD"),
                when.map(|w| w.compact())
                    .unwrap_or_else(|| "undated".into()),
            );
            let mut title = platform_title(platform.as_deref(), "Sentinel-1");
            for part in [mode, ptype].into_iter().flatten() {
                title.push(' ');
                title.push_str(part);
            }
            title.push(' ');
            title.push_str(&band_names.join("+"));
            if is_float {
                title.push_str(" backscatter (dB, processed)");
            }
            if let Some(w) = when {
                title.push_str(&format!(", {}", w.human()));
            }
            (
                collection.to_string(),
                ptype.map(str::to_string),
                mode.map(str::to_string),
                synthesized,
                title,
            )
        }
        Mission::Other => (
            "local-geotiff".to_string(),
            None,
            None,
            sanitize_id(&format!("{folder_name}_{name}")),
            name.clone(),
        ),
    };

    let id = if names::is_product_name(&name) {
        name.clone()
    } else if let Some(p) = product_field.filter(|p| names::is_product_name(p)) {
        p.to_string()
    } else {
        synthesized
    };

    let licence = field(&docs, &["license", "licence"]);
    let attribution = attribution(mission, when, licence);

    Ok(Draft {
        id,
        title,
        collection,
        mission,
        layout,
        when,
        end,
        platform,
        product_type,
        instrument_mode,
        mgrs_tile,
        attribution,
        description,
        bands,
        grid_band,
        georeferencing,
        footprint,
        file_stem: file_name
            .as_deref()
            .map(|f| stem_of(Path::new(f)))
            .unwrap_or(name),
        polarizations: Vec::new(),
        orbit_state: None,
        absolute_orbit: None,
        relative_orbit: None,
    })
}

/// The attribution line of a product: Copernicus' sentence (with the year) for Sentinel data,
/// then the licence of its metadata.
fn attribution(mission: Mission, when: Option<When>, licence: Option<&str>) -> Option<String> {
    match mission {
        Mission::Other => licence.map(|l| format!("Licence: {l}")),
        _ => {
            let year = when.map(|w| format!(" {}", w.year)).unwrap_or_default();
            let base = format!("Contains modified Copernicus Sentinel data{year}");
            // The sample licences often repeat the attribution sentence: keep it once.
            let licence = licence.map(|l| {
                l.split(". ")
                    .filter(|s| !s.starts_with("Contains modified Copernicus Sentinel data"))
                    .collect::<Vec<_>>()
                    .join(". ")
            });
            Some(match licence.filter(|l| !l.is_empty()) {
                Some(l) => format!("{base}. Licence: {l}"),
                None => base,
            })
        }
    }
}

/// Makes ids unique within one scan: products that would share one get their grid's GSD
/// (`_900m`) or, failing that, their file stem appended.
fn dedupe_ids(mut drafts: Vec<Draft>) -> Vec<Draft> {
    let count = |drafts: &[Draft], id: &str| drafts.iter().filter(|d| d.id == id).count();
    let dups: Vec<usize> = (0..drafts.len())
        .filter(|&i| count(&drafts, &drafts[i].id) > 1)
        .collect();
    for &i in &dups {
        let gsd = drafts[i].bands[drafts[i].grid_band].gsd_m();
        if let Some(g) = gsd {
            drafts[i].id = format!("{}_{}m", drafts[i].id, g.round() as i64);
        }
    }
    let dups: Vec<usize> = (0..drafts.len())
        .filter(|&i| count(&drafts, &drafts[i].id) > 1)
        .collect();
    for &i in &dups {
        drafts[i].id = format!("{}_{}", drafts[i].id, sanitize_id(&drafts[i].file_stem));
    }
    drafts
}

impl Draft {
    fn finish(self) -> LocalProduct {
        let grid = &self.bands[self.grid_band];
        let product = Product {
            id: ProductId(self.id.clone()),
            collection: self.collection.clone(),
            title: self.title.clone(),
            datetime: self.when.map(|w| w.rfc3339()),
            bbox: self.footprint.as_ref().map(|f| f.bbox),
            platform: self.platform.clone(),
            product_type: self.product_type.clone(),
            cloud_cover: None,
            bands: self.bands.iter().map(BandDraft::band).collect(),
            georeferencing: self.georeferencing.clone(),
            pixels: PixelAccess::Local {
                width: grid.width,
                height: grid.height,
            },
            attribution: self.attribution.clone(),
        };
        let stac_item = stac::item(&self, &product);
        let bands = self
            .bands
            .iter()
            .map(|b| LocalBand {
                band: b.band(),
                path: b.path.clone(),
                index: b.index,
            })
            .collect();
        LocalProduct {
            product,
            bands,
            stac_item,
        }
    }
}

#[cfg(test)]
mod tests;
