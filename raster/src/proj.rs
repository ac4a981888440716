//! Map coordinates to WGS84 longitude / latitude, and back.
//!
//! What it is: the inverse of the WGS84 UTM projections (EPSG 32601-32660 north,
//! 32701-32760 south) by Krüger's series in the form of Karney (2011), "Transverse Mercator
//! with an accuracy of a few nanometers", J. Geodesy 85: the sixth-order `beta` series from
//! the conformal sphere back to the conformal latitude, then Newton's method for the
//! geographic latitude (no series truncation there). Within a UTM zone and far beyond it the
//! error is well under a millimetre. EPSG:4326 passes through as (longitude, latitude).
//! [`from_wgs84`] is the forward direction (Karney's sixth-order `alpha` series from the
//! conformal sphere to the TM plane), used to place WGS84 label polygons on a UTM grid.
//!
//! What it is not: no datum shifts, no other projections; [`to_wgs84`] and [`from_wgs84`]
//! answer `None` for any other EPSG code rather than guess.

/// WGS84 semi-major axis in metres.
const WGS84_A: f64 = 6_378_137.0;
/// WGS84 flattening.
const WGS84_F: f64 = 1.0 / 298.257_223_563;
/// UTM scale factor on the central meridian.
const UTM_K0: f64 = 0.9996;
const UTM_FALSE_EASTING: f64 = 500_000.0;
const UTM_FALSE_NORTHING_SOUTH: f64 = 10_000_000.0;

/// A UTM zone of WGS84, as named by an EPSG code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtmZone {
    /// Zone number 1..=60.
    pub zone: u8,
    /// Northern hemisphere (EPSG 326xx) or southern (327xx).
    pub north: bool,
}

impl UtmZone {
    /// The zone of EPSG 32601..=32660 or 32701..=32760.
    pub fn from_epsg(epsg: u32) -> Option<UtmZone> {
        match epsg {
            32601..=32660 => Some(UtmZone {
                zone: (epsg - 32600) as u8,
                north: true,
            }),
            32701..=32760 => Some(UtmZone {
                zone: (epsg - 32700) as u8,
                north: false,
            }),
            _ => None,
        }
    }

    /// Longitude of the central meridian in degrees.
    pub fn central_meridian_deg(&self) -> f64 {
        f64::from(self.zone) * 6.0 - 183.0
    }
}

/// Whether [`to_wgs84`] knows the CRS.
pub fn is_supported(epsg: u32) -> bool {
    epsg == 4326 || UtmZone::from_epsg(epsg).is_some()
}

/// Whether the CRS's units are metres (the UTM zones), for ground sample distances.
pub fn is_metric(epsg: u32) -> bool {
    UtmZone::from_epsg(epsg).is_some()
}

/// EPSG 326xx/327xx (WGS84 UTM N/S) and 4326 to lon/lat degrees; None for other CRSs.
pub fn to_wgs84(epsg: u32, x: f64, y: f64) -> Option<(f64, f64)> {
    if !x.is_finite() || !y.is_finite() {
        return None;
    }
    if epsg == 4326 {
        return Some((x, y));
    }
    let zone = UtmZone::from_epsg(epsg)?;
    let northing = if zone.north {
        y
    } else {
        y - UTM_FALSE_NORTHING_SOUTH
    };
    let (lon, lat) = tm_inverse(x - UTM_FALSE_EASTING, northing);
    let mut lon = zone.central_meridian_deg() + lon;
    if lon > 180.0 {
        lon -= 360.0;
    } else if lon < -180.0 {
        lon += 360.0;
    }
    Some((lon, lat))
}

/// Longitude / latitude in degrees to EPSG 326xx/327xx (WGS84 UTM N/S) easting / northing in
/// metres, or passed through for 4326; None for other CRSs, non-finite input or a latitude
/// outside -90..=90. Longitudes are taken relative to the zone's central meridian (wrapped
/// to -180..180), so points outside the zone still project (with growing distortion).
pub fn from_wgs84(epsg: u32, lon: f64, lat: f64) -> Option<(f64, f64)> {
    if !lon.is_finite() || !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return None;
    }
    if epsg == 4326 {
        return Some((lon, lat));
    }
    let zone = UtmZone::from_epsg(epsg)?;
    let mut dlon = lon - zone.central_meridian_deg();
    dlon = (dlon + 180.0).rem_euclid(360.0) - 180.0;
    let (x, y) = tm_forward(dlon, lat);
    let northing = if zone.north {
        y
    } else {
        y + UTM_FALSE_NORTHING_SOUTH
    };
    Some((x + UTM_FALSE_EASTING, northing))
}

/// Transverse Mercator forward on WGS84 with scale `UTM_K0` (Karney 2011, eq. 35 and 9-12):
/// (longitude offset from the central meridian, latitude) in degrees to easting and northing
/// relative to the central meridian and the equator, in metres.
fn tm_forward(dlon_deg: f64, lat_deg: f64) -> (f64, f64) {
    let f = WGS84_F;
    let n = f / (2.0 - f);
    let e = (f * (2.0 - f)).sqrt();
    let (n2, n3) = (n * n, n * n * n);
    let (n4, n5, n6) = (n3 * n, n3 * n2, n3 * n3);
    let a_rect = WGS84_A / (1.0 + n) * (1.0 + n2 / 4.0 + n4 / 64.0 + n6 / 256.0);
    let alpha = [
        n / 2.0 - 2.0 * n2 / 3.0 + 5.0 * n3 / 16.0 + 41.0 * n4 / 180.0 - 127.0 * n5 / 288.0
            + 7891.0 * n6 / 37800.0,
        13.0 * n2 / 48.0 - 3.0 * n3 / 5.0 + 557.0 * n4 / 1440.0 + 281.0 * n5 / 630.0
            - 1983433.0 * n6 / 1935360.0,
        61.0 * n3 / 240.0 - 103.0 * n4 / 140.0 + 15061.0 * n5 / 26880.0 + 167603.0 * n6 / 181440.0,
        49561.0 * n4 / 161280.0 - 179.0 * n5 / 168.0 + 6601661.0 * n6 / 7257600.0,
        34729.0 * n5 / 80640.0 - 3418889.0 * n6 / 1995840.0,
        212378941.0 * n6 / 319334400.0,
    ];
    let lam = dlon_deg.to_radians();
    let phi = lat_deg.to_radians();
    // At the poles tan() is huge but finite; conformal_tau stays well-behaved there.
    let tau_p = conformal_tau(phi.tan(), e);
    let xi_p = tau_p.atan2(lam.cos());
    let eta_p = (lam.sin() / tau_p.hypot(lam.cos())).asinh();
    let mut xi = xi_p;
    let mut eta = eta_p;
    for (j, a) in alpha.iter().enumerate() {
        let k = 2.0 * (j as f64 + 1.0);
        xi += a * (k * xi_p).sin() * (k * eta_p).cosh();
        eta += a * (k * xi_p).cos() * (k * eta_p).sinh();
    }
    (UTM_K0 * a_rect * eta, UTM_K0 * a_rect * xi)
}

/// Transverse Mercator inverse on WGS84 with scale `UTM_K0`: easting and northing relative to
/// the central meridian and the equator, in metres, to (longitude offset, latitude) degrees.
fn tm_inverse(x: f64, y: f64) -> (f64, f64) {
    let f = WGS84_F;
    let n = f / (2.0 - f);
    let e2 = f * (2.0 - f);
    let e = e2.sqrt();
    let (n2, n3) = (n * n, n * n * n);
    let (n4, n5, n6) = (n3 * n, n3 * n2, n3 * n3);
    // Rectifying radius.
    let a_rect = WGS84_A / (1.0 + n) * (1.0 + n2 / 4.0 + n4 / 64.0 + n6 / 256.0);
    // Karney (2011), eq. 36: coefficients from the TM plane back to the conformal sphere.
    let beta = [
        n / 2.0 - 2.0 * n2 / 3.0 + 37.0 * n3 / 96.0 - n4 / 360.0 - 81.0 * n5 / 512.0
            + 96199.0 * n6 / 604800.0,
        n2 / 48.0 + n3 / 15.0 - 437.0 * n4 / 1440.0 + 46.0 * n5 / 105.0
            - 1118711.0 * n6 / 3870720.0,
        17.0 * n3 / 480.0 - 37.0 * n4 / 840.0 - 209.0 * n5 / 4480.0 + 5569.0 * n6 / 90720.0,
        4397.0 * n4 / 161280.0 - 11.0 * n5 / 504.0 - 830251.0 * n6 / 7257600.0,
        4583.0 * n5 / 161280.0 - 108847.0 * n6 / 3991680.0,
        20648693.0 * n6 / 638668800.0,
    ];
    let xi_p = y / (UTM_K0 * a_rect);
    let eta_p = x / (UTM_K0 * a_rect);
    let mut xi = xi_p;
    let mut eta = eta_p;
    for (j, b) in beta.iter().enumerate() {
        let k = 2.0 * (j as f64 + 1.0);
        xi -= b * (k * xi_p).sin() * (k * eta_p).cosh();
        eta -= b * (k * xi_p).cos() * (k * eta_p).sinh();
    }
    // Conformal latitude (as tau' = tan) and longitude on the sphere.
    let tau_p = xi.sin() / (eta.sinh().hypot(xi.cos()));
    let lam = eta.sinh().atan2(xi.cos());
    let tau = tau_from_conformal(tau_p, e);
    (lam.to_degrees(), tau.atan().to_degrees())
}

/// tan(conformal latitude) from tan(geographic latitude) (Karney 2011, eq. 7-9).
fn conformal_tau(tau: f64, e: f64) -> f64 {
    let tau1 = 1.0f64.hypot(tau);
    let sig = (e * (e * tau / tau1).atanh()).sinh();
    1.0f64.hypot(sig) * tau - sig * tau1
}

/// Inverts [`conformal_tau`] by Newton's method (Karney 2011, eq. 19-21).
fn tau_from_conformal(tau_p: f64, e: f64) -> f64 {
    let e2m = 1.0 - e * e;
    let mut tau = tau_p / e2m;
    for _ in 0..10 {
        let tau_p_i = conformal_tau(tau, e);
        let dtau = (tau_p - tau_p_i) * (1.0 + e2m * tau * tau)
            / (e2m * 1.0f64.hypot(tau) * 1.0f64.hypot(tau_p_i));
        tau += dtau;
        if dtau.abs() <= 1e-14 * tau.abs().max(1.0) {
            break;
        }
    }
    tau
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference points computed with pyproj 3.7.2 (PROJ 9.5.1) in a throw-away venv:
    /// `Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)`, printed to 12
    /// decimals. They cover the sample tiles (33UUU, 19UDP, the pyroSAR and Slovenia
    /// origins), the southern hemisphere, a zone edge at the equator and far-off-meridian
    /// points at high latitude.
    const REFERENCE: &[(u32, f64, f64, f64, f64)] = &[
        (32633, 330000.0, 5822040.0, 12.494241106335, 52.521910140407),
        (32633, 345360.0, 5814360.0, 12.724005625929, 52.457495052387),
        (
            32633,
            465181.0522,
            5079244.8912,
            14.551412932750,
            45.865889423721,
        ),
        (
            32619,
            399960.0,
            5400000.0,
            -70.360823197745,
            48.744977687989,
        ),
        (
            32619,
            509760.0,
            5290200.0,
            -68.869751190157,
            47.765092663992,
        ),
        (
            32631,
            620048.241204,
            4830114.70107,
            4.487732894531,
            43.614336255148,
        ),
        (32601, 166021.4431, 0.0, -179.999999999825, 0.000000000000),
        (
            32660,
            833978.5569,
            9329005.1825,
            -156.417122340725,
            83.305911987632,
        ),
        (
            32733,
            500000.0,
            1000000.0,
            15.000000000000,
            -81.060880974998,
        ),
        (
            32756,
            334786.0,
            6252080.0,
            151.214022860895,
            -33.858663916530,
        ),
        (
            32718,
            712000.0,
            8654000.0,
            -73.051650539875,
            -12.168986650030,
        ),
        (32631, 900000.0, 8500000.0, 18.091480091797, 76.119568108297),
    ];

    #[test]
    fn utm_inverse_matches_proj_to_a_nanodegree() {
        for &(epsg, x, y, lon, lat) in REFERENCE {
            let (got_lon, got_lat) = to_wgs84(epsg, x, y).expect("supported");
            assert!(
                (got_lon - lon).abs() < 1e-9 && (got_lat - lat).abs() < 1e-9,
                "EPSG:{epsg} ({x}, {y}): got ({got_lon:.12}, {got_lat:.12}), want ({lon}, {lat})"
            );
        }
    }

    #[test]
    fn utm_forward_matches_proj_to_a_millimetre() {
        for &(epsg, x, y, lon, lat) in REFERENCE {
            let (got_x, got_y) = from_wgs84(epsg, lon, lat).expect("supported");
            assert!(
                (got_x - x).abs() < 1e-3 && (got_y - y).abs() < 1e-3,
                "EPSG:{epsg} ({lon}, {lat}): got ({got_x:.4}, {got_y:.4}), want ({x}, {y})"
            );
        }
    }

    #[test]
    fn forward_then_inverse_round_trips() {
        for &(epsg, lon, lat) in &[
            (32633, 14.1, 52.0),
            (32619, -71.9, 47.2),
            (32756, 151.0, -34.0),
            (32601, 179.5, 10.0),
        ] {
            let (x, y) = from_wgs84(epsg, lon, lat).unwrap();
            let (lon2, lat2) = to_wgs84(epsg, x, y).unwrap();
            // 179.5 E in zone 1 is a longitude offset of -3.5 degrees from -177.
            let dlon = ((lon2 - lon + 180.0).rem_euclid(360.0) - 180.0).abs();
            assert!(
                dlon < 1e-9 && (lat2 - lat).abs() < 1e-9,
                "{epsg} {lon} {lat}"
            );
        }
        assert_eq!(from_wgs84(3857, 0.0, 0.0), None);
        assert_eq!(from_wgs84(32633, 0.0, 91.0), None);
        assert_eq!(from_wgs84(4326, 12.5, 52.5), Some((12.5, 52.5)));
    }

    #[test]
    fn central_meridian_and_equator() {
        let (lon, lat) = to_wgs84(32633, 500000.0, 0.0).unwrap();
        assert!((lon - 15.0).abs() < 1e-12 && lat.abs() < 1e-12);
        let (lon, lat) = to_wgs84(32733, 500000.0, 10_000_000.0).unwrap();
        assert!((lon - 15.0).abs() < 1e-12 && lat.abs() < 1e-12);
    }

    #[test]
    fn other_crs_are_refused() {
        assert_eq!(to_wgs84(4326, 12.5, 52.5), Some((12.5, 52.5)));
        assert_eq!(to_wgs84(3857, 0.0, 0.0), None);
        assert_eq!(to_wgs84(32600, 0.0, 0.0), None);
        assert_eq!(to_wgs84(32661, 0.0, 0.0), None);
        assert_eq!(to_wgs84(32633, f64::NAN, 0.0), None);
        assert!(is_metric(32619) && !is_metric(4326));
    }
}
