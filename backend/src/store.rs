//! The embedded store: one SQLite file in WAL mode inside the data folder.
//!
//! What it is: the products of the catalog (each as its STAC item, the derived
//! [`Product`], and where its local band files are), ingested STAC Collection documents
//! (metadata only: extents and counts come from the items) and the hashed API tokens
//! (worker and user scopes).
//! Several processes may open the same file (`albedo serve` and `albedo ingest` at once):
//! WAL mode plus a busy timeout serialise their writes.
//!
//! What it is not: not async. Callers in async code run it inside
//! `tokio::task::spawn_blocking` (see [`Store::call`]).
//!
//! Documents: a product's STAC item and derived [`Product`] are stored as raw-deflate BLOBs
//! of their JSON (see [`pack_json`]; a real Sentinel-2 item of 16 KB takes some 2.6 KB);
//! rows written before this as JSON TEXT are read as they are.
//!
//! Contract: writes are transactional (an ingest of many products commits all or none, also
//! through a [`Writer`], unless it was asked to commit in chunks);
//! putting a product whose id exists replaces it (ingest is idempotent), search rows included.
//!
//! Search indexes (see [`Store::search`]): `search_items` holds one row per product with the
//! promoted columns item search filters and sorts on (time as microseconds since 1970:
//! `dt` for sorting, `dt_start`/`dt_end` for overlap; cloud cover, orbit state, relative
//! orbit, platform, MGRS tile, instrument mode, polarisations as `|VV|VH|`; the bbox and the
//! GeoJSON geometry in `search_geometry`), B-tree indexes on time (`dt`, and `dt_start`)
//! and on cloud cover that also hold the bbox, the times and the cloud cover (a query on
//! those reads no table row until its page is known: at a million items, a 10-degree bbox
//! with a time range or a cloud-cover bound went from 180-250 ms to the figures in
//! `cargo xtask bench catalog`), on collection+time and the common filters, and
//! `search_bbox`, an R*Tree of bboxes keyed `2 * key + part`, where an item whose bbox
//! crosses the antimeridian has two parts; `search_meta.max_span`, the longest
//! `dt_end - dt_start` of any item, lets a time query bound its `dt_start` range from both
//! sides. `search_counts` keeps the number of items per collection, so that a search
//! filtered by collection alone (or by nothing) counts its matches without a scan; sorting
//! by cloud cover walks `(collection, cloud_cover, id)` or `(cloud_cover, id)` instead of
//! sorting the matches. `search_meta.max_skew`, the furthest any item's `dt` lies outside
//! its `dt_start..dt_end`, lets a time query bound `dt` as well, so that a walk of the time
//! index in order reads only the queried interval. A `bbox` takes its candidates from the
//! R*Tree unless the R*Tree says it covers an eighth of the items or more, or its time or
//! cloud-cover range selects fewer rows (capped counts decide); then every candidate row is
//! tested exactly instead. Stores made before these tables are indexed when opened.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use albedo_raster::product::{LocalBand, LocalProduct};
use albedo_shared::catalog::{Band, Product, ProductId};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::BackendError;
use crate::search::{
    Bbox, Geometry, Kind, Op, Operand, Scalar, SearchParams, encode_text_array, parse_instant,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    datetime TEXT,
    west REAL, south REAL, east REAL, north REAL,
    is_local INTEGER NOT NULL,
    product_json TEXT NOT NULL,
    stac_json TEXT NOT NULL,
    local_bands_json TEXT
);
CREATE INDEX IF NOT EXISTS products_collection_datetime ON products (collection, datetime);
CREATE TABLE IF NOT EXISTS search_items (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    dt INTEGER, dt_start INTEGER, dt_end INTEGER,
    west REAL, south REAL, east REAL, north REAL,
    cloud_cover REAL, orbit_state TEXT, relative_orbit REAL, platform TEXT,
    mgrs_tile TEXT, instrument_mode TEXT, polarizations TEXT
);
DROP INDEX IF EXISTS search_items_dt;
CREATE INDEX IF NOT EXISTS search_items_dt_cover
    ON search_items (dt, id, dt_start, dt_end, south, north, west, east, cloud_cover);
DROP INDEX IF EXISTS search_items_dt_start;
CREATE INDEX IF NOT EXISTS search_items_dt_start_cover
    ON search_items (dt_start, dt_end, dt, south, north, west, east, cloud_cover);
CREATE INDEX IF NOT EXISTS search_items_collection_dt
    ON search_items (collection, dt, id, dt_start, dt_end);
CREATE TABLE IF NOT EXISTS search_geometry (key INTEGER PRIMARY KEY, geometry TEXT NOT NULL);
DROP INDEX IF EXISTS search_items_cloud_cover;
DROP INDEX IF EXISTS search_items_cloud_id;
CREATE INDEX IF NOT EXISTS search_items_cloud_cover
    ON search_items (cloud_cover, id, dt, dt_start, dt_end, south, north, west, east);
CREATE INDEX IF NOT EXISTS search_items_collection_cloud
    ON search_items (collection, cloud_cover, id);
CREATE TABLE IF NOT EXISTS search_counts (collection TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS search_items_platform ON search_items (platform);
CREATE INDEX IF NOT EXISTS search_items_orbit_state ON search_items (orbit_state);
CREATE VIRTUAL TABLE IF NOT EXISTS search_bbox USING rtree(id, west, east, south, north);
CREATE TABLE IF NOT EXISTS search_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS collections (id TEXT PRIMARY KEY, stac_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, name)
);
";

/// Where one band of a local product lives on disk (stored beside the product).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredBand {
    band: Band,
    path: PathBuf,
    index: u16,
}

/// A product as stored: everything the catalog keeps of it.
#[derive(Debug, Clone)]
pub struct StoredProduct {
    /// The API view.
    pub product: Product,
    /// The STAC item, as ingested.
    pub stac_item: serde_json::Value,
    /// Local band files, when the pixels are on this host.
    pub local: Option<LocalProduct>,
}

/// Handle on the SQLite store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// File name of the database inside the data folder.
pub const DB_FILE: &str = "albedo.sqlite";

impl Store {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, BackendError> {
        std::fs::create_dir_all(data_dir).map_err(|source| BackendError::Io {
            context: format!("creating data folder {}", data_dir.display()),
            source,
        })?;
        // Absolute once, here: every path derived from the store (artifact folders, the
        // paths jobs hand to workers, derived products' files) is then absolute too.
        let data_dir = data_dir.canonicalize().map_err(|source| BackendError::Io {
            context: format!("resolving data folder {}", data_dir.display()),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::classify::SCHEMA)?;
        crate::classify::sweep_plans(&conn)?;
        migrate_worker_tokens(&conn)?;
        backfill_search_index(&mut conn)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the store's connection (for modules with tables of their own, such as
    /// the experiment engine's).
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        f(&self.lock())
    }

    /// Runs `f` on the store's connection on a blocking thread; for use from async code.
    pub(crate) async fn call_conn<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, BackendError> + Send + 'static,
    {
        self.call(move |s| s.with_conn(f)).await
    }

    /// Runs `f` on a blocking thread with this store; for use from async code.
    pub async fn call<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, BackendError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await?
    }

    /// Inserts or replaces products, all in one transaction.
    pub fn put_products(&self, products: &[StoredProduct]) -> Result<(), BackendError> {
        self.put_batch(products, &[])
    }

    /// Inserts or replaces products and STAC Collection documents (`(id, collection)`), all
    /// in one transaction.
    pub fn put_batch(
        &self,
        products: &[StoredProduct],
        collections: &[(String, serde_json::Value)],
    ) -> Result<(), BackendError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for (id, doc) in collections {
            write_collection(&tx, id, doc)?;
        }
        for p in products {
            write_product(&tx, p)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A [`Writer`] for a large ingest: its own connection to the store's file (so that
    /// readers of this store, which see the data as it was before, are not held up), writing
    /// in one transaction, or in one per `commit_every` products when given.
    pub fn writer(&self, commit_every: Option<NonZeroUsize>) -> Result<Writer, BackendError> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Pages of the open transaction beyond this spill to the WAL file, not to memory.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        Ok(Writer {
            conn,
            open: false,
            commit_every,
            in_transaction: 0,
            written: 0,
            committed: 0,
            commits: 0,
        })
    }

    /// Number of products.
    pub fn count_products(&self) -> Result<u64, BackendError> {
        let n: i64 = self
            .lock()
            .query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// A page of products: local ones first, then by collection and newest first.
    pub fn list_products(&self, limit: u32, offset: u64) -> Result<Vec<Product>, BackendError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT product_json FROM products
             ORDER BY is_local DESC, collection, datetime DESC, id
             LIMIT ?1 OFFSET ?2",
        )?;
        json_rows(
            &mut stmt,
            params![limit, i64::try_from(offset).unwrap_or(i64::MAX)],
        )
    }

    /// One product with its STAC item and local bands.
    pub fn get_product(&self, id: &ProductId) -> Result<StoredProduct, BackendError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT product_json, stac_json, local_bands_json FROM products WHERE id = ?1",
                params![id.0],
                |r| {
                    Ok((
                        json_doc(r, 0)?,
                        json_doc(r, 1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        let (product_json, stac_json, local_json) =
            row.ok_or_else(|| BackendError::not_found(format!("product '{id}'")))?;
        let product: Product = serde_json::from_str(&product_json)?;
        let stac_item: serde_json::Value = serde_json::from_str(&stac_json)?;
        let local = local_json
            .map(|j| -> Result<LocalProduct, BackendError> {
                let bands: Vec<StoredBand> = serde_json::from_str(&j)?;
                Ok(LocalProduct {
                    product: product.clone(),
                    bands: bands
                        .into_iter()
                        .map(|b| LocalBand {
                            band: b.band,
                            path: b.path,
                            index: b.index,
                        })
                        .collect(),
                    stac_item: stac_item.clone(),
                })
            })
            .transpose()?;
        Ok(StoredProduct {
            product,
            stac_item,
            local,
        })
    }

    /// STAC items of one collection (or all), by datetime then id.
    pub fn stac_items(
        &self,
        collection: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<serde_json::Value>, BackendError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT stac_json FROM products WHERE (?1 IS NULL OR collection = ?1)
             ORDER BY datetime, id LIMIT ?2 OFFSET ?3",
        )?;
        json_rows(
            &mut stmt,
            params![collection, limit, i64::try_from(offset).unwrap_or(i64::MAX)],
        )
    }

    /// Collection ids with their item counts and the union of their bboxes and times.
    pub fn collections(&self) -> Result<Vec<CollectionSummary>, BackendError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT collection, COUNT(*), MIN(west), MIN(south), MAX(east), MAX(north),
                    MIN(datetime), MAX(datetime)
             FROM products GROUP BY collection ORDER BY collection",
        )?;
        let rows = stmt.query_map([], |r| {
            let bbox = match (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?) {
                (Some(w), Some(s), Some(e), Some(n)) => Some([w, s, e, n]),
                _ => None,
            };
            Ok(CollectionSummary {
                id: r.get(0)?,
                items: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                bbox,
                start: r.get(6)?,
                end: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The STAC Collection documents ingested, by id.
    pub fn stored_collections(&self) -> Result<Vec<(String, serde_json::Value)>, BackendError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT id, stac_json FROM collections ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push((id, serde_json::from_str(&json)?));
        }
        Ok(out)
    }

    /// Creates (or replaces) the `scope` token called `name` and returns the secret, which
    /// only this call ever sees: the store keeps its SHA-256.
    pub fn create_token(&self, scope: TokenScope, name: &str) -> Result<String, BackendError> {
        use rand::TryRngCore;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut secret)
            .map_err(|e| BackendError::Io {
                context: "reading the OS random source".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let token = format!("{}{}", scope.prefix(), hex::encode(secret));
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        self.lock().execute(
            "INSERT INTO tokens (scope, name, token_sha256, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(scope, name) DO UPDATE SET token_sha256 = excluded.token_sha256,
                created_at = excluded.created_at",
            params![scope.as_str(), name, sha256_hex(&token), now],
        )?;
        Ok(token)
    }

    /// The name of the `scope` token `token`, if it is a valid one. A token of another scope
    /// is not valid here.
    pub fn check_token(
        &self,
        scope: TokenScope,
        token: &str,
    ) -> Result<Option<String>, BackendError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT name FROM tokens WHERE token_sha256 = ?1 AND scope = ?2",
                params![sha256_hex(token), scope.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }
}

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// Connect as a worker (`/api/workers/connect`).
    Worker,
    /// Change things through the API (create and cancel experiments, ingest).
    User,
}

impl TokenScope {
    /// Name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Worker => "worker",
            TokenScope::User => "user",
        }
    }

    /// Prefix of its secrets (so that a leaked token says what it is).
    pub fn prefix(self) -> &'static str {
        match self {
            TokenScope::Worker => "albw_",
            TokenScope::User => "albu_",
        }
    }
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// The STAC items of this page, in order.
    pub features: Vec<serde_json::Value>,
    /// How many items match in all, when they are at most [`MAX_COUNTED`] (or counted
    /// anyway: a collection's size is kept, an `intersects` search tests every candidate).
    pub matched: Option<u64>,
    /// Whether more items follow this page.
    pub more: bool,
}

/// Most matches a search counts one by one. Past it `numberMatched` is left out (optional in
/// STAC API and OGC API - Features), so that a broad query over a million items costs a page
/// and ten thousand index rows, not a walk over every match (at a million items, counting
/// 950 000 matches took 0.5 s).
pub const MAX_COUNTED: i64 = 10_000;

impl Store {
    /// Runs an item search on the indexes: the R*Tree for `bbox`/`intersects` (then an exact
    /// bbox check, or the geometry test), the time and property columns for the rest.
    pub fn search(&self, p: &SearchParams) -> Result<SearchPage, BackendError> {
        let conn = self.lock();
        let meta = |key: &str| -> Result<i64, BackendError> {
            Ok(conn
                .query_row(
                    "SELECT value FROM search_meta WHERE key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0))
        };
        let bounds = (meta("max_span")?, meta("max_skew")?);
        let total = count_all(&conn, None)?;
        let use_rtree = match (&p.bbox, &p.intersects) {
            (Some(b), None) => rtree_is_best(&conn, p, b, total, bounds.0)?,
            _ => true,
        };
        let (where_sql, args) = search_where(p, bounds, use_rtree);
        let order: Vec<String> = p
            .sortby
            .iter()
            .map(|k| {
                format!(
                    "s.{} {}",
                    k.column,
                    if k.descending { "DESC" } else { "ASC" }
                )
            })
            .collect();
        let order = order.join(", ");
        let offset = i64::try_from(p.offset).unwrap_or(i64::MAX);
        let Some(geometry) = &p.intersects else {
            let only_collections = p.bbox.is_none()
                && p.datetime.is_none()
                && p.ids.as_ref().is_none_or(|i| i.is_empty())
                && p.query.is_empty();
            let matched: Option<i64> = if only_collections {
                Some(count_all(
                    &conn,
                    p.collections.as_deref().filter(|c| !c.is_empty()),
                )?)
            } else {
                let sql = format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM search_items s WHERE {where_sql} \
                     LIMIT {})",
                    MAX_COUNTED + 1
                );
                trace_plan(&conn, "count", &sql, &args);
                let n: i64 = conn.query_row(&sql, params_from_iter(args.iter()), |r| r.get(0))?;
                (n <= MAX_COUNTED).then_some(n)
            };
            // When many items match and the order is by time, walking the time index in
            // order finds a page sooner than sorting every match (SQLite cannot tell). Past
            // MAX_COUNTED matches, at most one row in total / MAX_COUNTED is skipped per match.
            let many = matched.is_none_or(|m| m > 1000 && m.saturating_mul(20) > total);
            let mut hint = "";
            if p.sortby[0].column == "dt" && many {
                hint = if p.collections.as_ref().is_some_and(|c| c.len() == 1) {
                    "INDEXED BY search_items_collection_dt"
                } else {
                    "INDEXED BY search_items_dt_cover"
                };
            }
            // The page's ids from the index alone (skipping `offset` rows is cheap there),
            // then their documents.
            // One more than the page, to know whether another follows.
            let sql = format!(
                "SELECT s.id FROM search_items s {hint}
                 WHERE {where_sql} ORDER BY {order} LIMIT {} OFFSET {offset}",
                u64::from(p.limit) + 1
            );
            trace_plan(&conn, "page", &sql, &args);
            let mut stmt = conn.prepare(&sql)?;
            let mut ids = stmt
                .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let more = ids.len() > p.limit as usize;
            ids.truncate(p.limit as usize);
            let mut one = conn.prepare_cached("SELECT stac_json FROM products WHERE id = ?1")?;
            let mut features = Vec::with_capacity(ids.len());
            for id in ids {
                features.extend(json_rows(&mut one, params![id])?);
            }
            return Ok(SearchPage {
                features,
                matched: matched.map(|m| u64::try_from(m).unwrap_or(0)),
                more,
            });
        };
        // Exact geometry test on the R*Tree candidates, in order.
        let sql = format!(
            "SELECT s.id, g.geometry FROM search_items s JOIN search_geometry g ON g.key = s.key
             WHERE {where_sql} ORDER BY {order}"
        );
        trace_plan(&conn, "intersects", &sql, &args);
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(params_from_iter(args.iter()))?;
        let mut page_ids = Vec::new();
        let mut matched: u64 = 0;
        while let Some(row) = rows.next()? {
            let Some(g) = row.get::<_, Option<String>>(1)? else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_str(&g)?;
            let Ok(item_geometry) = Geometry::from_geojson(&value, "geometry") else {
                continue;
            };
            if item_geometry.intersects(geometry) {
                if matched >= p.offset && page_ids.len() < p.limit as usize {
                    page_ids.push(row.get::<_, String>(0)?);
                }
                matched += 1;
            }
        }
        drop(rows);
        let mut one = conn.prepare_cached("SELECT stac_json FROM products WHERE id = ?1")?;
        let mut features = Vec::with_capacity(page_ids.len());
        for id in page_ids {
            features.extend(json_rows(&mut one, params![id])?);
        }
        Ok(SearchPage {
            features,
            matched: Some(matched),
            more: p.offset.saturating_add(u64::from(p.limit)) < matched,
        })
    }
}

/// Logs SQLite's plan for a search statement (`RUST_LOG=albedo_backend::store=trace`), so
/// that which indexes a query of the benchmark's mix walks can be read off a running server.
/// Costs nothing unless that level is enabled.
fn trace_plan(conn: &Connection, what: &str, sql: &str, args: &[SqlValue]) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    let plan = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(3))?
                .collect::<Result<Vec<_>, _>>()
        });
    match plan {
        Ok(steps) => tracing::trace!(what, plan = %steps.join(" | "), sql, "search plan"),
        Err(e) => tracing::trace!(what, error = %e, "search plan unavailable"),
    }
}

/// The WHERE clause (over `search_items s`) and its arguments for a search.
/// `use_rtree`: whether a `bbox` filter takes its candidates from the R*Tree (a narrow box)
/// or only tests every row exactly (a broad one, where most rows match).
/// `max_span` and `max_skew` are the `search_meta` bounds that let a time query bound `dt`
/// (the sort key) too.
fn search_where(
    p: &SearchParams,
    (max_span, max_skew): (i64, i64),
    use_rtree: bool,
) -> (String, Vec<SqlValue>) {
    let mut conds: Vec<String> = vec!["1".into()];
    let mut args: Vec<SqlValue> = Vec::new();
    let list = |args: &mut Vec<SqlValue>, values: Vec<SqlValue>| -> String {
        let marks = vec!["?"; values.len()].join(", ");
        args.extend(values);
        marks
    };
    let boxes: Vec<[f64; 4]> = match (&p.bbox, &p.intersects) {
        (Some(b), _) => b.parts(),
        (None, Some(g)) => vec![g.bounds()],
        (None, None) => Vec::new(),
    };
    if !boxes.is_empty() {
        // R*Tree rows hold 32-bit floats rounded outwards: a superset, checked exactly below.
        let mut subs = Vec::new();
        let mut exact = Vec::new();
        for [w, s, e, n] in &boxes {
            exact.push((*w, *s, *e, *n));
            if !use_rtree && p.intersects.is_none() {
                continue;
            }
            subs.push(
                "SELECT id >> 1 FROM search_bbox WHERE west <= ? AND east >= ? AND south <= ? \
                 AND north >= ?",
            );
            args.extend([
                SqlValue::Real(*e),
                SqlValue::Real(*w),
                SqlValue::Real(*n),
                SqlValue::Real(*s),
            ]);
        }
        if !subs.is_empty() {
            conds.push(format!("s.key IN ({})", subs.join(" UNION ")));
        }
        if p.bbox.is_some() {
            let mut ors = Vec::new();
            for (w, s, e, n) in exact {
                ors.push(
                    "(s.south <= ? AND s.north >= ? AND ((s.west <= s.east AND s.west <= ? \
                     AND s.east >= ?) OR (s.west > s.east AND (s.west <= ? OR s.east >= ?))))",
                );
                args.extend([n, s, e, w, e, w].map(SqlValue::Real));
            }
            conds.push(format!("({})", ors.join(" OR ")));
        }
    }
    if let Some((start, end)) = p.datetime {
        if let Some(start) = start {
            // No item lasts longer than `max_span`: this bounds the `dt_start` index range
            // from below as well, so an interval query reads only its part of the index.
            conds.push("s.dt_end >= ? AND s.dt_start >= ?".into());
            args.push(SqlValue::Integer(start));
            args.push(SqlValue::Integer(start.saturating_sub(max_span)));
            // `dt` lies within `max_skew` of [dt_start, dt_end]: a range of the `dt` index
            // holds every match, so a walk of it in time order stops at the interval's end.
            conds.push("s.dt >= ?".into());
            args.push(SqlValue::Integer(
                start.saturating_sub(max_span).saturating_sub(max_skew),
            ));
        }
        if let Some(end) = end {
            conds.push("s.dt_start <= ? AND s.dt <= ?".into());
            args.push(SqlValue::Integer(end));
            args.push(SqlValue::Integer(
                end.saturating_add(max_span).saturating_add(max_skew),
            ));
        }
    }
    if let Some(c) = p.collections.as_ref().filter(|c| c.len() == 1) {
        // `=` rather than `IN`, so that the (collection, dt, id) index also gives the order.
        conds.push("s.collection = ?".into());
        args.push(SqlValue::Text(c[0].clone()));
    } else if let Some(c) = p.collections.as_ref().filter(|c| !c.is_empty()) {
        let marks = list(&mut args, c.iter().cloned().map(SqlValue::Text).collect());
        conds.push(format!("s.collection IN ({marks})"));
    }
    if let Some(ids) = p.ids.as_ref().filter(|c| !c.is_empty()) {
        let marks = list(&mut args, ids.iter().cloned().map(SqlValue::Text).collect());
        conds.push(format!("s.id IN ({marks})"));
    }
    let sv = |x: &Scalar| match x {
        Scalar::Number(n) => SqlValue::Real(*n),
        Scalar::Text(t) => SqlValue::Text(t.clone()),
    };
    let contains = |x: &Scalar| match x {
        Scalar::Text(t) => SqlValue::Text(format!("|{t}|")),
        Scalar::Number(n) => SqlValue::Text(format!("|{n}|")),
    };
    for c in &p.query {
        let col = format!("s.{}", c.column);
        match (c.kind, c.op, &c.operand) {
            (Kind::TextArray, Op::Eq, Operand::One(x)) => {
                conds.push(format!("instr({col}, ?) > 0"));
                args.push(contains(x));
            }
            (Kind::TextArray, Op::Neq, Operand::One(x)) => {
                conds.push(format!("({col} IS NOT NULL AND instr({col}, ?) = 0)"));
                args.push(contains(x));
            }
            (Kind::TextArray, Op::In, Operand::Many(xs)) => {
                let ors = vec![format!("instr({col}, ?) > 0"); xs.len()].join(" OR ");
                conds.push(format!("({ors})"));
                args.extend(xs.iter().map(contains));
            }
            (Kind::TextArray, Op::Eq | Op::Neq, Operand::Many(xs)) => {
                let texts: Vec<&str> = xs
                    .iter()
                    .filter_map(|x| match x {
                        Scalar::Text(t) => Some(t.as_str()),
                        Scalar::Number(_) => None,
                    })
                    .collect();
                let op = if c.op == Op::Eq { "=" } else { "<>" };
                conds.push(format!("{col} {op} ?"));
                args.push(SqlValue::Text(encode_text_array(&texts)));
            }
            (_, Op::In, Operand::Many(xs)) => {
                let marks = list(&mut args, xs.iter().map(sv).collect());
                conds.push(format!("{col} IN ({marks})"));
            }
            (_, op, Operand::One(x)) => {
                let op = match op {
                    Op::Eq | Op::In => "=",
                    Op::Neq => "<>",
                    Op::Lt => "<",
                    Op::Lte => "<=",
                    Op::Gt => ">",
                    Op::Gte => ">=",
                };
                conds.push(format!("{col} {op} ?"));
                args.push(sv(x));
            }
            (_, _, Operand::Many(_)) => conds.push("0".into()),
        }
    }
    (conds.join(" AND "), args)
}

/// Items in the search index: all of them, or those of `collections` (from the
/// `search_counts` table, which [`index_item`] keeps up to date).
fn count_all(conn: &Connection, collections: Option<&[String]>) -> Result<i64, BackendError> {
    let n = match collections {
        None => conn.query_row("SELECT COALESCE(SUM(n), 0) FROM search_counts", [], |r| {
            r.get(0)
        })?,
        Some(cs) => {
            let mut stmt =
                conn.prepare_cached("SELECT n FROM search_counts WHERE collection = ?1")?;
            let mut sum = 0;
            let unique: std::collections::BTreeSet<&String> = cs.iter().collect();
            for c in unique {
                sum += stmt
                    .query_row(params![c], |r| r.get::<_, i64>(0))
                    .optional()?
                    .unwrap_or(0);
            }
            sum
        }
    };
    Ok(n)
}

/// Whether a bbox query should take its candidates from the R*Tree: not when the bbox
/// matches so many items (an eighth of them, at least 1000) that testing every row is
/// cheaper, nor when its time range or cloud-cover range selects fewer rows through their
/// B-tree indexes (the bbox is then tested exactly on those). Every count stops at the
/// smallest one found so far, so deciding costs no more than the cheapest plan.
fn rtree_is_best(
    conn: &Connection,
    p: &SearchParams,
    b: &Bbox,
    total: i64,
    max_span: i64,
) -> Result<bool, BackendError> {
    let cap = (total / 8).max(1000);
    let mut found = 0;
    for [w, s, e, n] in b.parts() {
        found += conn
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM search_bbox WHERE west <= ?1 AND east >= ?2
                 AND south <= ?3 AND north >= ?4 LIMIT ?5)",
            )?
            .query_row(params![e, w, n, s, cap], |r| r.get::<_, i64>(0))?;
    }
    if found >= cap {
        return Ok(false);
    }
    let capped = |sql: &str, args: Vec<SqlValue>| -> Result<i64, BackendError> {
        let mut args = args;
        args.push(SqlValue::Integer(found));
        Ok(conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {sql} LIMIT ?)"
            ))?
            .query_row(params_from_iter(args.iter()), |r| r.get(0))?)
    };
    if let Some((start, end)) = p.datetime {
        let lo = start.map_or(i64::MIN, |s| s.saturating_sub(max_span));
        let hi = end.unwrap_or(i64::MAX);
        let n = capped(
            "search_items WHERE dt_start >= ? AND dt_start <= ?",
            vec![SqlValue::Integer(lo), SqlValue::Integer(hi)],
        )?;
        if n < found {
            return Ok(false);
        }
    }
    for c in &p.query {
        let (Kind::Number, Operand::One(Scalar::Number(x))) = (c.kind, &c.operand) else {
            continue;
        };
        let op = match c.op {
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Eq => "=",
            _ => continue,
        };
        if c.column != "cloud_cover" {
            continue;
        }
        let n = capped(
            &format!("search_items WHERE cloud_cover {op} ?"),
            vec![SqlValue::Real(*x)],
        )?;
        if n < found {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes (or rewrites) the search index rows of one item: its `search_items` row and one
/// R*Tree row per side of the antimeridian.
fn index_item(
    conn: &Connection,
    id: &str,
    collection: &str,
    bbox: Option<[f64; 4]>,
    item: &serde_json::Value,
) -> Result<(), BackendError> {
    use serde_json::Value;
    let old: Option<(i64, String)> = conn
        .prepare_cached("SELECT key, collection FROM search_items WHERE id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((key, old_collection)) = old {
        conn.prepare_cached("UPDATE search_counts SET n = n - 1 WHERE collection = ?1")?
            .execute(params![old_collection])?;
        conn.prepare_cached("DELETE FROM search_bbox WHERE id BETWEEN ?1 AND ?2")?
            .execute(params![key * 2, key * 2 + 1])?;
        conn.prepare_cached("DELETE FROM search_items WHERE key = ?1")?
            .execute(params![key])?;
        conn.prepare_cached("DELETE FROM search_geometry WHERE key = ?1")?
            .execute(params![key])?;
    }
    let empty = serde_json::Map::new();
    let props = item
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let instant = |k: &str| props.get(k).and_then(Value::as_str).and_then(parse_instant);
    let dt = instant("datetime").or_else(|| instant("start_datetime"));
    let (dt_start, dt_end) = match (instant("start_datetime"), instant("end_datetime")) {
        (Some(a), Some(b)) => (Some(a), Some(b)),
        _ => (dt, dt),
    };
    let geometry = item.get("geometry").filter(|g| !g.is_null());
    let bbox = bbox.or_else(|| {
        geometry
            .and_then(|g| Geometry::from_geojson(g, "geometry").ok())
            .map(|g| g.bounds())
    });
    let text = |k: &str| props.get(k).and_then(Value::as_str);
    let num = |k: &str| props.get(k).and_then(Value::as_f64);
    let polarizations = props
        .get("sar:polarizations")
        .and_then(Value::as_array)
        .map(|a| {
            let v: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            encode_text_array(&v)
        });
    conn.prepare_cached(
        "INSERT INTO search_items (id, collection, dt, dt_start, dt_end, west, south, east,
            north, cloud_cover, orbit_state, relative_orbit, platform, mgrs_tile,
            instrument_mode, polarizations)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        id,
        collection,
        dt,
        dt_start,
        dt_end,
        bbox.map(|b| b[0]),
        bbox.map(|b| b[1]),
        bbox.map(|b| b[2]),
        bbox.map(|b| b[3]),
        num("eo:cloud_cover"),
        text("sat:orbit_state"),
        num("sat:relative_orbit"),
        text("platform"),
        text("s2:mgrs_tile"),
        text("sar:instrument_mode"),
        polarizations,
    ])?;
    let key = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO search_counts (collection, n) VALUES (?1, 1)
         ON CONFLICT(collection) DO UPDATE SET n = n + 1",
    )?
    .execute(params![collection])?;
    if let Some(g) = geometry {
        conn.prepare_cached("INSERT INTO search_geometry (key, geometry) VALUES (?1, ?2)")?
            .execute(params![key, g.to_string()])?;
    }
    if let (Some(a), Some(b)) = (dt_start, dt_end) {
        conn.prepare_cached(
            "INSERT INTO search_meta (key, value) VALUES ('max_span', ?1)
             ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
        )?
        .execute(params![b.saturating_sub(a).max(0)])?;
        if let Some(d) = dt {
            let skew = d.saturating_sub(b).max(a.saturating_sub(d)).max(0);
            conn.prepare_cached(
                "INSERT INTO search_meta (key, value) VALUES ('max_skew', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            )?
            .execute(params![skew])?;
        }
    }
    if let Some([w, s, e, n]) = bbox {
        let parts = Bbox {
            west: w,
            south: s,
            east: e,
            north: n,
        }
        .parts();
        let mut stmt = conn.prepare_cached(
            "INSERT INTO search_bbox (id, west, east, south, north) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (i, [w, s, e, n]) in parts.into_iter().enumerate() {
            stmt.execute(params![key * 2 + i as i64, w, e, s.min(n), n.max(s)])?;
        }
    }
    Ok(())
}

/// Indexes the products that have no search rows yet (stores made before search existed).
fn backfill_search_index(conn: &mut Connection) -> Result<(), BackendError> {
    conn.execute(
        "INSERT OR IGNORE INTO search_meta (key, value)
         SELECT 'max_span', COALESCE(MAX(dt_end - dt_start), 0) FROM search_items",
        [],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO search_meta (key, value)
         SELECT 'max_skew', COALESCE(MAX(MAX(dt - dt_end, dt_start - dt, 0)), 0)
         FROM search_items",
        [],
    )?;
    let missing: i64 = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM products) - (SELECT COUNT(*) FROM search_items)",
        [],
        |r| r.get(0),
    )?;
    if missing == 0 {
        return recount(conn);
    }
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "SELECT id, collection, west, south, east, north, stac_json FROM products
             WHERE id NOT IN (SELECT id FROM search_items)",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let collection: String = r.get(1)?;
            let bbox = match (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?) {
                (Some(w), Some(s), Some(e), Some(n)) => Some([w, s, e, n]),
                _ => None,
            };
            let item: serde_json::Value = serde_json::from_str(&json_doc(r, 6)?)?;
            index_item(&tx, &id, &collection, bbox, &item)?;
        }
    }
    tx.commit()?;
    recount(conn)
}

/// Rebuilds `search_counts` where it disagrees with `search_items` (stores made before it).
fn recount(conn: &Connection) -> Result<(), BackendError> {
    let (counted, indexed): (i64, i64) = conn.query_row(
        "SELECT (SELECT COALESCE(SUM(n), 0) FROM search_counts),
                (SELECT COUNT(*) FROM search_items)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if counted != indexed {
        conn.execute_batch(
            "BEGIN;
             DELETE FROM search_counts;
             INSERT INTO search_counts (collection, n)
                 SELECT collection, COUNT(*) FROM search_items GROUP BY collection;
             COMMIT;",
        )?;
    }
    Ok(())
}

/// Page cache of a [`Writer`]'s connection, in KiB (SQLite's `cache_size` when negative).
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// A write session on the store for ingests of any size (see [`Store::writer`]).
///
/// Its transaction starts with the first write (`BEGIN IMMEDIATE`: it waits, up to the busy
/// timeout, for other writers to finish, then holds the write lock until it commits).
/// Without `commit_every`, everything written goes into that one transaction, committed by
/// [`Writer::finish`]: a writer dropped before then (an error, a panic) rolls it all back,
/// whatever its size; SQLite keeps the uncommitted pages in the WAL file, so memory stays
/// bounded, and the WAL grows by about the size of the data written until the commit
/// checkpoints it. With `commit_every = n`, every `n` products are committed on their own:
/// a failure keeps the chunks already committed, the WAL stays small, and other writers get
/// the lock between chunks; meant for bulk loads of known-good data (the benchmark's), whose
/// rerun after a failure is harmless because ingest is idempotent.
#[derive(Debug)]
pub struct Writer {
    conn: Connection,
    open: bool,
    commit_every: Option<NonZeroUsize>,
    in_transaction: usize,
    written: u64,
    committed: u64,
    commits: u64,
}

impl Writer {
    fn begin(&mut self) -> Result<(), BackendError> {
        if !self.open {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.open = true;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), BackendError> {
        if self.open {
            self.conn.execute_batch("COMMIT")?;
            self.open = false;
            self.commits += 1;
            self.committed = self.written;
            self.in_transaction = 0;
        }
        Ok(())
    }

    /// Inserts or replaces one product (and its search rows).
    pub fn put_product(&mut self, p: &StoredProduct) -> Result<(), BackendError> {
        self.begin()?;
        write_product(&self.conn, p)?;
        self.written += 1;
        self.in_transaction += 1;
        if self
            .commit_every
            .is_some_and(|n| self.in_transaction >= n.get())
        {
            self.commit()?;
            tracing::debug!(written = self.written, "ingest chunk committed");
        }
        Ok(())
    }

    /// Inserts or replaces one STAC Collection document.
    pub fn put_collection(
        &mut self,
        id: &str,
        doc: &serde_json::Value,
    ) -> Result<(), BackendError> {
        self.begin()?;
        write_collection(&self.conn, id, doc)
    }

    /// Products written so far (committed or not).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Products committed so far (before [`Writer::finish`], only with `commit_every`).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Commits what is left; returns the number of products written.
    pub fn finish(mut self) -> Result<u64, BackendError> {
        self.commit()?;
        Ok(self.written)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "rolling back an ingest failed");
            } else if self.commits > 0 {
                tracing::warn!(
                    committed = self.committed,
                    "ingest failed: its last chunk was rolled back, earlier chunks stay"
                );
            }
        }
    }
}

/// Inserts or replaces one STAC Collection document.
pub(crate) fn write_collection(
    conn: &Connection,
    id: &str,
    doc: &serde_json::Value,
) -> Result<(), BackendError> {
    conn.prepare_cached(
        "INSERT INTO collections (id, stac_json) VALUES (?1, ?2)
         ON CONFLICT(id) DO UPDATE SET stac_json = excluded.stac_json",
    )?
    .execute(params![id, serde_json::to_string(doc)?])?;
    Ok(())
}

/// Inserts or replaces one product and its search rows, inside the caller's transaction.
pub(crate) fn write_product(conn: &Connection, p: &StoredProduct) -> Result<(), BackendError> {
    let bbox = p.product.bbox;
    let local_bands = p
        .local
        .as_ref()
        .map(|l| {
            let stored: Vec<StoredBand> = l
                .bands
                .iter()
                .map(|b| StoredBand {
                    band: b.band.clone(),
                    path: b.path.clone(),
                    index: b.index,
                })
                .collect();
            serde_json::to_string(&stored)
        })
        .transpose()?;
    conn.prepare_cached(
        "INSERT INTO products (id, collection, datetime, west, south, east, north,
            is_local, product_json, stac_json, local_bands_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(id) DO UPDATE SET collection = excluded.collection,
            datetime = excluded.datetime, west = excluded.west, south = excluded.south,
            east = excluded.east, north = excluded.north, is_local = excluded.is_local,
            product_json = excluded.product_json, stac_json = excluded.stac_json,
            local_bands_json = excluded.local_bands_json",
    )?
    .execute(params![
        p.product.id.0,
        p.product.collection,
        p.product.datetime,
        bbox.map(|b| b[0]),
        bbox.map(|b| b[1]),
        bbox.map(|b| b[2]),
        bbox.map(|b| b[3]),
        p.local.is_some(),
        pack_json(&p.product)?,
        pack_json(&p.stac_item)?,
        local_bands,
    ])?;
    index_item(
        conn,
        &p.product.id.0,
        &p.product.collection,
        bbox,
        &p.stac_item,
    )
}

/// Summary of one collection, derived from its items.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionSummary {
    /// Collection id.
    pub id: String,
    /// Number of items.
    pub items: u64,
    /// Union of the items' bboxes.
    pub bbox: Option<[f64; 4]>,
    /// Earliest item datetime.
    pub start: Option<String>,
    /// Latest item datetime.
    pub end: Option<String>,
}

/// The JSON of `value` as stored: raw deflate (level 1: a third of the time of level 6 for
/// 10 % more bytes), as a BLOB.
fn pack_json<T: Serialize>(value: &T) -> Result<Vec<u8>, BackendError> {
    use std::io::Write;
    let json = serde_json::to_vec(value)?;
    // One write of the whole text: the encoder costs much more fed in serde's small pieces.
    let mut z = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::new(1),
    );
    z.write_all(&json)
        .and_then(|()| z.finish())
        .map_err(|source| BackendError::Io {
            context: "compressing a document".into(),
            source,
        })
}

/// The JSON text of column `i`: a [`pack_json`] BLOB, or TEXT as older stores hold it.
fn json_doc(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    use rusqlite::types::{FromSqlError, ValueRef};
    match r.get_ref(i)? {
        ValueRef::Text(t) => String::from_utf8(t.to_vec()).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        }),
        ValueRef::Blob(b) => {
            use std::io::Read;
            let mut text = String::with_capacity(b.len() * 6);
            flate2::read::DeflateDecoder::new(b)
                .read_to_string(&mut text)
                .map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Blob,
                        format!("a stored document does not inflate: {e}").into(),
                    )
                })?;
            Ok(text)
        }
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            i,
            other.data_type(),
            Box::new(FromSqlError::InvalidType),
        )),
    }
}

/// Runs a query whose first column is a JSON document and parses every row.
fn json_rows<T: serde::de::DeserializeOwned>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, BackendError> {
    let rows = stmt.query_map(params, |r| json_doc(r, 0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}

/// Stores made before token scopes kept worker tokens in `worker_tokens`: move them over.
fn migrate_worker_tokens(conn: &Connection) -> Result<(), BackendError> {
    let old: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'worker_tokens'",
        [],
        |r| r.get(0),
    )?;
    if old {
        conn.execute_batch(
            "BEGIN;
             INSERT OR IGNORE INTO tokens (scope, name, token_sha256, created_at)
                 SELECT 'worker', name, token_sha256, created_at FROM worker_tokens;
             DROP TABLE worker_tokens;
             COMMIT;",
        )?;
    }
    Ok(())
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}
