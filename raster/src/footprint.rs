//! WGS84 footprints of rasters: a polygon ring and its bounding box.
//!
//! What it is: a map grid's outline, sampled densely along its four edges and reprojected with
//! [`crate::proj::to_wgs84`] (a UTM grid's edges are curves in longitude / latitude, so four
//! corners alone would miss part of the extent), the convex hull of ground control points, or
//! the four corners of a quick-look overlay.
//! Rings are closed and counter-clockwise, as RFC 7946 asks of exterior rings.
//!
//! What it is not: no antimeridian splitting and no polar handling; the sample products are
//! far from both.

use crate::georef::apply;
use crate::proj::to_wgs84;

/// Points sampled per grid edge (so a footprint ring has `4 * EDGE_SAMPLES + 1` positions).
pub const EDGE_SAMPLES: u32 = 32;

/// A footprint in WGS84 degrees.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    /// Closed, counter-clockwise ring of `[longitude, latitude]`.
    pub ring: Vec<[f64; 2]>,
    /// `[west, south, east, north]`.
    pub bbox: [f64; 4],
}

fn round9(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

impl Footprint {
    /// Footprint of a `width` x `height` grid with a GDAL geotransform in EPSG `epsg`, from
    /// `per_edge` samples along each edge; `None` when the CRS is not supported.
    pub fn from_grid(
        epsg: u32,
        geotransform: &[f64; 6],
        width: u32,
        height: u32,
        per_edge: u32,
    ) -> Option<Footprint> {
        let per_edge = per_edge.max(1);
        let (w, h) = (f64::from(width), f64::from(height));
        // Pixel-space perimeter: top-left, down the left edge, along the bottom, up the right
        // edge, back along the top.
        let corners = [(0.0, 0.0), (0.0, h), (w, h), (w, 0.0)];
        let mut ring = Vec::with_capacity(4 * per_edge as usize + 1);
        for k in 0..4 {
            let (x0, y0) = corners[k];
            let (x1, y1) = corners[(k + 1) % 4];
            for s in 0..per_edge {
                let t = f64::from(s) / f64::from(per_edge);
                let (mx, my) = apply(geotransform, x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
                let (lon, lat) = to_wgs84(epsg, mx, my)?;
                ring.push([lon, lat]);
            }
        }
        Some(Footprint::from_ring(ring))
    }

    /// Footprint of scattered points (e.g. GCPs in longitude / latitude): their convex hull.
    /// `None` for fewer than three distinct, non-collinear points.
    pub fn from_points(points: &[(f64, f64)]) -> Option<Footprint> {
        let hull = convex_hull(points);
        if hull.len() < 3 {
            return None;
        }
        Some(Footprint::from_ring(
            hull.into_iter().map(|(x, y)| [x, y]).collect(),
        ))
    }

    /// Footprint of an image placed by its corners only (a KML `LatLonQuad`): the corners in
    /// their order, as a ring (reversed only if they run clockwise). `None` for fewer than
    /// three corners or corners enclosing no area.
    pub fn from_corners(corners: &[(f64, f64)]) -> Option<Footprint> {
        let ring: Vec<[f64; 2]> = corners.iter().map(|&(x, y)| [x, y]).collect();
        if ring.len() < 3 || signed_area(&ring) == 0.0 {
            return None;
        }
        Some(Footprint::from_ring(ring))
    }

    /// Orients, rounds and closes an open ring, and computes its bbox.
    fn from_ring(mut ring: Vec<[f64; 2]>) -> Footprint {
        if signed_area(&ring) < 0.0 {
            ring.reverse();
        }
        for p in ring.iter_mut() {
            *p = [round9(p[0]), round9(p[1])];
        }
        let mut bbox = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for p in &ring {
            bbox[0] = bbox[0].min(p[0]);
            bbox[1] = bbox[1].min(p[1]);
            bbox[2] = bbox[2].max(p[0]);
            bbox[3] = bbox[3].max(p[1]);
        }
        if let Some(&first) = ring.first() {
            ring.push(first);
        }
        Footprint { ring, bbox }
    }

    /// The footprint as a GeoJSON `Polygon` geometry.
    pub fn geometry(&self) -> serde_json::Value {
        serde_json::json!({ "type": "Polygon", "coordinates": [self.ring] })
    }
}

/// Twice the signed area of an open ring (positive when counter-clockwise).
fn signed_area(ring: &[[f64; 2]]) -> f64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum()
}

/// Convex hull by Andrew's monotone chain: counter-clockwise, open, without collinear points.
pub fn convex_hull(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: (f64, f64), a: (f64, f64), b: (f64, f64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(2 * pts.len());
    // Lower hull, left to right.
    for &p in &pts {
        while hull.len() >= 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(p);
    }
    // Upper hull, right to left, never popping into the lower hull.
    let lower_len = hull.len() + 1;
    for &p in pts.iter().rev().skip(1) {
        while hull.len() >= lower_len && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
        {
            hull.pop();
        }
        hull.push(p);
    }
    // The last point is the first one again.
    hull.pop();
    hull
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_of_a_square_with_inner_points() {
        let pts = [
            (0.0, 0.0),
            (1.0, 0.0),
            (0.5, 0.5),
            (1.0, 1.0),
            (0.0, 1.0),
            (0.5, 0.0),
            (0.2, 0.7),
        ];
        let hull = convex_hull(&pts);
        assert_eq!(hull, vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]);
        let fp = Footprint::from_points(&pts).unwrap();
        assert_eq!(fp.bbox, [0.0, 0.0, 1.0, 1.0]);
        assert_eq!(fp.ring.len(), 5);
        assert_eq!(fp.ring.first(), fp.ring.last());
        assert!(Footprint::from_points(&[(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)]).is_none());
    }

    #[test]
    fn grid_footprint_is_counter_clockwise_and_closed() {
        let gt = [330000.0, 10.0, 0.0, 5822040.0, 0.0, -10.0];
        let fp = Footprint::from_grid(32633, &gt, 1536, 768, 8).unwrap();
        assert_eq!(fp.ring.len(), 33);
        assert_eq!(fp.ring.first(), fp.ring.last());
        assert!(signed_area(&fp.ring[..32]) > 0.0);
        assert!(Footprint::from_grid(3857, &gt, 10, 10, 8).is_none());
    }
}
