//! STAC API item search: the parameters of `GET`/`POST /stac/search`, their validation, and
//! the geometry test behind `intersects`.
//!
//! What it is: [`SearchParams`] built from a GET query ([`SearchParams::from_query`]) or a
//! POST body ([`SearchParams::from_body`]); every invalid parameter becomes a 400
//! [`BackendError::BadRequest`] naming it. The store runs the search
//! ([`crate::store::Store::search`]) on its indexes; this module holds no SQL.
//!
//! Semantics:
//! - `bbox` matches items whose bbox intersects it; a bbox whose west is greater than its east
//!   crosses the antimeridian (both for the query and for items).
//! - `intersects` (Point, MultiPoint, LineString, MultiLineString, Polygon, MultiPolygon,
//!   GeometryCollection) matches items whose geometry intersects it, tested exactly on lon/lat
//!   coordinates treated as planar (items that cross the antimeridian are expected to be split
//!   into MultiPolygons at ±180, as STAC recommends).
//! - `datetime`: an instant, `a/b`, `../b`, `a/..` (an empty side is open too; both sides
//!   open is an error). An item's time
//!   is `start_datetime`..`end_datetime` when it has both, else its `datetime`; it matches when
//!   that range overlaps the query range (bounds included).
//! - `query` (Query extension): on the properties listed in [`QUERYABLES`], ops
//!   eq/neq/lt/lte/gt/gte/in; on an array property (`sar:polarizations`) `eq` and `in` match
//!   when the array contains the value (or, for `eq` with an array, equals it), `neq` when it
//!   does not contain it. Items that lack the property never match.
//! - `sortby`: fields of [`QUERYABLES`] plus `datetime`, `id`, `collection`; `id` (in the
//!   direction of the first key) is appended as the last key so that paging is stable. The
//!   default is `-datetime`.
//! - `limit`: default 10, larger than 10000 is served as 10000, 0 is an error.
//! - `token`: the paging token of a `next` link (an offset into the sorted results).

use serde_json::{Map, Value};

use crate::error::BackendError;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 10;
/// Largest page size (larger requests are served with this many).
pub const MAX_LIMIT: u32 = 10_000;

/// How a queryable property is stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A number (REAL column).
    Number,
    /// A string (TEXT column).
    Text,
    /// An array of strings (stored as `|A|B|`).
    TextArray,
}

/// A property promoted to its own indexed column: STAC name, column, kind.
#[derive(Debug)]
pub struct Queryable {
    /// Property name in the STAC item (`properties.` omitted).
    pub name: &'static str,
    /// Column of the `search_items` table.
    pub column: &'static str,
    /// How it compares.
    pub kind: Kind,
}

/// The properties the Query extension and `sortby` can use.
pub const QUERYABLES: &[Queryable] = &[
    Queryable {
        name: "eo:cloud_cover",
        column: "cloud_cover",
        kind: Kind::Number,
    },
    Queryable {
        name: "sat:orbit_state",
        column: "orbit_state",
        kind: Kind::Text,
    },
    Queryable {
        name: "sat:relative_orbit",
        column: "relative_orbit",
        kind: Kind::Number,
    },
    Queryable {
        name: "platform",
        column: "platform",
        kind: Kind::Text,
    },
    Queryable {
        name: "s2:mgrs_tile",
        column: "mgrs_tile",
        kind: Kind::Text,
    },
    Queryable {
        name: "sar:instrument_mode",
        column: "instrument_mode",
        kind: Kind::Text,
    },
    Queryable {
        name: "sar:polarizations",
        column: "polarizations",
        kind: Kind::TextArray,
    },
];

/// A comparison of the Query extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `eq`
    Eq,
    /// `neq`
    Neq,
    /// `lt`
    Lt,
    /// `lte`
    Lte,
    /// `gt`
    Gt,
    /// `gte`
    Gte,
    /// `in`
    In,
}

/// A scalar operand of a query clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
}

/// The operand of a query clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// One value.
    One(Scalar),
    /// Several values (`in`, or `eq` with an array on an array property).
    Many(Vec<Scalar>),
}

/// One clause of the Query extension: `column op operand`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// The queryable.
    pub column: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// The comparison.
    pub op: Op,
    /// The value(s).
    pub operand: Operand,
}

/// One sort key: a `search_items` column and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Column of `search_items`.
    pub column: &'static str,
    /// Descending?
    pub descending: bool,
}

/// A longitude/latitude bbox; `west > east` crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bbox {
    /// West longitude.
    pub west: f64,
    /// South latitude.
    pub south: f64,
    /// East longitude.
    pub east: f64,
    /// North latitude.
    pub north: f64,
}

impl Bbox {
    /// The bbox as one or two non-crossing `[west, south, east, north]` boxes.
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
}

/// A time range in microseconds since 1970; each side open when `None`.
pub type TimeRange = (Option<i64>, Option<i64>);

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// Bbox filter.
    pub bbox: Option<Bbox>,
    /// Geometry filter.
    pub intersects: Option<Geometry>,
    /// Time range in microseconds since 1970 (each side open when `None`).
    pub datetime: Option<TimeRange>,
    /// Collections (any of).
    pub collections: Option<Vec<String>>,
    /// Item ids (any of).
    pub ids: Option<Vec<String>>,
    /// Query extension clauses (all of).
    pub query: Vec<Clause>,
    /// Sort keys, the tie-breaker `id` last.
    pub sortby: Vec<SortKey>,
    /// Page size.
    pub limit: u32,
    /// Results to skip (from the paging token).
    pub offset: u64,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            bbox: None,
            intersects: None,
            datetime: None,
            collections: None,
            ids: None,
            query: Vec::new(),
            sortby: finish_sort(Vec::new()),
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

fn bad(field: &str, reason: impl Into<String>) -> BackendError {
    BackendError::bad_request(field, reason)
}

/// The names of the parameters item search understands.
const KNOWN: &[&str] = &[
    "bbox",
    "intersects",
    "datetime",
    "collections",
    "ids",
    "limit",
    "sortby",
    "query",
    "token",
];

impl SearchParams {
    /// Parses the query string pairs of `GET /search` (already percent-decoded).
    pub fn from_query(pairs: &[(String, String)]) -> Result<SearchParams, BackendError> {
        let mut p = SearchParams::default();
        let mut sort = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "bbox" => {
                    let nums = v
                        .split(',')
                        .map(|s| s.trim().parse::<f64>())
                        .collect::<Result<Vec<f64>, _>>()
                        .map_err(|_| bad("bbox", format!("'{v}' is not a list of numbers")))?;
                    p.bbox = Some(parse_bbox(&nums)?);
                }
                "intersects" => {
                    let value: Value = serde_json::from_str(v)
                        .map_err(|e| bad("intersects", format!("not a GeoJSON geometry: {e}")))?;
                    p.intersects = Some(Geometry::from_geojson(&value, "intersects")?);
                }
                "datetime" => p.datetime = parse_datetime_interval(v)?,
                "collections" => p.collections = Some(split_list(v)),
                "ids" => p.ids = Some(split_list(v)),
                "limit" => {
                    let n: i64 = v
                        .trim()
                        .parse()
                        .map_err(|_| bad("limit", format!("'{v}' is not an integer")))?;
                    p.limit = resolve_limit(n)?;
                }
                "sortby" => {
                    for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                        let (desc, name) = match f.as_bytes()[0] {
                            b'-' => (true, &f[1..]),
                            b'+' => (false, &f[1..]),
                            _ => (false, f),
                        };
                        sort.push(SortKey {
                            column: sort_column(name)?,
                            descending: desc,
                        });
                    }
                }
                "query" => {
                    let value: Value = serde_json::from_str(v)
                        .map_err(|e| bad("query", format!("not a JSON object: {e}")))?;
                    p.query = parse_query(&value)?;
                }
                "token" => p.offset = parse_token(v)?,
                "filter" => return Err(no_filter()),
                _ => {}
            }
        }
        p.sortby = finish_sort(sort);
        p.check()?;
        Ok(p)
    }

    /// Parses the JSON body of `POST /search`.
    pub fn from_body(body: &Value) -> Result<SearchParams, BackendError> {
        let obj = body
            .as_object()
            .ok_or_else(|| bad("body", "must be a JSON object"))?;
        let mut p = SearchParams::default();
        for (k, v) in obj {
            if k == "filter" && !v.is_null() {
                return Err(no_filter());
            }
            if v.is_null() || !KNOWN.contains(&k.as_str()) {
                continue;
            }
            match k.as_str() {
                "bbox" => {
                    let nums = v
                        .as_array()
                        .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                        .ok_or_else(|| bad("bbox", "must be an array of numbers"))?;
                    p.bbox = Some(parse_bbox(&nums)?);
                }
                "intersects" => p.intersects = Some(Geometry::from_geojson(v, "intersects")?),
                "datetime" => {
                    let s = v
                        .as_str()
                        .ok_or_else(|| bad("datetime", "must be a string"))?;
                    p.datetime = parse_datetime_interval(s)?;
                }
                "collections" => p.collections = Some(string_array(v, "collections")?),
                "ids" => p.ids = Some(string_array(v, "ids")?),
                "limit" => {
                    let n = v
                        .as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                        .ok_or_else(|| bad("limit", "must be an integer"))?;
                    p.limit = resolve_limit(n)?;
                }
                "sortby" => {
                    let arr = v
                        .as_array()
                        .ok_or_else(|| bad("sortby", "must be an array of {field, direction}"))?;
                    let mut sort = Vec::new();
                    for s in arr {
                        let field = s
                            .get("field")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad("sortby", "each entry needs a string `field`"))?;
                        let descending = match s.get("direction").and_then(Value::as_str) {
                            None | Some("asc") => false,
                            Some("desc") => true,
                            Some(other) => {
                                return Err(bad(
                                    "sortby",
                                    format!("direction '{other}' is not asc or desc"),
                                ));
                            }
                        };
                        sort.push(SortKey {
                            column: sort_column(field)?,
                            descending,
                        });
                    }
                    p.sortby = finish_sort(sort);
                }
                "query" => p.query = parse_query(v)?,
                "token" => {
                    let s = v.as_str().ok_or_else(|| bad("token", "must be a string"))?;
                    p.offset = parse_token(s)?;
                }
                _ => {}
            }
        }
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), BackendError> {
        if self.bbox.is_some() && self.intersects.is_some() {
            return Err(bad("bbox", "bbox and intersects cannot be used together"));
        }
        Ok(())
    }
}

/// A `filter` would be silently ignored otherwise, returning unfiltered results.
fn no_filter() -> BackendError {
    bad(
        "filter",
        "the Filter extension (CQL2) is not supported here: use `query` (Query extension)",
    )
}

/// The paging token for results starting at `offset`.
pub fn token_for(offset: u64) -> String {
    format!("o{offset}")
}

fn parse_token(s: &str) -> Result<u64, BackendError> {
    s.strip_prefix('o')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            bad(
                "token",
                format!("'{s}' is not a paging token of this server"),
            )
        })
}

fn resolve_limit(n: i64) -> Result<u32, BackendError> {
    if n < 1 {
        return Err(bad("limit", format!("must be at least 1 (got {n})")));
    }
    Ok(u32::try_from(n.min(i64::from(MAX_LIMIT))).unwrap_or(MAX_LIMIT))
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn string_array(v: &Value, field: &str) -> Result<Vec<String>, BackendError> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| bad(field, "must be an array of strings"))
}

/// Validates a 4- or 6-number bbox.
pub fn parse_bbox(nums: &[f64]) -> Result<Bbox, BackendError> {
    let (w, s, e, n) = match nums.len() {
        4 => (nums[0], nums[1], nums[2], nums[3]),
        6 => (nums[0], nums[1], nums[3], nums[4]),
        k => {
            return Err(bad(
                "bbox",
                format!("needs 4 (or 6, with heights) numbers, got {k}"),
            ));
        }
    };
    if !nums.iter().all(|x| x.is_finite()) {
        return Err(bad("bbox", "numbers must be finite"));
    }
    for lon in [w, e] {
        if !(-180.0..=180.0).contains(&lon) {
            return Err(bad("bbox", format!("longitude {lon} is outside -180..180")));
        }
    }
    for lat in [s, n] {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(bad("bbox", format!("latitude {lat} is outside -90..90")));
        }
    }
    if s > n {
        return Err(bad(
            "bbox",
            format!("south ({s}) is greater than north ({n})"),
        ));
    }
    Ok(Bbox {
        west: w,
        south: s,
        east: e,
        north: n,
    })
}

/// Parses an RFC 3339 date-time into microseconds since 1970. A space instead of `T`
/// between date and time is accepted (some real items use it).
pub fn parse_instant(s: &str) -> Option<i64> {
    let mut t = s.trim().to_string();
    if t.len() > 10 && matches!(t.as_bytes()[10], b' ' | b't') {
        t.replace_range(10..11, "T");
    }
    if t.ends_with('z') {
        t.pop();
        t.push('Z');
    }
    let dt =
        time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(dt.unix_timestamp_nanos() / 1000).ok()
}

/// Parses the `datetime` parameter; an interval open at both ends is an error.
pub fn parse_datetime_interval(v: &str) -> Result<Option<TimeRange>, BackendError> {
    // Always `Some`; the `Option` lets callers assign it to `SearchParams::datetime`.
    let side = |s: &str| -> Result<Option<i64>, BackendError> {
        let s = s.trim();
        if s.is_empty() || s == ".." {
            return Ok(None);
        }
        parse_instant(s).map(Some).ok_or_else(|| {
            bad(
                "datetime",
                format!("'{s}' is not an RFC 3339 date-time (e.g. 2024-07-10T00:00:00Z)"),
            )
        })
    };
    let (a, b) = match v.split_once('/') {
        Some((a, b)) => {
            if b.contains('/') {
                return Err(bad("datetime", "at most one '/' separates start and end"));
            }
            (side(a)?, side(b)?)
        }
        None => {
            let t = side(v)?.ok_or_else(|| bad("datetime", "an empty instant"))?;
            (Some(t), Some(t))
        }
    };
    if let (Some(a), Some(b)) = (a, b)
        && a > b
    {
        return Err(bad("datetime", "the start is after the end"));
    }
    if a.is_none() && b.is_none() {
        return Err(bad("datetime", "an interval needs at least one closed end"));
    }
    Ok(Some((a, b)))
}

/// The `search_items` column of a sort field.
fn sort_column(field: &str) -> Result<&'static str, BackendError> {
    let name = field.strip_prefix("properties.").unwrap_or(field);
    match name {
        "datetime" => return Ok("dt"),
        "id" => return Ok("id"),
        "collection" => return Ok("collection"),
        "start_datetime" => return Ok("dt_start"),
        "end_datetime" => return Ok("dt_end"),
        _ => {}
    }
    QUERYABLES
        .iter()
        .find(|q| q.name == name && q.kind != Kind::TextArray)
        .map(|q| q.column)
        .ok_or_else(|| {
            bad(
                "sortby",
                format!(
                    "cannot sort by '{field}' (datetime, id, collection and the queryables can)"
                ),
            )
        })
}

/// Appends `id` as the final tie-breaker, in the direction of the first key (so that one
/// index walk gives the whole order); the default order is newest first.
fn finish_sort(mut keys: Vec<SortKey>) -> Vec<SortKey> {
    if keys.is_empty() {
        keys.push(SortKey {
            column: "dt",
            descending: true,
        });
    }
    if !keys.iter().any(|k| k.column == "id") {
        let descending = keys[0].descending;
        keys.push(SortKey {
            column: "id",
            descending,
        });
    }
    keys
}

fn scalar(v: &Value, kind: Kind, name: &str) -> Result<Scalar, BackendError> {
    match (kind, v) {
        (Kind::Number, Value::Number(n)) => Ok(Scalar::Number(n.as_f64().unwrap_or(f64::NAN))),
        (Kind::Text | Kind::TextArray, Value::String(s)) => {
            if s.contains('|') {
                return Err(bad("query", format!("{name}: values cannot contain '|'")));
            }
            Ok(Scalar::Text(s.clone()))
        }
        _ => Err(bad(
            "query",
            format!(
                "{name}: expected a {}, got {v}",
                if kind == Kind::Number {
                    "number"
                } else {
                    "string"
                }
            ),
        )),
    }
}

/// Parses a Query extension object.
fn parse_query(v: &Value) -> Result<Vec<Clause>, BackendError> {
    let obj: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| bad("query", "must be an object of property: {op: value}"))?;
    let mut out = Vec::new();
    for (prop, ops) in obj {
        let name = prop.strip_prefix("properties.").unwrap_or(prop);
        let q = QUERYABLES.iter().find(|q| q.name == name).ok_or_else(|| {
            let names: Vec<&str> = QUERYABLES.iter().map(|q| q.name).collect();
            bad(
                "query",
                format!(
                    "'{prop}' is not queryable here (queryable: {})",
                    names.join(", ")
                ),
            )
        })?;
        let ops = ops
            .as_object()
            .ok_or_else(|| bad("query", format!("{prop}: must be an object of op: value")))?;
        for (op, value) in ops {
            let op = match op.as_str() {
                "eq" => Op::Eq,
                "neq" => Op::Neq,
                "lt" => Op::Lt,
                "lte" => Op::Lte,
                "gt" => Op::Gt,
                "gte" => Op::Gte,
                "in" => Op::In,
                other => {
                    return Err(bad(
                        "query",
                        format!(
                            "{prop}: unknown operator '{other}' (eq, neq, lt, lte, gt, gte, in)"
                        ),
                    ));
                }
            };
            if q.kind == Kind::TextArray && !matches!(op, Op::Eq | Op::Neq | Op::In) {
                return Err(bad(
                    "query",
                    format!("{prop} is an array: only eq, neq and in apply"),
                ));
            }
            let operand = match (op, value) {
                (Op::In, Value::Array(vals)) => {
                    if vals.is_empty() {
                        return Err(bad("query", format!("{prop}: 'in' needs values")));
                    }
                    Operand::Many(
                        vals.iter()
                            .map(|x| scalar(x, q.kind, prop))
                            .collect::<Result<_, _>>()?,
                    )
                }
                (Op::In, _) => {
                    return Err(bad("query", format!("{prop}: 'in' needs an array")));
                }
                (Op::Eq, Value::Array(vals)) if q.kind == Kind::TextArray => Operand::Many(
                    vals.iter()
                        .map(|x| scalar(x, q.kind, prop))
                        .collect::<Result<_, _>>()?,
                ),
                (_, x) => Operand::One(scalar(x, q.kind, prop)?),
            };
            out.push(Clause {
                column: q.column,
                kind: q.kind,
                op,
                operand,
            });
        }
    }
    Ok(out)
}

/// Encodes a string array for the `polarizations`-style columns: `|A|B|`.
pub fn encode_text_array(v: &[&str]) -> String {
    let mut s = String::from("|");
    for x in v {
        s.push_str(x);
        s.push('|');
    }
    s
}

type Pt = (f64, f64);

/// A geometry reduced to what the intersection test needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Geometry {
    /// Isolated points.
    pub points: Vec<Pt>,
    /// Line strings (each at least one segment).
    pub lines: Vec<Vec<Pt>>,
    /// Polygons: outer ring then holes; rings closed or not.
    pub polygons: Vec<Vec<Vec<Pt>>>,
}

fn position(v: &Value, field: &str) -> Result<Pt, BackendError> {
    let a = v
        .as_array()
        .filter(|a| a.len() >= 2)
        .ok_or_else(|| bad(field, "a position must be [lon, lat]"))?;
    match (a[0].as_f64(), a[1].as_f64()) {
        (Some(x), Some(y)) if x.is_finite() && y.is_finite() => Ok((x, y)),
        _ => Err(bad(field, "a position must be [lon, lat] numbers")),
    }
}

fn positions(v: &Value, field: &str) -> Result<Vec<Pt>, BackendError> {
    v.as_array()
        .ok_or_else(|| bad(field, "expected an array of positions"))?
        .iter()
        .map(|p| position(p, field))
        .collect()
}

fn polygon(v: &Value, field: &str) -> Result<Vec<Vec<Pt>>, BackendError> {
    let rings = v
        .as_array()
        .ok_or_else(|| bad(field, "a polygon is an array of rings"))?
        .iter()
        .map(|r| positions(r, field))
        .collect::<Result<Vec<_>, _>>()?;
    if rings.is_empty() || rings.iter().any(|r| r.len() < 3) {
        return Err(bad(field, "a polygon ring needs at least 3 positions"));
    }
    Ok(rings)
}

impl Geometry {
    /// Reads a GeoJSON geometry; `field` names it in errors.
    pub fn from_geojson(v: &Value, field: &str) -> Result<Geometry, BackendError> {
        let mut g = Geometry::default();
        g.add(v, field, 0)?;
        if g.points.is_empty() && g.lines.is_empty() && g.polygons.is_empty() {
            return Err(bad(field, "an empty geometry"));
        }
        Ok(g)
    }

    fn add(&mut self, v: &Value, field: &str, depth: u32) -> Result<(), BackendError> {
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(field, "a GeoJSON geometry needs a `type`"))?;
        if ty == "GeometryCollection" {
            if depth > 4 {
                return Err(bad(field, "geometry collections nest too deeply"));
            }
            for g in v
                .get("geometries")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(field, "a GeometryCollection needs `geometries`"))?
            {
                self.add(g, field, depth + 1)?;
            }
            return Ok(());
        }
        let c = v
            .get("coordinates")
            .ok_or_else(|| bad(field, "a GeoJSON geometry needs `coordinates`"))?;
        match ty {
            "Point" => self.points.push(position(c, field)?),
            "MultiPoint" => self.points.extend(positions(c, field)?),
            "LineString" => self.lines.push(positions(c, field)?),
            "MultiLineString" => {
                for l in c
                    .as_array()
                    .ok_or_else(|| bad(field, "expected an array of line strings"))?
                {
                    self.lines.push(positions(l, field)?);
                }
            }
            "Polygon" => self.polygons.push(polygon(c, field)?),
            "MultiPolygon" => {
                for p in c
                    .as_array()
                    .ok_or_else(|| bad(field, "expected an array of polygons"))?
                {
                    self.polygons.push(polygon(p, field)?);
                }
            }
            other => {
                return Err(bad(field, format!("unsupported geometry type '{other}'")));
            }
        }
        Ok(())
    }

    /// `[west, south, east, north]` of all coordinates.
    pub fn bounds(&self) -> [f64; 4] {
        let mut b = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for (x, y) in self.vertices() {
            b[0] = b[0].min(x);
            b[1] = b[1].min(y);
            b[2] = b[2].max(x);
            b[3] = b[3].max(y);
        }
        b
    }

    fn vertices(&self) -> impl Iterator<Item = Pt> + '_ {
        self.points
            .iter()
            .copied()
            .chain(self.lines.iter().flatten().copied())
            .chain(self.polygons.iter().flatten().flatten().copied())
    }

    /// All segments: line segments, polygon ring edges, and points as zero-length segments.
    fn segments(&self) -> Vec<(Pt, Pt)> {
        let mut out: Vec<(Pt, Pt)> = self.points.iter().map(|&p| (p, p)).collect();
        for l in &self.lines {
            if l.len() == 1 {
                out.push((l[0], l[0]));
            }
            out.extend(l.windows(2).map(|w| (w[0], w[1])));
        }
        for ring in self.polygons.iter().flatten() {
            out.extend(ring.windows(2).map(|w| (w[0], w[1])));
            if let (Some(&a), Some(&b)) = (ring.last(), ring.first())
                && a != b
            {
                out.push((a, b));
            }
        }
        out
    }

    /// Whether the point lies in (or on the boundary of) one of the polygons.
    fn covers_point(&self, p: Pt) -> bool {
        self.polygons.iter().any(|rings| {
            let mut inside = ring_contains(&rings[0], p);
            for hole in &rings[1..] {
                if ring_contains(hole, p) && !on_ring(hole, p) {
                    inside = false;
                }
            }
            inside
        })
    }

    /// Whether the two geometries share at least one point.
    pub fn intersects(&self, other: &Geometry) -> bool {
        let a = self.segments();
        let b = other.segments();
        for &(p1, p2) in &a {
            for &(q1, q2) in &b {
                if segments_intersect(p1, p2, q1, q2) {
                    return true;
                }
            }
        }
        // No boundaries touch: one may lie inside the other.
        self.vertices().any(|p| other.covers_point(p))
            || other.vertices().any(|p| self.covers_point(p))
    }
}

fn orient(a: Pt, b: Pt, c: Pt) -> f64 {
    (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)
}

fn on_segment(a: Pt, b: Pt, p: Pt) -> bool {
    orient(a, b, p) == 0.0
        && p.0 >= a.0.min(b.0)
        && p.0 <= a.0.max(b.0)
        && p.1 >= a.1.min(b.1)
        && p.1 <= a.1.max(b.1)
}

fn segments_intersect(p1: Pt, p2: Pt, q1: Pt, q2: Pt) -> bool {
    let d1 = orient(q1, q2, p1);
    let d2 = orient(q1, q2, p2);
    let d3 = orient(p1, p2, q1);
    let d4 = orient(p1, p2, q2);
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    on_segment(q1, q2, p1)
        || on_segment(q1, q2, p2)
        || on_segment(p1, p2, q1)
        || on_segment(p1, p2, q2)
}

fn ring_edges(ring: &[Pt]) -> impl Iterator<Item = (Pt, Pt)> + '_ {
    (0..ring.len()).map(move |i| (ring[i], ring[(i + 1) % ring.len()]))
}

fn on_ring(ring: &[Pt], p: Pt) -> bool {
    ring_edges(ring).any(|(a, b)| on_segment(a, b, p))
}

/// Point in ring (even-odd rule), boundary included.
fn ring_contains(ring: &[Pt], p: Pt) -> bool {
    if on_ring(ring, p) {
        return true;
    }
    let mut inside = false;
    for (a, b) in ring_edges(ring) {
        if (a.1 > p.1) != (b.1 > p.1) {
            let x = a.0 + (p.1 - a.1) / (b.1 - a.1) * (b.0 - a.0);
            if p.0 < x {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn geom(v: Value) -> Geometry {
        Geometry::from_geojson(&v, "g").expect("geometry")
    }

    #[test]
    fn polygon_intersections() {
        let square =
            geom(json!({"type": "Polygon", "coordinates": [[[0,0],[10,0],[10,10],[0,10],[0,0]]]}));
        let inner = geom(json!({"type": "Polygon", "coordinates": [[[2,2],[3,2],[3,3],[2,2]]]}));
        let crossing =
            geom(json!({"type": "Polygon", "coordinates": [[[5,-5],[6,-5],[6,20],[5,20],[5,-5]]]}));
        let outside =
            geom(json!({"type": "Polygon", "coordinates": [[[11,11],[12,11],[12,12],[11,11]]]}));
        // Bboxes overlap but the triangle stays off the square's corner.
        let near =
            geom(json!({"type": "Polygon", "coordinates": [[[10.5,5],[20,-5],[20,5],[10.5,5]]]}));
        let with_hole = geom(json!({"type": "Polygon", "coordinates": [
            [[0,0],[10,0],[10,10],[0,10],[0,0]], [[1,1],[9,1],[9,9],[1,9],[1,1]]]}));
        assert!(square.intersects(&inner) && inner.intersects(&square));
        assert!(square.intersects(&crossing));
        assert!(!square.intersects(&outside));
        assert!(!square.intersects(&near));
        assert!(!with_hole.intersects(&inner), "inside the hole");
        assert!(with_hole.intersects(&crossing));
        let pt = geom(json!({"type": "Point", "coordinates": [5, 5]}));
        assert!(square.intersects(&pt) && !with_hole.intersects(&pt));
        let edge = geom(json!({"type": "Point", "coordinates": [10, 5]}));
        assert!(square.intersects(&edge));
    }

    #[test]
    fn datetimes_and_bboxes() {
        for open in ["../..", "/", "/..", "../"] {
            assert!(parse_datetime_interval(open).is_err(), "{open}");
        }
        let (a, b) = parse_datetime_interval("2024-07-10T00:00:00Z/..")
            .expect("ok")
            .expect("some");
        assert_eq!(a, Some(1_720_569_600_000_000));
        assert_eq!(b, None);
        assert!(parse_datetime_interval("2024-07-10").is_err());
        assert!(parse_datetime_interval("2024-08-10T00:00:00Z/2024-07-10T00:00:00Z").is_err());
        assert_eq!(
            parse_instant("2022-04-28 03:44:17.707575+00:00"),
            parse_instant("2022-04-28T03:44:17.707575Z")
        );
        assert!(parse_bbox(&[1.0, 2.0, 3.0]).is_err());
        assert!(parse_bbox(&[0.0, 10.0, 1.0, 5.0]).is_err());
        assert_eq!(
            parse_bbox(&[170.0, 0.0, -170.0, 1.0])
                .expect("crossing")
                .parts()
                .len(),
            2
        );
    }
}
