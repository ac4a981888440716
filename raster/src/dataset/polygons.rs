//! Labelled polygons (GeoJSON) rasterised onto a product grid.
//!
//! What it is: [`read_geojson`] reads a GeoJSON FeatureCollection's `Polygon` and
//! `MultiPolygon` features with the value of one property as their label, in the CRS the
//! file names (the old `crs` member: `urn:ogc:def:crs:EPSG::32633`, `EPSG:32633`, `CRS84`;
//! none means WGS84 longitude / latitude, as RFC 7946 says). [`rasterise`] marks every grid
//! pixel whose **centre** lies inside a polygon (even-odd rule over all rings, so holes are
//! holes) with the polygon's class, after reprojecting the polygon to the grid's CRS where
//! they differ (WGS84 <-> UTM by [`crate::proj`]). Where polygons overlap, the later feature
//! wins.
//!
//! What it is not: no general GeoJSON library: no points or lines (skipped), no antimeridian
//! handling, no other CRS pairs.

use std::path::Path;

use serde_json::Value;

use super::labels::{ClassMapping, LabelGrid, value_key};
use crate::{RasterError, proj};

/// One polygon's rings (the first is the exterior) in the file's CRS.
pub(crate) type Rings = Vec<Vec<(f64, f64)>>;

/// A labelled (multi)polygon of a GeoJSON file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LabelledPolygon {
    /// The label property's value as a mapping names it.
    pub label: String,
    /// Its polygons.
    pub polygons: Vec<Rings>,
}

/// The polygons of a GeoJSON file and its CRS (EPSG code).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolygonFile {
    pub epsg: u32,
    pub features: Vec<LabelledPolygon>,
    /// Features without the property or without a polygon geometry.
    pub skipped: usize,
}

fn bad(path: &Path, what: impl Into<String>) -> RasterError {
    RasterError::BadLabels {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// The EPSG code of a GeoJSON `crs` name.
fn crs_epsg(name: &str) -> Option<u32> {
    let n = name.trim();
    if n.ends_with("CRS84") {
        return Some(4326);
    }
    let tail = n.rsplit([':', '/']).next()?;
    if n.to_ascii_uppercase().contains("EPSG") {
        tail.parse().ok()
    } else {
        None
    }
}

fn label_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_f64().map(value_key),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn ring(path: &Path, v: &Value) -> Result<Vec<(f64, f64)>, RasterError> {
    let pts = v
        .as_array()
        .ok_or_else(|| bad(path, "a polygon ring is not an array"))?;
    pts.iter()
        .map(|p| match p.as_array().map(|a| a.as_slice()) {
            Some([x, y, ..]) => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => Ok((x, y)),
                _ => Err(bad(path, "a coordinate is not a number")),
            },
            _ => Err(bad(path, "a position has fewer than two coordinates")),
        })
        .collect()
}

fn polygon(path: &Path, v: &Value) -> Result<Rings, RasterError> {
    v.as_array()
        .ok_or_else(|| bad(path, "polygon coordinates are not an array"))?
        .iter()
        .map(|r| ring(path, r))
        .collect()
}

/// Reads the polygons of a GeoJSON FeatureCollection labelled by `property`.
pub(crate) fn read_geojson(path: &Path, property: &str) -> Result<PolygonFile, RasterError> {
    let text = std::fs::read_to_string(path).map_err(|source| RasterError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: Value = serde_json::from_str(&text).map_err(|source| RasterError::Metadata {
        path: path.to_path_buf(),
        source,
    })?;
    let epsg = match doc.pointer("/crs/properties/name").and_then(Value::as_str) {
        None => 4326,
        Some(name) => crs_epsg(name)
            .ok_or_else(|| bad(path, format!("CRS '{name}' is not an EPSG code or CRS84")))?,
    };
    let features = doc
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(path, "not a GeoJSON FeatureCollection (no features array)"))?;
    let mut out = Vec::new();
    let mut skipped = 0;
    for f in features {
        let label = f
            .get("properties")
            .and_then(|p| p.get(property))
            .and_then(label_text);
        let geom = f.get("geometry");
        let kind = geom.and_then(|g| g.get("type")).and_then(Value::as_str);
        let coords = geom.and_then(|g| g.get("coordinates"));
        let polygons = match (kind, coords) {
            (Some("Polygon"), Some(c)) => vec![polygon(path, c)?],
            (Some("MultiPolygon"), Some(c)) => c
                .as_array()
                .ok_or_else(|| bad(path, "MultiPolygon coordinates are not an array"))?
                .iter()
                .map(|p| polygon(path, p))
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        match label {
            Some(label) if !polygons.is_empty() => out.push(LabelledPolygon { label, polygons }),
            _ => skipped += 1,
        }
    }
    if out.is_empty() {
        return Err(bad(
            path,
            format!(
                "none of its {} features is a polygon with property '{property}'",
                features.len()
            ),
        ));
    }
    Ok(PolygonFile {
        epsg,
        features: out,
        skipped,
    })
}

/// Even-odd test of point (`x`, `y`) against all rings.
pub(crate) fn contains(rings: &Rings, x: f64, y: f64) -> bool {
    let mut inside = false;
    for ring in rings {
        let n = ring.len();
        if n < 3 {
            continue;
        }
        let mut j = n - 1;
        for i in 0..n {
            let (xi, yi) = ring[i];
            let (xj, yj) = ring[j];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
    }
    inside
}

/// Rasterises the polygons whose label the mapping knows onto a `width` x `height` grid
/// with north-up geotransform `gt` in CRS `grid_epsg`. Returns the label grid (over the
/// polygons' bounding box on the grid) and how many features had a label the mapping does
/// not take.
pub(crate) fn rasterise(
    path: &Path,
    file: &PolygonFile,
    mapping: &ClassMapping,
    grid_epsg: u32,
    gt: [f64; 6],
    width: u32,
    height: u32,
) -> Result<(LabelGrid, usize), RasterError> {
    if gt[2] != 0.0 || gt[4] != 0.0 || gt[1] <= 0.0 || gt[5] >= 0.0 {
        return Err(bad(
            path,
            "the product grid is rotated or not north-up; polygons cannot be placed on it",
        ));
    }
    let to_grid = |x: f64, y: f64| -> Option<(f64, f64)> {
        if file.epsg == grid_epsg {
            Some((x, y))
        } else if file.epsg == 4326 {
            proj::from_wgs84(grid_epsg, x, y)
        } else if grid_epsg == 4326 {
            proj::to_wgs84(file.epsg, x, y)
        } else {
            None
        }
    };
    // Placed polygons with their class, in grid coordinates (map units).
    let mut placed: Vec<(u8, Rings)> = Vec::new();
    let mut unmapped = 0;
    for feature in &file.features {
        let Some(class) = mapping.class_of(&feature.label) else {
            unmapped += 1;
            continue;
        };
        for rings in &feature.polygons {
            let mut out: Rings = Vec::with_capacity(rings.len());
            for r in rings {
                let pts: Option<Vec<(f64, f64)>> = r.iter().map(|&(x, y)| to_grid(x, y)).collect();
                out.push(pts.ok_or_else(|| {
                    bad(
                        path,
                        format!(
                            "polygons in EPSG:{} cannot be placed on a grid in EPSG:{grid_epsg}",
                            file.epsg
                        ),
                    )
                })?);
            }
            placed.push((class, out));
        }
    }
    // Pixel bounding box of each polygon, clamped to the grid.
    let col_of = |x: f64| (x - gt[0]) / gt[1];
    let row_of = |y: f64| (y - gt[3]) / gt[5];
    let mut boxes = Vec::with_capacity(placed.len());
    let (mut bx0, mut by0, mut bx1, mut by1) = (u32::MAX, u32::MAX, 0u32, 0u32);
    for (_, rings) in &placed {
        let (mut c0, mut c1, mut r0, mut r1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in rings.iter().flatten() {
            let (c, r) = (col_of(x), row_of(y));
            c0 = c0.min(c);
            c1 = c1.max(c);
            r0 = r0.min(r);
            r1 = r1.max(r);
        }
        // Pixels whose centre (i + 0.5) may lie inside [c0, c1].
        let lo = |v: f64, n: u32| ((v - 0.5).ceil().max(0.0) as u64).min(u64::from(n)) as u32;
        let hi = |v: f64, n: u32| ((v - 0.5).floor() + 1.0).clamp(0.0, f64::from(n)) as u32;
        let (cs, ce, rs, re) = (lo(c0, width), hi(c1, width), lo(r0, height), hi(r1, height));
        if cs < ce && rs < re {
            bx0 = bx0.min(cs);
            by0 = by0.min(rs);
            bx1 = bx1.max(ce);
            by1 = by1.max(re);
        }
        boxes.push((cs, ce, rs, re));
    }
    if bx0 >= bx1 || by0 >= by1 {
        return Ok((LabelGrid::empty(0, 0, 0, 0), unmapped));
    }
    let mut grid = LabelGrid::empty(bx0, by0, bx1 - bx0, by1 - by0);
    for ((class, rings), &(cs, ce, rs, re)) in placed.iter().zip(&boxes) {
        for row in rs..re {
            let y = gt[3] + (f64::from(row) + 0.5) * gt[5];
            for col in cs..ce {
                let x = gt[0] + (f64::from(col) + 0.5) * gt[1];
                if contains(rings, x, y) {
                    grid.set(col, row, *class);
                }
            }
        }
    }
    Ok((grid, unmapped))
}

#[cfg(test)]
mod tests {
    use super::super::labels::ClassDef;
    use super::*;

    #[test]
    fn crs_names() {
        assert_eq!(crs_epsg("urn:ogc:def:crs:EPSG::32633"), Some(32633));
        assert_eq!(crs_epsg("EPSG:4326"), Some(4326));
        assert_eq!(crs_epsg("urn:ogc:def:crs:OGC:1.3:CRS84"), Some(4326));
        assert_eq!(
            crs_epsg("http://www.opengis.net/def/crs/EPSG/0/32619"),
            Some(32619)
        );
        assert_eq!(crs_epsg("urn:ogc:def:crs:ESRI::102100"), None);
    }

    #[test]
    fn holes_are_outside() {
        let square = vec![
            (0.0, 0.0),
            (10.0, 0.0),
            (10.0, 10.0),
            (0.0, 10.0),
            (0.0, 0.0),
        ];
        let hole = vec![(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0), (4.0, 4.0)];
        let rings = vec![square, hole];
        assert!(contains(&rings, 1.0, 1.0));
        assert!(!contains(&rings, 5.0, 5.0));
        assert!(!contains(&rings, 11.0, 5.0));
    }

    #[test]
    fn pixel_centres_decide() {
        let dir = std::env::temp_dir().join(format!("albedo-poly-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.geojson");
        // A 30 m x 20 m rectangle from (100, 980) to (130, 960) on a 10 m grid at (100, 1000):
        // columns 0..3, rows 2..4; and a feature of an unmapped class.
        std::fs::write(
            &path,
            r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:32633"}},
            "features":[
             {"type":"Feature","properties":{"cid":2},"geometry":{"type":"Polygon","coordinates":[[[100,980],[130,980],[130,960],[100,960],[100,980]]]}},
             {"type":"Feature","properties":{"cid":7},"geometry":{"type":"Polygon","coordinates":[[[100,1000],[130,1000],[130,990],[100,990],[100,1000]]]}},
             {"type":"Feature","properties":{},"geometry":null}]}"#,
        )
        .unwrap();
        let file = read_geojson(&path, "cid").unwrap();
        assert_eq!(
            (file.epsg, file.features.len(), file.skipped),
            (32633, 2, 1)
        );
        let mapping = ClassMapping::new(vec![
            ClassDef::new("one", &["1"]),
            ClassDef::new("two", &["2"]),
        ]);
        let gt = [100.0, 10.0, 0.0, 1000.0, 0.0, -10.0];
        let (grid, unmapped) = rasterise(&path, &file, &mapping, 32633, gt, 8, 8).unwrap();
        assert_eq!(unmapped, 1);
        let mut got: Vec<(u32, u32)> = grid.labelled().collect();
        got.sort();
        let mut want: Vec<(u32, u32)> = (0..3).flat_map(|c| (2..4).map(move |r| (c, r))).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(grid.get(1, 2), 1);
        // The same rectangle in WGS84 lands on the same pixels of a UTM grid.
        let corner = |x: f64, y: f64| proj::to_wgs84(32633, x, y).unwrap();
        let ring: Vec<(f64, f64)> = [
            (100.0, 980.0),
            (130.0, 980.0),
            (130.0, 960.0),
            (100.0, 960.0),
        ]
        .iter()
        .map(|&(x, y)| corner(x + 400_000.0, y + 5_000_000.0))
        .collect();
        let wgs = PolygonFile {
            epsg: 4326,
            features: vec![LabelledPolygon {
                label: "2".into(),
                polygons: vec![vec![ring]],
            }],
            skipped: 0,
        };
        let gt_utm = [400_100.0, 10.0, 0.0, 5_001_000.0, 0.0, -10.0];
        let (g2, _) = rasterise(&path, &wgs, &mapping, 32633, gt_utm, 8, 8).unwrap();
        let mut got2: Vec<(u32, u32)> = g2.labelled().collect();
        got2.sort();
        assert_eq!(got2, want);
        let err = rasterise(&path, &wgs, &mapping, 3857, gt, 8, 8).unwrap_err();
        assert!(
            err.to_string().contains("EPSG:4326 cannot be placed"),
            "{err}"
        );
        assert!(read_geojson(&path, "nope").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
