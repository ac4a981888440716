//! The models page (`#/models`): registered models with their lineage, registering a model
//! from an experiment's best (or a chosen) trial, and classifying a product with one.
//!
//! Classifying is a job on a worker: `POST /api/models/{name}/{version}/classify` answers
//! `202` with the job, which this page polls (`GET /api/jobs/{id}`) for its progress and
//! error; a finished job's result ([`ClassifyResult`]) names the classified product, and the
//! page offers the viewer of its source with the classes drawn over it
//! (`#/products/<source>?overlay=<classified>`). Earlier classify jobs are listed with the
//! same link, so a person who left the page finds their results again.

use albedo_shared::api::{
    CLASSIFY_DEFAULT_BATCH, CLASSIFY_MAX_BATCH, ClassifyRequest, ClassifyResult, ExperimentSummary,
    JobInfo, JobState, ModelInfo,
};
use albedo_shared::catalog::{Product, ProductId, ProductList};
use albedo_shared::experiment::ExperimentState;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{fetch_experiments, fetch_json, post_for};
use crate::browser::every;
use crate::error::FrontendError;
use crate::presets::local_grid;
use crate::route::{Route, percent_encode};
use crate::token::UserToken;
use crate::viewer::CLASSIFIED_COLLECTION;

/// Default patches per inference batch of a classify job (the server's default).
pub const DEFAULT_BATCH: u32 = CLASSIFY_DEFAULT_BATCH;

/// Products asked for per page when the classify picker lists the catalog.
const PRODUCT_PAGE: u64 = 500;

/// Most products the classify picker lists (the rest are named as left out).
pub const MAX_PICKER_PRODUCTS: u64 = 5000;

/// The batch typed in the classify form, when it is one the server takes.
pub fn parse_batch(text: &str) -> Option<u32> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|b| (1..=CLASSIFY_MAX_BATCH).contains(b))
}

/// Products the classify picker offers: local pixels, not themselves classifications.
fn classifiable(p: &Product) -> bool {
    local_grid(p).is_some() && p.collection != CLASSIFIED_COLLECTION
}

/// Where listing the catalog for the picker goes on after a page of `got` products at
/// `offset` (local products come first, so a page with a remote one is the last needed):
/// the next offset, or `None` when done.
fn next_page(offset: u64, got: &[Product], total: u64) -> Option<u64> {
    let next = offset + got.len() as u64;
    let remote = got.iter().any(|p| local_grid(p).is_none());
    (!got.is_empty() && !remote && next < total && next < MAX_PICKER_PRODUCTS).then_some(next)
}

/// The classify picker's products, paging through `GET /api/products`; and how many
/// products of the catalog it did not look at (past [`MAX_PICKER_PRODUCTS`]).
async fn fetch_classifiable() -> Result<(Vec<(ProductId, String)>, u64), FrontendError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let url = format!("/api/products?limit={PRODUCT_PAGE}&offset={offset}");
        let page = fetch_json::<ProductList>(&url, "products").await?;
        let next = next_page(offset, &page.products, page.total);
        let seen = offset + page.products.len() as u64;
        let remote = page.products.iter().any(|p| local_grid(p).is_none());
        out.extend(
            page.products
                .into_iter()
                .filter(classifiable)
                .map(|p| (p.id, p.title)),
        );
        match next {
            Some(n) => offset = n,
            None => {
                let left = if remote {
                    0
                } else {
                    page.total.saturating_sub(seen)
                };
                return Ok((out, left));
            }
        }
    }
}

/// `GET /api/models`.
pub async fn fetch_models() -> Result<Vec<ModelInfo>, FrontendError> {
    fetch_json("/api/models", "models").await
}

/// `GET /api/jobs/{id}`.
pub async fn fetch_job(id: u64) -> Result<JobInfo, FrontendError> {
    fetch_json(&format!("/api/jobs/{id}"), "job").await
}

/// `GET /api/jobs`.
pub async fn fetch_jobs() -> Result<Vec<JobInfo>, FrontendError> {
    fetch_json("/api/jobs", "jobs").await
}

/// The body of `POST /api/models`: register trial `trial` (default: the best) of
/// `experiment` as model `name`.
pub fn register_body(name: &str, experiment: &str, trial: Option<u64>) -> serde_json::Value {
    let mut body = serde_json::json!({ "name": name.trim(), "experiment": experiment });
    if let Some(t) = trial {
        body["trial"] = serde_json::json!(t);
    }
    body
}

/// The URL of the classify route of a model version.
pub fn classify_url(name: &str, version: u32) -> String {
    format!("/api/models/{}/{version}/classify", percent_encode(name))
}

/// The dataset and version an `eo_cnn` trial trained on, from a model's `trial_spec`.
pub fn lineage_dataset(trial_spec: &serde_json::Value) -> Option<String> {
    let name = trial_spec["dataset"].as_str()?;
    Some(match trial_spec["version"].as_u64() {
        Some(v) => format!("{name} v{v}"),
        None => name.to_string(),
    })
}

/// The viewer of a classify result: its source with the classes over it.
pub fn result_href(result: &ClassifyResult) -> String {
    Route::Product {
        id: ProductId(result.source.clone()),
        overlay: Some(ProductId(result.product.clone())),
    }
    .href()
}

/// A job's progress in words: `done / total` and the percentage, once the total is known.
pub fn progress_text(job: &JobInfo) -> String {
    if job.total == 0 {
        return format!("{} ({} done)", job.state.as_str(), job.done);
    }
    let pct = job.done as f64 / job.total as f64 * 100.0;
    format!(
        "{}: {} / {} ({pct:.0} %)",
        job.state.as_str(),
        job.done,
        job.total
    )
}

/// The classify result of a finished job, if its `result` is one.
pub fn classify_result(job: &JobInfo) -> Option<ClassifyResult> {
    serde_json::from_value(job.result.clone()?).ok()
}

fn ended(state: JobState) -> bool {
    matches!(
        state,
        JobState::Finished | JobState::Failed | JobState::Cancelled
    )
}

/// Polls the job in `job` every second while the current component lives, until it ends
/// (then calls `on_end`); a failed poll is said in `error` and tried again.
pub fn follow_job(
    job: RwSignal<Option<JobInfo>>,
    error: RwSignal<Option<String>>,
    on_end: impl Fn() + Copy + 'static,
) {
    every(1000, move || {
        let Some(current) = job.get_untracked() else {
            return;
        };
        if ended(current.state) {
            return;
        }
        spawn_local(async move {
            match fetch_job(current.id.0).await {
                Ok(j) => {
                    let done = ended(j.state);
                    job.set(Some(j));
                    error.set(None);
                    if done {
                        on_end();
                    }
                }
                Err(e) => error.set(Some(e.for_people())),
            }
        });
    });
}

/// The models page.
#[component]
pub fn ModelsPage() -> impl IntoView {
    let token = expect_context::<UserToken>().0;
    let models = RwSignal::new(None::<Result<Vec<ModelInfo>, String>>);
    let experiments = RwSignal::new(Vec::<ExperimentSummary>::new());
    let products = RwSignal::new(Vec::<(ProductId, String)>::new());
    // Catalog products the picker did not list (past its cap).
    let products_left = RwSignal::new(0u64);
    let jobs = RwSignal::new(Vec::<JobInfo>::new());
    let reload = move || {
        spawn_local(async move {
            models.set(Some(fetch_models().await.map_err(|e| e.for_people())));
        });
        spawn_local(async move {
            if let Ok(list) = fetch_jobs().await {
                jobs.set(list.into_iter().filter(|j| j.kind == "classify").collect());
            }
        });
    };
    reload();
    spawn_local(async move {
        match fetch_experiments().await {
            Ok(list) => experiments.set(list),
            Err(e) => tracing::warn!(error = %e, "no experiment list"),
        }
    });
    spawn_local(async move {
        match fetch_classifiable().await {
            Ok((list, left)) => {
                products.set(list);
                products_left.set(left);
            }
            Err(e) => tracing::warn!(error = %e, "no product list"),
        }
    });

    // Register form.
    let reg_name = RwSignal::new(String::new());
    let reg_experiment = RwSignal::new(String::new());
    let reg_trial = RwSignal::new(String::new());
    let reg_error = RwSignal::new(None::<(Option<String>, String)>);
    let reg_done = RwSignal::new(None::<String>);
    let reg_busy = RwSignal::new(false);
    let register = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        reg_error.set(None);
        reg_done.set(None);
        let trial = reg_trial.get_untracked();
        let trial = match trial.trim() {
            "" => None,
            t => match t.trim_start_matches('t').parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    reg_error.set(Some((
                        Some("trial".into()),
                        format!("'{t}' is not a trial number (leave it empty for the best trial)"),
                    )));
                    return;
                }
            },
        };
        let body = register_body(
            &reg_name.get_untracked(),
            &reg_experiment.get_untracked(),
            trial,
        );
        let token = token.get_untracked();
        reg_busy.set(true);
        spawn_local(async move {
            let answer =
                post_for::<ModelInfo>("/api/models", &body, token.as_deref(), "model").await;
            reg_busy.set(false);
            match answer {
                Ok(m) => {
                    reg_done.set(Some(format!(
                        "Registered {} v{} from {} trial {}.",
                        m.name, m.version, m.experiment.0, m.trial.0
                    )));
                    reload();
                }
                Err(e) => reg_error.set(Some((e.field(), e.for_people()))),
            }
        });
    };
    let field_error = move |name: &'static str| {
        move || {
            reg_error.get().and_then(|(f, m)| {
                (f.as_deref() == Some(name)).then(|| {
                    view! { <span class="field-error" id=format!("register-{name}-error")>{m}</span> }
                })
            })
        }
    };

    // Classify form.
    let cls_model = RwSignal::new(String::new());
    let cls_product = RwSignal::new(String::new());
    let cls_batch = RwSignal::new(DEFAULT_BATCH.to_string());
    let cls_error = RwSignal::new(None::<String>);
    let job = RwSignal::new(None::<JobInfo>);
    let job_error = RwSignal::new(None::<String>);
    let classify = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        cls_error.set(None);
        let model = cls_model.get_untracked();
        let Some((name, version)) = model.rsplit_once('/').and_then(|(n, v)| {
            Some((
                n.to_string(),
                v.trim_start_matches('v').parse::<u32>().ok()?,
            ))
        }) else {
            cls_error.set(Some("Pick a registered model first.".into()));
            return;
        };
        let product = cls_product.get_untracked();
        if product.is_empty() {
            cls_error.set(Some("Pick a product with local pixels.".into()));
            return;
        }
        let batch = match parse_batch(&cls_batch.get_untracked()) {
            Some(b) => Some(b),
            None => {
                cls_error.set(Some(format!(
                    "Batch must be a whole number from 1 to {CLASSIFY_MAX_BATCH}."
                )));
                return;
            }
        };
        let request = ClassifyRequest {
            product,
            batch,
            device: None,
        };
        let body = serde_json::to_value(&request).unwrap_or_default();
        let token = token.get_untracked();
        job.set(None);
        job_error.set(None);
        spawn_local(async move {
            let url = classify_url(&name, version);
            match post_for::<JobInfo>(&url, &body, token.as_deref(), "job").await {
                Ok(j) => job.set(Some(j)),
                Err(e) => cls_error.set(Some(e.for_people())),
            }
        });
    };
    follow_job(job, job_error, reload);

    let model_rows = move || match models.get() {
        None => view! { <p class="status loading">"Loading models…"</p> }.into_any(),
        Some(Err(e)) => view! {
            <p class="status error" role="alert">{format!("Could not list models: {e}")}</p>
        }
        .into_any(),
        Some(Ok(list)) if list.is_empty() => view! {
            <p class="notice" id="no-models">
                "No model is registered yet. Run an experiment with the built-in trainer ("
                <a href="#/experiments">"Experiments"</a>
                "), then register its best trial below."
            </p>
        }
        .into_any(),
        Some(Ok(list)) => {
            let rows = list
                .into_iter()
                .map(|m| {
                    let key = format!("{}/v{}", m.name, m.version);
                    let pick = key.clone();
                    let value = m
                        .value
                        .map(|v| format!("{} = {v:.4}", m.metric))
                        .unwrap_or_else(|| format!("{} (no value)", m.metric));
                    let dataset = lineage_dataset(&m.trial_spec).unwrap_or_else(|| "–".into());
                    view! {
                        <tr data-model=key.clone()>
                            <td>{m.name.clone()}</td>
                            <td>{format!("v{}", m.version)}</td>
                            <td>{value}</td>
                            <td>
                                <a href=Route::Experiment(m.experiment.clone()).href()>
                                    {m.experiment.0.clone()}
                                </a>
                                {format!(" trial {}", m.trial.0)}
                            </td>
                            <td>{dataset}</td>
                            <td>{m.created_at.clone()}</td>
                            <td>
                                <button type="button" class="pick-model"
                                    on:click=move |_| cls_model.set(pick.clone())>
                                    "Classify with it"
                                </button>
                            </td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <table class="models" id="models-table">
                    <thead><tr>
                        <th>"Name"</th><th>"Version"</th><th>"Metric"</th>
                        <th>"Lineage"</th><th>"Dataset"</th><th>"Registered"</th><th></th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any()
        }
    };
    let model_options = move || {
        models
            .get()
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let key = format!("{}/v{}", m.name, m.version);
                view! { <option value=key.clone()>{key.clone()}</option> }
            })
            .collect_view()
    };
    let experiment_options = move || {
        experiments
            .get()
            .into_iter()
            .map(|e| {
                let best = e
                    .best
                    .as_ref()
                    .map(|b| format!(", best trial {} = {:.4}", b.trial.0, b.value))
                    .unwrap_or_default();
                let state = match e.state {
                    ExperimentState::Running => "running",
                    ExperimentState::Finished => "finished",
                    ExperimentState::Cancelled => "cancelled",
                };
                view! {
                    <option value=e.id.0.clone()>
                        {format!("{} – {} ({state}{best})", e.id.0, e.name)}
                    </option>
                }
            })
            .collect_view()
    };
    let job_view = move || {
        let j = job.get()?;
        let result = classify_result(&j);
        let pct = if j.total > 0 {
            j.done as f64 / j.total as f64 * 100.0
        } else {
            0.0
        };
        Some(view! {
            <div class="job" id="classify-job" data-job=j.id.0.to_string()
                data-state=j.state.as_str() data-done=j.done.to_string() data-total=j.total.to_string()>
                <p>{format!("Job {} on {}: ", j.id.0, j.worker.clone().unwrap_or_else(|| "no worker yet".into()))}
                    <span id="classify-progress">{progress_text(&j)}</span></p>
                <progress max="100" value=pct.to_string()></progress>
                {j.error.clone().map(|e| view! {
                    <p class="status error" role="alert" id="classify-error">{format!("The job failed: {e}")}</p>
                })}
                {result.map(|r| {
                    let href = result_href(&r);
                    let counts: Vec<String> = r
                        .classes
                        .iter()
                        .map(|c| format!("{}: {} px", c.name, r.counts.get(&c.value.to_string()).copied().unwrap_or(0)))
                        .collect();
                    view! {
                        <p class="result">
                            {format!("Made {} from {} with {}. ", r.product, r.source, r.model)}
                            {counts.join(" · ")}
                        </p>
                        <button type="button" id="open-classified"
                            on:click=move |_| crate::browser::navigate(&href)>
                            "Open in the viewer with the classes"
                        </button>
                    }
                })}
            </div>
        })
    };
    let recent = move || {
        let list = jobs.get();
        if list.is_empty() {
            return None;
        }
        let rows = list
            .into_iter()
            .rev()
            .take(10)
            .map(|j| {
                let result = classify_result(&j);
                view! {
                    <li>
                        {format!("Job {} · {}", j.id.0, progress_text(&j))}
                        {j.error.clone().map(|e| format!(" · {e}"))}
                        {result.map(|r| view! {
                            " · " <a href=result_href(&r)>{format!("{} over {}", r.product, r.source)}</a>
                        })}
                    </li>
                }
            })
            .collect_view();
        Some(view! {
            <h3>"Recent classifications"</h3>
            <ul class="recent-jobs" id="recent-jobs">{rows}</ul>
        })
    };

    view! {
        <main class="models-page">
          <section class="panel">
            <h2>"Models"</h2>
            {model_rows}
            <section class="register" aria-label="Register a model">
                <h3>"Register a model"</h3>
                <form id="register-form" on:submit=register>
                    <label for="register-name">"Name"</label>
                    <input id="register-name" required placeholder="landcover"
                        prop:value=move || reg_name.get()
                        on:input=move |ev| reg_name.set(event_target_value(&ev)) />
                    {field_error("name")}
                    <label for="register-experiment">"Experiment"</label>
                    <select id="register-experiment"
                        prop:value=move || reg_experiment.get()
                        on:change=move |ev| reg_experiment.set(event_target_value(&ev))>
                        <option value="">"Pick an experiment"</option>
                        {experiment_options}
                    </select>
                    {field_error("experiment")}
                    <label for="register-trial">"Trial"</label>
                    <input id="register-trial" placeholder="best" size="6"
                        prop:value=move || reg_trial.get()
                        on:input=move |ev| reg_trial.set(event_target_value(&ev)) />
                    {field_error("trial")}
                    <button type="submit" id="register-submit" disabled=move || reg_busy.get()>"Register"</button>
                </form>
                {move || reg_error.get().filter(|(f, _)| f.is_none() || !matches!(f.as_deref(), Some("name" | "experiment" | "trial"))).map(|(_, m)| view! {
                    <p class="status error" role="alert" id="register-error">{m}</p>
                })}
                {move || reg_done.get().map(|m| view! { <p class="status ok" id="register-done">{m}</p> })}
            </section>
            <section class="classify" aria-label="Classify a product">
                <h3>"Classify a product"</h3>
                <form id="classify-form" on:submit=classify>
                    <label for="classify-model">"Model"</label>
                    <select id="classify-model"
                        prop:value=move || cls_model.get()
                        on:change=move |ev| cls_model.set(event_target_value(&ev))>
                        <option value="">"Pick a model"</option>
                        {model_options}
                    </select>
                    <label for="classify-product">"Product"</label>
                    <select id="classify-product"
                        prop:value=move || cls_product.get()
                        on:change=move |ev| cls_product.set(event_target_value(&ev))>
                        <option value="">"Pick a product with local pixels"</option>
                        {move || products.get().into_iter().map(|(id, title)| view! {
                            <option value=id.0.clone()>{title}</option>
                        }).collect_view()}
                    </select>
                    {move || (products_left.get() > 0).then(|| view! {
                        <p class="status" id="classify-products-left">{format!(
                            "Only the first {MAX_PICKER_PRODUCTS} catalog products are listed; \
                             {} more are not.",
                            products_left.get()
                        )}</p>
                    })}
                    <label for="classify-batch">"Batch"</label>
                    <input id="classify-batch" type="number" min="1" max=CLASSIFY_MAX_BATCH.to_string() size="5"
                        prop:value=move || cls_batch.get()
                        on:input=move |ev| cls_batch.set(event_target_value(&ev)) />
                    <button type="submit" id="classify-submit">"Classify"</button>
                </form>
                {move || cls_error.get().map(|e| view! {
                    <p class="status error" role="alert" id="classify-form-error">{e}</p>
                })}
                {move || job_error.get().map(|e| view! {
                    <p class="status error" role="alert">{format!("Could not follow the job: {e}")}</p>
                })}
                {job_view}
                {recent}
            </section>
          </section>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use albedo_shared::protocol::JobId;

    fn job(state: JobState, done: u64, total: u64) -> JobInfo {
        JobInfo {
            id: JobId(4),
            kind: "classify".into(),
            state,
            attempt: 1,
            done,
            total,
            result: None,
            error: None,
            worker: None,
            created_ms: 0,
            started_ms: None,
            ended_ms: None,
        }
    }

    fn product(id: &str, collection: &str, local: bool) -> Product {
        Product {
            id: ProductId(id.into()),
            collection: collection.into(),
            title: id.into(),
            datetime: None,
            bbox: None,
            platform: None,
            product_type: None,
            cloud_cover: None,
            bands: Vec::new(),
            georeferencing: albedo_shared::catalog::Georeferencing::None,
            pixels: if local {
                albedo_shared::catalog::PixelAccess::Local {
                    width: 2,
                    height: 2,
                }
            } else {
                albedo_shared::catalog::PixelAccess::Remote
            },
            attribution: None,
        }
    }

    #[test]
    fn the_picker_pages_through_local_products_and_the_batch_matches_the_server() {
        let page: Vec<Product> = (0..3)
            .map(|i| product(&format!("p{i}"), "s2", true))
            .collect();
        // More local products than one page: go on.
        assert_eq!(next_page(0, &page, 10), Some(3));
        // Everything seen, an empty page, or a remote product (local ones come first): done.
        assert_eq!(next_page(7, &page, 10), None);
        assert_eq!(next_page(3, &[], 10), None);
        let mut mixed = page.clone();
        mixed.push(product("r", "s2", false));
        assert_eq!(next_page(0, &mixed, 10), None);
        // The cap.
        assert_eq!(next_page(MAX_PICKER_PRODUCTS - 3, &page, u64::MAX), None);
        assert!(classifiable(&page[0]));
        assert!(!classifiable(&product("c", CLASSIFIED_COLLECTION, true)));
        assert!(!classifiable(&product("r", "s2", false)));
        assert_eq!(DEFAULT_BATCH, CLASSIFY_DEFAULT_BATCH);
        assert_eq!(parse_batch(" 64 "), Some(64));
        assert_eq!(
            parse_batch(&CLASSIFY_MAX_BATCH.to_string()),
            Some(CLASSIFY_MAX_BATCH)
        );
        for bad in ["0", "", "x", &(CLASSIFY_MAX_BATCH + 1).to_string()] {
            assert_eq!(parse_batch(bad), None, "{bad}");
        }
    }

    #[test]
    fn bodies_and_urls() {
        assert_eq!(
            register_body(" lc ", "e3", None),
            serde_json::json!({"name": "lc", "experiment": "e3"})
        );
        assert_eq!(
            register_body("lc", "e3", Some(7)),
            serde_json::json!({"name": "lc", "experiment": "e3", "trial": 7})
        );
        assert_eq!(
            classify_url("land cover", 2),
            "/api/models/land%20cover/2/classify"
        );
        assert_eq!(
            lineage_dataset(&serde_json::json!({"kind": "eo_cnn", "dataset": "ben", "version": 2})),
            Some("ben v2".into())
        );
        assert_eq!(
            lineage_dataset(&serde_json::json!({"kind": "synthetic"})),
            None
        );
    }

    #[test]
    fn progress_and_results() {
        assert_eq!(
            progress_text(&job(JobState::Running, 5, 20)),
            "running: 5 / 20 (25 %)"
        );
        assert_eq!(
            progress_text(&job(JobState::Queued, 0, 0)),
            "queued (0 done)"
        );
        let mut j = job(JobState::Finished, 20, 20);
        assert_eq!(classify_result(&j), None);
        j.result = Some(serde_json::json!({
            "product": "cls-1", "source": "S2A_X", "model": "lc/v1",
            "classes": [{"value": 0, "name": "water", "color": "#0000ff"}],
            "counts": {"0": 12}
        }));
        let r = classify_result(&j).expect("a classify result");
        assert_eq!(result_href(&r), "#/products/S2A_X?overlay=cls-1");
        assert!(ended(j.state) && !ended(JobState::Running));
    }
}
