//! Where labelled patches come from: the three sources, turned into scenes of candidates.
//!
//! What it is: for each [`SourceSpec`], the scenes (a product grid each) and the candidate
//! patches on them with their class, decided from the labels alone before any imagery
//! pixel is read:
//! - BigEarthNet: each patch folder is a scene; its `*_labels_metadata.json` labels give one
//!   class (the first of the mapping the patch has) and the multi-hot vector; windows of P
//!   with stride S tile its 120 x 120 grid (P = 120: the whole patch).
//! - Label raster: the imagery product is the scene; the label raster is sampled at each grid
//!   pixel's centre (nearest pixel, through both geotransforms, same CRS required; rasters
//!   without georeferencing must be the grid's size), windows of P with stride S tile the
//!   grid, each labelled by its majority class.
//! - Polygons: rasterised onto the grid ([`super::polygons`]); every labelled pixel on the
//!   stride lattice (`x % S == 0 && y % S == 0`) centres a window (shifted inside the grid at
//!   the edges), labelled by its majority class.
//!
//! A window is kept when at least `min_labelled_fraction` of its pixels carry a class.
//!
//! What it is not: no reading of imagery pixels (see `grid.rs`), no catalog look-ups: the
//! imagery is a local path scanned by [`crate::product::scan`].

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use albedo_shared::catalog::{Georeferencing, PixelAccess};

use super::labels::{LabelGrid, NO_CLASS, PatchLabel, value_key};
use super::polygons;
use super::store::Skipped;
use super::{DatasetSpec, Imagery, SourceSpec};
use crate::product::{LocalProduct, scan};
use crate::source::BandSource;
use crate::{GeoTiff, RasterError};

/// One patch to cut: its top-left grid pixel and class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub x: u32,
    pub y: u32,
    pub class: u8,
}

/// A product grid and the patches to cut from it.
#[derive(Debug)]
pub(crate) struct Scene {
    /// Scene name for sample origins (patch folder or product id).
    pub name: String,
    pub product: LocalProduct,
    /// Sorted by (y, x).
    pub candidates: Vec<Candidate>,
    /// Multi-hot labels shared by every patch of the scene (multi-label sources).
    pub multi: Option<Vec<u8>>,
}

/// What a source gave.
#[derive(Debug)]
pub(crate) struct Gathered {
    pub scenes: Vec<Scene>,
    pub description: String,
    pub skipped: Skipped,
    pub multi_label: bool,
}

fn grid_size(p: &LocalProduct) -> Result<(u32, u32), RasterError> {
    match p.product.pixels {
        PixelAccess::Local { width, height } => Ok((width, height)),
        PixelAccess::Remote => Err(RasterError::NotLocal {
            product: p.product.id.0.clone(),
        }),
    }
}

/// Window origins of a `w` x `h` grid: every `stride` pixels while a whole patch fits.
fn lattice(w: u32, h: u32, patch: u32, stride: u32) -> Vec<(u32, u32)> {
    if patch > w || patch > h {
        return Vec::new();
    }
    let xs: Vec<u32> = (0..=w - patch).step_by(stride as usize).collect();
    (0..=h - patch)
        .step_by(stride as usize)
        .flat_map(|y| xs.iter().map(move |&x| (x, y)))
        .collect()
}

fn too_small(patch: u32, w: u32, h: u32, what: &str) -> RasterError {
    RasterError::DatasetOption {
        option: "patch_size",
        reason: format!("{patch} is larger than the {w}x{h} grid of {what}"),
    }
}

/// Scans the imagery path and picks the product.
pub(crate) fn open_imagery(imagery: &Imagery) -> Result<LocalProduct, RasterError> {
    let products = scan(&imagery.path)?;
    match &imagery.product {
        Some(id) => products
            .iter()
            .find(|p| p.product.id.0 == *id)
            .cloned()
            .ok_or_else(|| RasterError::DatasetOption {
                option: "imagery.product",
                reason: format!(
                    "{} holds no product '{id}' (it holds {})",
                    imagery.path.display(),
                    products
                        .iter()
                        .map(|p| p.product.id.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        None => match products.len() {
            1 => Ok(products.into_iter().next().expect("one product")),
            0 => Err(RasterError::NotAProduct {
                path: imagery.path.clone(),
                reason: "no imagery product found there".into(),
            }),
            _ => Err(RasterError::DatasetOption {
                option: "imagery.product",
                reason: format!(
                    "{} holds {} products; name one of {}",
                    imagery.path.display(),
                    products.len(),
                    products
                        .iter()
                        .map(|p| p.product.id.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        },
    }
}

fn affine(p: &LocalProduct) -> Option<(u32, [f64; 6])> {
    match p.product.georeferencing {
        Georeferencing::Affine { epsg, geotransform } => Some((epsg, geotransform)),
        _ => None,
    }
}

pub(crate) fn gather(spec: &DatasetSpec) -> Result<Gathered, RasterError> {
    match &spec.source {
        SourceSpec::BigEarthNet { dir, patches } => bigearthnet(spec, dir, patches),
        SourceSpec::LabelRaster { labels, imagery } => label_raster(spec, labels, imagery),
        SourceSpec::Polygons {
            geojson,
            property,
            imagery,
        } => polygon_source(spec, geojson, property, imagery),
    }
}

fn read_labels_json(folder: &Path) -> Result<Vec<String>, RasterError> {
    let io = |source| RasterError::Io {
        path: folder.to_path_buf(),
        source,
    };
    let mut found = None;
    for entry in std::fs::read_dir(folder).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("_labels_metadata.json"))
        {
            found = Some(path);
            break;
        }
    }
    let path = found.ok_or_else(|| RasterError::BadLabels {
        path: folder.to_path_buf(),
        what: "no *_labels_metadata.json in the patch folder".into(),
    })?;
    let text = std::fs::read_to_string(&path).map_err(|source| RasterError::Io {
        path: path.clone(),
        source,
    })?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| RasterError::Metadata {
            path: path.clone(),
            source,
        })?;
    doc.get("labels")
        .and_then(|l| l.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| RasterError::BadLabels {
            path,
            what: "no \"labels\" array of names".into(),
        })
}

fn bigearthnet(
    spec: &DatasetSpec,
    dir: &Path,
    patches: &[String],
) -> Result<Gathered, RasterError> {
    let io = |source| RasterError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut folders: Vec<std::path::PathBuf> = Vec::new();
    if patches.is_empty() {
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                folders.push(path);
            }
        }
        folders.sort();
    } else {
        for p in patches {
            if p.contains(['/', '\\']) || p.starts_with('.') {
                return Err(RasterError::DatasetOption {
                    option: "source.patches",
                    reason: format!("'{p}' is not a patch folder name"),
                });
            }
            let path = dir.join(p);
            if !path.is_dir() {
                return Err(RasterError::NotAProduct {
                    path,
                    reason: "no such BigEarthNet patch folder".into(),
                });
            }
            folders.push(path);
        }
    }
    let mut scenes = Vec::new();
    let mut skipped = Skipped::default();
    for folder in &folders {
        let labels = read_labels_json(folder)?;
        let product = scan(folder)?
            .into_iter()
            .next()
            .ok_or_else(|| RasterError::NotAProduct {
                path: folder.clone(),
                reason: "no band GeoTIFFs in the patch folder".into(),
            })?;
        let (w, h) = grid_size(&product)?;
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let windows = lattice(w, h, spec.patch_size, spec.stride);
        if windows.is_empty() {
            return Err(too_small(spec.patch_size, w, h, &name));
        }
        let Some(class) = spec.classes.first_class(&labels) else {
            skipped.unmapped += windows.len() as u64;
            continue;
        };
        scenes.push(Scene {
            name,
            multi: Some(spec.classes.multi_hot(&labels)),
            candidates: windows
                .into_iter()
                .map(|(x, y)| Candidate { x, y, class })
                .collect(),
            product,
        });
    }
    Ok(Gathered {
        description: format!(
            "BigEarthNet v1 patches in {} ({} of {} patch folders have a mapped label)",
            dir.display(),
            scenes.len(),
            folders.len()
        ),
        scenes,
        skipped,
        multi_label: true,
    })
}

/// Majority-labelled windows of a label grid.
fn windows_of(
    spec: &DatasetSpec,
    grid: &LabelGrid,
    origins: impl IntoIterator<Item = (u32, u32)>,
    skipped: &mut Skipped,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (x, y) in origins {
        match grid.patch_label(
            x,
            y,
            spec.patch_size,
            spec.classes.len(),
            spec.min_labelled_fraction,
        ) {
            PatchLabel::Class(class) => out.push(Candidate { x, y, class }),
            PatchLabel::TooFewLabelled => skipped.too_few_labelled += 1,
        }
    }
    out
}

/// Class of each grid pixel from a label raster (nearest label pixel at the grid pixel's
/// centre).
fn label_grid_from_raster(
    spec: &DatasetSpec,
    labels: &Path,
    product: &LocalProduct,
) -> Result<LabelGrid, RasterError> {
    let (w, h) = grid_size(product)?;
    let tif = GeoTiff::open(labels)?;
    let (lw, lh) = (tif.width(), tif.height());
    let bad = |what: String| RasterError::BadLabels {
        path: labels.to_path_buf(),
        what,
    };
    // Label pixel of each grid column and row, None outside the label raster.
    let (cols, rows): (Vec<Option<u32>>, Vec<Option<u32>>) =
        match (affine(product), tif.geotransform(), tif.epsg()) {
            (Some((epsg, gt)), Some(lgt), Some(lepsg)) => {
                if epsg != lepsg {
                    return Err(bad(format!(
                        "labels are in EPSG:{lepsg}, the imagery in EPSG:{epsg}"
                    )));
                }
                let north_up =
                    |g: &[f64; 6]| g[2] == 0.0 && g[4] == 0.0 && g[1] > 0.0 && g[5] < 0.0;
                if !north_up(&gt) || !north_up(&lgt) {
                    return Err(bad("a rotated or south-up grid is not supported".into()));
                }
                let map = |g: u32, o: f64, d: f64, lo: f64, ld: f64, n: u32| {
                    let m = o + (f64::from(g) + 0.5) * d;
                    let i = ((m - lo) / ld).floor();
                    (i >= 0.0 && i < f64::from(n)).then_some(i as u32)
                };
                (
                    (0..w)
                        .map(|g| map(g, gt[0], gt[1], lgt[0], lgt[1], lw))
                        .collect(),
                    (0..h)
                        .map(|g| map(g, gt[3], gt[5], lgt[3], lgt[5], lh))
                        .collect(),
                )
            }
            _ if (lw, lh) == (w, h) => ((0..w).map(Some).collect(), (0..h).map(Some).collect()),
            _ => {
                return Err(bad(format!(
                    "the {lw}x{lh} label raster is not georeferenced like the {w}x{h} imagery"
                )));
            }
        };
    let col_list: Vec<u32> = cols.iter().flatten().copied().collect();
    let row_list: Vec<u32> = rows.iter().flatten().copied().collect();
    let mut grid = LabelGrid::empty(0, 0, w, h);
    if col_list.is_empty() || row_list.is_empty() {
        return Ok(grid);
    }
    let mut cache: HashMap<u64, u8> = HashMap::new();
    let mut values = vec![NO_CLASS; col_list.len() * row_list.len()];
    let nodata = tif.nodata();
    drop(tif);
    let source = BandSource::open(labels)?;
    source.read_indexed(0, &col_list, &row_list, |i, v| {
        if nodata == Some(v) || v.is_nan() {
            return;
        }
        values[i] = *cache
            .entry(v.to_bits())
            .or_insert_with(|| spec.classes.class_of(&value_key(v)).unwrap_or(NO_CLASS));
    })?;
    let nc = col_list.len();
    let mut r_i = 0;
    for (gy, r) in rows.iter().enumerate() {
        if r.is_none() {
            continue;
        }
        let mut c_i = 0;
        for (gx, c) in cols.iter().enumerate() {
            if c.is_none() {
                continue;
            }
            grid.set(gx as u32, gy as u32, values[r_i * nc + c_i]);
            c_i += 1;
        }
        r_i += 1;
    }
    Ok(grid)
}

fn label_raster(
    spec: &DatasetSpec,
    labels: &Path,
    imagery: &Imagery,
) -> Result<Gathered, RasterError> {
    let product = open_imagery(imagery)?;
    let (w, h) = grid_size(&product)?;
    let grid = label_grid_from_raster(spec, labels, &product)?;
    let windows = lattice(w, h, spec.patch_size, spec.stride);
    if windows.is_empty() {
        return Err(too_small(spec.patch_size, w, h, &product.product.id.0));
    }
    let mut skipped = Skipped::default();
    let candidates = windows_of(spec, &grid, windows, &mut skipped);
    let id = product.product.id.0.clone();
    Ok(Gathered {
        description: format!(
            "label raster {} over product {id} ({w}x{h} grid)",
            labels.display()
        ),
        scenes: vec![Scene {
            name: id,
            product,
            candidates,
            multi: None,
        }],
        skipped,
        multi_label: false,
    })
}

fn polygon_source(
    spec: &DatasetSpec,
    geojson: &Path,
    property: &str,
    imagery: &Imagery,
) -> Result<Gathered, RasterError> {
    let product = open_imagery(imagery)?;
    let (w, h) = grid_size(&product)?;
    if spec.patch_size > w || spec.patch_size > h {
        return Err(too_small(spec.patch_size, w, h, &product.product.id.0));
    }
    let (epsg, gt) = affine(&product).ok_or_else(|| RasterError::BadLabels {
        path: geojson.to_path_buf(),
        what: format!(
            "product {} has no map grid to place polygons on",
            product.product.id.0
        ),
    })?;
    let file = polygons::read_geojson(geojson, property)?;
    let (grid, unmapped) = polygons::rasterise(geojson, &file, &spec.classes, epsg, gt, w, h)?;
    let (p, s) = (spec.patch_size, spec.stride);
    let origins: BTreeSet<(u32, u32)> = grid
        .labelled()
        .filter(|(x, y)| x % s == 0 && y % s == 0)
        .map(|(x, y)| {
            let o = |c: u32, n: u32| c.saturating_sub(p / 2).min(n - p);
            (o(y, h), o(x, w))
        })
        .collect();
    let mut skipped = Skipped::default();
    let candidates = windows_of(
        spec,
        &grid,
        origins.into_iter().map(|(y, x)| (x, y)),
        &mut skipped,
    );
    let id = product.product.id.0.clone();
    Ok(Gathered {
        description: format!(
            "{} polygons of {} (class property '{property}', EPSG:{}; {} of an unmapped class, {} without a polygon or the property) over product {id} ({w}x{h} grid)",
            file.features.len(),
            geojson.display(),
            file.epsg,
            unmapped,
            file.skipped
        ),
        scenes: vec![Scene {
            name: id,
            product,
            candidates,
            multi: None,
        }],
        skipped,
        multi_label: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lattice_covers_whole_patches_only() {
        assert_eq!(lattice(5, 3, 2, 2), vec![(0, 0), (2, 0)]);
        assert_eq!(lattice(5, 4, 2, 2), vec![(0, 0), (2, 0), (0, 2), (2, 2)]);
        assert_eq!(lattice(120, 120, 120, 7), vec![(0, 0)]);
        assert_eq!(lattice(120, 120, 60, 60).len(), 4);
        assert!(lattice(10, 10, 11, 1).is_empty());
    }
}
