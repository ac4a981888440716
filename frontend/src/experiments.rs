//! The experiments page (`#/experiments`): the list of experiments (state, trial counts,
//! best value; refreshed while any runs) and the form that launches one.
//!
//! What it is: the view of [`crate::expform::ExperimentForm`]: name, metric, direction; what
//! a trial runs (synthetic, command, the built-in `eo_cnn` trainer); a search (space rows with
//! add/remove, optimizer and its parameters) or an ablation study (baseline rows, components
//! ticked to leave out); early stopping; budget, parallelism, attempts, mode and seed. Launch
//! sends the spec with the user token and opens the live view; a 400 shows the server's
//! message beside the field its `ErrorBody::field` names (else above the Launch button).
//!
//! What it is not: no rules of its own about values (the server's are the rules).
//!
//! Hooks for browser tests: every input has an id (`exp-name`, `trial-steps`,
//! `param-0-low`, `optimizer-type`, `stopping-type`, `exp-max-trials`, ...); a message shown
//! beside input `X` is `#X-error`; the form-level message is `#exp-form-error`; the list's
//! rows are `#experiment-list tr[data-experiment-id]` with `data-state`.

use albedo_shared::api::ExperimentSummary;
use albedo_shared::experiment::{ComponentKind, Direction, Mode};
use leptos::prelude::*;

use crate::api::{create_experiment, fetch_experiments};
use crate::browser::{every, navigate};
use crate::expform::{
    COMPONENT_KINDS, ExperimentForm, OptimizerKind, ParamKind, Study, TrialKind,
    parse_component_kind,
};
use crate::route::Route;
use crate::token::{NEEDS_TOKEN, UserToken};

/// An error shown in the form: beside `input` when the form shows it, else at the form level.
#[derive(Debug, Clone, PartialEq)]
pub struct FormError {
    /// Id of the input it belongs to.
    pub input: Option<String>,
    /// The spec path the server named.
    pub field: Option<String>,
    /// The message.
    pub message: String,
}

/// The experiments page.
#[component]
pub fn ExperimentsPage() -> impl IntoView {
    view! {
        <main class="experiments-page">
            <ExperimentList />
            <ExperimentFormView />
        </main>
    }
}

/// Short text of an experiment's trial counts.
pub fn counts_line(s: &ExperimentSummary) -> String {
    let c = &s.trials;
    let mut parts = vec![format!(
        "{} of {} done",
        c.finished + c.stopped + c.failed,
        s.spec.max_trials
    )];
    for (n, what) in [
        (c.running, "running"),
        (c.queued, "queued"),
        (c.paused, "paused"),
        (c.stopped, "stopped early"),
        (c.failed, "failed"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(" · ")
}

/// A server message as shown beside its field: without the leading `invalid <field>: `
/// (the field is the one it is shown beside).
pub fn beside_message(message: &str, field: &str) -> String {
    let prefix = format!("invalid {field}: ");
    let mut m = message;
    while let Some(rest) = m.strip_prefix(&prefix) {
        m = rest;
    }
    if m.trim().is_empty() {
        message.to_string()
    } else {
        m.to_string()
    }
}

/// A metric value for people.
pub fn fmt_value(v: f64) -> String {
    if v == 0.0 || (1e-3..1e5).contains(&v.abs()) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

#[component]
fn ExperimentList() -> impl IntoView {
    let list = RwSignal::new(None::<Result<Vec<ExperimentSummary>, String>>);
    let busy = StoredValue::new(false);
    let refresh = move || {
        if busy.get_value() {
            return;
        }
        busy.set_value(true);
        leptos::task::spawn_local(async move {
            let got = fetch_experiments().await.map_err(|e| e.to_string());
            busy.set_value(false);
            // The page may be gone by now.
            if let Some(l) = list.try_get_untracked()
                && l.as_ref() != Some(&got)
            {
                list.try_set(Some(got));
            }
        });
    };
    refresh();
    every(3000, move || {
        let running = list.with_untracked(|l| match l {
            Some(Ok(l)) => l
                .iter()
                .any(|e| e.state == albedo_shared::experiment::ExperimentState::Running),
            _ => true,
        });
        if running {
            refresh();
        }
    });
    view! {
        <section class="panel experiment-list" aria-label="Experiments">
            <h2>"Experiments"</h2>
            {move || match list.get() {
                None => view! { <p class="status loading">"Loading experiments…"</p> }.into_any(),
                Some(Err(e)) => {
                    view! { <p class="status error">{format!("Could not list experiments: {e}")}</p> }
                        .into_any()
                }
                Some(Ok(l)) if l.is_empty() => {
                    view! {
                        <p class="status" id="experiment-list-empty">
                            "No experiment yet: launch one with the form."
                        </p>
                    }
                        .into_any()
                }
                Some(Ok(l)) => {
                    let rows = l
                        .into_iter()
                        .rev()
                        .map(|e| {
                            let href = Route::Experiment(e.id.clone()).href();
                            let best = e
                                .best
                                .as_ref()
                                .map(|b| format!("{} (trial {})", fmt_value(b.value), b.trial))
                                .unwrap_or_else(|| "–".into());
                            let kind = if e.spec.ablation.is_some() { "ablation" } else { "search" };
                            view! {
                                <tr data-experiment-id=e.id.0.clone() data-state=e.state.as_str()>
                                    <td>
                                        <a href=href>{e.id.0.clone()}</a>
                                    </td>
                                    <td class="name">{e.name.clone()}</td>
                                    <td>{kind}</td>
                                    <td>
                                        <span class=format!(
                                            "state-badge {}",
                                            e.state.as_str(),
                                        )>{e.state.as_str()}</span>
                                    </td>
                                    <td class="counts">{counts_line(&e)}</td>
                                    <td class="num">{best}</td>
                                    <td class="muted">{e.created_at.get(..19).unwrap_or(&e.created_at).replace('T', " ")}</td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <table id="experiment-list" class="table">
                            <thead>
                                <tr>
                                    <th>"Id"</th>
                                    <th>"Name"</th>
                                    <th>"Kind"</th>
                                    <th>"State"</th>
                                    <th>"Trials"</th>
                                    <th>"Best"</th>
                                    <th>"Created (UTC)"</th>
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

/// The message shown beside input `id`, if the current error belongs there.
fn error_note(
    errors: RwSignal<Option<FormError>>,
    id: impl Fn() -> String + Send + Sync + 'static,
) -> impl IntoView {
    move || {
        let id = id();
        errors.with(|e| {
            e.as_ref()
                .filter(|e| e.input.as_deref() == Some(id.as_str()))
                .map(|e| {
                    view! {
                        <span class="field-error" role="alert" id=format!("{id}-error")>
                            {e.message.clone()}
                        </span>
                    }
                })
        })
    }
}

/// A text input bound to one field of the form.
#[component]
fn TextField(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    id: &'static str,
    label: &'static str,
    get: fn(&ExperimentForm) -> String,
    set: fn(&mut ExperimentForm, String),
    #[prop(optional)] placeholder: &'static str,
    #[prop(optional)] class: &'static str,
) -> impl IntoView {
    view! {
        <label class=format!("field {class}") class:invalid=move || errors.with(|e| {
            e.as_ref().is_some_and(|e| e.input.as_deref() == Some(id))
        })>
            <span class="label">{label}</span>
            <input
                id=id
                type="text"
                placeholder=placeholder
                prop:value=move || form.with(get)
                on:input=move |ev| form.update(|f| set(f, event_target_value(&ev)))
            />
            {error_note(errors, move || id.to_string())}
        </label>
    }
}

/// A multi-line input bound to one field of the form.
#[component]
fn AreaField(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    id: &'static str,
    label: &'static str,
    get: fn(&ExperimentForm) -> String,
    set: fn(&mut ExperimentForm, String),
    #[prop(optional)] placeholder: &'static str,
) -> impl IntoView {
    view! {
        <label class="field wide">
            <span class="label">{label}</span>
            <textarea
                id=id
                rows="3"
                placeholder=placeholder
                prop:value=move || form.with(get)
                on:input=move |ev| form.update(|f| set(f, event_target_value(&ev)))
            ></textarea>
            {error_note(errors, move || id.to_string())}
        </label>
    }
}

/// A `<select>` bound to one field of the form.
#[component]
fn SelectField(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    id: &'static str,
    label: &'static str,
    options: Vec<(&'static str, &'static str)>,
    get: fn(&ExperimentForm) -> &'static str,
    set: fn(&mut ExperimentForm, &str),
) -> impl IntoView {
    view! {
        <label class="field">
            <span class="label">{label}</span>
            <select
                id=id
                prop:value=move || form.with(get)
                on:change=move |ev| form.update(|f| set(f, &event_target_value(&ev)))
            >
                {options
                    .into_iter()
                    .map(|(v, text)| {
                        view! {
                            <option value=v selected=move || form.with(get) == v>
                                {text}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            {error_note(errors, move || id.to_string())}
        </label>
    }
}

/// Index of the row of `key` in `rows`.
fn row_index<T>(rows: &[T], key: u64, key_of: fn(&T) -> u64) -> usize {
    rows.iter()
        .position(|r| key_of(r) == key)
        .unwrap_or(usize::MAX)
}

#[component]
fn ParamRowView(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    key: u64,
) -> impl IntoView {
    let idx = Memo::new(move |_| form.with(|f| row_index(&f.params, key, |p| p.key)));
    let id = move |attr: &'static str| move || format!("param-{}-{attr}", idx.get());
    let get = move |g: fn(&crate::expform::ParamRow) -> String| {
        move || {
            form.with(|f| {
                f.params
                    .iter()
                    .find(|p| p.key == key)
                    .map(g)
                    .unwrap_or_default()
            })
        }
    };
    let upd = move |f: &mut ExperimentForm, u: &dyn Fn(&mut crate::expform::ParamRow)| {
        if let Some(p) = f.params.iter_mut().find(|p| p.key == key) {
            u(p);
        }
    };
    let kind = Memo::new(move |_| {
        form.with(|f| {
            f.params
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.kind)
                .unwrap_or_default()
        })
    });
    let invalid = move |attr: &'static str| {
        move || {
            let want = format!("param-{}-{attr}", idx.get());
            errors.with(|e| {
                e.as_ref()
                    .is_some_and(|e| e.input.as_deref() == Some(want.as_str()))
            })
        }
    };
    view! {
        <div class="param-row" data-index=move || idx.get().to_string()>
            <label class="field" class:invalid=invalid("name")>
                <span class="label">"Name"</span>
                <input
                    id=id("name")
                    type="text"
                    prop:value=get(|p| p.name.clone())
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        form.update(|f| upd(f, &|p| p.name = v.clone()))
                    }
                />
                {error_note(errors, id("name"))}
            </label>
            <label class="field" class:invalid=invalid("type")>
                <span class="label">"Type"</span>
                <select
                    id=id("type")
                    on:change=move |ev| {
                        let v = ParamKind::parse(&event_target_value(&ev));
                        form.update(|f| upd(f, &|p| p.set_kind(v)))
                    }
                >
                    {[ParamKind::Float, ParamKind::Int, ParamKind::Categorical]
                        .into_iter()
                        .map(|k| {
                            view! {
                                <option value=k.as_str() selected=move || kind.get() == k>
                                    {k.as_str()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                {error_note(errors, id("type"))}
            </label>
            <Show
                when=move || kind.get() != ParamKind::Categorical
                fallback=move || {
                    view! {
                        <label class="field values" class:invalid=invalid("values")>
                            <span class="label">"Values (comma-separated)"</span>
                            <input
                                id=id("values")
                                type="text"
                                prop:value=get(|p| p.values.clone())
                                on:input=move |ev| {
                                    let v = event_target_value(&ev);
                                    form.update(|f| upd(f, &|p| p.values = v.clone()))
                                }
                            />
                            {error_note(errors, id("values"))}
                        </label>
                    }
                }
            >
                <label class="field num" class:invalid=invalid("low")>
                    <span class="label">"Low"</span>
                    <input
                        id=id("low")
                        type="text"
                        inputmode="decimal"
                        prop:value=get(|p| p.low.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            form.update(|f| upd(f, &|p| p.low = v.clone()))
                        }
                    />
                    {error_note(errors, id("low"))}
                </label>
                <label class="field num" class:invalid=invalid("high")>
                    <span class="label">"High"</span>
                    <input
                        id=id("high")
                        type="text"
                        inputmode="decimal"
                        prop:value=get(|p| p.high.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            form.update(|f| upd(f, &|p| p.high = v.clone()))
                        }
                    />
                    {error_note(errors, id("high"))}
                </label>
                <label class="field check" class:invalid=invalid("log")>
                    <span class="label">"Log"</span>
                    <input
                        id=id("log")
                        type="checkbox"
                        prop:checked=move || {
                            form.with(|f| f.params.iter().any(|p| p.key == key && p.log))
                        }
                        on:change=move |ev| {
                            let v = event_target_checked(&ev);
                            form.update(|f| upd(f, &|p| p.log = v))
                        }
                    />
                    {error_note(errors, id("log"))}
                </label>
                <label class="field num" class:invalid=invalid("steps")>
                    <span class="label">"Grid steps"</span>
                    <input
                        id=id("steps")
                        type="text"
                        inputmode="numeric"
                        placeholder="grid only"
                        prop:value=get(|p| p.steps.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            form.update(|f| upd(f, &|p| p.steps = v.clone()))
                        }
                    />
                    {error_note(errors, id("steps"))}
                </label>
            </Show>
            <button
                type="button"
                class="remove"
                id=id("remove")
                title="Remove this parameter"
                on:click=move |_| form.update(|f| f.params.retain(|p| p.key != key))
            >
                "✕"
            </button>
        </div>
    }
}

#[component]
fn BaselineRowView(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    key: u64,
) -> impl IntoView {
    let idx = Memo::new(move |_| form.with(|f| row_index(&f.baseline, key, |b| b.key)));
    let id = move |attr: &'static str| move || format!("baseline-{}-{attr}", idx.get());
    let get = move |g: fn(&crate::expform::BaselineRow) -> String| {
        move || {
            form.with(|f| {
                f.baseline
                    .iter()
                    .find(|b| b.key == key)
                    .map(g)
                    .unwrap_or_default()
            })
        }
    };
    let upd = move |f: &mut ExperimentForm, u: &dyn Fn(&mut crate::expform::BaselineRow)| {
        if let Some(b) = f.baseline.iter_mut().find(|b| b.key == key) {
            u(b);
        }
    };
    view! {
        <div class="kv-row">
            <label class="field">
                <span class="label">"Parameter"</span>
                <input
                    id=id("name")
                    type="text"
                    prop:value=get(|b| b.name.clone())
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        form.update(|f| upd(f, &|b| b.name = v.clone()))
                    }
                />
                {error_note(errors, id("name"))}
            </label>
            <label class="field">
                <span class="label">"Value"</span>
                <input
                    id=id("value")
                    type="text"
                    prop:value=get(|b| b.value.clone())
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        form.update(|f| upd(f, &|b| b.value = v.clone()))
                    }
                />
            </label>
            <button
                type="button"
                class="remove"
                id=id("remove")
                title="Remove"
                on:click=move |_| form.update(|f| f.baseline.retain(|b| b.key != key))
            >
                "✕"
            </button>
        </div>
    }
}

#[component]
fn ComponentRowView(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    key: u64,
) -> impl IntoView {
    let idx = Memo::new(move |_| form.with(|f| row_index(&f.components, key, |c| c.key)));
    let id = move |attr: &'static str| move || format!("component-{}-{attr}", idx.get());
    let get = move |g: fn(&crate::expform::ComponentRow) -> String| {
        move || {
            form.with(|f| {
                f.components
                    .iter()
                    .find(|c| c.key == key)
                    .map(g)
                    .unwrap_or_default()
            })
        }
    };
    let upd = move |f: &mut ExperimentForm, u: &dyn Fn(&mut crate::expform::ComponentRow)| {
        if let Some(c) = f.components.iter_mut().find(|c| c.key == key) {
            u(c);
        }
    };
    let kind = Memo::new(move |_| {
        form.with(|f| {
            f.components
                .iter()
                .find(|c| c.key == key)
                .map_or(ComponentKind::Named, |c| c.kind)
        })
    });
    view! {
        <div class="component-row">
            <label class="field check" title="Leave this component out in a trial of its own">
                <span class="label">"Leave out"</span>
                <input
                    id=id("use")
                    type="checkbox"
                    prop:checked=move || {
                        form.with(|f| f.components.iter().any(|c| c.key == key && c.ablate))
                    }
                    on:change=move |ev| {
                        let v = event_target_checked(&ev);
                        form.update(|f| upd(f, &|c| c.ablate = v))
                    }
                />
            </label>
            <label class="field">
                <span class="label">"Component"</span>
                <input
                    id=id("name")
                    type="text"
                    prop:value=get(|c| c.name.clone())
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        form.update(|f| upd(f, &|c| c.name = v.clone()))
                    }
                />
                {error_note(errors, id("name"))}
            </label>
            <label class="field">
                <span class="label">"Kind"</span>
                <select
                    id=id("kind")
                    on:change=move |ev| {
                        let v = parse_component_kind(&event_target_value(&ev));
                        form.update(|f| upd(f, &|c| c.kind = v))
                    }
                >
                    {COMPONENT_KINDS
                        .into_iter()
                        .map(|(k, name)| {
                            view! {
                                <option value=name selected=move || kind.get() == k>
                                    {name}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                {error_note(errors, id("kind"))}
            </label>
            <label class="field">
                <span class="label">"Members (comma-separated)"</span>
                <input
                    id=id("members")
                    type="text"
                    placeholder=move || {
                        if kind.get() == ComponentKind::BandGroup { "B11, B12" } else { "" }
                    }
                    prop:value=get(|c| c.members.clone())
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        form.update(|f| upd(f, &|c| c.members = v.clone()))
                    }
                />
                {error_note(errors, id("members"))}
            </label>
            <button
                type="button"
                class="remove"
                id=id("remove")
                title="Remove"
                on:click=move |_| form.update(|f| f.components.retain(|c| c.key != key))
            >
                "✕"
            </button>
        </div>
    }
}

/// The form that launches an experiment.
#[component]
fn ExperimentFormView() -> impl IntoView {
    let form = RwSignal::new(ExperimentForm::default());
    let errors = RwSignal::new(None::<FormError>);
    let submitting = RwSignal::new(false);
    let token = expect_context::<UserToken>().0;

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if submitting.get_untracked() {
            return;
        }
        let f = form.get_untracked();
        let spec = match f.to_spec() {
            Ok(spec) => spec,
            Err(e) => {
                errors.set(Some(FormError {
                    input: e.field.as_deref().and_then(|p| f.input_for(p)),
                    field: e.field,
                    message: e.message,
                }));
                return;
            }
        };
        errors.set(None);
        submitting.set(true);
        let t = token.get_untracked();
        leptos::task::spawn_local(async move {
            let outcome = create_experiment(&spec, t.as_deref()).await;
            submitting.try_set(false);
            match outcome {
                Ok(summary) => {
                    tracing::info!(experiment = %summary.id, "experiment created");
                    navigate(&Route::Experiment(summary.id).href());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "experiment refused");
                    let err = match &e {
                        crate::error::FrontendError::Http { status: 401, .. } => FormError {
                            input: None,
                            field: None,
                            message: NEEDS_TOKEN.to_string(),
                        },
                        crate::error::FrontendError::Http { message, field, .. } => FormError {
                            input: field.as_deref().and_then(|p| f.input_for(p)),
                            field: field.clone(),
                            message: field
                                .as_deref()
                                .map_or(message.clone(), |p| beside_message(message, p)),
                        },
                        other => FormError {
                            input: None,
                            field: None,
                            message: other.to_string(),
                        },
                    };
                    errors.try_set(Some(err));
                }
            }
        });
    };

    let study = Memo::new(move |_| form.with(|f| f.study));
    let trial_kind = Memo::new(move |_| form.with(|f| f.trial_kind));
    let optimizer = Memo::new(move |_| form.with(|f| f.optimizer));
    let median = Memo::new(move |_| form.with(|f| f.median));
    // A message about a field that a change of kind hides would point at nothing: drop it.
    Effect::new(
        move |prev: Option<(Study, TrialKind, OptimizerKind, bool)>| {
            let now = (study.get(), trial_kind.get(), optimizer.get(), median.get());
            if prev.is_some_and(|p| p != now) {
                errors.set(None);
            }
            now
        },
    );
    let param_keys =
        Memo::new(move |_| form.with(|f| f.params.iter().map(|p| p.key).collect::<Vec<_>>()));
    let baseline_keys =
        Memo::new(move |_| form.with(|f| f.baseline.iter().map(|b| b.key).collect::<Vec<_>>()));
    let component_keys =
        Memo::new(move |_| form.with(|f| f.components.iter().map(|c| c.key).collect::<Vec<_>>()));

    view! {
        <section class="panel experiment-form-panel" aria-label="Launch an experiment">
            <h2>"Launch an experiment"</h2>
            <form id="experiment-form" class="experiment-form" on:submit=submit novalidate>
                <fieldset>
                    <legend>"What"</legend>
                    <div class="grid3">
                        <TextField form errors id="exp-name" label="Name"
                            get=|f| f.name.clone() set=|f, v| f.name = v />
                        <TextField form errors id="exp-metric" label="Metric"
                            get=|f| f.metric.clone() set=|f, v| f.metric = v />
                        <SelectField form errors id="exp-direction" label="Direction"
                            options=vec![("maximize", "maximize"), ("minimize", "minimize")]
                            get=|f| match f.direction {
                                Direction::Maximize => "maximize",
                                Direction::Minimize => "minimize",
                            }
                            set=|f, v| f.direction = if v == "minimize" {
                                Direction::Minimize
                            } else {
                                Direction::Maximize
                            } />
                    </div>
                </fieldset>
                <fieldset>
                    <legend>"Each trial runs"</legend>
                    <div class="grid3">
                        <SelectField form errors id="trial-kind" label="Trial kind"
                            options=vec![
                                ("synthetic", "synthetic workload"),
                                ("command", "a command"),
                                ("eo_cnn", "built-in EO CNN trainer"),
                            ]
                            get=|f| f.trial_kind.as_str()
                            set=|f, v| f.trial_kind = TrialKind::parse(v) />
                        {move || match trial_kind.get() {
                            TrialKind::Synthetic => view! {
                                <TextField form errors id="trial-steps" label="Steps"
                                    get=|f| f.steps.clone() set=|f, v| f.steps = v />
                                <TextField form errors id="trial-step-ms" label="Step time (ms)"
                                    placeholder="the workload's own"
                                    get=|f| f.step_ms.clone() set=|f, v| f.step_ms = v />
                                <TextField form errors id="trial-seed" label="Workload seed"
                                    get=|f| f.trial_seed.clone() set=|f, v| f.trial_seed = v />
                            }.into_any(),
                            TrialKind::Command => view! {
                                <TextField form errors id="trial-program" label="Program"
                                    get=|f| f.program.clone() set=|f, v| f.program = v />
                                <TextField form errors id="trial-working-dir" label="Working directory"
                                    placeholder="the worker's"
                                    get=|f| f.working_dir.clone() set=|f, v| f.working_dir = v />
                                <TextField form errors id="trial-grace-ms" label="Stop grace (ms)"
                                    placeholder="10000"
                                    get=|f| f.grace_ms.clone() set=|f, v| f.grace_ms = v />
                                <AreaField form errors id="trial-args"
                                    label="Arguments, one a line ({name} takes a parameter)"
                                    get=|f| f.args.clone() set=|f, v| f.args = v />
                                <AreaField form errors id="trial-env" label="Environment (KEY=VALUE lines)"
                                    get=|f| f.env.clone() set=|f, v| f.env = v />
                            }.into_any(),
                            TrialKind::EoCnn => view! {
                                <TextField form errors id="trial-dataset-root" label="Datasets root (on the worker)"
                                    get=|f| f.dataset_root.clone() set=|f, v| f.dataset_root = v />
                                <TextField form errors id="trial-dataset" label="Dataset"
                                    get=|f| f.dataset.clone() set=|f, v| f.dataset = v />
                                <TextField form errors id="trial-version" label="Version"
                                    placeholder="newest"
                                    get=|f| f.version.clone() set=|f, v| f.version = v />
                                <TextField form errors id="trial-device" label="Device (cpu, wgpu)"
                                    placeholder="the worker's"
                                    get=|f| f.device.clone() set=|f, v| f.device = v />
                                <TextField form errors id="trial-models-dir" label="Models folder"
                                    placeholder="the worker's"
                                    get=|f| f.models_dir.clone() set=|f, v| f.models_dir = v />
                                <TextField form errors id="trial-threads" label="Threads"
                                    placeholder="default"
                                    get=|f| f.threads.clone() set=|f, v| f.threads = v />
                            }.into_any(),
                        }}
                    </div>
                </fieldset>
                <fieldset>
                    <legend>"Study"</legend>
                    <div class="study-choice">
                        <label class="inline">
                            <input type="radio" name="study" id="study-search"
                                prop:checked=move || study.get() == Study::Search
                                on:change=move |_| form.update(|f| f.study = Study::Search) />
                            "Hyperparameter search"
                        </label>
                        <label class="inline">
                            <input type="radio" name="study" id="study-ablation"
                                prop:checked=move || study.get() == Study::Ablation
                                on:change=move |_| form.update(|f| {
                                    f.study = Study::Ablation;
                                    // A leave-one-out plan needs a trial per component + 1.
                                    let needed = f.ticked().count() + 1;
                                    if f.max_trials.trim().parse::<usize>().map_or(true, |n| n < needed) {
                                        f.max_trials = needed.to_string();
                                    }
                                }) />
                            "Ablation study (leave one component out)"
                        </label>
                    </div>
                    <Show
                        when=move || study.get() == Study::Search
                        fallback=move || view! {
                            <h3>"Baseline parameters"</h3>
                            <For each=move || baseline_keys.get() key=|k| *k let:k>
                                <BaselineRowView form errors key=k />
                            </For>
                            <div class="row-actions">
                                <button type="button" id="baseline-add"
                                    on:click=move |_| form.update(ExperimentForm::add_baseline)>
                                    "+ Baseline parameter"
                                </button>
                                {error_note(errors, || "baseline-add".to_string())}
                            </div>
                            <h3>"Components to leave out"</h3>
                            <For each=move || component_keys.get() key=|k| *k let:k>
                                <ComponentRowView form errors key=k />
                            </For>
                            <div class="row-actions">
                                <button type="button" id="component-add"
                                    on:click=move |_| form.update(ExperimentForm::add_component)>
                                    "+ Component"
                                </button>
                                {error_note(errors, || "component-add".to_string())}
                            </div>
                        }
                    >
                        <h3>"Search space"</h3>
                        <div id="search-space">
                            <For each=move || param_keys.get() key=|k| *k let:k>
                                <ParamRowView form errors key=k />
                            </For>
                        </div>
                        <div class="row-actions">
                            <button type="button" id="param-add"
                                on:click=move |_| form.update(ExperimentForm::add_param)>
                                "+ Parameter"
                            </button>
                            {error_note(errors, || "param-add".to_string())}
                        </div>
                        <div class="grid3">
                            <SelectField form errors id="optimizer-type" label="Optimizer"
                                options=vec![
                                    ("grid", "grid"),
                                    ("random", "random"),
                                    ("tpe", "TPE"),
                                    ("asha", "ASHA"),
                                ]
                                get=|f| f.optimizer.as_str()
                                set=|f, v| f.optimizer = OptimizerKind::parse(v) />
                            {move || match optimizer.get() {
                                OptimizerKind::Tpe => view! {
                                    <TextField form errors id="optimizer-n-startup-trials" label="Random trials first"
                                        get=|f| f.n_startup_trials.clone() set=|f, v| f.n_startup_trials = v />
                                    <TextField form errors id="optimizer-n-ei-candidates" label="Candidates"
                                        get=|f| f.n_ei_candidates.clone() set=|f, v| f.n_ei_candidates = v />
                                    <TextField form errors id="optimizer-gamma" label="Gamma (good fraction)"
                                        get=|f| f.gamma.clone() set=|f, v| f.gamma = v />
                                }.into_any(),
                                OptimizerKind::Asha => view! {
                                    <TextField form errors id="optimizer-min-resource" label="Min resource (steps)"
                                        get=|f| f.min_resource.clone() set=|f, v| f.min_resource = v />
                                    <TextField form errors id="optimizer-max-resource" label="Max resource (steps)"
                                        get=|f| f.max_resource.clone() set=|f, v| f.max_resource = v />
                                    <TextField form errors id="optimizer-reduction-factor" label="Reduction factor (eta)"
                                        get=|f| f.reduction_factor.clone() set=|f, v| f.reduction_factor = v />
                                }.into_any(),
                                OptimizerKind::Grid => view! {
                                    <p class="hint">"A grid takes every categorical value and the grid steps of each range."</p>
                                }.into_any(),
                                OptimizerKind::Random => ().into_any(),
                            }}
                        </div>
                    </Show>
                </fieldset>
                <fieldset>
                    <legend>"Early stopping"</legend>
                    <div class="grid4">
                        <SelectField form errors id="stopping-type" label="Rule"
                            options=vec![("none", "none"), ("median", "median rule")]
                            get=|f| if f.median { "median" } else { "none" }
                            set=|f, v| f.median = v == "median" />
                        <Show when=move || median.get()>
                            <TextField form errors id="stopping-min-finished" label="Finished trials first"
                                get=|f| f.min_finished.clone() set=|f, v| f.min_finished = v />
                            <TextField form errors id="stopping-warmup-steps" label="Warm-up steps"
                                get=|f| f.warmup_steps.clone() set=|f, v| f.warmup_steps = v />
                            <TextField form errors id="stopping-interval-steps" label="Check every (steps)"
                                get=|f| f.interval_steps.clone() set=|f, v| f.interval_steps = v />
                        </Show>
                    </div>
                </fieldset>
                <fieldset>
                    <legend>"Budget and scheduling"</legend>
                    <div class="grid5">
                        <TextField form errors id="exp-max-trials" label="Max trials"
                            get=|f| f.max_trials.clone() set=|f, v| f.max_trials = v />
                        <TextField form errors id="exp-parallelism" label="Parallelism"
                            placeholder="every free slot"
                            get=|f| f.parallelism.clone() set=|f, v| f.parallelism = v />
                        <TextField form errors id="exp-max-attempts" label="Attempts per trial"
                            get=|f| f.max_attempts.clone() set=|f, v| f.max_attempts = v />
                        <SelectField form errors id="exp-mode" label="Mode"
                            options=vec![("async", "async"), ("bsp", "BSP (rounds)")]
                            get=|f| match f.mode { Mode::Async => "async", Mode::Bsp => "bsp" }
                            set=|f, v| f.mode = if v == "bsp" { Mode::Bsp } else { Mode::Async } />
                        <TextField form errors id="exp-seed" label="Seed"
                            get=|f| f.seed.clone() set=|f, v| f.seed = v />
                    </div>
                </fieldset>
                <p class="status error" id="exp-form-error" role="alert"
                    hidden=move || errors.with(Option::is_none)>
                    {move || errors.with(|e| match e {
                        Some(FormError { input: Some(_), field, .. }) => format!(
                            "Check the marked field{}.",
                            field.as_ref().map(|f| format!(" ({f})")).unwrap_or_default()
                        ),
                        Some(FormError { input: None, field: Some(f), message }) => {
                            format!("{message} (field {f})")
                        }
                        Some(e) => e.message.clone(),
                        None => String::new(),
                    })}
                </p>
                <div class="form-actions">
                    <button type="submit" class="primary" id="exp-submit"
                        disabled=move || submitting.get()>
                        {move || if submitting.get() { "Launching…" } else { "Launch" }}
                    </button>
                    <button type="button" id="exp-reset"
                        on:click=move |_| {
                            form.set(ExperimentForm::default());
                            errors.set(None);
                        }>
                        "Defaults"
                    </button>
                    <span class="muted">{move || {
                        if token.with(Option::is_none) {
                            "No user token set: launching will be refused."
                        } else {
                            ""
                        }
                    }}</span>
                </div>
            </form>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_beside_a_field_drop_its_name() {
        assert_eq!(
            beside_message(
                "invalid params.lr.low: invalid params.lr.low: low 2 is greater than high 1",
                "params.lr.low"
            ),
            "low 2 is greater than high 1"
        );
        assert_eq!(
            beside_message("must be at least 1", "max_trials"),
            "must be at least 1"
        );
        assert_eq!(
            beside_message("invalid max_trials: ", "max_trials"),
            "invalid max_trials: "
        );
        assert_eq!(fmt_value(0.78921), "0.7892");
    }
}
