//! Side-car metadata beside the rasters of a product folder.
//!
//! Read when present: `metadata.json` (the sample data's own description: sensor, level, tile,
//! date, licence, per-file notes), `productInfo.json` (Sentinel-1 product info as on the AWS
//! archive: id, mission, type, mode, start and stop time), `timestamps.json` (eo-learn: a list
//! of acquisition times) and `<name>_labels_metadata.json` (BigEarthNet patches: acquisition
//! date, source product).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::RasterError;

/// The side-car files of one folder.
#[derive(Debug, Default)]
pub(crate) struct Sidecar {
    pub metadata: Option<Value>,
    pub product_info: Option<Value>,
    pub timestamps: Vec<String>,
    /// `*_labels_metadata.json`, keyed by the name before `_labels_metadata`.
    pub labels: BTreeMap<String, Value>,
}

fn read_json(path: &Path) -> Result<Option<Value>, RasterError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| RasterError::Metadata {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RasterError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl Sidecar {
    /// Reads the side-car files of `dir` (missing ones are simply absent).
    pub fn load(dir: &Path, entries: &[PathBuf]) -> Result<Sidecar, RasterError> {
        let mut sidecar = Sidecar {
            metadata: read_json(&dir.join("metadata.json"))?,
            product_info: read_json(&dir.join("productInfo.json"))?,
            ..Sidecar::default()
        };
        if let Some(Value::Array(items)) = read_json(&dir.join("timestamps.json"))? {
            sidecar.timestamps = items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
        }
        for entry in entries {
            let Some(name) = entry.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(key) = name.strip_suffix("_labels_metadata.json")
                && let Some(v) = read_json(entry)?
            {
                sidecar.labels.insert(key.to_string(), v);
            }
        }
        Ok(sidecar)
    }

    /// The JSON documents that describe a product named `name`, most specific first.
    pub fn documents(&self, name: &str) -> Vec<&Value> {
        let mut docs = Vec::new();
        if let Some(l) = self.labels.get(name) {
            docs.push(l);
        } else if self.labels.len() == 1 {
            docs.extend(self.labels.values());
        }
        docs.extend(self.product_info.iter());
        docs.extend(self.metadata.iter());
        docs
    }

    /// The band names `metadata.json` lists for multi-band stacks.
    pub fn band_list(&self) -> Vec<String> {
        self.metadata
            .as_ref()
            .and_then(|m| m.get("bands"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A per-file note from a `metadata.json` map such as `scenes` or `files`.
    pub fn file_note(&self, map: &str, file_name: &str) -> Option<String> {
        self.metadata
            .as_ref()?
            .get(map)?
            .get(file_name)?
            .as_str()
            .map(str::to_string)
    }
}

/// The first string value of any of `keys` in any of `docs`.
pub(crate) fn field<'a>(docs: &[&'a Value], keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| docs.iter().find_map(|d| d.get(*k).and_then(Value::as_str)))
}
