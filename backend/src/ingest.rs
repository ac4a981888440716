//! Ingest: turning files and request bodies into catalog products, transactionally.
//!
//! What it is: the one path every product takes into the store, from the CLI
//! (`albedo ingest`, [`ingest_paths`]) and from HTTP (`POST /api/ingest`, [`routes`]).
//!
//! Inputs:
//! - STAC documents: one Item, a FeatureCollection of Items, newline-delimited Items (any
//!   sequence of JSON values, one Item each), or a Collection (stored as the collection's
//!   metadata; its extent is still derived from its items). Files end in `.json`,
//!   `.geojson` or `.ndjson`; a request body is the document itself.
//! - Local rasters: a GeoTIFF, a product folder (GeoTIFFs, or a KML overlay and its quick-look
//!   PNG; read by `albedo_raster::product::scan`) or a folder of those (walked recursively,
//!   at most [`MAX_DEPTH`] folders deep, each folder once however many links lead to it). Over HTTP only as `{"paths": ["/abs/path", ...]}`,
//!   and only under the server's allowed ingest roots (`albedo serve --ingest-root DIR`):
//!   every path must be absolute, free of `..`, and it and everything under it must resolve
//!   (symlinks followed) inside a root; otherwise the request answers 403 naming the path
//!   and nothing is read.
//!
//! Validation, the same for files and bodies; every error is a 400 whose `field` names the
//! place:
//! - malformed JSON: the byte offset into the file or body (and its line and column);
//! - an Item needs `type: "Feature"`, `stac_version`, a non-empty string `id`, `geometry`
//!   (`null`, or a valid GeoJSON geometry, when `bbox` is also required), `bbox` (4 or 6
//!   numbers, lon/lat in range, south <= north), `properties.datetime` (RFC 3339, or `null`
//!   with both `start_datetime` and `end_datetime`), `links` (objects with `href` and `rel`)
//!   and `assets` (objects with `href`); a geometry's positions must be 2 or 3 finite numbers
//!   with longitude in [-180, 180] and latitude in [-90, 90], line strings need 2 positions,
//!   polygon rings 4 and must be closed, and each type's coordinates must nest as GeoJSON
//!   says. Fields are named as JSON paths, e.g. `features[3].geometry.coordinates[0][4]`
//!   (ndjson: `line 7: properties.datetime`);
//! - a Collection needs `type`, `stac_version`, `id`, `description`, `license`, `extent`
//!   (`spatial.bbox`, `temporal.interval`) and `links`;
//! - a GeoTIFF must open (its header, IFDs and every chunk's byte range inside the file) and
//!   every tile or strip of its full-resolution image must decode (of a multi-band file: the
//!   first and the last band); an error names the file and the chunk's byte offset.
//!
//! Streaming and transactions: an input is read value by value ([`ValueStream`]: a file or
//! body of newline-delimited Items is never held whole; a single document, such as a
//! FeatureCollection, is), and parsed products wait in a buffer of at most
//! [`BUFFER_ITEMS`] products or [`BUFFER_BYTES`] of newline-delimited JSON. An ingest that fits
//! in it (every sample here: up to 10 000 items, and 16 MiB of ndjson) is checked whole
//! before anything is written, and the store's write lock is held only for the write. A larger
//! one is written in batches of that size as it is read, all inside one transaction of a
//! [`crate::store::Writer`] on its own connection (searches meanwhile see the catalog as it
//! was): memory stays bounded whatever the input's size, and any error rolls everything back,
//! so nothing is ever half-ingested. Ingesting an id again replaces it.
//!
//! The one exception is asked for by name: [`IngestOptions::commit_every`] (`albedo ingest
//! --commit-every N`, never over HTTP) commits every N products on their own. That is for
//! bulk loads such as `cargo xtask bench catalog`'s million items: one transaction of that
//! size makes the WAL file grow by the size of the whole load (about 18 GB there) before its
//! commit, and holds the write lock for minutes, so that a running server's other writes time
//! out; chunks keep the WAL small and let other writers in between. The price is
//! atomicity: a failure keeps the chunks committed before it (the error says how many
//! products that was), and since ingest is idempotent, running the same input again after a
//! fix completes it.
//!
//! What it is not: no fetching of remote assets, no JSON Schema validation of STAC
//! extensions (only the fields the catalog relies on are checked).

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::path::{Component, Path, PathBuf};

use albedo_raster::product::{is_kml, is_tiff};
use albedo_shared::api::ErrorBody;
use albedo_shared::catalog::{Georeferencing, PixelAccess, Product, ProductId};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::UserIdentity;
use crate::error::BackendError;
use crate::search::parse_instant;
use crate::store::{Store, StoredProduct, Writer};

/// Largest request body `POST /api/ingest` accepts (larger ones answer 413).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most paths one `{"paths": [...]}` request may name.
pub const MAX_PATHS: usize = 1000;
/// Deepest folder nesting a walk follows (a guard against symlink loops).
pub const MAX_DEPTH: usize = 32;

/// Most product ids an [`IngestReport`] lists (it counts them all).
pub const MAX_REPORTED_IDS: usize = 100_000;
/// Most products parsed and not yet written (see the module docs).
pub const BUFFER_ITEMS: usize = 10_000;
/// Most bytes of JSON text parsed and not yet written (see the module docs).
pub const BUFFER_BYTES: usize = 16 << 20;
/// Bytes read from a file or body at a time.
const READ_CHUNK: usize = 1 << 20;

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Products written (new or updated).
    pub ingested: u64,
    /// Their ids in input order: the first [`MAX_REPORTED_IDS`] of them.
    pub products: Vec<ProductId>,
    /// Of which have local pixels.
    pub local: usize,
    /// Collections whose metadata was written (new or updated).
    pub collections: Vec<String>,
    /// Files looked at and skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Options of an ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Collection for STAC items that name none.
    pub default_collection: Option<String>,
    /// Commit every this many products on their own instead of all in one transaction (bulk
    /// loads only: see the module docs for what it gives up).
    pub commit_every: Option<NonZeroUsize>,
}

/// Where parsed products go: a bounded buffer in front of the store's [`Writer`] (see the
/// module docs).
struct Sink {
    writer: Writer,
    pending: Vec<StoredProduct>,
    pending_bytes: usize,
    collections: Vec<(String, Value)>,
    report: IngestReport,
}

impl Sink {
    fn new(store: &Store, options: &IngestOptions) -> Result<Sink, BackendError> {
        Ok(Sink {
            writer: store.writer(options.commit_every)?,
            pending: Vec::new(),
            pending_bytes: 0,
            collections: Vec::new(),
            report: IngestReport::default(),
        })
    }

    /// Takes one product; `bytes` is the size of its JSON text where known (else 0).
    fn push(&mut self, product: StoredProduct, bytes: usize) -> Result<(), BackendError> {
        self.pending.push(product);
        self.pending_bytes += bytes;
        if self.pending.len() >= BUFFER_ITEMS || self.pending_bytes >= BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn push_collection(&mut self, id: String, doc: Value) {
        self.collections.push((id, doc));
    }

    fn skip(&mut self, path: &Path, reason: impl Into<String>) {
        self.report
            .skipped
            .push((path.to_path_buf(), reason.into()));
    }

    /// Writes the buffer into the open transaction.
    fn flush(&mut self) -> Result<(), BackendError> {
        for (id, doc) in std::mem::take(&mut self.collections) {
            self.writer.put_collection(&id, &doc)?;
            if !self.report.collections.contains(&id) {
                self.report.collections.push(id);
            }
        }
        for p in std::mem::take(&mut self.pending) {
            self.writer.put_product(&p)?;
            if p.local.is_some() {
                self.report.local += 1;
            }
            if self.report.products.len() < MAX_REPORTED_IDS {
                self.report.products.push(p.product.id);
            }
        }
        self.pending_bytes = 0;
        Ok(())
    }

    /// With chunked commits, an error says how many products stay written.
    fn failed(&self, e: BackendError) -> BackendError {
        match (self.writer.committed(), e) {
            (0, e) => e,
            (n, BackendError::BadRequest { field, reason }) => BackendError::BadRequest {
                field,
                reason: format!(
                    "{reason} ({n} products before it were committed: run the same ingest \
                     again after fixing it)"
                ),
            },
            (_, e) => e,
        }
    }

    /// Writes what is left, commits, and says what was done.
    fn finish(mut self) -> Result<IngestReport, BackendError> {
        self.flush()?;
        let mut report = std::mem::take(&mut self.report);
        report.ingested = self.writer.finish()?;
        Ok(report)
    }
}

/// Reads every path (`-`: standard input, a STAC stream) and writes what they hold: in one
/// transaction unless [`IngestOptions::commit_every`] says otherwise.
pub fn ingest_paths(
    store: &Store,
    paths: &[PathBuf],
    options: &IngestOptions,
) -> Result<IngestReport, BackendError> {
    let mut sink = Sink::new(store, options)?;
    let mut walk = Walk::default();
    for path in paths {
        let result = if path.as_os_str() == "-" {
            let stdin = std::io::stdin().lock();
            parse_stac(stdin, Some(Path::new("stdin")), options, &mut sink).map(|found| {
                if !found {
                    sink.skip(path, "not a STAC Item, FeatureCollection or Collection");
                }
            })
        } else {
            collect(path, options, &mut sink, &mut walk, 0)
        };
        result.map_err(|e| sink.failed(e))?;
    }
    sink.finish()
}

/// Parses a STAC document (one Item, a FeatureCollection, a Collection, or a sequence of
/// Items such as ndjson), checks it, and writes it in one transaction. Errors name JSON paths
/// and byte offsets into `body`.
pub fn ingest_body(
    store: &Store,
    body: &[u8],
    options: &IngestOptions,
) -> Result<IngestReport, BackendError> {
    let mut sink = Sink::new(store, options)?;
    let found = parse_stac(body, None, options, &mut sink)?;
    if !found {
        return Err(BackendError::bad_request(
            "type",
            "the body is not a STAC Item, FeatureCollection, Collection or sequence of Items \
             (for local files send {\"paths\": [...]})",
        ));
    }
    sink.finish()
}

fn io_err(path: &Path, source: std::io::Error) -> BackendError {
    BackendError::Io {
        context: format!("reading {}", path.display()),
        source,
    }
}

/// A raster that cannot be ingested is the input's fault: a 400 naming the file (the
/// raster error names the file and, for corrupt data, the byte offset).
fn raster_bad(e: albedo_raster::RasterError) -> BackendError {
    BackendError::bad_request("file", e.to_string())
}

/// Product metadata beside band files (read by `albedo_raster::product::scan`), not STAC.
const SIDECARS: &[&str] = &["metadata.json", "productInfo.json"];

fn is_stac_candidate(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    !SIDECARS.contains(&name)
        && matches!(
            path.extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("json" | "geojson" | "ndjson")
        )
}

fn scan_local(path: &Path, sink: &mut Sink) -> Result<usize, BackendError> {
    let scanned = albedo_raster::product::scan(path).map_err(raster_bad)?;
    let n = scanned.len();
    for local in scanned {
        verify_pixels(&local)?;
        let product = StoredProduct {
            product: local.product.clone(),
            stac_item: local.stac_item.clone(),
            local: Some(local),
        };
        sink.push(product, 0)?;
    }
    Ok(n)
}

/// Decodes every tile or strip of the full-resolution image of each GeoTIFF a product reads
/// (of a multi-band file, its first and last band: chunky files hold all bands in each chunk,
/// planar ones one plane per band), so that corrupt compressed data is found at ingest, with
/// its byte offset, rather than when someone looks at the pixels.
fn verify_pixels(local: &albedo_raster::product::LocalProduct) -> Result<(), BackendError> {
    let files: BTreeSet<&Path> = local
        .bands
        .iter()
        .map(|b| b.path.as_path())
        .filter(|p| is_tiff(p))
        .collect();
    for path in files {
        let tif = albedo_raster::GeoTiff::open(path).map_err(raster_bad)?;
        let (cw, ch) = tif.chunk_size();
        let last = tif.band_count().saturating_sub(1);
        let bands: BTreeSet<u16> = [0, last].into_iter().collect();
        for band in bands {
            for y in (0..tif.height()).step_by(ch.max(1) as usize) {
                for x in (0..tif.width()).step_by(cw.max(1) as usize) {
                    let one = albedo_raster::Window {
                        x,
                        y,
                        width: 1,
                        height: 1,
                    };
                    tif.read_window_f64(band, one, 1).map_err(raster_bad)?;
                }
            }
        }
    }
    Ok(())
}

/// The folders a walk has entered (by canonical path), so that a folder reached twice
/// (through symlinks) is read once and symlink loops end.
#[derive(Debug, Default)]
struct Walk {
    seen: BTreeSet<PathBuf>,
}

impl Walk {
    /// Whether `dir` is entered for the first time.
    fn enter(&mut self, dir: &Path) -> Result<bool, BackendError> {
        let canonical = std::fs::canonicalize(dir).map_err(|e| io_err(dir, e))?;
        Ok(self.seen.insert(canonical))
    }
}

fn collect(
    path: &Path,
    options: &IngestOptions,
    sink: &mut Sink,
    walk: &mut Walk,
    depth: usize,
) -> Result<(), BackendError> {
    if depth > MAX_DEPTH {
        return Err(BackendError::bad_request(
            path.display().to_string(),
            format!("folders nest more than {MAX_DEPTH} deep"),
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if meta.is_dir() {
        if !walk.enter(path)? {
            return Ok(());
        }
        let entries = list_dir(path)?;
        // GeoTIFFs, or a KML overlay placing a quick-look PNG (a quick-look-only product).
        if entries
            .iter()
            .any(|p| p.is_file() && (is_tiff(p) || is_kml(p)))
        {
            if scan_local(path, sink)? == 0 {
                sink.skip(path, "no imagery product in this folder");
            }
            // Sub-folders of a product folder are still walked (e.g. label folders).
            for sub in entries.iter().filter(|p| p.is_dir()) {
                collect(sub, options, sink, walk, depth + 1)?;
            }
            return Ok(());
        }
        if entries
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == "metadata.json"))
        {
            sink.skip(
                path,
                "product folder without GeoTIFFs or a quick-look overlay: nothing to ingest",
            );
        }
        for entry in entries {
            if entry.is_dir() || is_stac_candidate(&entry) {
                collect(&entry, options, sink, walk, depth + 1)?;
            }
        }
        return Ok(());
    }
    if is_tiff(path) {
        scan_local(path, sink)?;
        return Ok(());
    }
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    if !parse_stac(file, Some(path), options, sink)? {
        sink.skip(path, "not a STAC Item, FeatureCollection or Collection");
    }
    Ok(())
}

fn list_dir(path: &Path) -> Result<Vec<PathBuf>, BackendError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| io_err(path, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| io_err(path, e)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    Ok(entries)
}

/// A field path for error messages: `prefix.name`, `prefix[3]`, or `name` alone.
fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.trim_start_matches('.').to_string()
    } else if name.starts_with('[') {
        format!("{prefix}{name}")
    } else {
        format!("{prefix}.{name}")
    }
}

/// Where a document came from, for error fields: `file.json: features[2].id`, or the bare
/// JSON path for a request body.
fn located(source: Option<&Path>, field: &str) -> String {
    match source {
        Some(p) if field.is_empty() => p.display().to_string(),
        Some(p) => format!("{}: {field}", p.display()),
        None if field.is_empty() => "body".into(),
        None => field.to_string(),
    }
}

/// Byte offset of a serde_json error in `text`: serde_json reports a 1-based line and the
/// 1-based column (in bytes) of the offending byte; at the end of input, the end.
pub fn json_error_offset(text: &[u8], e: &serde_json::Error) -> usize {
    if e.classify() == serde_json::error::Category::Eof {
        return text.len();
    }
    let mut line_start = 0;
    let mut line = 1;
    if e.line() > 1 {
        for (i, b) in text.iter().enumerate() {
            if *b == b'\n' {
                line += 1;
                if line == e.line() {
                    line_start = i + 1;
                    break;
                }
            }
        }
    }
    (line_start + e.column().saturating_sub(1)).min(text.len())
}

/// Reads a sequence of JSON values from `R` one at a time: in memory are the value being
/// parsed and the rest of the last read ([`READ_CHUNK`], more while one value is larger), so a
/// newline-delimited file of any size streams. Knows the byte offset, line and column of
/// every value and error in the whole input.
struct ValueStream<R> {
    reader: R,
    buf: Vec<u8>,
    /// Start of the unparsed bytes in `buf`.
    pos: usize,
    /// Offset in the input of `buf[0]`.
    base: u64,
    /// Line (1-based) of `buf[pos]`.
    line: u64,
    /// Bytes between the start of that line and `buf[pos]`.
    col0: u64,
    eof: bool,
    /// Bytes read at a time ([`READ_CHUNK`]; smaller in tests).
    chunk: usize,
}

/// One value of a [`ValueStream`].
struct Streamed {
    value: Value,
    /// Line its first byte is on (1-based).
    line: u64,
    /// Length of its JSON text.
    len: usize,
}

impl<R: std::io::Read> ValueStream<R> {
    fn new(reader: R) -> Self {
        ValueStream {
            reader,
            buf: Vec::new(),
            pos: 0,
            base: 0,
            line: 1,
            col0: 0,
            eof: false,
            chunk: READ_CHUNK,
        }
    }

    /// Moves past `n` parsed bytes, counting lines.
    fn advance(&mut self, n: usize) {
        let seg = &self.buf[self.pos..self.pos + n];
        match seg.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                self.line += seg.iter().filter(|&&b| b == b'\n').count() as u64;
                self.col0 = (n - last - 1) as u64;
            }
            None => self.col0 += n as u64,
        }
        self.pos += n;
    }

    /// Drops the parsed bytes and reads up to `want` more (fewer at the end of input).
    fn fill(&mut self, want: usize, source: Option<&Path>) -> Result<(), BackendError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let target = self.buf.len() + want;
        while self.buf.len() < target && !self.eof {
            let old = self.buf.len();
            self.buf.resize(target, 0);
            let read = loop {
                match self.reader.read(&mut self.buf[old..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let n = read.map_err(|e| io_err(source.unwrap_or(Path::new("body")), e))?;
            self.buf.truncate(old + n);
            self.eof = n == 0;
        }
        Ok(())
    }

    /// The next value, or `None` at the end of the input.
    fn next_value(&mut self, source: Option<&Path>) -> Result<Option<Streamed>, BackendError> {
        loop {
            let blank = self.buf[self.pos..]
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            self.advance(blank);
            if self.pos < self.buf.len() {
                break;
            }
            if self.eof {
                return Ok(None);
            }
            self.fill(self.chunk, source)?;
        }
        loop {
            let slice = &self.buf[self.pos..];
            let mut values = serde_json::Deserializer::from_slice(slice).into_iter::<Value>();
            let parsed = values.next();
            let len = values.byte_offset();
            match parsed {
                // A number that ends where the data read so far ends may go on.
                Some(Ok(v)) if !(v.is_number() && len == slice.len() && !self.eof) => {
                    let line = self.line;
                    self.advance(len);
                    return Ok(Some(Streamed {
                        value: v,
                        line,
                        len,
                    }));
                }
                Some(Err(e)) if e.classify() != serde_json::error::Category::Eof || self.eof => {
                    return Err(self.malformed(&e, source));
                }
                None => return Ok(None),
                // More input needed: read as much again as this value has taken so far, so
                // that a large value is re-parsed a bounded number of times.
                _ => {
                    let want = self.chunk.max(self.buf.len() - self.pos);
                    self.fill(want, source)?;
                }
            }
        }
    }

    /// The error of a value that starts at `pos`, placed in the whole input.
    fn malformed(&self, e: &serde_json::Error, source: Option<&Path>) -> BackendError {
        let offset = self.base + (self.pos + json_error_offset(&self.buf[self.pos..], e)) as u64;
        let line = self.line + e.line().saturating_sub(1) as u64;
        let column = if e.line() <= 1 {
            self.col0 + e.column() as u64
        } else {
            e.column() as u64
        };
        let what = e.to_string();
        // serde_json appends " at line L column C"; say it once, with the byte offset first.
        let what = what
            .rfind(" at line ")
            .map_or(what.as_str(), |i| &what[..i]);
        BackendError::bad_request(
            located(source, ""),
            format!(
                "malformed JSON at byte offset {offset} (line {line}, column {column}): {what}"
            ),
        )
    }
}

/// Parses a STAC input into `sink`: one document (an Item, a FeatureCollection, a
/// Collection), or a sequence of Items (ndjson), streamed. Returns whether it was STAC at
/// all: a single JSON document of another kind (a file's own metadata, say) adds nothing and
/// returns false.
fn parse_stac(
    reader: impl std::io::Read,
    source: Option<&Path>,
    options: &IngestOptions,
    sink: &mut Sink,
) -> Result<bool, BackendError> {
    let mut stream = ValueStream::new(reader);
    let Some(first) = stream.next_value(source)? else {
        return Err(BackendError::bad_request(
            located(source, ""),
            "empty: no JSON document",
        ));
    };
    let Some(second) = stream.next_value(source)? else {
        return parse_document(first.value, source, options, sink);
    };
    // A sequence (ndjson): every value is an Item, named by the line it starts on.
    let mut next = Some(second);
    let mut item = first;
    loop {
        let at = format!("line {}", item.line);
        let product = stac_item_to_product_at(item.value, source, &at, options)?;
        sink.push(product, item.len)?;
        let Some(following) = next.take() else {
            break;
        };
        item = following;
        next = stream.next_value(source)?;
    }
    Ok(true)
}

fn parse_document(
    value: Value,
    source: Option<&Path>,
    options: &IngestOptions,
    sink: &mut Sink,
) -> Result<bool, BackendError> {
    match value.get("type").and_then(Value::as_str) {
        Some("Feature") => {
            sink.push(stac_item_to_product_at(value, source, "", options)?, 0)?;
        }
        Some("FeatureCollection") => {
            let Value::Object(mut obj) = value else {
                return Ok(false);
            };
            let Some(Value::Array(features)) = obj.remove("features") else {
                return Err(BackendError::bad_request(
                    located(source, "features"),
                    "a FeatureCollection needs a `features` array",
                ));
            };
            for (i, f) in features.into_iter().enumerate() {
                let at = format!("features[{i}]");
                sink.push(stac_item_to_product_at(f, source, &at, options)?, 0)?;
            }
        }
        Some("Collection") => {
            validate_collection(&value, source)?;
            let id = value["id"].as_str().unwrap_or_default().to_string();
            sink.push_collection(id, value);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

type Checked<T> = Result<T, (String, String)>;

fn fail<T>(field: String, reason: impl Into<String>) -> Checked<T> {
    Err((field, reason.into()))
}

fn required<'a>(
    obj: &'a serde_json::Map<String, Value>,
    at: &str,
    key: &str,
) -> Checked<&'a Value> {
    match obj.get(key) {
        Some(v) => Ok(v),
        None => fail(join(at, key), "required field is missing"),
    }
}

fn required_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    at: &str,
    key: &str,
) -> Checked<&'a str> {
    match required(obj, at, key)? {
        Value::String(s) if !s.trim().is_empty() => Ok(s),
        Value::String(_) => fail(join(at, key), "must not be empty"),
        other => fail(
            join(at, key),
            format!("must be a string, not {}", kind_of(other)),
        ),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks the fields of a STAC Item the catalog relies on (see the module docs); `at` is
/// the item's JSON path in its document (empty for a whole document).
pub fn validate_item(item: &Value, at: &str) -> Result<(), (String, String)> {
    let Value::Object(obj) = item else {
        return fail(
            at.to_string(),
            format!("an Item must be a JSON object, not {}", kind_of(item)),
        );
    };
    match required(obj, at, "type")? {
        Value::String(t) if t == "Feature" => {}
        other => {
            return fail(
                join(at, "type"),
                format!("must be \"Feature\", not {other}"),
            );
        }
    }
    required_str(obj, at, "stac_version")?;
    required_str(obj, at, "id")?;
    if let Some(c) = obj.get("collection")
        && !c.is_null()
        && c.as_str().is_none_or(|s| s.trim().is_empty())
    {
        return fail(join(at, "collection"), "must be a non-empty string");
    }
    let geometry = required(obj, at, "geometry")?;
    if !geometry.is_null() {
        validate_geometry(geometry, &join(at, "geometry"), 0)?;
        let Some(bbox) = obj.get("bbox") else {
            return fail(
                join(at, "bbox"),
                "required field is missing (an Item with a geometry needs a bbox)",
            );
        };
        validate_bbox(bbox, &join(at, "bbox"))?;
    } else if let Some(bbox) = obj.get("bbox").filter(|b| !b.is_null()) {
        validate_bbox(bbox, &join(at, "bbox"))?;
    }
    let props_at = join(at, "properties");
    let Value::Object(props) = required(obj, at, "properties")? else {
        return fail(props_at, "must be an object");
    };
    let instant = |key: &str| -> Checked<Option<i64>> {
        match props.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => match parse_instant(s) {
                Some(t) => Ok(Some(t)),
                None => fail(
                    join(&props_at, key),
                    format!("'{s}' is not an RFC 3339 date-time"),
                ),
            },
            Some(other) => fail(
                join(&props_at, key),
                format!("must be an RFC 3339 string, not {}", kind_of(other)),
            ),
        }
    };
    if !props.contains_key("datetime") {
        return fail(
            join(&props_at, "datetime"),
            "required field is missing (use null with start_datetime and end_datetime for a \
             range)",
        );
    }
    let datetime = instant("datetime")?;
    let start = instant("start_datetime")?;
    let end = instant("end_datetime")?;
    if datetime.is_none() {
        if start.is_none() {
            return fail(
                join(&props_at, "start_datetime"),
                "required when datetime is null",
            );
        }
        if end.is_none() {
            return fail(
                join(&props_at, "end_datetime"),
                "required when datetime is null",
            );
        }
    }
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return fail(join(&props_at, "end_datetime"), "is before start_datetime");
    }
    let links_at = join(at, "links");
    let Value::Array(links) = required(obj, at, "links")? else {
        return fail(links_at, "must be an array of link objects");
    };
    for (i, link) in links.iter().enumerate() {
        let here = format!("{links_at}[{i}]");
        let Value::Object(l) = link else {
            return fail(here, "a link must be an object");
        };
        required_str(l, &here, "href")?;
        required_str(l, &here, "rel")?;
    }
    let assets_at = join(at, "assets");
    let Value::Object(assets) = required(obj, at, "assets")? else {
        return fail(assets_at, "must be an object of assets by key");
    };
    for (key, asset) in assets {
        let here = join(&assets_at, key);
        let Value::Object(a) = asset else {
            return fail(here, "an asset must be an object");
        };
        required_str(a, &here, "href")?;
    }
    Ok(())
}

fn number(v: &Value, at: &str) -> Checked<f64> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => fail(
            at.to_string(),
            format!("must be a number, not {}", kind_of(v)),
        ),
    }
}

fn validate_bbox(v: &Value, at: &str) -> Checked<()> {
    let Value::Array(a) = v else {
        return fail(at.to_string(), "must be an array of 4 or 6 numbers");
    };
    if a.len() != 4 && a.len() != 6 {
        return fail(
            at.to_string(),
            format!("must have 4 or 6 numbers, not {}", a.len()),
        );
    }
    let n: Vec<f64> = a
        .iter()
        .enumerate()
        .map(|(i, x)| number(x, &format!("{at}[{i}]")))
        .collect::<Result<_, _>>()?;
    let half = n.len() / 2;
    for (i, &x) in n.iter().enumerate() {
        let axis = i % half;
        if axis == 0 && !(-180.0..=180.0).contains(&x) {
            return fail(
                format!("{at}[{i}]"),
                format!("longitude {x} is outside [-180, 180]"),
            );
        }
        if axis == 1 && !(-90.0..=90.0).contains(&x) {
            return fail(
                format!("{at}[{i}]"),
                format!("latitude {x} is outside [-90, 90]"),
            );
        }
    }
    if n[1] > n[half + 1] {
        return fail(
            format!("{at}[{}]", half + 1),
            format!("north {} is south of south {}", n[half + 1], n[1]),
        );
    }
    Ok(())
}

fn position(v: &Value, at: &str) -> Checked<(f64, f64)> {
    let Value::Array(a) = v else {
        return fail(
            at.to_string(),
            format!(
                "expected a position [lon, lat], found {} (wrong nesting?)",
                kind_of(v)
            ),
        );
    };
    if a.first().is_some_and(Value::is_array) {
        return fail(
            at.to_string(),
            "expected a position [lon, lat], found an array of arrays (wrong nesting?)",
        );
    }
    if a.len() != 2 && a.len() != 3 {
        return fail(
            at.to_string(),
            format!("a position has 2 or 3 numbers, not {}", a.len()),
        );
    }
    let lon = number(&a[0], &format!("{at}[0]"))?;
    let lat = number(&a[1], &format!("{at}[1]"))?;
    if a.len() == 3 {
        number(&a[2], &format!("{at}[2]"))?;
    }
    if !(-180.0..=180.0).contains(&lon) {
        return fail(
            format!("{at}[0]"),
            format!("longitude {lon} is outside [-180, 180]"),
        );
    }
    if !(-90.0..=90.0).contains(&lat) {
        return fail(
            format!("{at}[1]"),
            format!("latitude {lat} is outside [-90, 90]"),
        );
    }
    Ok((lon, lat))
}

fn array<'a>(v: &'a Value, at: &str, what: &str) -> Checked<&'a Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => fail(
            at.to_string(),
            format!("expected {what}, found {} (wrong nesting?)", kind_of(other)),
        ),
    }
}

fn line_string(v: &Value, at: &str) -> Checked<()> {
    let a = array(v, at, "an array of positions")?;
    if a.len() < 2 {
        return fail(
            at.to_string(),
            format!("a line string needs at least 2 positions, not {}", a.len()),
        );
    }
    for (i, p) in a.iter().enumerate() {
        position(p, &format!("{at}[{i}]"))?;
    }
    Ok(())
}

fn polygon(v: &Value, at: &str) -> Checked<()> {
    let rings = array(v, at, "an array of linear rings")?;
    if rings.is_empty() {
        return fail(at.to_string(), "a polygon needs at least its outer ring");
    }
    for (r, ring) in rings.iter().enumerate() {
        let here = format!("{at}[{r}]");
        let a = array(ring, &here, "a linear ring (an array of positions)")?;
        let pts: Vec<(f64, f64)> = a
            .iter()
            .enumerate()
            .map(|(i, p)| position(p, &format!("{here}[{i}]")))
            .collect::<Result<_, _>>()?;
        if pts.len() < 4 {
            return fail(
                here,
                format!(
                    "a linear ring needs at least 4 positions, not {}",
                    pts.len()
                ),
            );
        }
        let (first, last) = (pts[0], pts[pts.len() - 1]);
        if first != last {
            return fail(
                format!("{here}[{}]", pts.len() - 1),
                format!(
                    "the ring is not closed: its last position [{}, {}] differs from its first \
                     [{}, {}]",
                    last.0, last.1, first.0, first.1
                ),
            );
        }
    }
    Ok(())
}

/// Checks a GeoJSON geometry (see the module docs); `at` names it.
pub fn validate_geometry(g: &Value, at: &str, depth: u32) -> Result<(), (String, String)> {
    let Value::Object(obj) = g else {
        return fail(
            at.to_string(),
            format!("a geometry must be an object or null, not {}", kind_of(g)),
        );
    };
    let ty = match required(obj, at, "type")? {
        Value::String(t) => t.as_str(),
        other => {
            return fail(
                join(at, "type"),
                format!("must be a string, not {}", kind_of(other)),
            );
        }
    };
    if ty == "GeometryCollection" {
        if depth > 4 {
            return fail(at.to_string(), "geometry collections nest too deeply");
        }
        let here = join(at, "geometries");
        let gs = array(
            required(obj, at, "geometries")?,
            &here,
            "an array of geometries",
        )?;
        for (i, g) in gs.iter().enumerate() {
            validate_geometry(g, &format!("{here}[{i}]"), depth + 1)?;
        }
        return Ok(());
    }
    let c = required(obj, at, "coordinates")?;
    let here = join(at, "coordinates");
    match ty {
        "Point" => {
            position(c, &here)?;
        }
        "MultiPoint" => {
            for (i, p) in array(c, &here, "an array of positions")?.iter().enumerate() {
                position(p, &format!("{here}[{i}]"))?;
            }
        }
        "LineString" => line_string(c, &here)?,
        "MultiLineString" => {
            for (i, l) in array(c, &here, "an array of line strings")?
                .iter()
                .enumerate()
            {
                line_string(l, &format!("{here}[{i}]"))?;
            }
        }
        "Polygon" => polygon(c, &here)?,
        "MultiPolygon" => {
            for (i, p) in array(c, &here, "an array of polygons")?.iter().enumerate() {
                polygon(p, &format!("{here}[{i}]"))?;
            }
        }
        other => {
            return fail(
                join(at, "type"),
                format!("'{other}' is not a GeoJSON geometry type"),
            );
        }
    }
    Ok(())
}

/// Checks the fields of a STAC Collection the catalog relies on.
pub fn validate_collection(c: &Value, source: Option<&Path>) -> Result<(), BackendError> {
    let check = || -> Checked<()> {
        let Value::Object(obj) = c else {
            return fail(String::new(), "a Collection must be an object");
        };
        required_str(obj, "", "stac_version")?;
        required_str(obj, "", "id")?;
        required_str(obj, "", "description")?;
        required_str(obj, "", "license")?;
        let Value::Object(extent) = required(obj, "", "extent")? else {
            return fail("extent".into(), "must be an object");
        };
        let Value::Object(spatial) = required(extent, "extent", "spatial")? else {
            return fail("extent.spatial".into(), "must be an object");
        };
        let boxes = array(
            required(spatial, "extent.spatial", "bbox")?,
            "extent.spatial.bbox",
            "an array of bboxes",
        )?;
        for (i, b) in boxes.iter().enumerate() {
            validate_bbox(b, &format!("extent.spatial.bbox[{i}]"))?;
        }
        let Value::Object(temporal) = required(extent, "extent", "temporal")? else {
            return fail("extent.temporal".into(), "must be an object");
        };
        array(
            required(temporal, "extent.temporal", "interval")?,
            "extent.temporal.interval",
            "an array of intervals",
        )?;
        array(required(obj, "", "links")?, "links", "an array of links")?;
        Ok(())
    };
    check().map_err(|(field, reason)| BackendError::bad_request(located(source, &field), reason))
}

/// Builds a remote (metadata-only) product from a STAC item, after [`validate_item`].
/// `at` names the item's place in its document: its JSON path (`features[3]`, or empty for
/// a whole document), or `line N` for an item of a sequence (ndjson).
fn stac_item_to_product_at(
    mut item: Value,
    source: Option<&Path>,
    at: &str,
    options: &IngestOptions,
) -> Result<StoredProduct, BackendError> {
    let line_mode = at.starts_with("line ");
    let json_at = if line_mode { "" } else { at };
    let field_of = |f: &str| -> String {
        match (line_mode, f.is_empty()) {
            (true, true) => located(source, at),
            (true, false) => located(source, &format!("{at}: {f}")),
            (false, _) => located(source, f),
        }
    };
    validate_item(&item, json_at)
        .map_err(|(f, reason)| BackendError::bad_request(field_of(&f), reason))?;
    let id = item["id"].as_str().unwrap_or_default().to_string();
    let props = item["properties"].as_object().cloned().unwrap_or_default();
    let datetime = props
        .get("datetime")
        .and_then(Value::as_str)
        .or_else(|| props.get("start_datetime").and_then(Value::as_str))
        .map(str::to_string);
    let collection = match item.get("collection").and_then(Value::as_str) {
        Some(c) => c.to_string(),
        None => {
            let c = options.default_collection.clone().ok_or_else(|| {
                BackendError::bad_request(
                    field_of(&join(json_at, "collection")),
                    "the item names no collection: pass --collection (CLI) or ?collection= \
                     (HTTP)",
                )
            })?;
            item["collection"] = Value::String(c.clone());
            c
        }
    };
    let bbox = item.get("bbox").and_then(Value::as_array).and_then(|b| {
        let nums: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
        match nums.len() {
            4 => Some([nums[0], nums[1], nums[2], nums[3]]),
            6 => Some([nums[0], nums[1], nums[3], nums[4]]),
            _ => None,
        }
    });
    let str_prop = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
    let product = Product {
        id: ProductId(id.clone()),
        collection,
        title: str_prop("title").unwrap_or(id),
        datetime,
        bbox,
        platform: str_prop("platform"),
        product_type: str_prop("s2:product_type")
            .or_else(|| str_prop("sar:product_type"))
            .or_else(|| str_prop("product_type")),
        cloud_cover: props.get("eo:cloud_cover").and_then(Value::as_f64),
        bands: Vec::new(),
        georeferencing: Georeferencing::None,
        pixels: PixelAccess::Remote,
        attribution: Some("Contains modified Copernicus Sentinel data".into()),
    };
    Ok(StoredProduct {
        product,
        stac_item: item,
        local: None,
    })
}

// ---------------------------------------------------------------------------------------
// HTTP: POST /api/ingest

/// Routes of this module (mounted under `/api`): `POST /ingest`, with a body limit of
/// [`MAX_BODY_BYTES`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ingest", post(ingest_http))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Query of `POST /api/ingest`.
#[derive(Debug, Deserialize)]
pub struct IngestQuery {
    /// Collection for items that name none.
    pub collection: Option<String>,
}

/// A request path that may not be read, and why.
#[derive(Debug)]
pub struct PathDenied {
    /// The path as requested (or the entry under it that escapes).
    pub path: String,
    /// Why.
    pub reason: String,
}

fn forbidden(d: PathDenied) -> Response {
    let body = ErrorBody {
        code: "forbidden".into(),
        message: format!("{}: {}", d.path, d.reason),
        field: Some("paths".into()),
    };
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

fn is_within(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

/// Checks one requested path against the ingest roots (`roots` as configured, `canonical`
/// the same resolved): absolute, no `..`, lexically under a root (a path outside every root
/// is never touched, not even to see whether it exists), and it and everything under it
/// resolving (symlinks followed) inside a root. Returns its canonical form. A path under a
/// root that does not exist is a 400 ([`BackendError`]); the others are [`PathDenied`] (403).
pub fn resolve_request_path(
    raw: &str,
    roots: &[PathBuf],
    canonical: &[PathBuf],
) -> Result<Result<PathBuf, PathDenied>, BackendError> {
    let denied = |reason: String| {
        Ok(Err(PathDenied {
            path: raw.to_string(),
            reason,
        }))
    };
    let path = Path::new(raw);
    if raw.is_empty() || !path.is_absolute() {
        return Err(BackendError::bad_request(
            "paths",
            format!("'{raw}' is not an absolute path"),
        ));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return denied("paths may not contain `..`".into());
    }
    if !is_within(path, roots) && !is_within(path, canonical) {
        return denied("is outside the server's ingest roots".into());
    }
    let resolved = std::fs::canonicalize(path)
        .map_err(|e| BackendError::bad_request("paths", format!("{raw}: cannot be read: {e}")))?;
    if !is_within(&resolved, canonical) {
        return denied(format!(
            "resolves to {}, outside the server's ingest roots",
            resolved.display()
        ));
    }
    if let Some(escape) = first_escape(&resolved, canonical, &mut Walk::default(), 0)? {
        return Ok(Err(escape));
    }
    Ok(Ok(resolved))
}

/// The first entry under `dir` (walked like an ingest walks it) that resolves outside the
/// roots, if any.
fn first_escape(
    path: &Path,
    roots: &[PathBuf],
    walk: &mut Walk,
    depth: usize,
) -> Result<Option<PathDenied>, BackendError> {
    if !path.is_dir() || !walk.enter(path)? {
        return Ok(None);
    }
    if depth > MAX_DEPTH {
        return Err(BackendError::bad_request(
            path.display().to_string(),
            format!("folders nest more than {MAX_DEPTH} deep"),
        ));
    }
    for entry in list_dir(path)? {
        // A dangling link cannot be read by the ingest either; skip it.
        let Ok(target) = std::fs::canonicalize(&entry) else {
            continue;
        };
        if !is_within(&target, roots) {
            return Ok(Some(PathDenied {
                path: entry.display().to_string(),
                reason: format!(
                    "is a link to {}, outside the server's ingest roots",
                    target.display()
                ),
            }));
        }
        if target.is_dir()
            && let Some(d) = first_escape(&entry, roots, walk, depth + 1)?
        {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

async fn ingest_http(
    State(state): State<AppState>,
    Extension(user): Extension<UserIdentity>,
    Query(q): Query<IngestQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let body = ErrorBody {
                code: if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "payload_too_large".into()
                } else {
                    "bad_request".into()
                },
                message: format!(
                    "{} (the limit is {} MiB)",
                    rejection.body_text(),
                    MAX_BODY_BYTES >> 20
                ),
                field: Some("body".into()),
            };
            return (status, Json(body)).into_response();
        }
    };
    let roots = state.config.ingest_roots.clone();
    let result = state
        .store
        .call(move |store| Ok(ingest_request(store, &body, q.collection, &roots)))
        .await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => return e.into_response(),
    };
    match outcome {
        Ok(Ok(report)) => {
            tracing::info!(
                user = %user.token_name,
                products = report.products.len(),
                collections = report.collections.len(),
                "ingested over HTTP"
            );
            let skipped: Vec<Value> = report
                .skipped
                .iter()
                .map(|(p, why)| json!({"path": p.display().to_string(), "reason": why}))
                .collect();
            Json(json!({
                "ingested": report.ingested,
                "local": report.local,
                "products": report.products.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
                "collections": report.collections,
                "skipped": skipped,
            }))
            .into_response()
        }
        Ok(Err(denied)) => {
            tracing::warn!(user = %user.token_name, path = %denied.path, "ingest path denied");
            forbidden(denied)
        }
        Err(e) => e.into_response(),
    }
}

/// The work of `POST /api/ingest` on a blocking thread: a `{"paths": [...]}` body ingests
/// local files under `roots`; any other body is a STAC document ([`ingest_body`]).
fn ingest_request(
    store: &Store,
    body: &[u8],
    collection: Option<String>,
    roots: &[PathBuf],
) -> Result<Result<IngestReport, PathDenied>, BackendError> {
    // Over HTTP an ingest is always one transaction.
    let mut options = IngestOptions {
        default_collection: collection,
        commit_every: None,
    };
    // A paths request is one small JSON object with a `paths` key and no `type`.
    let paths_request = (body.len() <= 1 << 20)
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten()
        .filter(|v| v.get("paths").is_some() && v.get("type").is_none());
    let Some(request) = paths_request else {
        return ingest_body(store, body, &options).map(Ok);
    };
    if roots.is_empty() {
        return Ok(Err(PathDenied {
            path: "paths".into(),
            reason: "ingesting server-side files is disabled: start the server with \
                     --ingest-root DIR"
                .into(),
        }));
    }
    let raw: Vec<&str> = request["paths"]
        .as_array()
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .ok_or_else(|| BackendError::bad_request("paths", "must be an array of strings"))?;
    if raw.is_empty() || raw.len() > MAX_PATHS {
        return Err(BackendError::bad_request(
            "paths",
            format!("name between 1 and {MAX_PATHS} paths"),
        ));
    }
    if let Some(c) = request.get("collection").filter(|c| !c.is_null()) {
        let c = c
            .as_str()
            .ok_or_else(|| BackendError::bad_request("collection", "must be a string"))?;
        options.default_collection = Some(c.to_string());
    }
    let canonical_roots: Vec<PathBuf> = roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    let mut resolved = Vec::with_capacity(raw.len());
    for r in raw {
        match resolve_request_path(r, roots, &canonical_roots)? {
            Ok(p) => resolved.push(p),
            Err(denied) => return Ok(Err(denied)),
        }
    }
    ingest_paths(store, &resolved, &options).map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_offsets_point_at_the_offending_byte() {
        let cases: [(&str, usize); 4] = [
            ("{\"a\": x}", 6),
            ("{\"a\": 1", 7),
            ("{\"a\": 1,\n \"b\": ]}", 15),
            ("[1, 2,,]", 6),
        ];
        for (text, offset) in cases {
            let e = serde_json::from_str::<Value>(text).expect_err(text);
            assert_eq!(
                json_error_offset(text.as_bytes(), &e),
                offset,
                "{text}: {e}"
            );
        }
    }

    /// Every value of `text`, with its line and length, read `chunk` bytes at a time; or the
    /// error message.
    fn stream(text: &[u8], chunk: usize) -> Result<Vec<(Value, u64, usize)>, String> {
        let mut s = ValueStream::new(text);
        s.chunk = chunk;
        let mut out = Vec::new();
        while let Some(v) = s.next_value(None).map_err(|e| e.to_string())? {
            out.push((v.value, v.line, v.len));
        }
        Ok(out)
    }

    #[test]
    fn values_stream_across_read_boundaries() {
        let text = b"{\"a\": 1}\n  {\"b\": [1, 2, 3],\n \"c\": \"x\"}\n12 345\n\n[true]";
        let whole = stream(text, READ_CHUNK).expect("whole");
        assert_eq!(whole.len(), 5);
        assert_eq!(
            whole.iter().map(|v| v.1).collect::<Vec<_>>(),
            [1, 2, 4, 4, 6],
            "lines"
        );
        assert_eq!(whole[3].0, json!(345));
        for chunk in 1..8 {
            assert_eq!(
                stream(text, chunk).expect("chunked"),
                whole,
                "chunk {chunk}"
            );
        }
        // Errors name the same byte, line and column however the input was read.
        for (text, offset, line, column) in [
            (&b"{\"a\": 1}\n{\"b\": x}"[..], 15, 2, 7),
            (&b"{\"a\": 1}\n\n  {\"b\": [1,"[..], 21, 3, 11),
            (&b"{\"a\": 1} {,}"[..], 10, 1, 11),
        ] {
            let want = format!("byte offset {offset} (line {line}, column {column})");
            for chunk in [1, 2, 5, READ_CHUNK] {
                let err = stream(text, chunk).expect_err("malformed");
                assert!(err.contains(&want), "chunk {chunk}: {err} (want {want})");
            }
        }
    }

    #[test]
    fn geometry_errors_name_the_position() {
        let ring = json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]});
        let (field, reason) = validate_geometry(&ring, "geometry", 0).expect_err("unclosed");
        assert_eq!(field, "geometry.coordinates[0][3]");
        assert!(reason.contains("not closed"), "{reason}");
        let far = json!({"type": "Point", "coordinates": [200.5, 0]});
        let (field, reason) = validate_geometry(&far, "g", 0).expect_err("range");
        assert_eq!(field, "g.coordinates[0]");
        assert!(reason.contains("200.5"), "{reason}");
        let flat = json!({"type": "Polygon", "coordinates": [[0, 0], [1, 0], [1, 1], [0, 0]]});
        let (field, reason) = validate_geometry(&flat, "g", 0).expect_err("nesting");
        assert_eq!(field, "g.coordinates[0][0]");
        assert!(reason.contains("wrong nesting"), "{reason}");
        let multi = json!({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], [[[0, 0], [1, 0], [0, 0]]]]});
        let (field, _) = validate_geometry(&multi, "g", 0).expect_err("short ring");
        assert_eq!(field, "g.coordinates[1][0]");
        let ok = json!({"type": "MultiPolygon", "coordinates": [[[[179, 0], [180, 0], [180, 1], [179, 0]]]]});
        assert!(validate_geometry(&ok, "g", 0).is_ok());
    }
}
