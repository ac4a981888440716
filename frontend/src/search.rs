//! The catalog search as data: the form's fields, the STAC `POST /stac/search` body they make,
//! and the ItemCollection answer read into what the page shows.
//!
//! What it is: pure functions, tested natively; the meaning of every parameter is the
//! backend's (`backend/src/search.rs`): `bbox` intersects item bboxes (west > east crosses the
//! antimeridian), `datetime` overlaps the item's time, `query` clauses never match items that
//! lack the property.
//!
//! What it is not: no `fetch` (see [`crate::api`]) and no view (see [`crate::catalog`]).

use albedo_shared::catalog::ProductId;
use serde_json::{Map, Value, json};

use crate::topojson::LonLat;

/// Page sizes offered; the first is the default.
pub const PAGE_SIZES: [u32; 4] = [20, 10, 50, 100];

/// Orbit directions offered (`sat:orbit_state`); empty means any.
pub const ORBITS: [(&str, &str); 3] = [
    ("", "any"),
    ("ascending", "ascending"),
    ("descending", "descending"),
];

/// Polarisations offered (`sar:polarizations` contains it); empty means any.
pub const POLARISATIONS: [&str; 4] = ["VV", "VH", "HH", "HV"];

/// The cloud cover slider's value that means "no limit" (and keeps products without
/// `eo:cloud_cover`, such as Sentinel-1).
pub const CLOUD_ANY: u32 = 100;

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Newest acquisition first (the backend's default).
    #[default]
    NewestFirst,
    /// Oldest acquisition first.
    OldestFirst,
}

impl SortOrder {
    /// Value of the `<option>`.
    pub fn key(self) -> &'static str {
        match self {
            SortOrder::NewestFirst => "newest",
            SortOrder::OldestFirst => "oldest",
        }
    }

    /// From the `<option>` value (unknown: newest first).
    pub fn from_key(key: &str) -> SortOrder {
        if key == "oldest" {
            SortOrder::OldestFirst
        } else {
            SortOrder::NewestFirst
        }
    }
}

/// A longitude/latitude box; `west > east` crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    /// West longitude, degrees.
    pub west: f64,
    /// South latitude, degrees.
    pub south: f64,
    /// East longitude, degrees.
    pub east: f64,
    /// North latitude, degrees.
    pub north: f64,
}

impl Area {
    /// The box as one or two boxes that do not cross the antimeridian.
    pub fn parts(&self) -> Vec<[f64; 4]> {
        if self.west <= self.east {
            vec![[self.west, self.south, self.east, self.north]]
        } else {
            vec![
                [self.west, self.south, 180.0, self.north],
                [-180.0, self.south, self.east, self.north],
            ]
        }
    }

    /// The four numbers as the form shows them (at most 4 decimals, no trailing zeros).
    pub fn fields(&self) -> [String; 4] {
        [self.west, self.south, self.east, self.north].map(format_degrees)
    }
}

/// Degrees with at most 4 decimals (about 10 m), without trailing zeros.
pub fn format_degrees(v: f64) -> String {
    let s = format!("{:.4}", (v * 1e4).round() / 1e4);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// What the search form holds, as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchForm {
    /// Collection id; empty for all.
    pub collection: String,
    /// First day (`YYYY-MM-DD`); empty for open.
    pub from: String,
    /// Last day, included; empty for open.
    pub to: String,
    /// Largest cloud cover in percent; [`CLOUD_ANY`] for no limit.
    pub max_cloud: u32,
    /// `ascending`, `descending`, or empty for any.
    pub orbit: String,
    /// `VV`, `VH`, `HH`, `HV`, or empty for any.
    pub polarisation: String,
    /// West, south, east, north as typed (all empty: anywhere).
    pub area: [String; 4],
    /// Page size.
    pub limit: u32,
    /// Result order.
    pub sort: SortOrder,
    /// Only the products whose pixels are on this server (the ones the viewer can draw);
    /// on by default, so that the first page opens on products a person can look at.
    pub local_only: bool,
}

impl Default for SearchForm {
    fn default() -> Self {
        SearchForm {
            collection: String::new(),
            from: String::new(),
            to: String::new(),
            max_cloud: CLOUD_ANY,
            orbit: String::new(),
            polarisation: String::new(),
            area: Default::default(),
            limit: PAGE_SIZES[0],
            sort: SortOrder::NewestFirst,
            local_only: true,
        }
    }
}

const AREA_NAMES: [&str; 4] = ["West", "South", "East", "North"];

/// The area of four typed numbers: `Ok(None)` when all four are empty.
pub fn parse_area(fields: &[String; 4]) -> Result<Option<Area>, String> {
    let trimmed: Vec<&str> = fields.iter().map(|f| f.trim()).collect();
    if trimmed.iter().all(|f| f.is_empty()) {
        return Ok(None);
    }
    let mut v = [0.0; 4];
    for (k, text) in trimmed.iter().enumerate() {
        let name = AREA_NAMES[k];
        if text.is_empty() {
            return Err(format!(
                "{name} is empty: give all four numbers of the area (or none to search \
                 everywhere)"
            ));
        }
        let x: f64 = text
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| format!("{name} '{text}' is not a number"))?;
        let limit = if k.is_multiple_of(2) { 180.0 } else { 90.0 };
        if !(-limit..=limit).contains(&x) {
            return Err(format!(
                "{name} {text} is outside -{limit}..{limit} degrees"
            ));
        }
        v[k] = x;
    }
    if v[1] > v[3] {
        return Err(format!(
            "South ({}) is north of North ({})",
            trimmed[1], trimmed[3]
        ));
    }
    Ok(Some(Area {
        west: v[0],
        south: v[1],
        east: v[2],
        north: v[3],
    }))
}

fn check_day(label: &str, day: &str) -> Result<(), String> {
    let b = day.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!("{label} date '{day}' is not YYYY-MM-DD"))
    }
}

/// The STAC `datetime` of a day range (both days included; either side may be open).
pub fn datetime_interval(from: &str, to: &str) -> Result<Option<String>, String> {
    let (from, to) = (from.trim(), to.trim());
    if from.is_empty() && to.is_empty() {
        return Ok(None);
    }
    let start = if from.is_empty() {
        "..".to_string()
    } else {
        check_day("From", from)?;
        format!("{from}T00:00:00Z")
    };
    let end = if to.is_empty() {
        "..".to_string()
    } else {
        check_day("To", to)?;
        format!("{to}T23:59:59.999999Z")
    };
    Ok(Some(format!("{start}/{end}")))
}

impl SearchForm {
    /// The first page's body when `local` lists the products whose pixels are on this
    /// server: with [`SearchForm::local_only`] set (and `local` not empty) the search is
    /// restricted to them by their `ids`, which STAC API 1.0 ANDs with every other filter
    /// (so the collection, dates, area and the rest still apply, and paging, counts and
    /// order stay the server's).
    pub fn request(&self, local: &[ProductId]) -> Result<Value, String> {
        let mut body = self.body()?;
        if self.local_only
            && !local.is_empty()
            && let Some(obj) = body.as_object_mut()
        {
            obj.insert(
                "ids".into(),
                Value::Array(local.iter().map(|id| json!(id.0)).collect()),
            );
        }
        Ok(body)
    }

    /// The first page's `POST /stac/search` body, or what is wrong with the form (every
    /// product, whatever [`SearchForm::local_only`] says: see [`SearchForm::request`]).
    pub fn body(&self) -> Result<Value, String> {
        let mut body = Map::new();
        body.insert("limit".into(), json!(self.limit.clamp(1, 10_000)));
        let direction = match self.sort {
            SortOrder::NewestFirst => "desc",
            SortOrder::OldestFirst => "asc",
        };
        body.insert(
            "sortby".into(),
            json!([{"field": "properties.datetime", "direction": direction}]),
        );
        if !self.collection.trim().is_empty() {
            body.insert("collections".into(), json!([self.collection.trim()]));
        }
        if let Some(area) = parse_area(&self.area)? {
            body.insert(
                "bbox".into(),
                json!([area.west, area.south, area.east, area.north]),
            );
        }
        if let Some(dt) = datetime_interval(&self.from, &self.to)? {
            body.insert("datetime".into(), json!(dt));
        }
        let mut query = Map::new();
        if self.max_cloud < CLOUD_ANY {
            query.insert("eo:cloud_cover".into(), json!({"lte": self.max_cloud}));
        }
        if !self.orbit.is_empty() {
            query.insert("sat:orbit_state".into(), json!({"eq": self.orbit}));
        }
        if !self.polarisation.is_empty() {
            query.insert("sar:polarizations".into(), json!({"eq": self.polarisation}));
        }
        if !query.is_empty() {
            body.insert("query".into(), Value::Object(query));
        }
        Ok(Value::Object(body))
    }
}

/// One search result as the list and the map show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultItem {
    /// STAC item id (= product id).
    pub id: ProductId,
    /// Collection id.
    pub collection: String,
    /// `properties.title`, else the id (as the backend titles products).
    pub title: String,
    /// Acquisition time (or start of the range), RFC 3339.
    pub datetime: Option<String>,
    /// `eo:cloud_cover` in percent.
    pub cloud_cover: Option<f64>,
    /// `sat:orbit_state`.
    pub orbit_state: Option<String>,
    /// `sar:polarizations`.
    pub polarizations: Vec<String>,
    /// Outer rings of the footprint (the geometry, else the bbox), longitude/latitude.
    pub footprint: Vec<Vec<LonLat>>,
}

impl ResultItem {
    /// The day of acquisition, or "date unknown".
    pub fn day(&self) -> String {
        self.datetime
            .as_deref()
            .map(|d| d.get(..10).unwrap_or(d).to_string())
            .unwrap_or_else(|| "date unknown".to_string())
    }
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchPage {
    /// The items of this page.
    pub items: Vec<ResultItem>,
    /// `numberMatched`, where the server says.
    pub matched: Option<u64>,
    /// The body of the next page's request, from the `next` link.
    pub next: Option<Value>,
}

fn ring(v: &Value) -> Option<Vec<LonLat>> {
    let points: Vec<LonLat> = v
        .as_array()?
        .iter()
        .filter_map(|p| {
            let p = p.as_array()?;
            Some([p.first()?.as_f64()?, p.get(1)?.as_f64()?])
        })
        .collect();
    (points.len() >= 3).then_some(points)
}

/// Outer rings of a GeoJSON (Multi)Polygon, else of the bbox.
fn footprint(geometry: &Value, bbox: &Value) -> Vec<Vec<LonLat>> {
    let coords = &geometry["coordinates"];
    let rings: Vec<Vec<LonLat>> = match geometry["type"].as_str() {
        Some("Polygon") => coords.get(0).and_then(ring).into_iter().collect(),
        Some("MultiPolygon") => coords
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p.get(0).and_then(ring)).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if !rings.is_empty() {
        return rings;
    }
    let b: Vec<f64> = bbox
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let (w, s, e, n) = match b.len() {
        4 => (b[0], b[1], b[2], b[3]),
        6 => (b[0], b[1], b[3], b[4]),
        _ => return Vec::new(),
    };
    let area = Area {
        west: w,
        south: s,
        east: e,
        north: n,
    };
    area.parts()
        .into_iter()
        .map(|[w, s, e, n]| vec![[w, s], [e, s], [e, n], [w, n], [w, s]])
        .collect()
}

fn item(f: &Value) -> Option<ResultItem> {
    let id = f["id"].as_str()?.to_string();
    let props = &f["properties"];
    let text = |k: &str| props[k].as_str().map(str::to_string);
    Some(ResultItem {
        collection: f["collection"].as_str().unwrap_or_default().to_string(),
        title: text("title").unwrap_or_else(|| id.clone()),
        datetime: text("datetime").or_else(|| text("start_datetime")),
        cloud_cover: props["eo:cloud_cover"].as_f64(),
        orbit_state: text("sat:orbit_state"),
        polarizations: props["sar:polarizations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        footprint: footprint(&f["geometry"], &f["bbox"]),
        id: ProductId(id),
    })
}

/// The request body of the page a `next` link points to. A POST link carries a `body`
/// (merged into the current request when `merge` is true); a GET link carries its `token` in
/// the query of its `href`.
pub fn next_body(current: &Value, link: &Value) -> Option<Value> {
    if let Some(extra) = link["body"].as_object() {
        if link["merge"].as_bool() == Some(true) {
            let mut body = current.as_object().cloned().unwrap_or_default();
            body.extend(extra.clone());
            return Some(Value::Object(body));
        }
        return Some(Value::Object(extra.clone()));
    }
    let href = link["href"].as_str()?;
    let query = href.split_once('?')?.1;
    let token = query.split('&').find_map(|kv| kv.strip_prefix("token="))?;
    let mut body = current.as_object().cloned().unwrap_or_default();
    body.insert("token".into(), json!(token));
    Some(Value::Object(body))
}

/// Reads a STAC ItemCollection answer to `request`.
pub fn parse_item_collection(text: &str, request: &Value) -> Result<SearchPage, String> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let features = v["features"]
        .as_array()
        .ok_or("the answer is not a STAC ItemCollection (no features)")?;
    let items = features.iter().filter_map(item).collect();
    let next = v["links"]
        .as_array()
        .and_then(|links| links.iter().find(|l| l["rel"] == "next"))
        .and_then(|l| next_body(request, l));
    Ok(SearchPage {
        items,
        matched: v["numberMatched"].as_u64(),
        next,
    })
}

/// The count line: "Products 21–40 of 130", "No products match", "1 product".
pub fn count_line(first_index: u64, shown: usize, matched: Option<u64>) -> String {
    let shown = shown as u64;
    match matched {
        Some(0) => "No products match this search".to_string(),
        _ if shown == 0 => "No products on this page".to_string(),
        Some(1) => "1 product".to_string(),
        Some(total) if first_index == 0 && shown == total => format!("{total} products"),
        Some(total) => format!(
            "Products {}–{} of {total}",
            first_index + 1,
            first_index + shown
        ),
        None => format!("Products {}–{}", first_index + 1, first_index + shown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> SearchForm {
        SearchForm::default()
    }

    #[test]
    fn the_default_form_searches_everything_newest_first() {
        let body = form().body().unwrap();
        assert_eq!(
            body,
            json!({"limit": 20, "sortby": [{"field": "properties.datetime", "direction": "desc"}]})
        );
    }

    #[test]
    fn every_field_becomes_its_stac_parameter() {
        let f = SearchForm {
            collection: "sentinel-1-grd".into(),
            from: "2024-04-01".into(),
            to: "2024-04-15".into(),
            max_cloud: 30,
            orbit: "ascending".into(),
            polarisation: "VH".into(),
            area: [
                "-106.5".into(),
                "39".into(),
                " -104 ".into(),
                "41.25".into(),
            ],
            limit: 50,
            sort: SortOrder::OldestFirst,
            local_only: false,
        };
        let body = f.body().unwrap();
        assert_eq!(body["collections"], json!(["sentinel-1-grd"]));
        assert_eq!(body["bbox"], json!([-106.5, 39.0, -104.0, 41.25]));
        assert_eq!(
            body["datetime"],
            json!("2024-04-01T00:00:00Z/2024-04-15T23:59:59.999999Z")
        );
        assert_eq!(
            body["query"],
            json!({
                "eo:cloud_cover": {"lte": 30},
                "sat:orbit_state": {"eq": "ascending"},
                "sar:polarizations": {"eq": "VH"},
            })
        );
        assert_eq!(body["limit"], json!(50));
        assert_eq!(body["sortby"][0]["direction"], json!("asc"));
    }

    #[test]
    fn local_only_restricts_the_search_to_the_local_ids() {
        let local = [ProductId("a".into()), ProductId("b".into())];
        let on = SearchForm {
            collection: "s2".into(),
            ..form()
        };
        assert!(on.local_only, "on by default");
        let body = on.request(&local).unwrap();
        assert_eq!(body["ids"], json!(["a", "b"]));
        assert_eq!(body["collections"], json!(["s2"]), "the other filters stay");
        // Off, or no local product at all: every product.
        let off = SearchForm {
            local_only: false,
            ..on.clone()
        };
        assert_eq!(off.request(&local).unwrap(), off.body().unwrap());
        assert!(on.request(&[]).unwrap().get("ids").is_none());
    }

    #[test]
    fn open_date_ranges() {
        assert_eq!(datetime_interval("", ""), Ok(None));
        assert_eq!(
            datetime_interval("2020-01-02", ""),
            Ok(Some("2020-01-02T00:00:00Z/..".into()))
        );
        assert_eq!(
            datetime_interval("", "2020-01-02"),
            Ok(Some("../2020-01-02T23:59:59.999999Z".into()))
        );
        assert!(datetime_interval("2020/01/02", "").is_err());
    }

    #[test]
    fn area_errors_say_which_number() {
        let a = |w: &str, s: &str, e: &str, n: &str| {
            parse_area(&[w.into(), s.into(), e.into(), n.into()])
        };
        assert_eq!(a("", "", " ", ""), Ok(None));
        assert!(
            a("1", "2", "", "4")
                .unwrap_err()
                .starts_with("East is empty")
        );
        assert!(
            a("x", "2", "3", "4")
                .unwrap_err()
                .contains("West 'x' is not a number")
        );
        assert!(
            a("181", "2", "3", "4")
                .unwrap_err()
                .contains("outside -180..180")
        );
        assert!(
            a("1", "-91", "3", "4")
                .unwrap_err()
                .contains("outside -90..90")
        );
        assert!(
            a("1", "5", "3", "4")
                .unwrap_err()
                .contains("South (5) is north")
        );
        // West > east crosses the antimeridian: allowed, in two parts.
        let cross = a("170", "-10", "-170", "10").unwrap().unwrap();
        assert_eq!(
            cross.parts(),
            vec![[170.0, -10.0, 180.0, 10.0], [-180.0, -10.0, -170.0, 10.0]]
        );
    }

    #[test]
    fn degrees_are_shown_short() {
        assert_eq!(format_degrees(-106.123456), "-106.1235");
        assert_eq!(format_degrees(40.0), "40");
        assert_eq!(format_degrees(-0.00001), "0");
        assert_eq!(format_degrees(12.5), "12.5");
    }

    #[test]
    fn reads_an_item_collection_and_its_post_next_link() {
        let request = json!({"limit": 2, "bbox": [0, 0, 1, 1]});
        let text = json!({
            "type": "FeatureCollection",
            "numberMatched": 5,
            "features": [
                {"type": "Feature", "id": "a", "collection": "c",
                 "bbox": [0, 0, 1, 1],
                 "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]]]},
                 "properties": {"datetime": "2024-04-02T17:39:01Z", "title": "A",
                                "eo:cloud_cover": 12.5, "sat:orbit_state": "descending"}},
                {"type": "Feature", "id": "b", "collection": "c",
                 "bbox": [170, -1, -170, 1], "geometry": null,
                 "properties": {"datetime": null, "start_datetime": "2017-07-29T00:00:00Z",
                                "sar:polarizations": ["VV", "VH"]}},
            ],
            "links": [{"rel": "next", "href": "http://h/stac/search", "method": "POST",
                       "body": {"token": "o2"}, "merge": true}],
        })
        .to_string();
        let page = parse_item_collection(&text, &request).unwrap();
        assert_eq!(page.matched, Some(5));
        assert_eq!(page.items.len(), 2);
        let a = &page.items[0];
        assert_eq!((a.title.as_str(), a.cloud_cover), ("A", Some(12.5)));
        assert_eq!(a.orbit_state.as_deref(), Some("descending"));
        assert_eq!(a.day(), "2024-04-02");
        assert_eq!(a.footprint[0].len(), 4);
        let b = &page.items[1];
        assert_eq!(b.title, "b", "no title: the id");
        assert_eq!(b.day(), "2017-07-29");
        assert_eq!(b.polarizations, vec!["VV", "VH"]);
        assert_eq!(
            b.footprint.len(),
            2,
            "a bbox across the antimeridian: two boxes"
        );
        assert_eq!(
            page.next,
            Some(json!({"limit": 2, "bbox": [0, 0, 1, 1], "token": "o2"}))
        );
    }

    #[test]
    fn a_get_next_link_gives_its_token() {
        let link = json!({"rel": "next", "href": "http://h/stac/search?limit=2&token=o4"});
        assert_eq!(
            next_body(&json!({"limit": 2}), &link),
            Some(json!({"limit": 2, "token": "o4"}))
        );
        assert_eq!(next_body(&json!({}), &json!({"href": "http://h/x"})), None);
        assert!(parse_item_collection("{}", &json!({})).is_err());
        assert!(parse_item_collection("<html>", &json!({})).is_err());
    }

    #[test]
    fn count_lines() {
        assert_eq!(count_line(0, 0, Some(0)), "No products match this search");
        assert_eq!(count_line(0, 1, Some(1)), "1 product");
        assert_eq!(count_line(0, 7, Some(7)), "7 products");
        assert_eq!(count_line(20, 20, Some(130)), "Products 21–40 of 130");
        assert_eq!(count_line(0, 3, None), "Products 1–3");
    }
}
