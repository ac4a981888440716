//! The experiments page (`#/experiments`): the list of experiments (state, trial counts,
//! best value; refreshed while any runs) and the form that launches one.
//!
//! What it is: the view of [`crate::expform::ExperimentForm`]: name, metric, direction; what
//! a trial runs (synthetic, command, the built-in `eo_cnn` trainer); a search (space rows with
//! add/remove, optimizer and its parameters) or an ablation study (baseline rows, components
//! ticked to leave out); early stopping; budget, parallelism, attempts, prefetch, mode and
//! seed. Launch sends the spec with the user token and opens the live view; a 400 shows the server's
//! message beside the field its `ErrorBody::field` names (else above the Launch button).
//!
//! What it is not: no rules of its own about values (the server's are the rules).
//!
//! Hooks for browser tests: every input has an id (`exp-name`, `trial-steps`,
//! `param-0-low`, `optimizer-type`, `stopping-type`, `exp-max-trials`, ...); a message shown
//! beside input `X` is `#X-error`; the form-level message is `#exp-form-error`; the list's
//! rows are `#experiment-list tr[data-experiment-id]` with `data-state`.

use std::marker::PhantomData;

use albedo_shared::api::ExperimentSummary;
use albedo_shared::experiment::{Direction, Mode};
use leptos::prelude::*;

use crate::api::{create_experiment, fetch_experiments};
use crate::browser::{every, navigate};
use crate::expform::{
    BaselineRow, COMPONENT_KINDS, ComponentRow, ExperimentForm, OptimizerKind, ParamKind, ParamRow,
    Study, TrialKind, component_kind_str, parse_component_kind,
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

/// The markup every field of the form shares: a label around the field's caption, its
/// control and the slot where the server's message about it shows (`#{id}-error`); the
/// label is marked `invalid` while it does.
fn field_shell(
    errors: RwSignal<Option<FormError>>,
    id: impl Fn() -> String + Clone + Send + Sync + 'static,
    class: &'static str,
    label: &'static str,
    control: impl IntoView + 'static,
) -> impl IntoView {
    let mine = id.clone();
    let invalid = move || {
        let id = mine();
        errors.with(|e| {
            e.as_ref()
                .is_some_and(|e| e.input.as_deref() == Some(id.as_str()))
        })
    };
    view! {
        <label class=format!("field {class}") class:invalid=invalid>
            <span class="label">{label}</span>
            {control}
            {error_note(errors, id)}
        </label>
    }
}

/// How a text control looks: its keyboard hint (`inputmode`) and placeholder
/// (empty: none).
#[derive(Debug, Clone, Copy, Default)]
struct Hints {
    inputmode: &'static str,
    placeholder: &'static str,
}

/// A one-line text control: `get` gives its value, `set` takes what is typed.
fn text_control(
    id: impl Fn() -> String + Send + Sync + 'static,
    get: impl Fn() -> String + Send + Sync + 'static,
    set: impl Fn(String) + 'static,
    hints: Hints,
) -> impl IntoView {
    view! {
        <input
            id=id
            type="text"
            inputmode=(!hints.inputmode.is_empty()).then_some(hints.inputmode)
            placeholder=(!hints.placeholder.is_empty()).then_some(hints.placeholder)
            prop:value=get
            on:input=move |ev| set(event_target_value(&ev))
        />
    }
}

/// A checkbox control: `get` gives whether it is ticked, `set` takes a change.
fn check_control(
    id: impl Fn() -> String + Send + Sync + 'static,
    get: impl Fn() -> bool + Send + Sync + 'static,
    set: impl Fn(bool) + 'static,
) -> impl IntoView {
    view! {
        <input
            id=id
            type="checkbox"
            prop:checked=get
            on:change=move |ev| set(event_target_checked(&ev))
        />
    }
}

/// A `<select>` of `(value, text)` options: `get` gives the chosen value, `set` takes a
/// change.
fn select_control(
    id: impl Fn() -> String + Send + Sync + 'static,
    options: Vec<(&'static str, &'static str)>,
    get: impl Fn() -> &'static str + Copy + Send + Sync + 'static,
    set: impl Fn(&str) + 'static,
) -> impl IntoView {
    view! {
        <select id=id prop:value=get on:change=move |ev| set(&event_target_value(&ev))>
            {options
                .into_iter()
                .map(|(v, text)| {
                    view! { <option value=v selected=move || get() == v>{text}</option> }
                })
                .collect_view()}
        </select>
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
    let hints = Hints {
        placeholder,
        ..Hints::default()
    };
    let control = text_control(
        move || id.to_string(),
        move || form.with(get),
        move |v| form.update(|f| set(f, v)),
        hints,
    );
    field_shell(errors, move || id.to_string(), class, label, control)
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
    let control = view! {
        <textarea
            id=id
            rows="3"
            placeholder=placeholder
            prop:value=move || form.with(get)
            on:input=move |ev| form.update(|f| set(f, event_target_value(&ev)))
        ></textarea>
    };
    field_shell(errors, move || id.to_string(), "wide", label, control)
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
    let control = select_control(
        move || id.to_string(),
        options,
        move || form.with(get),
        move |v| form.update(|f| set(f, v)),
    );
    field_shell(errors, move || id.to_string(), "", label, control)
}

/// A row type of one of the form's keyed lists (search space, baseline, components).
trait FormRow: 'static {
    /// Prefix of its inputs' ids (`param` gives `param-0-low`).
    const PREFIX: &'static str;
    /// Its stable key.
    fn key(&self) -> u64;
    /// The list it belongs to.
    fn list(form: &ExperimentForm) -> &[Self]
    where
        Self: Sized;
    /// The list it belongs to, to change.
    fn list_mut(form: &mut ExperimentForm) -> &mut Vec<Self>
    where
        Self: Sized;
}

/// Implements [`FormRow`] for a row type kept in field `$list` of the form.
macro_rules! form_row {
    ($row:ty, $prefix:literal, $list:ident) => {
        impl FormRow for $row {
            const PREFIX: &'static str = $prefix;
            fn key(&self) -> u64 {
                self.key
            }
            fn list(form: &ExperimentForm) -> &[Self] {
                &form.$list
            }
            fn list_mut(form: &mut ExperimentForm) -> &mut Vec<Self> {
                &mut form.$list
            }
        }
    };
}

form_row!(ParamRow, "param", params);
form_row!(BaselineRow, "baseline", baseline);
form_row!(ComponentRow, "component", components);

/// One row of a keyed list, bound to the form: where it stands (its index names its
/// inputs, `param-{index}-{field}`, and changes when a row above it goes), reading and
/// changing its fields, and its fields' markup.
struct RowBinding<R> {
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    key: u64,
    index: Memo<usize>,
    row: PhantomData<fn() -> R>,
}

impl<R> Clone for RowBinding<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for RowBinding<R> {}

impl<R: FormRow> RowBinding<R> {
    fn new(form: RwSignal<ExperimentForm>, errors: RwSignal<Option<FormError>>, key: u64) -> Self {
        let index = Memo::new(move |_| {
            form.with(|f| {
                R::list(f)
                    .iter()
                    .position(|r| r.key() == key)
                    .unwrap_or(usize::MAX)
            })
        });
        RowBinding {
            form,
            errors,
            key,
            index,
            row: PhantomData,
        }
    }

    /// The id of the row's input `field`.
    fn id(self, field: &'static str) -> impl Fn() -> String + Clone + Send + Sync + 'static {
        move || format!("{}-{}-{field}", R::PREFIX, self.index.get())
    }

    /// A value read from the row (the default while it is gone).
    fn read<T: Default>(self, read: impl Fn(&R) -> T) -> T {
        self.form.with(|f| {
            R::list(f)
                .iter()
                .find(|r| r.key() == self.key)
                .map(read)
                .unwrap_or_default()
        })
    }

    /// Changes the row.
    fn write(self, write: impl FnOnce(&mut R)) {
        self.form.update(|f| {
            if let Some(r) = R::list_mut(f).iter_mut().find(|r| r.key() == self.key) {
                write(r);
            }
        });
    }

    /// A text field of the row.
    fn text(
        self,
        field: &'static str,
        label: &'static str,
        class: &'static str,
        hints: Hints,
        get: fn(&R) -> String,
        set: fn(&mut R, String),
    ) -> impl IntoView {
        let control = text_control(
            self.id(field),
            move || self.read(get),
            move |v| self.write(|r| set(r, v)),
            hints,
        );
        field_shell(self.errors, self.id(field), class, label, control)
    }

    /// A checkbox of the row.
    fn check(
        self,
        field: &'static str,
        label: &'static str,
        get: fn(&R) -> bool,
        set: fn(&mut R, bool),
    ) -> impl IntoView {
        let control = check_control(
            self.id(field),
            move || self.read(get),
            move |v| self.write(|r| set(r, v)),
        );
        field_shell(self.errors, self.id(field), "check", label, control)
    }

    /// A `<select>` of the row.
    fn select(
        self,
        field: &'static str,
        label: &'static str,
        options: Vec<(&'static str, &'static str)>,
        get: fn(&R) -> &'static str,
        set: fn(&mut R, &str),
    ) -> impl IntoView {
        let control = select_control(
            self.id(field),
            options,
            move || {
                self.form.with(|f| {
                    R::list(f)
                        .iter()
                        .find(|r| r.key() == self.key)
                        .map_or("", get)
                })
            },
            move |v| self.write(|r| set(r, v)),
        );
        field_shell(self.errors, self.id(field), "", label, control)
    }

    /// The button that removes the row.
    fn remove_button(self, title: &'static str) -> impl IntoView {
        view! {
            <button
                type="button"
                class="remove"
                id=self.id("remove")
                title=title
                on:click=move |_| {
                    self.form.update(|f| R::list_mut(f).retain(|r| r.key() != self.key))
                }
            >
                "✕"
            </button>
        }
    }
}

/// The `(value, text)` options of a parameter's type.
const PARAM_KINDS: [(&str, &str); 3] = [
    ("float", "float"),
    ("int", "int"),
    ("categorical", "categorical"),
];

#[component]
fn ParamRowView(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    key: u64,
) -> impl IntoView {
    let row = RowBinding::<ParamRow>::new(form, errors, key);
    let kind = Memo::new(move |_| row.read(|p| p.kind));
    let decimal = Hints {
        inputmode: "decimal",
        ..Hints::default()
    };
    view! {
        <div class="param-row" data-index=move || row.index.get().to_string()>
            {row.text("name", "Name", "", Hints::default(), |p| p.name.clone(), |p, v| p.name = v)}
            {row.select("type", "Type", PARAM_KINDS.to_vec(), |p| p.kind.as_str(), |p, v| {
                p.set_kind(ParamKind::parse(v))
            })}
            <Show
                when=move || kind.get() != ParamKind::Categorical
                fallback=move || {
                    row.text("values", "Values (comma-separated)", "values", Hints::default(),
                        |p| p.values.clone(), |p, v| p.values = v)
                }
            >
                {row.text("low", "Low", "num", decimal, |p| p.low.clone(), |p, v| p.low = v)}
                {row.text("high", "High", "num", decimal, |p| p.high.clone(), |p, v| p.high = v)}
                {row.check("log", "Log", |p| p.log, |p, v| p.log = v)}
                {row.text("steps", "Grid steps", "num",
                    Hints { inputmode: "numeric", placeholder: "grid only" },
                    |p| p.steps.clone(), |p, v| p.steps = v)}
            </Show>
            {row.remove_button("Remove this parameter")}
        </div>
    }
}

#[component]
fn BaselineRowView(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    key: u64,
) -> impl IntoView {
    let row = RowBinding::<BaselineRow>::new(form, errors, key);
    view! {
        <div class="kv-row">
            {row.text("name", "Parameter", "", Hints::default(), |b| b.name.clone(), |b, v| b.name = v)}
            {row.text("value", "Value", "", Hints::default(), |b| b.value.clone(), |b, v| b.value = v)}
            {row.remove_button("Remove")}
        </div>
    }
}

#[component]
fn ComponentRowView(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    key: u64,
) -> impl IntoView {
    let row = RowBinding::<ComponentRow>::new(form, errors, key);
    let kinds = COMPONENT_KINDS.map(|(_, name)| (name, name)).to_vec();
    view! {
        <div class="component-row">
            {row.check("use", "Leave out", |c| c.ablate, |c, v| c.ablate = v)}
            {row.text("name", "Component", "", Hints::default(), |c| c.name.clone(), |c, v| c.name = v)}
            {row.select("kind", "Kind", kinds, |c| component_kind_str(c.kind), |c, v| {
                c.kind = parse_component_kind(v)
            })}
            {row.text("members", "Members (comma-separated; a band group's bands)", "",
                Hints::default(), |c| c.members.clone(), |c, v| c.members = v)}
            {row.remove_button("Remove")}
        </div>
    }
}

/// A one-line text field of the form, as data: its input's id, its label, its placeholder
/// (empty: none), and how it reads and writes the form.
struct FieldDef {
    id: &'static str,
    label: &'static str,
    placeholder: &'static str,
    get: fn(&ExperimentForm) -> String,
    set: fn(&mut ExperimentForm, String),
}

/// A [`FieldDef`] of the form's field `$name` (a `String`).
macro_rules! field {
    ($id:literal, $label:literal, $placeholder:literal, $name:ident) => {
        FieldDef {
            id: $id,
            label: $label,
            placeholder: $placeholder,
            get: |f| f.$name.clone(),
            set: |f, v| f.$name = v,
        }
    };
}

/// The [`TextField`]s of `defs`, in order.
fn text_fields(
    form: RwSignal<ExperimentForm>,
    errors: RwSignal<Option<FormError>>,
    defs: &'static [FieldDef],
) -> impl IntoView {
    defs.iter()
        .map(|d| {
            view! {
                <TextField form errors id=d.id label=d.label placeholder=d.placeholder
                    get=d.get set=d.set />
            }
        })
        .collect_view()
}

/// What a synthetic trial takes.
const SYNTHETIC_FIELDS: [FieldDef; 3] = [
    field!("trial-steps", "Steps", "", steps),
    field!(
        "trial-step-ms",
        "Step time (ms)",
        "the workload's own",
        step_ms
    ),
    field!("trial-seed", "Workload seed", "", trial_seed),
];

/// What a command trial takes on one line (its arguments and environment take several).
const COMMAND_FIELDS: [FieldDef; 3] = [
    field!("trial-program", "Program", "", program),
    field!(
        "trial-working-dir",
        "Working directory",
        "the worker's",
        working_dir
    ),
    field!("trial-grace-ms", "Stop grace (ms)", "10000", grace_ms),
];

/// What a trial of the built-in EO CNN trainer takes.
const EO_CNN_FIELDS: [FieldDef; 6] = [
    field!(
        "trial-dataset-root",
        "Datasets root (on the worker)",
        "",
        dataset_root
    ),
    field!("trial-dataset", "Dataset", "", dataset),
    field!("trial-version", "Version", "newest", version),
    field!("trial-device", "Device (cpu, wgpu)", "the worker's", device),
    field!(
        "trial-models-dir",
        "Models folder",
        "the worker's",
        models_dir
    ),
    field!("trial-threads", "Threads", "default", threads),
];

/// TPE's parameters.
const TPE_FIELDS: [FieldDef; 3] = [
    field!(
        "optimizer-n-startup-trials",
        "Random trials first",
        "",
        n_startup_trials
    ),
    field!(
        "optimizer-n-ei-candidates",
        "Candidates",
        "",
        n_ei_candidates
    ),
    field!("optimizer-gamma", "Gamma (good fraction)", "", gamma),
];

/// ASHA's parameters.
const ASHA_FIELDS: [FieldDef; 3] = [
    field!(
        "optimizer-min-resource",
        "Min resource (steps)",
        "",
        min_resource
    ),
    field!(
        "optimizer-max-resource",
        "Max resource (steps)",
        "",
        max_resource
    ),
    field!(
        "optimizer-reduction-factor",
        "Reduction factor (eta)",
        "",
        reduction_factor
    ),
];

/// The median rule's parameters.
const MEDIAN_FIELDS: [FieldDef; 3] = [
    field!(
        "stopping-min-finished",
        "Finished trials first",
        "",
        min_finished
    ),
    field!("stopping-warmup-steps", "Warm-up steps", "", warmup_steps),
    field!(
        "stopping-interval-steps",
        "Check every (steps)",
        "",
        interval_steps
    ),
];

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
                            TrialKind::Synthetic => text_fields(form, errors, &SYNTHETIC_FIELDS).into_any(),
                            TrialKind::Command => view! {
                                {text_fields(form, errors, &COMMAND_FIELDS)}
                                <AreaField form errors id="trial-args"
                                    label="Arguments, one a line ({name} takes a parameter)"
                                    get=|f| f.args.clone() set=|f, v| f.args = v />
                                <AreaField form errors id="trial-env" label="Environment (KEY=VALUE lines)"
                                    get=|f| f.env.clone() set=|f, v| f.env = v />
                            }.into_any(),
                            TrialKind::EoCnn => text_fields(form, errors, &EO_CNN_FIELDS).into_any(),
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
                                OptimizerKind::Tpe => text_fields(form, errors, &TPE_FIELDS).into_any(),
                                OptimizerKind::Asha => text_fields(form, errors, &ASHA_FIELDS).into_any(),
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
                            {text_fields(form, errors, &MEDIAN_FIELDS)}
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
                        <TextField form errors id="exp-prefetch" label="Prefetch per slot"
                            placeholder="0: only free slots"
                            get=|f| f.prefetch.clone() set=|f, v| f.prefetch = v />
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
