//! A small TopoJSON decoder: the bundled Natural Earth basemap into rings and lines of
//! longitude/latitude.
//!
//! What it is: the part of the TopoJSON specification a basemap needs. Arcs are decoded once
//! (quantized positions are delta-encoded and mapped through the topology's `transform`);
//! polygon rings are stitched from arcs (a negative index `~i` is arc `i` reversed; the first
//! point of every arc after the first repeats the last one and is dropped).
//!
//! What it is not: no projection, no drawing, no points; `properties` and ids are ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A longitude/latitude position in degrees.
pub type LonLat = [f64; 2];

/// What the world map draws, ready for an equirectangular projection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Basemap {
    /// Land polygons as planar rings (outer rings and holes; fill them with the even-odd
    /// rule): see [`planar_rings`].
    pub land: Vec<Vec<LonLat>>,
    /// Every arc of the topology (coastlines and country borders, each drawn once), split
    /// where it jumps across the antimeridian.
    pub lines: Vec<Vec<LonLat>>,
}

impl Basemap {
    /// Number of positions in the land rings.
    pub fn land_points(&self) -> usize {
        self.land.iter().map(Vec::len).sum()
    }
}

/// Why a TopoJSON document could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopoJsonError {
    /// Not JSON, or not shaped as a Topology.
    #[error("not a TopoJSON topology: {0}")]
    Shape(String),
    /// A geometry names an arc the topology does not have.
    #[error("arc index {0} is out of range ({1} arcs)")]
    ArcIndex(i64, usize),
    /// None of the objects asked for is in the topology.
    #[error("the topology has no object named {0}")]
    NoObject(String),
}

#[derive(Debug, Deserialize)]
struct Topology {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    transform: Option<Transform>,
    objects: BTreeMap<String, Value>,
    arcs: Vec<Vec<Vec<f64>>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Transform {
    scale: [f64; 2],
    translate: [f64; 2],
}

/// Decodes every arc of a topology: undoes the delta encoding and applies the transform.
fn decode_arcs(topo: &Topology) -> Vec<Vec<LonLat>> {
    topo.arcs
        .iter()
        .map(|arc| {
            let (mut x, mut y) = (0.0, 0.0);
            arc.iter()
                .filter(|p| p.len() >= 2)
                .map(|p| match topo.transform {
                    Some(t) => {
                        x += p[0];
                        y += p[1];
                        [
                            x * t.scale[0] + t.translate[0],
                            y * t.scale[1] + t.translate[1],
                        ]
                    }
                    None => [p[0], p[1]],
                })
                .collect()
        })
        .collect()
}

/// Joins arcs into one ring or line.
fn stitch(indices: &[i64], arcs: &[Vec<LonLat>]) -> Result<Vec<LonLat>, TopoJsonError> {
    let mut out: Vec<LonLat> = Vec::new();
    for &i in indices {
        let (index, reversed) = if i < 0 { (!i, true) } else { (i, false) };
        let arc = usize::try_from(index)
            .ok()
            .and_then(|k| arcs.get(k))
            .ok_or(TopoJsonError::ArcIndex(i, arcs.len()))?;
        let skip = usize::from(!out.is_empty());
        if reversed {
            out.extend(arc.iter().rev().skip(skip));
        } else {
            out.extend(arc.iter().skip(skip));
        }
    }
    Ok(out)
}

/// The arc indices of one ring.
fn ring_indices(v: &Value) -> Result<Vec<i64>, TopoJsonError> {
    v.as_array()
        .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| TopoJsonError::Shape(format!("a ring's arcs must be integers, got {v}")))
}

fn list(v: &Value) -> Result<&Vec<Value>, TopoJsonError> {
    v.as_array()
        .ok_or_else(|| TopoJsonError::Shape(format!("expected an array, got {v}")))
}

/// Appends the rings of a (Multi)Polygon or of a collection of them; other geometries (lines,
/// points, null) have none.
fn collect_rings(
    geometry: &Value,
    arcs: &[Vec<LonLat>],
    out: &mut Vec<Vec<LonLat>>,
) -> Result<(), TopoJsonError> {
    match geometry["type"].as_str() {
        Some("GeometryCollection") => {
            for g in list(&geometry["geometries"])? {
                collect_rings(g, arcs, out)?;
            }
        }
        Some("Polygon") => {
            for ring in list(&geometry["arcs"])? {
                out.push(stitch(&ring_indices(ring)?, arcs)?);
            }
        }
        Some("MultiPolygon") => {
            for polygon in list(&geometry["arcs"])? {
                for ring in list(polygon)? {
                    out.push(stitch(&ring_indices(ring)?, arcs)?);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A spherical ring (as TopoJSON keeps them: Russia, Fiji and Antarctica jump between +180
/// and -180) as rings to fill on a flat map. The ring is unwrapped (no step longer than 180
/// degrees of longitude); a ring around a pole (Antarctica) is closed along that pole's edge;
/// the parts beyond ±180 are repeated 360 degrees over, so that clipping to the world shows
/// every part once.
pub fn planar_rings(ring: &[LonLat]) -> Vec<Vec<LonLat>> {
    let Some(&first) = ring.first() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(ring.len() + 2);
    out.push(first);
    let mut offset = 0.0;
    for p in &ring[1..] {
        let prev = out[out.len() - 1][0];
        let step = p[0] + offset - prev;
        if step > 180.0 {
            offset -= 360.0;
        } else if step < -180.0 {
            offset += 360.0;
        }
        out.push([p[0] + offset, p[1]]);
    }
    if offset != 0.0 {
        // Around a pole: the unwrapped ring ends 360 degrees from where it starts.
        let mean_lat = ring.iter().map(|p| p[1]).sum::<f64>() / ring.len() as f64;
        let pole = if mean_lat < 0.0 { -90.0 } else { 90.0 };
        let last = out[out.len() - 1];
        out.push([last[0], pole]);
        out.push([first[0], pole]);
    }
    let (lo, hi) = out.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p[0]), hi.max(p[0]))
    });
    let mut rings = vec![out.clone()];
    for (beyond, shift) in [(lo < -180.0, 360.0), (hi > 180.0, -360.0)] {
        if beyond {
            rings.push(out.iter().map(|p| [p[0] + shift, p[1]]).collect());
        }
    }
    rings
}

/// A line split where it jumps more than 180 degrees of longitude (across the antimeridian).
pub fn split_at_antimeridian(line: &[LonLat]) -> Vec<Vec<LonLat>> {
    let mut parts: Vec<Vec<LonLat>> = Vec::new();
    let mut current: Vec<LonLat> = Vec::new();
    for p in line {
        if let Some(prev) = current.last()
            && (p[0] - prev[0]).abs() > 180.0
        {
            parts.push(std::mem::take(&mut current));
        }
        current.push(*p);
    }
    parts.push(current);
    parts.retain(|l| l.len() >= 2);
    parts
}

/// Decodes a TopoJSON basemap: the rings of the first of `land_objects` the topology has
/// (e.g. `["land", "countries"]`) and every arc as a line.
pub fn decode_basemap(text: &str, land_objects: &[&str]) -> Result<Basemap, TopoJsonError> {
    let topo: Topology =
        serde_json::from_str(text).map_err(|e| TopoJsonError::Shape(e.to_string()))?;
    if topo.kind != "Topology" {
        return Err(TopoJsonError::Shape(format!(
            "type is '{}', not 'Topology'",
            topo.kind
        )));
    }
    let arcs = decode_arcs(&topo);
    let object = land_objects
        .iter()
        .find_map(|name| topo.objects.get(*name))
        .ok_or_else(|| TopoJsonError::NoObject(land_objects.join(" or ")))?;
    let mut rings = Vec::new();
    collect_rings(object, &arcs, &mut rings)?;
    let land = rings
        .iter()
        .filter(|r| r.len() >= 3)
        .flat_map(|r| planar_rings(r))
        .collect();
    let lines = arcs.iter().flat_map(|a| split_at_antimeridian(a)).collect();
    Ok(Basemap { land, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example topology of the TopoJSON specification, quantized.
    const SPEC_EXAMPLE: &str = r#"{
      "type": "Topology",
      "transform": {"scale": [0.5, 0.25], "translate": [100, 0]},
      "objects": {
        "land": {"type": "GeometryCollection", "geometries": [
          {"type": "Polygon", "arcs": [[0, 1]]},
          {"type": "MultiPolygon", "arcs": [[[~1]]]},
          {"type": "Point", "coordinates": [1, 2]},
          {"type": "LineString", "arcs": [0]},
          {"type": null}
        ]}
      },
      "arcs": [
        [[0, 0], [2, 0], [0, 4]],
        [[2, 4], [-2, 0], [0, -4]]
      ]
    }"#;

    #[test]
    fn decodes_delta_encoded_arcs_through_the_transform() {
        // `~1` is not JSON: write the reversed index as -2.
        let text = SPEC_EXAMPLE.replace("~1", "-2");
        let map = decode_basemap(&text, &["land"]).unwrap();
        assert_eq!(map.lines[0], vec![[100.0, 0.0], [101.0, 0.0], [101.0, 1.0]]);
        assert_eq!(map.lines[1], vec![[101.0, 1.0], [100.0, 1.0], [100.0, 0.0]]);
        // Arc 0 then arc 1 without its repeated first point: a closed square.
        assert_eq!(
            map.land[0],
            vec![
                [100.0, 0.0],
                [101.0, 0.0],
                [101.0, 1.0],
                [100.0, 1.0],
                [100.0, 0.0]
            ]
        );
        // ~1: arc 1 reversed.
        assert_eq!(map.land[1], vec![[100.0, 0.0], [100.0, 1.0], [101.0, 1.0]]);
        assert_eq!(map.land.len(), 2, "points and null geometries are skipped");
        assert_eq!(map.land_points(), 8);
    }

    #[test]
    fn without_a_transform_positions_are_absolute() {
        let text = r#"{"type":"Topology","objects":{"a":{"type":"Polygon","arcs":[[0]]}},
            "arcs":[[[1,1],[2,1],[2,2],[1,1]]]}"#;
        let map = decode_basemap(text, &["land", "a"]).unwrap();
        assert_eq!(map.land[0][2], [2.0, 2.0]);
    }

    #[test]
    fn reports_what_is_wrong() {
        assert!(matches!(
            decode_basemap("<html>", &["land"]),
            Err(TopoJsonError::Shape(_))
        ));
        let feature = r#"{"type":"Feature","objects":{},"arcs":[]}"#;
        assert!(matches!(
            decode_basemap(feature, &["land"]),
            Err(TopoJsonError::Shape(_))
        ));
        let bad_arc = r#"{"type":"Topology","objects":{"land":{"type":"Polygon","arcs":[[3]]}},
            "arcs":[[[0,0],[1,1]]]}"#;
        assert_eq!(
            decode_basemap(bad_arc, &["land"]),
            Err(TopoJsonError::ArcIndex(3, 1))
        );
        assert_eq!(
            decode_basemap(r#"{"type":"Topology","objects":{},"arcs":[]}"#, &["land"]),
            Err(TopoJsonError::NoObject("land".into()))
        );
    }

    #[test]
    fn rings_across_the_antimeridian_become_planar() {
        // An island from 179 E to 179 W.
        let island = vec![
            [179.0, -1.0],
            [-179.0, -1.0],
            [-179.0, 1.0],
            [179.0, 1.0],
            [179.0, -1.0],
        ];
        let parts = planar_rings(&island);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0][1], [181.0, -1.0]);
        assert_eq!(parts[1][1], [-179.0, -1.0], "the copy one turn west");
        assert!(point_in(&parts, [-179.5, 0.0]) && point_in(&parts, [179.5, 0.0]));
        assert!(!point_in(&parts, [0.0, 0.0]));
        // A ring around the south pole closes along the bottom edge.
        let polar = vec![
            [-180.0, -70.0],
            [0.0, -65.0],
            [180.0, -70.0],
            [-180.0, -70.0],
        ];
        let parts = planar_rings(&polar);
        assert!(point_in(&parts, [90.0, -80.0]) && point_in(&parts, [-90.0, -80.0]));
        assert!(!point_in(&parts, [90.0, -60.0]));
        // Ordinary rings are kept as they are.
        let plain = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]];
        assert_eq!(planar_rings(&plain), vec![plain]);
        let line = vec![[170.0, 0.0], [180.0, 1.0], [-180.0, 1.0], [-170.0, 2.0]];
        assert_eq!(
            split_at_antimeridian(&line),
            vec![
                vec![[170.0, 0.0], [180.0, 1.0]],
                vec![[-180.0, 1.0], [-170.0, 2.0]]
            ]
        );
    }

    fn point_in(rings: &[Vec<LonLat>], p: LonLat) -> bool {
        rings
            .iter()
            .filter(|r| crate::worldmap::point_in_ring(p, r))
            .count()
            % 2
            == 1
    }

    #[test]
    fn decodes_the_bundled_natural_earth_basemap() {
        // The folder at run time: a test binary that cargo reuses for another checkout of
        // the same sources keeps the path it was built in.
        let path = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../assets/basemap/countries-110m.json");
        let text = std::fs::read_to_string(path).unwrap();
        let map = decode_basemap(&text, &["land", "countries"]).unwrap();
        assert!(map.land.len() > 100, "{} land rings", map.land.len());
        assert!(map.lines.len() > 500);
        for line in &map.lines {
            for w in line.windows(2) {
                assert!(
                    (w[0][0] - w[1][0]).abs() <= 180.0,
                    "no line jumps across the map"
                );
            }
        }
        let all = map.lines.iter().flatten();
        let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
        for p in all {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        assert!(
            lo[0] >= -180.0 - 1e-9 && hi[0] <= 180.0 + 1e-9,
            "{lo:?} {hi:?}"
        );
        assert!(lo[1] < -80.0 && hi[1] > 80.0, "{lo:?} {hi:?}");
        // Land: Chad, Antarctica, Chukotka on both sides of the antimeridian, Fiji.
        for p in [[16.0, 14.0], [0.0, -80.0], [178.0, 67.0], [-178.0, 67.0]] {
            assert!(point_in(&map.land, p), "{p:?} is land");
        }
        // Sea: mid-Atlantic, mid-Pacific, Bering strait's south.
        for p in [[-35.0, 20.0], [-150.0, 0.0], [179.9, 50.0], [0.0, 75.0]] {
            assert!(!point_in(&map.land, p), "{p:?} is sea");
        }
    }
}
