//! Recognising things by name: band files, Sentinel-2 bands, platforms, tiles and dates.

/// Sentinel-2 MSI bands in product order: name, STAC `eo:common_name`, centre wavelength (µm,
/// Sentinel-2A, from the ESA Sentinel-2 User Handbook).
pub(crate) const S2_BANDS: &[(&str, &str, f64)] = &[
    ("B01", "coastal", 0.443),
    ("B02", "blue", 0.490),
    ("B03", "green", 0.560),
    ("B04", "red", 0.665),
    ("B05", "rededge", 0.705),
    ("B06", "rededge", 0.740),
    ("B07", "rededge", 0.783),
    ("B08", "nir", 0.842),
    ("B8A", "nir08", 0.865),
    ("B09", "nir09", 0.945),
    ("B10", "cirrus", 1.375),
    ("B11", "swir16", 1.610),
    ("B12", "swir22", 2.190),
];

/// Sentinel-1 polarisations in product order.
pub(crate) const S1_POLARISATIONS: &[&str] = &["VV", "VH", "HH", "HV"];

/// Which mission a set of band names belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mission {
    Sentinel1,
    Sentinel2,
    Other,
}

/// Splits a file or product name into tokens at `_`, `-`, `.` and spaces (empty tokens kept
/// out).
pub(crate) fn tokens(name: &str) -> Vec<&str> {
    name.split(['_', '-', '.', ' ', ',', '/'])
        .filter(|t| !t.is_empty())
        .collect()
}

/// The canonical band name a token names, if any: `B01`..`B12`, `B8A` (also written `B1`,
/// `b04`, ...) or a polarisation `VV`/`VH`/`HH`/`HV`.
pub(crate) fn band_token(token: &str) -> Option<String> {
    let upper = token.to_ascii_uppercase();
    if S1_POLARISATIONS.contains(&upper.as_str()) {
        return Some(upper);
    }
    let rest = upper.strip_prefix('B')?;
    if rest == "8A" {
        return Some("B8A".into());
    }
    if rest.is_empty() || rest.len() > 2 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = rest.parse().ok()?;
    (1..=12).contains(&n).then(|| format!("B{n:02}"))
}

/// A file stem that names one band: the band and the prefix before its token
/// (`T33UUU_20170216T102101_B04` gives `B04` and `T33UUU_20170216T102101`; `iw-vv` gives `VV`
/// and `iw`). The band token is the last one that names a band.
pub(crate) fn band_file(stem: &str) -> Option<(String, String)> {
    let toks = tokens(stem);
    let (pos, band) = toks
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, t)| band_token(t).map(|b| (i, b)))?;
    // Byte position of that token in the stem, to keep the prefix's own separators.
    let mut at = 0;
    let mut found = 0;
    for (i, t) in toks.iter().enumerate() {
        let idx = stem[at..].find(t).map(|k| k + at)?;
        if i == pos {
            found = idx;
            break;
        }
        at = idx + t.len();
    }
    let prefix = stem[..found]
        .trim_end_matches(['_', '-', '.', ' '])
        .to_string();
    Some((band, prefix))
}

/// Sort key of a band name in its mission's product order.
pub(crate) fn band_order(name: &str) -> usize {
    S2_BANDS
        .iter()
        .position(|(b, _, _)| *b == name)
        .or_else(|| {
            S1_POLARISATIONS
                .iter()
                .position(|p| *p == name)
                .map(|i| 100 + i)
        })
        .unwrap_or(1000)
}

/// The mission all these band names belong to.
pub(crate) fn mission_of(bands: &[String]) -> Mission {
    if bands.is_empty() {
        Mission::Other
    } else if bands
        .iter()
        .all(|b| S2_BANDS.iter().any(|(n, _, _)| n == b))
    {
        Mission::Sentinel2
    } else if bands.iter().all(|b| S1_POLARISATIONS.contains(&b.as_str())) {
        Mission::Sentinel1
    } else {
        Mission::Other
    }
}

/// S2 common name and centre wavelength of a band.
pub(crate) fn s2_band_info(name: &str) -> Option<(&'static str, f64)> {
    S2_BANDS
        .iter()
        .find(|(b, _, _)| *b == name)
        .map(|(_, c, w)| (*c, *w))
}

/// Whether a name is a mission product name worth keeping as an id: starts with `S1`/`S2`,
/// at least 16 characters of letters, digits and underscores.
pub(crate) fn is_product_name(name: &str) -> bool {
    (name.starts_with("S1") || name.starts_with("S2"))
        && name.len() >= 16
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Platform (`sentinel-2a`, ...) named by a token such as `S2A` or a sensor such as
/// `Sentinel-2A`.
pub(crate) fn platform_of(text: &str) -> Option<String> {
    for t in tokens(text) {
        let u = t.to_ascii_uppercase();
        if u.len() == 3
            && (u.starts_with("S1") || u.starts_with("S2"))
            && matches!(u.as_bytes()[2], b'A'..=b'D')
        {
            return Some(format!(
                "sentinel-{}{}",
                &u[1..2],
                u[2..3].to_ascii_lowercase()
            ));
        }
    }
    let lower = text.to_ascii_lowercase();
    for unit in ["1a", "1b", "1c", "1d", "2a", "2b", "2c", "2d"] {
        if lower.contains(&format!("sentinel-{unit}"))
            || lower.contains(&format!("sentinel {unit}"))
        {
            return Some(format!("sentinel-{unit}"));
        }
    }
    None
}

/// Processing level `L1C` / `L2A` named in a text (`MSIL2A`, `L1C DN`, ...).
pub(crate) fn s2_level_of(text: &str) -> Option<&'static str> {
    let u = text.to_ascii_uppercase();
    if u.contains("L2A") {
        Some("L2A")
    } else if u.contains("L1C") {
        Some("L1C")
    } else {
        None
    }
}

/// Sentinel-1 instrument mode token (`IW`, `EW`, `SM`, `WV`).
pub(crate) fn s1_mode_of(text: &str) -> Option<&'static str> {
    tokens(text)
        .into_iter()
        .find_map(|t| match t.to_ascii_uppercase().as_str() {
            "IW" => Some("IW"),
            "EW" => Some("EW"),
            "SM" => Some("SM"),
            "WV" => Some("WV"),
            _ => None,
        })
}

/// Sentinel-1 product type named in a text (`GRDH` and `GRD` give `GRD`; `SLC`).
pub(crate) fn s1_product_type_of(text: &str) -> Option<&'static str> {
    tokens(text).into_iter().find_map(|t| {
        let u = t.to_ascii_uppercase();
        if u.starts_with("GRD") && u.len() <= 4 {
            Some("GRD")
        } else if u == "SLC" {
            Some("SLC")
        } else {
            None
        }
    })
}

/// MGRS tile (`33UUU`) named by a `T33UUU` token or given bare.
pub(crate) fn mgrs_tile_of(text: &str) -> Option<String> {
    let is_tile = |s: &str| {
        let b = s.as_bytes();
        b.len() == 5
            && b[0].is_ascii_digit()
            && b[1].is_ascii_digit()
            && b[2..].iter().all(|c| c.is_ascii_uppercase())
    };
    tokens(text).into_iter().find_map(|t| {
        if is_tile(t) {
            Some(t.to_string())
        } else {
            t.strip_prefix('T')
                .filter(|rest| is_tile(rest))
                .map(str::to_string)
        }
    })
}

/// A UTC date and, where known, time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct When {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub time: Option<(u32, u32, u32)>,
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

impl When {
    fn new(year: i32, month: u32, day: u32, time: Option<(u32, u32, u32)>) -> Option<When> {
        let date_ok =
            (1950..=2200).contains(&year) && day >= 1 && day <= days_in_month(year, month);
        let time_ok = time.is_none_or(|(h, m, s)| h < 24 && m < 60 && s < 61);
        (date_ok && time_ok).then_some(When {
            year,
            month,
            day,
            time,
        })
    }

    /// RFC 3339 UTC: the instant, or the start of the day when only the date is known.
    pub fn rfc3339(&self) -> String {
        let (h, m, s) = self.time.unwrap_or((0, 0, 0));
        format!(
            "{:04}-{:02}-{:02}T{h:02}:{m:02}:{s:02}Z",
            self.year, self.month, self.day
        )
    }

    /// RFC 3339 UTC of the last second of the day.
    pub fn end_of_day_rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T23:59:59Z",
            self.year, self.month, self.day
        )
    }

    /// `YYYYMMDDTHHMMSS`, or `YYYYMMDD` for a date alone, as in product names.
    pub fn compact(&self) -> String {
        match self.time {
            Some((h, m, s)) => format!(
                "{:04}{:02}{:02}T{h:02}{m:02}{s:02}",
                self.year, self.month, self.day
            ),
            None => format!("{:04}{:02}{:02}", self.year, self.month, self.day),
        }
    }

    /// `YYYY-MM-DD HH:MM:SS UTC`, or `YYYY-MM-DD`, for titles.
    pub fn human(&self) -> String {
        match self.time {
            Some((h, m, s)) => format!(
                "{:04}-{:02}-{:02} {h:02}:{m:02}:{s:02} UTC",
                self.year, self.month, self.day
            ),
            None => format!("{:04}-{:02}-{:02}", self.year, self.month, self.day),
        }
    }

    /// Same calendar day.
    pub fn same_day(&self, other: &When) -> bool {
        (self.year, self.month, self.day) == (other.year, other.month, other.day)
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    if !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parses a date-time starting exactly at `at`: `YYYY-MM-DD[T| ]HH:MM:SS`, `YYYY-MM-DD`,
/// `YYYYMMDDTHHMMSS` or `YYYYMMDD` (fractions of a second and zones are ignored; the sample
/// metadata is all UTC).
fn parse_at(b: &[u8], at: usize) -> Option<When> {
    let year = digits(b, at, 4)? as i32;
    let not_digit = |i: usize| b.get(i).is_none_or(|c| !c.is_ascii_digit());
    if b.get(at + 4) == Some(&b'-') {
        let month = digits(b, at + 5, 2)?;
        if b.get(at + 7) != Some(&b'-') {
            return None;
        }
        let day = digits(b, at + 8, 2)?;
        if !not_digit(at + 10) {
            return None;
        }
        let time = match b.get(at + 10) {
            Some(b'T' | b' ') if b.get(at + 13) == Some(&b':') && b.get(at + 16) == Some(&b':') => {
                Some((
                    digits(b, at + 11, 2)?,
                    digits(b, at + 14, 2)?,
                    digits(b, at + 17, 2)?,
                ))
            }
            _ => None,
        };
        return When::new(year, month, day, time);
    }
    let month = digits(b, at + 4, 2)?;
    let day = digits(b, at + 6, 2)?;
    let time = if b.get(at + 8) == Some(&b'T') && not_digit(at + 15) {
        match (
            digits(b, at + 9, 2),
            digits(b, at + 11, 2),
            digits(b, at + 13, 2),
        ) {
            (Some(h), Some(m), Some(s)) => Some((h, m, s)),
            _ => None,
        }
    } else {
        None
    };
    if time.is_none() && !not_digit(at + 8) {
        return None;
    }
    When::new(year, month, day, time)
}

/// The first date-time found in a text (a field value, a file or product name).
pub(crate) fn find_when(text: &str) -> Option<When> {
    let b = text.as_bytes();
    (0..b.len())
        .filter(|&i| i == 0 || !b[i - 1].is_ascii_digit())
        .find_map(|i| parse_at(b, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_files_are_recognised() {
        assert_eq!(band_file("B04"), Some(("B04".into(), String::new())));
        assert_eq!(
            band_file("S2A_MSIL2A_20170613T101031_87_48_B8A"),
            Some(("B8A".into(), "S2A_MSIL2A_20170613T101031_87_48".into()))
        );
        assert_eq!(band_file("iw-vv"), Some(("VV".into(), "iw".into())));
        assert_eq!(
            band_file("S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db"),
            Some(("VV".into(), "S1A__IW___A_20150309T173017".into()))
        );
        assert_eq!(band_file("b3"), Some(("B03".into(), String::new())));
        assert_eq!(band_file("LULC"), None);
        assert_eq!(band_file("stack13_122px_900m"), None);
        assert_eq!(band_file("B13"), None);
        assert_eq!(band_file("L1C_2015-07-11_bands13_dn"), None);
    }

    #[test]
    fn platforms_levels_tiles() {
        assert_eq!(platform_of("Sentinel-2A").as_deref(), Some("sentinel-2a"));
        assert_eq!(platform_of("S1A_IW_GRDH").as_deref(), Some("sentinel-1a"));
        assert_eq!(platform_of("Sentinel-2"), None);
        assert_eq!(s2_level_of("L1C (TOA reflectance DN*10000)"), Some("L1C"));
        assert_eq!(s2_level_of("S2B_MSIL2A_2017"), Some("L2A"));
        assert_eq!(mgrs_tile_of("33UUU").as_deref(), Some("33UUU"));
        assert_eq!(
            mgrs_tile_of("S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_20170613T101608.SAFE")
                .as_deref(),
            Some("33UUP")
        );
        assert_eq!(mgrs_tile_of("Slovenia_T33_eolearn"), None);
        assert_eq!(s1_product_type_of("S1A_IW_GRDH_1SDV"), Some("GRD"));
        assert_eq!(s1_mode_of("S1A__IW___A_2015"), Some("IW"));
    }

    #[test]
    fn dates_in_names_and_fields() {
        let w = find_when("T33UUU_20170216T102101_B04").unwrap();
        assert_eq!(w.rfc3339(), "2017-02-16T10:21:01Z");
        assert_eq!(w.compact(), "20170216T102101");
        let w = find_when("2017-02-16T10:21:01").unwrap();
        assert_eq!(w.rfc3339(), "2017-02-16T10:21:01Z");
        let w = find_when("2017-06-13 10:10:31").unwrap();
        assert_eq!(w.rfc3339(), "2017-06-13T10:10:31Z");
        let w = find_when("L1C_2015-07-11_bands13_dn").unwrap();
        assert_eq!((w.time, w.rfc3339()), (None, "2015-07-11T00:00:00Z".into()));
        let w = find_when("S1A IW GRD 2015-03-09T17:30:17 VV, processed").unwrap();
        assert_eq!(w.rfc3339(), "2015-03-09T17:30:17Z");
        // BigEarthNet drops a leading zero of the time: keep the date only.
        let w = find_when("S2B_MSIL2A_20170924T93020_69_24").unwrap();
        assert_eq!(w.compact(), "20170924");
        assert_eq!(find_when("stack13_687px_160m"), None);
        assert_eq!(find_when("2017-02-30"), None);
        assert_eq!(
            find_when("2018-07-16T07:08:26.620Z").unwrap().time,
            Some((7, 8, 26))
        );
    }
}
