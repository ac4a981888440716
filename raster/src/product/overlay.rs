//! Quick-look-only products: an ESA quick-look PNG placed on the map by a KML overlay.
//!
//! What it is: a folder holding a KML `GroundOverlay` whose `gx:LatLonQuad` gives the four
//! corners of a PNG beside it (the `preview/` part of a Sentinel-1 SAFE product, such as the
//! Kara Sea sample) becomes one product with [`Georeferencing::CornersOnly`]: its footprint
//! is the ring through the four corners exactly as the KML gives them (lower left, lower
//! right, upper right, upper left of the image), run backwards where they are clockwise in
//! longitude / latitude (the Kara Sea's are: a descending pass's radar geometry is mirrored
//! on the map) so that the ring is counter-clockwise as RFC 7946 asks; its pixels are the
//! PNG's 8-bit channels. The id, mode,
//! polarisations, start / stop time, orbit and pass come from `manifest.safe` and
//! `productInfo.json` where present (times to the second; the manifest's fractions are
//! dropped).
//!
//! The channels are named `R`, `G`, `B` (`A` for alpha, `grey` for one channel): ESA's
//! quick-look is an HH/HV colour composite, but neither the sample's metadata nor its
//! manifest says which channel holds which polarisation, so no channel claims one. The
//! polarisations the product holds are in its STAC item (`sar:polarizations`).
//!
//! What it is not: no full KML or XML parser (the first `coordinates` of a `LatLonQuad` or,
//! failing that, of a `LatLonBox`-less `GroundOverlay`; manifest tags are found by local
//! name); no pixel-to-map transform (the corners place the image, they do not resample it).

use std::path::{Path, PathBuf};

use albedo_shared::catalog::{Dtype, Georeferencing};

use super::names::{self, Mission, When};
use super::sidecar::{Sidecar, field};
use super::{BandDraft, Draft, FileFormat, Layout, attribution, file_name_of, platform_title};
use crate::RasterError;
use crate::footprint::Footprint;
use crate::source::{is_png, png_info};

/// Whether `path` names a KML file by its extension.
pub fn is_kml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("kml"))
}

/// The text inside every element whose local name (without namespace prefix) is `name`.
fn element_texts<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let end_name = after
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(after.len());
        let tag = &after[..end_name];
        let local = tag.rsplit(':').next().unwrap_or(tag);
        rest = after;
        if local != name || tag.starts_with('/') {
            continue;
        }
        let Some(gt) = after.find('>') else { break };
        if after[..gt].ends_with('/') {
            continue;
        }
        let body = &after[gt + 1..];
        let text_end = body.find('<').unwrap_or(body.len());
        out.push(body[..text_end].trim());
        rest = body;
    }
    out
}

/// The image corners of a KML overlay: `(longitude, latitude)` of the first `LatLonQuad`'s
/// `coordinates` (four positions, `lon,lat[,alt]` separated by white space).
pub(crate) fn kml_corners(kml: &str) -> Option<Vec<(f64, f64)>> {
    let quad = kml.find("LatLonQuad")?;
    let coords = element_texts(&kml[quad..], "coordinates");
    let text = coords.first()?;
    let corners: Option<Vec<(f64, f64)>> = text
        .split_whitespace()
        .map(|pos| {
            let mut parts = pos.split(',').map(|s| s.trim().parse::<f64>());
            match (parts.next(), parts.next()) {
                (Some(Ok(lon)), Some(Ok(lat)))
                    if (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat) =>
                {
                    Some((lon, lat))
                }
                _ => None,
            }
        })
        .collect();
    corners.filter(|c| c.len() == 4)
}

/// What the SAFE manifest says of the product.
#[derive(Debug, Default)]
struct Manifest {
    start: Option<When>,
    stop: Option<When>,
    pass: Option<String>,
    absolute_orbit: Option<u32>,
    relative_orbit: Option<u32>,
    polarisations: Vec<String>,
    mode: Option<String>,
    product_type: Option<String>,
}

fn read_manifest(path: &Path) -> Result<Option<Manifest>, RasterError> {
    let xml = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RasterError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let first = |name: &str| element_texts(&xml, name).first().map(|s| s.to_string());
    let number = |name: &str| first(name).and_then(|s| s.parse::<u32>().ok());
    Ok(Some(Manifest {
        start: first("startTime").as_deref().and_then(names::find_when),
        stop: first("stopTime").as_deref().and_then(names::find_when),
        pass: first("pass").map(|p| p.to_ascii_lowercase()),
        absolute_orbit: number("orbitNumber"),
        relative_orbit: number("relativeOrbitNumber"),
        polarisations: element_texts(&xml, "transmitterReceiverPolarisation")
            .into_iter()
            .map(str::to_ascii_uppercase)
            .collect(),
        mode: first("mode"),
        product_type: first("productType"),
    }))
}

/// Channel names of a PNG of `channels` samples per pixel.
fn channel_names(channels: u16) -> Vec<&'static str> {
    match channels {
        1 => vec!["grey"],
        2 => vec!["grey", "A"],
        3 => vec!["R", "G", "B"],
        _ => vec!["R", "G", "B", "A"],
    }
}

/// The quick-look product of a folder without GeoTIFFs, when it holds a KML overlay with
/// four corners and the PNG it names (or the only PNG); `None` (with a `debug` log) otherwise.
pub(super) fn scan_quick_look(
    dir: &Path,
    entries: &[PathBuf],
    sidecar: &Sidecar,
) -> Result<Option<Draft>, RasterError> {
    let Some(kml_path) = entries.iter().find(|p| p.is_file() && is_kml(p)) else {
        return Ok(None);
    };
    let kml = std::fs::read_to_string(kml_path).map_err(|source| RasterError::Io {
        path: kml_path.clone(),
        source,
    })?;
    let Some(corners) = kml_corners(&kml) else {
        tracing::debug!(path = %kml_path.display(), "KML without a four-corner LatLonQuad: no quick-look product");
        return Ok(None);
    };
    let pngs: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.is_file() && is_png(p))
        .collect();
    let named = element_texts(&kml, "href").into_iter().find_map(|h| {
        pngs.iter()
            .find(|p| file_name_of(p) == h.rsplit('/').next().unwrap_or(h))
    });
    let png = match (named, pngs.as_slice()) {
        (Some(p), _) => (*p).clone(),
        (None, [only]) => (*only).clone(),
        _ => {
            tracing::debug!(path = %dir.display(), "KML overlay without its PNG: no quick-look product");
            return Ok(None);
        }
    };
    let (width, height, channels) = png_info(&png)?;
    let bands: Vec<BandDraft> = channel_names(channels)
        .into_iter()
        .enumerate()
        .map(|(i, name)| BandDraft {
            name: name.to_string(),
            path: png.clone(),
            index: i as u16,
            width,
            height,
            dtype: Dtype::U8,
            nodata: None,
            epsg: None,
            geotransform: None,
            tiled: false,
            format: FileFormat::Png,
        })
        .collect();
    let footprint = Footprint::from_corners(&corners).ok_or_else(|| RasterError::Inconsistent {
        path: kml_path.clone(),
        what: "the overlay's four corners do not enclose an area".into(),
    })?;

    let manifest = read_manifest(&dir.join("manifest.safe"))?.unwrap_or_default();
    let docs = sidecar.documents("");
    let product_name = field(&docs, &["id", "product"])
        .filter(|p| names::is_product_name(p))
        .map(str::to_string);
    let folder_name = file_name_of(dir);
    let name_text = product_name.clone().unwrap_or_else(|| folder_name.clone());
    let when = manifest
        .start
        .or_else(|| field(&docs, &["startTime"]).and_then(names::find_when))
        .or_else(|| names::find_when(&name_text));
    let end = manifest
        .stop
        .or_else(|| field(&docs, &["stopTime"]).and_then(names::find_when));
    let platform = [
        Some(name_text.as_str()),
        field(&docs, &["missionId", "platform"]),
    ]
    .into_iter()
    .flatten()
    .find_map(names::platform_of);
    let mode = manifest
        .mode
        .as_deref()
        .and_then(names::s1_mode_of)
        .or_else(|| field(&docs, &["mode"]).and_then(names::s1_mode_of))
        .or_else(|| names::s1_mode_of(&name_text));
    let product_type = manifest
        .product_type
        .as_deref()
        .and_then(names::s1_product_type_of)
        .or_else(|| field(&docs, &["productType"]).and_then(names::s1_product_type_of))
        .or_else(|| names::s1_product_type_of(&name_text));
    let mut polarizations = manifest.polarisations.clone();
    if polarizations.is_empty()
        && let Some(serde_json::Value::Array(p)) = sidecar
            .metadata
            .as_ref()
            .and_then(|m| m.get("polarisations"))
    {
        polarizations = p
            .iter()
            .filter_map(|v| v.as_str().map(str::to_ascii_uppercase))
            .collect();
    }
    let unit = platform
        .as_deref()
        .and_then(|p| p.strip_prefix("sentinel-"))
        .map(|u| format!("S{}", u.to_ascii_uppercase()));
    let id = product_name.clone().unwrap_or_else(|| {
        format!(
            "{}_{}_{}_{}_{}_quicklook",
            unit.as_deref().unwrap_or("S1"),
            mode.unwrap_or("XX"),
            product_type.unwrap_or("GRD"),
            when.map(|w| w.compact())
                .unwrap_or_else(|| "undated".into()),
            super::sanitize_id(&folder_name),
        )
    });
    let mut title = platform_title(platform.as_deref(), "Sentinel-1");
    for part in [mode, product_type].into_iter().flatten() {
        title.push(' ');
        title.push_str(part);
    }
    if !polarizations.is_empty() {
        title.push(' ');
        title.push_str(&polarizations.join("+"));
    }
    title.push_str(" quick-look (8-bit colour composite, corners only)");
    if let Some(w) = when {
        title.push_str(&format!(", {}", w.human()));
    }
    let licence = field(&docs, &["license", "licence"]);
    let description = sidecar
        .file_note("files", &file_name_of(&png))
        .or_else(|| field(&docs, &["area"]).map(str::to_string));

    Ok(Some(Draft {
        id,
        title,
        collection: "sentinel-1-grd".into(),
        mission: Mission::Sentinel1,
        layout: Layout::Stack,
        when,
        end,
        platform,
        product_type: product_type.map(str::to_string),
        instrument_mode: mode.map(str::to_string),
        mgrs_tile: None,
        attribution: attribution(Mission::Sentinel1, when, licence),
        description,
        bands,
        grid_band: 0,
        georeferencing: Georeferencing::CornersOnly,
        footprint: Some(footprint),
        file_stem: super::stem_of(&png),
        polarizations,
        orbit_state: manifest.pass,
        absolute_orbit: manifest.absolute_orbit,
        relative_orbit: manifest.relative_orbit,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_texts_by_local_name() {
        let xml = "<a><safe:startTime>2022-11-30T01:43:42.5</safe:startTime><x/><startTime a=\"1\"> t2 </startTime></a>";
        assert_eq!(
            element_texts(xml, "startTime"),
            vec!["2022-11-30T01:43:42.5", "t2"]
        );
        assert!(element_texts(xml, "x").is_empty());
    }

    #[test]
    fn kml_corners_need_four_positions() {
        let kml = "<gx:LatLonQuad><coordinates>1,2 3,4,0 5,6 7,8</coordinates></gx:LatLonQuad>";
        assert_eq!(
            kml_corners(kml),
            Some(vec![(1.0, 2.0), (3.0, 4.0), (5.0, 6.0), (7.0, 8.0)])
        );
        let three = "<gx:LatLonQuad><coordinates>1,2 3,4 5,6</coordinates></gx:LatLonQuad>";
        assert_eq!(kml_corners(three), None);
        assert_eq!(
            kml_corners("<coordinates>1,2 3,4 5,6 7,8</coordinates>"),
            None
        );
        let bad = "<gx:LatLonQuad><coordinates>1,2 3,x 5,6 7,8</coordinates></gx:LatLonQuad>";
        assert_eq!(kml_corners(bad), None);
    }
}
