//! The datasets page (`#/datasets`): every version of every training dataset
//! (`GET /api/datasets`), with its source, channels, patch size, samples and class counts per
//! split, and the per-channel statistics of its train split.
//!
//! The answer is the raster crate's `Manifest`; the browser does not link that crate, so the
//! fields shown are read into [`DatasetVersion`] here (unknown fields are ignored, so a newer
//! manifest still reads).

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;

use crate::api::fetch_json;

/// Samples and class counts of one split.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SplitCounts {
    /// Samples in the split.
    pub samples: u64,
    /// Samples per class, in class order.
    #[serde(default)]
    pub class_counts: Vec<u64>,
}

/// Statistics of one channel over the train split.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChannelStat {
    /// Channel name.
    pub channel: String,
    /// Values counted.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// One dataset version as the page shows it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DatasetVersion {
    /// Dataset name.
    pub name: String,
    /// Version, from 1.
    pub version: u32,
    /// When it was built.
    pub created: String,
    /// The source in words.
    #[serde(default)]
    pub source_description: String,
    /// Channels in tensor order.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Patch side in pixels.
    pub patch_size: u32,
    /// Stride between patches.
    #[serde(default)]
    pub stride: u32,
    /// Class names in class-index order.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Samples and class counts by split (`train`, `val`, `test`).
    #[serde(default)]
    pub splits: BTreeMap<String, SplitCounts>,
    /// Train statistics per channel.
    #[serde(default)]
    pub stats: Vec<ChannelStat>,
}

impl DatasetVersion {
    /// Samples over all splits.
    pub fn total(&self) -> u64 {
        self.splits.values().map(|s| s.samples).sum()
    }

    /// Rows of the class table: class name, then its count in train, val and test.
    pub fn class_rows(&self) -> Vec<(String, [u64; 3])> {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let count = |split: &str| {
                    self.splits
                        .get(split)
                        .and_then(|s| s.class_counts.get(i))
                        .copied()
                        .unwrap_or(0)
                };
                (name.clone(), [count("train"), count("val"), count("test")])
            })
            .collect()
    }
}

/// `GET /api/datasets`.
pub async fn fetch_datasets() -> Result<Vec<DatasetVersion>, crate::error::FrontendError> {
    fetch_json("/api/datasets", "datasets").await
}

/// A statistic for the tables: a whole number as it is, else one decimal from 100, two
/// from 1, four below.
fn short(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The datasets page.
#[component]
pub fn DatasetsPage() -> impl IntoView {
    let list = RwSignal::new(None::<Result<Vec<DatasetVersion>, String>>);
    spawn_local(async move {
        list.set(Some(fetch_datasets().await.map_err(|e| e.for_people())));
    });
    let body = move || {
        match list.get() {
        None => view! { <p class="status loading">"Loading datasets…"</p> }.into_any(),
        Some(Err(e)) => view! {
            <p class="status error" role="alert">{format!("Could not list datasets: {e}")}</p>
        }
        .into_any(),
        Some(Ok(v)) if v.is_empty() => view! {
            <p class="notice" id="no-datasets">
                "No dataset has been built yet. Datasets are built by a worker job from \
                 `POST /api/datasets` (a BigEarthNet folder, a label raster or polygons over a \
                 product under the server's --ingest-root)."
            </p>
        }
        .into_any(),
        Some(Ok(v)) => v
            .into_iter()
            .map(|d| {
                let key = format!("{}/v{}", d.name, d.version);
                let classes = d
                    .class_rows()
                    .into_iter()
                    .map(|(name, [tr, va, te])| {
                        view! {
                            <tr>
                                <td>{name}</td>
                                <td>{tr}</td>
                                <td>{va}</td>
                                <td>{te}</td>
                            </tr>
                        }
                    })
                    .collect_view();
                let split = |s: &str| d.splits.get(s).map(|c| c.samples).unwrap_or(0);
                let stats = d
                    .stats
                    .iter()
                    .map(|s| {
                        view! {
                            <tr>
                                <td>{s.channel.clone()}</td>
                                <td>{short(s.mean)}</td>
                                <td>{short(s.std)}</td>
                                <td>{short(s.min)}</td>
                                <td>{short(s.max)}</td>
                                <td>{s.count}</td>
                            </tr>
                        }
                    })
                    .collect_view();
                view! {
                    <article class="dataset" data-dataset=key.clone()>
                        <h3>{key.clone()}</h3>
                        <p class="facts">
                            {format!(
                                "{} · built {} · {} samples of {} × {} px (stride {}) · channels {}",
                                d.source_description,
                                d.created,
                                d.total(),
                                d.patch_size,
                                d.patch_size,
                                d.stride,
                                d.channels.join(", ")
                            )}
                        </p>
                        <div class="dataset-tables">
                            <table class="class-counts">
                                <caption>"Samples per class"</caption>
                                <thead><tr>
                                    <th>"Class"</th>
                                    <th>{format!("train ({})", split("train"))}</th>
                                    <th>{format!("val ({})", split("val"))}</th>
                                    <th>{format!("test ({})", split("test"))}</th>
                                </tr></thead>
                                <tbody>{classes}</tbody>
                            </table>
                            <table class="band-stats">
                                <caption>"Train statistics per channel"</caption>
                                <thead><tr>
                                    <th>"Channel"</th><th>"mean"</th><th>"std"</th>
                                    <th>"min"</th><th>"max"</th><th>"values"</th>
                                </tr></thead>
                                <tbody>{stats}</tbody>
                            </table>
                        </div>
                    </article>
                }
            })
            .collect_view()
            .into_any(),
    }
    };
    view! {
        <main class="datasets-page">
            <section class="panel">
                <h2>"Datasets"</h2>
                {body}
            </section>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_reads_with_unknown_fields() {
        let text = r#"[{"format": "albedo-dataset/1", "name": "eobox", "version": 2,
            "created": "2026-11-24T01:00:00Z", "source": {"kind": "polygons"},
            "source_description": "polygons over T33UUU", "channels": ["B04", "NDVI"],
            "patch_size": 16, "stride": 8, "resampling": "bilinear",
            "classes": ["crop", "water"], "multi_label": false,
            "splits": {"train": {"samples": 10, "class_counts": [6, 4]},
                       "test": {"samples": 3, "class_counts": [2, 1]}},
            "stats": [{"channel": "B04", "count": 2560, "mean": 812.5, "std": 40.25,
                       "min": 600, "max": 1200}],
            "shards": [], "skipped": {"unmapped": 0, "too_few_labelled": 0, "nodata": 0}}]"#;
        let list: Vec<DatasetVersion> = serde_json::from_str(text).expect("manifest");
        let d = &list[0];
        assert_eq!(d.total(), 13);
        assert_eq!(
            d.class_rows(),
            vec![("crop".into(), [6, 0, 2]), ("water".into(), [4, 0, 1])]
        );
        assert_eq!(d.stats[0].channel, "B04");
        assert_eq!(short(812.5), "812.5");
        assert_eq!(short(0.123456), "0.1235");
        assert_eq!(short(600.0), "600");
        assert_eq!(short(71.3125), "71.31");
    }
}
