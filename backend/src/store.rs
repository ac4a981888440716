//! The embedded store: one SQLite file in WAL mode inside the data folder.
//!
//! What it is: the products of the catalog (each as its STAC item, the derived
//! [`Product`], and where its local band files are) and the hashed worker tokens.
//! Several processes may open the same file (`albedo serve` and `albedo ingest` at once):
//! WAL mode plus a busy timeout serialise their writes.
//!
//! What it is not: not async. Callers in async code run it inside
//! `tokio::task::spawn_blocking` (see [`Store::call`]).
//!
//! Contract: writes are transactional (an ingest of many products commits all or none);
//! putting a product whose id exists replaces it (ingest is idempotent).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use albedo_raster::product::{LocalBand, LocalProduct};
use albedo_shared::catalog::{Band, Product, ProductId};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::BackendError;

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
CREATE TABLE IF NOT EXISTS worker_tokens (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
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
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
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
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO products (id, collection, datetime, west, south, east, north,
                    is_local, product_json, stac_json, local_bands_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(id) DO UPDATE SET collection = excluded.collection,
                    datetime = excluded.datetime, west = excluded.west, south = excluded.south,
                    east = excluded.east, north = excluded.north, is_local = excluded.is_local,
                    product_json = excluded.product_json, stac_json = excluded.stac_json,
                    local_bands_json = excluded.local_bands_json",
            )?;
            for p in products {
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
                stmt.execute(params![
                    p.product.id.0,
                    p.product.collection,
                    p.product.datetime,
                    bbox.map(|b| b[0]),
                    bbox.map(|b| b[1]),
                    bbox.map(|b| b[2]),
                    bbox.map(|b| b[3]),
                    p.local.is_some(),
                    serde_json::to_string(&p.product)?,
                    serde_json::to_string(&p.stac_item)?,
                    local_bands,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
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
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
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

    /// Creates (or replaces) the worker token called `name` and returns the secret, which
    /// only this call ever sees: the store keeps its SHA-256.
    pub fn create_worker_token(&self, name: &str) -> Result<String, BackendError> {
        use rand::TryRngCore;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut secret)
            .map_err(|e| BackendError::Io {
                context: "reading the OS random source".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let token = format!("albw_{}", hex::encode(secret));
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        self.lock().execute(
            "INSERT INTO worker_tokens (name, token_sha256, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET token_sha256 = excluded.token_sha256,
                created_at = excluded.created_at",
            params![name, sha256_hex(&token), now],
        )?;
        Ok(token)
    }

    /// The name of the worker token `token`, if it is a valid one.
    pub fn check_worker_token(&self, token: &str) -> Result<Option<String>, BackendError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT name FROM worker_tokens WHERE token_sha256 = ?1",
                params![sha256_hex(token)],
                |r| r.get(0),
            )
            .optional()?)
    }
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

/// Runs a query whose first column is a JSON document and parses every row.
fn json_rows<T: serde::de::DeserializeOwned>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, BackendError> {
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}
