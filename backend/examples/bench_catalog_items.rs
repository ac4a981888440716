//! Generates N STAC items for `cargo xtask bench catalog` by jittering real ones.
//!
//! `cargo run --release -p albedo-backend --example bench_catalog_items -- SOURCE.ndjson N OUT.ndjson`
//! (`OUT` = `-`: standard output, so that the benchmark pipes a million items into
//! `albedo ingest -` without 16 GB of them on disk).
//!
//! Item `k` is a copy of source item `k % len` with id `<id>-j<k>`, its geometry and bbox
//! shifted by up to ±20° longitude and ±10° latitude (kept inside ±180 / ±85), its datetime
//! shifted by up to ±365 days, and `eo:cloud_cover` redrawn in 0..100. The jitter comes from a
//! fixed-seed generator, so every run writes the same items.

use std::io::{BufRead, BufWriter, Write};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// SplitMix64: small, seedable, good enough for jitter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

/// Adds (dx, dy) to every [lon, lat, ...] position under `v`.
fn shift_positions(v: &mut Value, dx: f64, dy: f64) {
    if let Value::Array(a) = v {
        if a.len() >= 2 && a.iter().all(Value::is_number) {
            let lon = a[0].as_f64().unwrap_or(0.0) + dx;
            let lat = a[1].as_f64().unwrap_or(0.0) + dy;
            a[0] = lon.into();
            a[1] = lat.into();
        } else {
            for x in a {
                shift_positions(x, dx, dy);
            }
        }
    }
}

fn shift_time(props: &mut serde_json::Map<String, Value>, key: &str, seconds: i64) -> Result<()> {
    if let Some(Value::String(s)) = props.get(key) {
        let t = OffsetDateTime::parse(s, &Rfc3339).with_context(|| format!("{key} '{s}'"))?;
        let t = t + time::Duration::seconds(seconds);
        props.insert(key.into(), Value::String(t.format(&Rfc3339)?));
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, n, out] = args.as_slice() else {
        bail!("usage: bench_catalog_items SOURCE.ndjson N OUT.ndjson");
    };
    let n: usize = n.parse().context("N")?;
    let file = std::fs::File::open(source).with_context(|| format!("opening {source}"))?;
    let mut items = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            items.push(serde_json::from_str::<Value>(&line)?);
        }
    }
    if items.is_empty() {
        bail!("{source} holds no items");
    }
    let sink: Box<dyn Write> = if out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(out).with_context(|| format!("creating {out}"))?)
    };
    let mut w = BufWriter::with_capacity(1 << 20, sink);
    let mut rng = Rng(0x005E_EDA1_BED0);
    for k in 0..n {
        let mut item = items[k % items.len()].clone();
        let id = item["id"].as_str().context("item without id")?.to_string();
        item["id"] = Value::String(format!("{id}-j{k}"));
        let bbox: Vec<f64> = item["bbox"]
            .as_array()
            .context("item without bbox")?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        if bbox.len() != 4 {
            bail!("item {id}: bbox must have 4 numbers");
        }
        let dx = rng
            .range(-20.0, 20.0)
            .clamp(-180.0 - bbox[0], 180.0 - bbox[2]);
        let dy = rng
            .range(-10.0, 10.0)
            .clamp(-85.0 - bbox[1], 85.0 - bbox[3]);
        item["bbox"] = serde_json::json!([bbox[0] + dx, bbox[1] + dy, bbox[2] + dx, bbox[3] + dy]);
        shift_positions(&mut item["geometry"]["coordinates"], dx, dy);
        let seconds = (rng.range(-365.0, 365.0) * 86_400.0) as i64;
        let cloud = (rng.range(0.0, 100.0) * 100.0).round() / 100.0;
        let props = item["properties"]
            .as_object_mut()
            .context("item without properties")?;
        for key in ["datetime", "start_datetime", "end_datetime"] {
            shift_time(props, key, seconds)?;
        }
        props.insert("eo:cloud_cover".into(), cloud.into());
        serde_json::to_writer(&mut w, &item)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}
