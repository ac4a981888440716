//! GeoTIFF georeferencing: model tags and GeoKeys to a geotransform, EPSG code or GCPs.
//!
//! What it is: the interpretation of the GeoTIFF 1.1 tags `ModelPixelScale` (33550),
//! `ModelTiepoint` (33922), `ModelTransformation` (34264) and `GeoKeyDirectory` (34735, with
//! `GeoDoubleParams` 34736 and `GeoAsciiParams` 34737), the way GDAL reads them:
//! - a transformation matrix, or a pixel scale with (the first) tiepoint, gives an affine
//!   geotransform in GDAL order `[x0, dx, rx, y0, ry, dy]` for the pixel-is-area corner
//!   convention (a `PixelIsPoint` raster is shifted by half a pixel, as GDAL does);
//! - tiepoints without a scale or matrix are ground control points (radar geometry);
//! - the CRS is `ProjectedCSTypeGeoKey` (3072) for projected models and
//!   `GeographicTypeGeoKey` (2048) for geographic ones.
//!
//! What it is not: no user-defined CRS (key value 32767) and no vertical CRS; such files get
//! [`Georeferencing::None`] or GCPs without a CRS.

use std::path::Path;

use albedo_shared::catalog::Georeferencing;

use crate::RasterError;

/// `ModelPixelScaleTag`.
pub const TAG_MODEL_PIXEL_SCALE: u16 = 33550;
/// `ModelTiepointTag`.
pub const TAG_MODEL_TIEPOINT: u16 = 33922;
/// `ModelTransformationTag`.
pub const TAG_MODEL_TRANSFORMATION: u16 = 34264;
/// `GeoKeyDirectoryTag`.
pub const TAG_GEO_KEY_DIRECTORY: u16 = 34735;

const KEY_MODEL_TYPE: u16 = 1024;
const KEY_RASTER_TYPE: u16 = 1025;
const KEY_GEOGRAPHIC_TYPE: u16 = 2048;
const KEY_PROJECTED_CS_TYPE: u16 = 3072;
const USER_DEFINED: u16 = 32767;
const RASTER_PIXEL_IS_POINT: u16 = 2;

/// One ground control point: a raster position and the map coordinates it lies at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gcp {
    /// Column (pixel) position, fractional.
    pub pixel: f64,
    /// Row (line) position, fractional.
    pub line: f64,
    /// Map x (longitude in a geographic CRS).
    pub x: f64,
    /// Map y (latitude in a geographic CRS).
    pub y: f64,
    /// Height.
    pub z: f64,
}

/// The raw GeoTIFF tag values of one image, as read from the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoTags {
    /// `ModelPixelScale` (33550).
    pub pixel_scale: Option<Vec<f64>>,
    /// `ModelTiepoint` (33922), six values per point.
    pub tiepoints: Option<Vec<f64>>,
    /// `ModelTransformation` (34264), a row-major 4x4 matrix.
    pub transformation: Option<Vec<f64>>,
    /// `GeoKeyDirectory` (34735).
    pub geo_keys: Option<Vec<u16>>,
}

/// The GeoKeys this crate uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeoKeys {
    /// `GTModelTypeGeoKey` (1024): 1 projected, 2 geographic, 3 geocentric.
    pub model_type: Option<u16>,
    /// `GTRasterTypeGeoKey` (1025): 1 pixel is area, 2 pixel is point.
    pub raster_type: Option<u16>,
    /// `GeographicTypeGeoKey` (2048).
    pub geographic_type: Option<u16>,
    /// `ProjectedCSTypeGeoKey` (3072).
    pub projected_type: Option<u16>,
}

/// What the tags say, interpreted.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedGeoref {
    /// The summary the catalog stores.
    pub georeferencing: Georeferencing,
    /// The affine geotransform, also when the CRS is unknown.
    pub geotransform: Option<[f64; 6]>,
    /// The EPSG code of the CRS of the geotransform or of the GCPs.
    pub epsg: Option<u32>,
    /// Ground control points (empty unless the file has only tiepoints).
    pub gcps: Vec<Gcp>,
}

fn corrupt(path: &Path, what: String) -> RasterError {
    RasterError::Corrupt {
        path: path.to_path_buf(),
        what,
    }
}

/// Parses the key directory of tag 34735.
pub fn parse_geo_keys(path: &Path, dir: &[u16]) -> Result<GeoKeys, RasterError> {
    if dir.len() < 4 {
        return Err(corrupt(
            path,
            format!(
                "tag {TAG_GEO_KEY_DIRECTORY} (GeoKeyDirectory) holds {} values, fewer than its 4-value header",
                dir.len()
            ),
        ));
    }
    let count = usize::from(dir[3]);
    if dir.len() < 4 + 4 * count {
        return Err(corrupt(
            path,
            format!(
                "tag {TAG_GEO_KEY_DIRECTORY} (GeoKeyDirectory) declares {count} keys but holds only {} values",
                dir.len()
            ),
        ));
    }
    let mut keys = GeoKeys::default();
    for entry in dir[4..4 + 4 * count].chunks_exact(4) {
        let (key, location, value) = (entry[0], entry[1], entry[3]);
        // The keys used here are SHORTs stored in the directory itself (location 0).
        if location != 0 {
            continue;
        }
        match key {
            KEY_MODEL_TYPE => keys.model_type = Some(value),
            KEY_RASTER_TYPE => keys.raster_type = Some(value),
            KEY_GEOGRAPHIC_TYPE => keys.geographic_type = Some(value),
            KEY_PROJECTED_CS_TYPE => keys.projected_type = Some(value),
            _ => {}
        }
    }
    Ok(keys)
}

fn epsg_of(keys: &GeoKeys) -> Option<u32> {
    let known = |code: Option<u16>| code.filter(|&c| c != 0 && c != USER_DEFINED).map(u32::from);
    match keys.model_type {
        Some(1) => known(keys.projected_type),
        Some(2) => known(keys.geographic_type),
        _ => known(keys.projected_type).or_else(|| known(keys.geographic_type)),
    }
}

fn check_finite(path: &Path, tag: u16, name: &str, values: &[f64]) -> Result<(), RasterError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(corrupt(
            path,
            format!("tag {tag} ({name}) value {i} is not a finite number"),
        )),
        None => Ok(()),
    }
}

/// Interprets the GeoTIFF tags of an image.
pub fn parse(path: &Path, tags: &GeoTags) -> Result<ParsedGeoref, RasterError> {
    let keys = match &tags.geo_keys {
        Some(dir) => parse_geo_keys(path, dir)?,
        None => GeoKeys::default(),
    };
    let epsg = epsg_of(&keys);

    let mut geotransform = None;
    let mut gcps = Vec::new();
    if let Some(m) = &tags.transformation {
        if m.len() != 16 {
            return Err(corrupt(
                path,
                format!(
                    "tag {TAG_MODEL_TRANSFORMATION} (ModelTransformation) holds {} values, expected 16",
                    m.len()
                ),
            ));
        }
        check_finite(path, TAG_MODEL_TRANSFORMATION, "ModelTransformation", m)?;
        geotransform = Some([m[3], m[0], m[1], m[7], m[4], m[5]]);
    } else if let Some(tp) = &tags.tiepoints {
        if tp.len() % 6 != 0 || tp.is_empty() {
            return Err(corrupt(
                path,
                format!(
                    "tag {TAG_MODEL_TIEPOINT} (ModelTiepoint) holds {} values, not a positive multiple of 6",
                    tp.len()
                ),
            ));
        }
        check_finite(path, TAG_MODEL_TIEPOINT, "ModelTiepoint", tp)?;
        match &tags.pixel_scale {
            Some(scale) => {
                if scale.len() < 2 {
                    return Err(corrupt(
                        path,
                        format!(
                            "tag {TAG_MODEL_PIXEL_SCALE} (ModelPixelScale) holds {} values, expected 3",
                            scale.len()
                        ),
                    ));
                }
                check_finite(path, TAG_MODEL_PIXEL_SCALE, "ModelPixelScale", scale)?;
                if scale[0] == 0.0 || scale[1] == 0.0 {
                    return Err(corrupt(
                        path,
                        format!("tag {TAG_MODEL_PIXEL_SCALE} (ModelPixelScale) has a zero scale"),
                    ));
                }
                let (i, j, x, y) = (tp[0], tp[1], tp[3], tp[4]);
                let (sx, sy) = (scale[0], scale[1]);
                geotransform = Some([x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy]);
            }
            None => {
                gcps = tp
                    .chunks_exact(6)
                    .map(|c| Gcp {
                        pixel: c[0],
                        line: c[1],
                        x: c[3],
                        y: c[4],
                        z: c[5],
                    })
                    .collect();
            }
        }
    }

    if let Some(gt) = geotransform.as_mut()
        && keys.raster_type == Some(RASTER_PIXEL_IS_POINT)
    {
        // The tiepoint names the centre of the pixel: move to its corner, as GDAL does.
        gt[0] -= 0.5 * gt[1] + 0.5 * gt[2];
        gt[3] -= 0.5 * gt[4] + 0.5 * gt[5];
    }

    let georeferencing = match (geotransform, epsg) {
        (Some(gt), Some(epsg)) => Georeferencing::Affine {
            epsg,
            geotransform: gt,
        },
        _ if !gcps.is_empty() => Georeferencing::GcpsOnly {
            count: u32::try_from(gcps.len()).unwrap_or(u32::MAX),
        },
        (Some(_), None) => {
            tracing::debug!(path = %path.display(), "geotransform without a known EPSG code");
            Georeferencing::None
        }
        (None, _) => Georeferencing::None,
    };
    Ok(ParsedGeoref {
        georeferencing,
        geotransform,
        epsg,
        gcps,
    })
}

/// Applies a GDAL geotransform to a (fractional) pixel position.
pub fn apply(gt: &[f64; 6], px: f64, py: f64) -> (f64, f64) {
    (
        gt[0] + px * gt[1] + py * gt[2],
        gt[3] + px * gt[4] + py * gt[5],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utm33_keys(raster_type: u16) -> Vec<u16> {
        vec![
            1,
            1,
            0,
            3,
            1024,
            0,
            1,
            1,
            1025,
            0,
            1,
            raster_type,
            3072,
            0,
            1,
            32633,
        ]
    }

    #[test]
    fn scale_and_tiepoint_give_a_gdal_geotransform() {
        let tags = GeoTags {
            pixel_scale: Some(vec![10.0, 10.0, 0.0]),
            tiepoints: Some(vec![0.0, 0.0, 0.0, 330000.0, 5822040.0, 0.0]),
            transformation: None,
            geo_keys: Some(utm33_keys(1)),
        };
        let p = parse(Path::new("t.tif"), &tags).unwrap();
        assert_eq!(
            p.georeferencing,
            Georeferencing::Affine {
                epsg: 32633,
                geotransform: [330000.0, 10.0, 0.0, 5822040.0, 0.0, -10.0]
            }
        );
        // A tiepoint at pixel (2, 3) means the same grid.
        let tags = GeoTags {
            tiepoints: Some(vec![2.0, 3.0, 0.0, 330020.0, 5822010.0, 0.0]),
            ..tags
        };
        let p2 = parse(Path::new("t.tif"), &tags).unwrap();
        assert_eq!(p2.geotransform, p.geotransform);
    }

    #[test]
    fn pixel_is_point_moves_half_a_pixel() {
        let tags = GeoTags {
            pixel_scale: Some(vec![20.0, 20.0, 0.0]),
            tiepoints: Some(vec![0.0, 0.0, 0.0, 1000.0, 2000.0, 0.0]),
            transformation: None,
            geo_keys: Some(utm33_keys(2)),
        };
        let p = parse(Path::new("t.tif"), &tags).unwrap();
        assert_eq!(p.geotransform, Some([990.0, 20.0, 0.0, 2010.0, 0.0, -20.0]));
    }

    #[test]
    fn transformation_matrix_is_read_row_major() {
        let m = vec![
            10.0, 0.5, 0.0, 100.0, //
            0.25, -10.0, 0.0, 200.0, //
            0.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 0.0, 1.0,
        ];
        let tags = GeoTags {
            transformation: Some(m),
            geo_keys: Some(utm33_keys(1)),
            ..GeoTags::default()
        };
        let p = parse(Path::new("t.tif"), &tags).unwrap();
        assert_eq!(p.geotransform, Some([100.0, 10.0, 0.5, 200.0, 0.25, -10.0]));
        assert_eq!(apply(&p.geotransform.unwrap(), 1.0, 2.0), (111.0, 180.25));
    }

    #[test]
    fn tiepoints_alone_are_gcps_and_bad_tags_are_errors() {
        let tags = GeoTags {
            tiepoints: Some(vec![
                0.0, 0.0, 0.0, 78.2, 10.7, 0.0, //
                10.0, 5.0, 0.0, 78.1, 10.8, 0.0,
            ]),
            geo_keys: Some(vec![1, 1, 0, 2, 1024, 0, 1, 2, 2048, 0, 1, 4326]),
            ..GeoTags::default()
        };
        let p = parse(Path::new("t.tif"), &tags).unwrap();
        assert_eq!(p.georeferencing, Georeferencing::GcpsOnly { count: 2 });
        assert_eq!(p.epsg, Some(4326));
        assert_eq!(p.gcps[1].pixel, 10.0);
        assert_eq!(p.gcps[1].y, 10.8);

        let bad = GeoTags {
            tiepoints: Some(vec![0.0; 7]),
            ..GeoTags::default()
        };
        let err = parse(Path::new("t.tif"), &bad).unwrap_err().to_string();
        assert!(err.contains("33922"), "{err}");
        let bad = GeoTags {
            geo_keys: Some(vec![1, 1, 0, 5, 1024]),
            ..GeoTags::default()
        };
        let err = parse(Path::new("t.tif"), &bad).unwrap_err().to_string();
        assert!(err.contains("34735"), "{err}");
        let none = parse(Path::new("t.tif"), &GeoTags::default()).unwrap();
        assert_eq!(none.georeferencing, Georeferencing::None);
    }
}
