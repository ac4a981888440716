//! The live view of one experiment (`#/experiments/{id}`).
//!
//! What it is: loads the experiment's snapshot (`/snapshot`: the experiment, its trials, their
//! curves and the events of the worker timeline, read in one transaction with the number of
//! the last event it includes), then, while it runs, follows the events after that number
//! (a `fetch` of `/api/experiments/{id}/events?after=N&batch=500`, Server-Sent Events read
//! by [`crate::sse`]: the bytes at hand are taken every [`READ_EVERY_MS`], for at most
//! [`EVENT_BUDGET_MS`] a task, so that a fast experiment, whose server sends over a thousand
//! small messages a second, costs the page a few dozen short tasks a second instead of a
//! task per message as an `EventSource` would; a stream that breaks off is opened again
//! after the last event applied): no event is missed and none is replayed, so that opening
//! an experiment of 1000 trials of 100 steps costs one fetch, not 100 000 events. The stream
//! is closed once the experiment has ended; an experiment that has already ended is drawn
//! from the snapshot alone. Every event goes into [`LiveData`] (plain `Vec`s, no signal) and
//! marks the view as changed; however many events arrive, the curves are drawn at most once
//! a frame, and at most every [`CURVES_REDRAW_MS`] while the experiment runs (a timer waits
//! for a part's turn, so that waiting costs no animation frames): a frame strokes only the
//! segments that are new since the last one; the whole chart is drawn again, the ended
//! trials' curves from a cached layer, only when that layer, the scales, the best trial or
//! some trial's state (its colour) change. The HTML parts (counts,
//! leaderboard) and the other charts are refreshed at most every [`DOM_REFRESH_MS`]; while
//! the experiment runs, a chart scrolled out of view is not drawn, and the parallel
//! coordinates at most every [`PARALLEL_REDRAW_MS`].
//! Shows: the learning curves, a leaderboard, the worker timeline (one row per worker slot:
//! async keeps every slot busy, BSP shows rounds), parallel coordinates of the parameters vs
//! the metric, and for an ablation study each component's delta against the baseline
//! (`/ablation`, fetched again when a trial ends). A Cancel button (user token).
//!
//! What it is not: no decisions about trials; the server's driver makes them.
//!
//! Hooks for browser tests: `#live[data-state]` (the experiment's state), `#live[data-events]`
//! (last event number), `#live[data-snapshot-event]` (the snapshot's last event),
//! `#live[data-draw-ms]` (time of the last frame's drawing), `#live[data-draw-max-ms]` and
//! `#live[data-draw-total-ms]` (the longest and the sum of the frames' drawing),
//! `#live[data-first-render-ms]` (from the view's creation to its first frame with data),
//! `#live[data-received]` (events taken from the stream) and `#live[data-stale]` (of those,
//! events the snapshot or the stream had already given: 0 unless the stream repeats itself),
//! `#live[data-timing]` (time taken by the events, and the longest redraws of each part),
//! `#live[data-snapshot-ms]` (the snapshot's fetch and parse, and the making of the data),
//! `#live[data-connection]` (`loading`, `live`, `reconnecting`,
//! `ended`, `error`); `#curves[data-points]` (points drawn), `#curves[data-trials]`,
//! `#curves[data-frames]` (draws so far); `#timeline[data-bars]`, `#timeline[data-lanes]`,
//! `#timeline[data-attempts]` (bars of attempts after the first), `#timeline-use` (the share
//! of slot time used);
//! `#parallel[data-lines]`; `#ablation-chart[data-bars]`; `#leaderboard tr[data-trial]`;
//! `#trial-counts`; `#cancel-experiment`, `#cancel-error`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use albedo_shared::api::{AblationReport, ExperimentSummary, TrialCounts};
use albedo_shared::events::EventRecord;
use albedo_shared::experiment::{Domain, ExperimentId, ExperimentState, TrialId, TrialState};
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::api::{
    ChunkReader, cancel_experiment, events_url_after, fetch_ablation, fetch_snapshot, open_stream,
};
use crate::browser::{context_2d, dpr, next_frame, now_ms, on_screen, sleep};
use crate::charts::{
    self, Axis, AxisHint, CurvesLayout, draw_ablation, draw_best, draw_curve_axes,
    draw_curve_paths, draw_parallel, draw_stop_marks, draw_timeline, parameter_axes, state_colour,
};
use crate::error::FrontendError;
use crate::experiments::fmt_value;
use crate::live::LiveData;
use crate::route::Route;
use crate::sse;
use crate::token::UserToken;

/// Width of the charts in CSS pixels.
pub const CHART_WIDTH: f64 = 760.0;
/// Height of the curves chart.
pub const CURVES_HEIGHT: f64 = 320.0;
/// Height of the parallel coordinates.
pub const PARALLEL_HEIGHT: f64 = 240.0;
/// Rows of the leaderboard.
pub const LEADERBOARD_ROWS: usize = 15;
/// Least time between two refreshes of the HTML parts and the charts other than the curves.
pub const DOM_REFRESH_MS: f64 = 200.0;
/// Least time between two redraws of the parallel coordinates while the experiment runs (a
/// thousand lines across the chart are the costliest raster of the page).
pub const PARALLEL_REDRAW_MS: f64 = 1000.0;
/// Least time between two redraws of the layer of ended trials' curves (each is followed by
/// a full drawing of the curves; in between, a trial that ended is drawn in its new colour
/// over its running one).
pub const LAYER_REDRAW_MS: f64 = 500.0;
/// Least time between two redraws of the curves while the experiment runs (20 a second:
/// every canvas change costs the browser a commit and a raster, however little was drawn).
pub const CURVES_REDRAW_MS: f64 = 50.0;
/// One animation frame at 60 Hz.
pub const FRAME_MS: f64 = 1000.0 / 60.0;
/// Most events per message the view asks of the stream (`?batch=`).
pub const EVENT_BATCH: usize = 500;
/// Time between two reads of the event stream: each read takes all the bytes at hand, so
/// that a fast experiment costs a few dozen short tasks a second, not one per message.
pub const READ_EVERY_MS: i32 = 40;
/// Most time the events may take in one go; the rest waits for the next task, so that a
/// long backlog (a reconnection) does not hold a frame back.
pub const EVENT_BUDGET_MS: f64 = 4.0;
/// Wait before a stream that broke off is opened again.
pub const RECONNECT_MS: i32 = 1000;

/// One row of the leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardRow {
    /// Rank from 1.
    pub rank: usize,
    /// Trial id.
    pub trial: u64,
    /// Objective value.
    pub value: f64,
    /// State.
    pub state: TrialState,
    /// Parameters, `name=value` joined.
    pub params: String,
    /// Steps reported.
    pub steps: usize,
    /// Why it stopped or failed.
    pub reason: Option<String>,
}

/// The reactive handles the frames refresh.
#[derive(Debug, Clone, Copy)]
struct Shown {
    state: RwSignal<Option<ExperimentState>>,
    counts: RwSignal<TrialCounts>,
    board: RwSignal<Vec<BoardRow>>,
    connection: RwSignal<&'static str>,
    has_ablation: RwSignal<bool>,
    /// The share of slot time used ([`LiveData::slot_use`]), in percent.
    slot_use: RwSignal<Option<u32>>,
}

/// What the view keeps outside signals.
struct Live {
    id: ExperimentId,
    data: RefCell<Option<LiveData>>,
    ablation: RefCell<Option<AblationReport>>,
    axes: RefCell<Vec<(String, AxisHint)>>,
    layer: RefCell<Option<Layer>>,
    curves_shown: RefCell<CurvesShown>,
    frame_pending: Cell<bool>,
    /// The curves have changed since they were last drawn, and when that was.
    curves_dirty: Cell<bool>,
    last_curves_ms: Cell<f64>,
    alive: Cell<bool>,
    dom_dirty: Cell<bool>,
    last_dom_ms: Cell<f64>,
    last_parallel_ms: Cell<f64>,
    frames: Cell<u64>,
    /// When the view was made (`performance.now()`).
    born_ms: f64,
    /// Whether a frame with data has been drawn.
    rendered: Cell<bool>,
    /// The longest frame's drawing, and the sum of them all (milliseconds).
    draw_max_ms: Cell<f64>,
    draw_total_ms: Cell<f64>,
    /// Time spent (milliseconds): taking events in (in all), the longest redraw of the layer
    /// of ended curves, the longest redraw of the other charts, the longest HTML refresh.
    timing: Cell<[f64; 4]>,
    /// Events taken from the stream, and those of them already applied.
    received: Cell<u64>,
    stale: Cell<u64>,
    ablation_busy: Cell<bool>,
    ablation_again: Cell<bool>,
    /// Cancels the stream's `fetch` in flight.
    stream: RefCell<Option<web_sys::AbortController>>,
    /// The stream is to stay closed (the experiment ended, or the view went).
    stream_closed: Cell<bool>,
    /// Reads of the stream that brought bytes.
    reads: Cell<u64>,
    canvases: Canvases,
    shown: Shown,
}

/// The curves of ended trials (which never change) drawn once into a canvas of their own,
/// so that a frame draws them with one `drawImage` and strokes only the running ones.
#[derive(Default)]
struct Layer {
    canvas: Option<web_sys::HtmlCanvasElement>,
    /// Scales and size it was drawn at (bits of the floats).
    key: Vec<u64>,
    /// Which trials (by index) it holds.
    held: Vec<bool>,
    /// Points it holds.
    points: usize,
    /// When it was last drawn.
    drawn_ms: f64,
}

impl Layer {
    fn holds(&self, i: usize) -> bool {
        self.held.get(i).copied().unwrap_or(false)
    }

    /// Redraws the layer when the scales changed; adds the trials that have ended since it
    /// was last drawn (at most every [`LAYER_REDRAW_MS`]; until then they are drawn live).
    /// Returns whether it changed.
    fn update(&mut self, data: &LiveData, l: &CurvesLayout, dpr: f64) -> bool {
        let key = layout_key(l, dpr);
        let now = now_ms();
        let rescaled = key != self.key;
        let newly_ended = data
            .trials
            .iter()
            .enumerate()
            .any(|(i, t)| t.state.is_final() && !self.holds(i));
        let due = newly_ended && now - self.drawn_ms >= LAYER_REDRAW_MS;
        if !(rescaled || due) {
            return false;
        }
        if self.canvas.is_none() {
            self.canvas = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.create_element("canvas").ok())
                .and_then(|e| e.dyn_into::<web_sys::HtmlCanvasElement>().ok());
        }
        let Some(canvas) = &self.canvas else {
            self.points = 0;
            self.held.clear();
            return true;
        };
        let Some(ctx) = context_2d(canvas) else {
            self.points = 0;
            self.held.clear();
            return true;
        };
        if rescaled {
            // Everything moved: start again.
            let (bw, bh) = ((l.w * dpr).round() as u32, (l.h * dpr).round() as u32);
            if canvas.width() != bw || canvas.height() != bh {
                canvas.set_width(bw);
                canvas.set_height(bh);
            }
            let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
            ctx.clear_rect(0.0, 0.0, f64::from(bw), f64::from(bh));
            self.held.clear();
            self.points = 0;
        }
        // Add the trials that ended since (ended trials never change).
        let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
        let held = &self.held;
        let add: Vec<bool> = data
            .trials
            .iter()
            .enumerate()
            .map(|(i, t)| t.state.is_final() && !held.get(i).copied().unwrap_or(false))
            .collect();
        self.points += draw_curve_paths(&ctx, l, data, |i| add[i].then_some(0));
        self.held.resize(data.trials.len(), false);
        for (i, a) in add.iter().enumerate() {
            if *a {
                self.held[i] = true;
            }
        }
        self.key = key;
        self.drawn_ms = now;
        true
    }
}

/// The scales and size of a curves layout at a pixel ratio, as bits: what a drawing of the
/// curves depends on besides the data.
fn layout_key(l: &CurvesLayout, dpr: f64) -> Vec<u64> {
    [
        l.xs.d0, l.xs.d1, l.xs.p0, l.xs.p1, l.ys.d0, l.ys.d1, l.ys.p0, l.ys.p1, l.w, l.h, dpr,
    ]
    .iter()
    .map(|v| v.to_bits())
    .collect()
}

/// What the visible curves canvas shows, so that a frame adds only what is new: the
/// segments of the curves that grew, and the whole curve of a trial whose state (colour)
/// changed, drawn over the old one (tinted by it until the next full drawing, at most
/// [`LAYER_REDRAW_MS`] later). Everything is drawn again from the layer when the layer or
/// the scales change, another trial becomes the best, or the experiment has ended.
#[derive(Default)]
struct CurvesShown {
    /// [`layout_key`] of the last full drawing (empty: none yet).
    key: Vec<u64>,
    /// Points drawn of each trial (by index), and the state they were drawn in.
    points: Vec<usize>,
    states: Vec<Option<TrialState>>,
    /// The trial drawn as the best.
    best: Option<TrialId>,
}

#[derive(Clone, Copy)]
struct Canvases {
    curves: NodeRef<leptos::html::Canvas>,
    timeline: NodeRef<leptos::html::Canvas>,
    parallel: NodeRef<leptos::html::Canvas>,
    ablation: NodeRef<leptos::html::Canvas>,
    root: NodeRef<leptos::html::Div>,
}

impl Live {
    /// Asks for a redraw at the next animation frame (once, however often it is asked).
    fn schedule(self: &Rc<Self>) {
        self.dom_dirty.set(true);
        self.curves_dirty.set(true);
        self.come_back();
    }

    /// How long before each part (curves, the rest) may be drawn again: at most every
    /// [`CURVES_REDRAW_MS`] and [`DOM_REFRESH_MS`] while the experiment runs, at once when it
    /// has ended; `None` for a part with nothing new.
    fn due_in(&self, now: f64) -> [Option<f64>; 2] {
        let ended = self
            .data
            .borrow()
            .as_ref()
            .is_some_and(|d| d.state != ExperimentState::Running);
        let part = |dirty: bool, last: f64, every: f64| {
            dirty.then_some(if ended { 0.0 } else { last + every - now })
        };
        [
            part(
                self.curves_dirty.get(),
                self.last_curves_ms.get(),
                CURVES_REDRAW_MS,
            ),
            part(self.dom_dirty.get(), self.last_dom_ms.get(), DOM_REFRESH_MS),
        ]
    }

    fn frame(self: &Rc<Self>) {
        self.frame_pending.set(false);
        if !self.alive.get() {
            return;
        }
        let started = now_ms();
        // A part is drawn in the frame nearest to its time.
        let [curves, slow] = self
            .due_in(started)
            .map(|d| d.is_some_and(|ms| ms <= FRAME_MS / 2.0));
        if !(curves || slow) {
            self.come_back();
            return;
        }
        self.frames.set(self.frames.get() + 1);
        if curves {
            self.last_curves_ms.set(started);
            self.curves_dirty.set(false);
            self.draw_curves();
        }
        if slow {
            self.last_dom_ms.set(started);
            self.dom_dirty.set(false);
            let t = now_ms();
            self.draw_others();
            self.note_time(2, now_ms() - t, false);
        }
        let took = now_ms() - started;
        self.draw_max_ms.set(self.draw_max_ms.get().max(took));
        self.draw_total_ms.set(self.draw_total_ms.get() + took);
        if let Some(root) = self.canvases.root.get_untracked() {
            let _ = root.set_attribute("data-draw-ms", &format!("{took:.1}"));
            let _ = root.set_attribute(
                "data-draw-max-ms",
                &format!("{:.1}", self.draw_max_ms.get()),
            );
            let _ = root.set_attribute(
                "data-draw-total-ms",
                &format!("{:.1}", self.draw_total_ms.get()),
            );
            if !self.rendered.get() && self.data.borrow().is_some() {
                self.rendered.set(true);
                let _ = root.set_attribute(
                    "data-first-render-ms",
                    &format!("{:.0}", now_ms() - self.born_ms),
                );
            }
        }
        if slow {
            let t = now_ms();
            self.refresh_dom();
            self.note_time(3, now_ms() - t, false);
        }
        self.come_back();
    }

    /// Asks for a frame when something drawn is not current: the next animation frame when
    /// a part is due by then, else a timer first, so that waiting for a part's turn costs
    /// the page no frames.
    fn come_back(self: &Rc<Self>) {
        let Some(wait) = self.due_in(now_ms()).into_iter().flatten().reduce(f64::min) else {
            return;
        };
        if self.frame_pending.replace(true) {
            return;
        }
        let me = Rc::clone(self);
        if wait <= FRAME_MS {
            next_frame(move || me.frame());
        } else {
            crate::browser::after((wait - FRAME_MS).floor() as i32, move || {
                next_frame(move || me.frame())
            });
        }
    }

    /// Draws the curves: in full (the cached layer of ended trials, then the others on top)
    /// when the layer, the scales, the best trial or a trial's state changed, or the
    /// experiment has ended, else only what is new since the last frame (see
    /// [`CurvesShown`]).
    fn draw_curves(&self) {
        let data = self.data.borrow();
        let Some(data) = data.as_ref() else {
            return;
        };
        let Some(canvas) = self.canvases.curves.get_untracked() else {
            return;
        };
        let Some(ctx) = context_2d(&canvas) else {
            return;
        };
        let ratio = dpr();
        let layout = CurvesLayout::new(CHART_WIDTH, CURVES_HEIGHT, data);
        let mut layer = self.layer.borrow_mut();
        let layer = layer.get_or_insert_with(Layer::default);
        let t = now_ms();
        let layer_changed = layer.update(data, &layout, ratio);
        self.note_time(1, now_ms() - t, false);
        let key = layout_key(&layout, ratio);
        let best = data.best();
        let mut shown = self.curves_shown.borrow_mut();
        let n = data.trials.len();
        // A trial whose state changed is drawn again in its new colour: over its old
        // stroke the two translucent colours would mix, so the whole chart is drawn.
        let restyled = data
            .trials
            .iter()
            .zip(&shown.states)
            .any(|(t, drawn)| drawn.is_some_and(|s| s != t.state));
        let full = layer_changed
            || restyled
            || shown.key != key
            || shown.best != best.map(|b| b.id)
            || data.state != ExperimentState::Running;
        if full {
            charts::begin(&canvas, &ctx, CHART_WIDTH, CURVES_HEIGHT, ratio);
            draw_curve_axes(&ctx, &layout, &data.metric);
            if let Some(cached) = &layer.canvas
                && layer.points > 0
            {
                let _ = ctx.draw_image_with_html_canvas_element_and_dw_and_dh(
                    cached,
                    0.0,
                    0.0,
                    CHART_WIDTH,
                    CURVES_HEIGHT,
                );
            }
            draw_curve_paths(&ctx, &layout, data, |i| (!layer.holds(i)).then_some(0));
            draw_stop_marks(&ctx, &layout, data, |_| true);
            if let Some(b) = best {
                draw_best(&ctx, &layout, b, 0);
            }
            *shown = CurvesShown {
                key,
                points: data.trials.iter().map(|t| t.steps.len()).collect(),
                states: data.trials.iter().map(|t| Some(t.state)).collect(),
                best: best.map(|b| b.id),
            };
        } else {
            // Only what is new, over what is there.
            shown.points.resize(n, 0);
            shown.states.resize(n, None);
            let from: Vec<Option<usize>> = data
                .trials
                .iter()
                .zip(shown.points.iter().zip(&shown.states))
                .map(|(t, (drawn, state))| {
                    if *state != Some(t.state) {
                        Some(0)
                    } else if t.steps.len() > *drawn {
                        Some(drawn.saturating_sub(1))
                    } else {
                        None
                    }
                })
                .collect();
            let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
            draw_curve_paths(&ctx, &layout, data, |i| from[i]);
            draw_stop_marks(&ctx, &layout, data, |i| {
                shown.states[i] != Some(TrialState::Stopped)
            });
            if let Some(b) = best
                && let Some(i) = data.trials.iter().position(|t| t.id == b.id)
                && let Some(first) = from[i]
            {
                draw_best(&ctx, &layout, b, first);
            }
            for (i, t) in data.trials.iter().enumerate() {
                shown.points[i] = t.steps.len();
                shown.states[i] = Some(t.state);
            }
        }
        let points: usize = shown.points.iter().sum();
        let set = |k: &str, v: String| {
            let _ = canvas.set_attribute(k, &v);
        };
        set("data-points", points.to_string());
        set("data-cached-points", layer.points.to_string());
        set(
            "data-trials",
            data.trials
                .iter()
                .filter(|t| !t.steps.is_empty())
                .count()
                .to_string(),
        );
        set("data-frames", self.frames.get().to_string());
        if let Some(root) = self.canvases.root.get_untracked() {
            let _ = root.set_attribute("data-events", &data.last_event.to_string());
            let _ = root.set_attribute("data-received", &self.received.get().to_string());
            let _ = root.set_attribute("data-stale", &self.stale.get().to_string());
            let [events, layer, others, dom] = self.timing.get();
            let reads = self.reads.get();
            let _ = root.set_attribute(
                "data-timing",
                &format!("events {events:.0} ms in {reads} reads, layer max {layer:.1} ms, charts max {others:.1} ms, html max {dom:.1} ms"),
            );
        }
    }

    /// Draws the timeline, the parallel coordinates and the ablation bars. While the
    /// experiment runs, a chart scrolled out of view is left as it is (it is drawn at the
    /// first refresh after it comes into view), and the parallel coordinates are drawn at
    /// most every [`PARALLEL_REDRAW_MS`]; once it has ended, all of them.
    fn draw_others(&self) {
        let data = self.data.borrow();
        let Some(data) = data.as_ref() else {
            return;
        };
        let ratio = dpr();
        let c = self.canvases;
        let running = data.state == ExperimentState::Running;
        let due = |canvas: &web_sys::HtmlCanvasElement| !running || on_screen(canvas);
        let used = data.slot_use().map(|u| (u * 100.0).round() as u32);
        if self.shown.slot_use.try_get_untracked() != Some(used) {
            self.shown.slot_use.try_set(used);
        }
        if let Some(canvas) = c.timeline.get_untracked()
            && due(&canvas)
            && let Some(ctx) = context_2d(&canvas)
        {
            let h = (data.lanes.len().max(1) as f64 * 24.0 + 30.0).max(80.0);
            charts::begin(&canvas, &ctx, CHART_WIDTH, h, ratio);
            let _ =
                canvas.set_attribute("style", &format!("width: {CHART_WIDTH}px; height: {h}px"));
            let bars = draw_timeline(&ctx, CHART_WIDTH, h, data);
            let _ = canvas.set_attribute("data-bars", &bars.to_string());
            let _ = canvas.set_attribute("data-lanes", &data.lanes.len().to_string());
            let retries = data.leases.iter().filter(|l| l.attempt > 1).count();
            let _ = canvas.set_attribute("data-attempts", &retries.to_string());
        }
        let now = now_ms();
        if let Some(canvas) = c.parallel.get_untracked()
            && due(&canvas)
            && (!running || now - self.last_parallel_ms.get() >= PARALLEL_REDRAW_MS)
            && let Some(ctx) = context_2d(&canvas)
        {
            self.last_parallel_ms.set(now);
            charts::begin(&canvas, &ctx, CHART_WIDTH, PARALLEL_HEIGHT, ratio);
            let axes: Vec<Axis> = { parameter_axes(data, &self.axes.borrow()) };
            let lines = draw_parallel(&ctx, CHART_WIDTH, PARALLEL_HEIGHT, data, &axes);
            let _ = canvas.set_attribute("data-lines", &lines.to_string());
        }
        if let Some(canvas) = c.ablation.get_untracked()
            && let Some(ctx) = context_2d(&canvas)
            && let Some(report) = self.ablation.borrow().as_ref()
        {
            let h = report.components.len() as f64 * 26.0 + 34.0;
            charts::begin(&canvas, &ctx, CHART_WIDTH, h, ratio);
            let _ =
                canvas.set_attribute("style", &format!("width: {CHART_WIDTH}px; height: {h}px"));
            let bars = draw_ablation(&ctx, CHART_WIDTH, h, report);
            let _ = canvas.set_attribute("data-bars", &bars.to_string());
        }
    }

    fn refresh_dom(&self) {
        let shown = self.shown;
        let Some((board, counts, state)) = self.data.borrow().as_ref().map(Self::dom_parts) else {
            return;
        };
        if shown.board.try_get_untracked().as_ref() != Some(&board) {
            shown.board.try_set(board);
        }
        if shown.counts.try_get_untracked().as_ref() != Some(&counts) {
            shown.counts.try_set(counts);
        }
        if shown.state.try_get_untracked() != Some(Some(state)) {
            shown.state.try_set(Some(state));
        }
    }

    fn dom_parts(data: &LiveData) -> (Vec<BoardRow>, TrialCounts, ExperimentState) {
        let board: Vec<BoardRow> = data
            .leaderboard(LEADERBOARD_ROWS)
            .into_iter()
            .enumerate()
            .map(|(i, t)| BoardRow {
                rank: i + 1,
                trial: t.id.0,
                value: t.value.unwrap_or(f64::NAN),
                state: t.state,
                params: t
                    .params
                    .iter()
                    .map(|(k, v)| format!("{k}={}", short_value(v)))
                    .collect::<Vec<_>>()
                    .join(", "),
                steps: t.steps.len(),
                reason: t.reason.clone(),
            })
            .collect();
        (board, data.counts(), data.state)
    }

    /// Adds `ms` to timing `k` (`sum`), or keeps the larger.
    fn note_time(&self, k: usize, ms: f64, sum: bool) {
        let mut t = self.timing.get();
        t[k] = if sum { t[k] + ms } else { t[k].max(ms) };
        self.timing.set(t);
    }

    /// Takes one SSE message: one event, or a `batch` of them.
    fn on_message(self: &Rc<Self>, kind: &str, text: &str) {
        let t = now_ms();
        if kind == "batch" {
            match serde_json::from_str::<Vec<EventRecord>>(text) {
                Ok(list) => {
                    for rec in &list {
                        self.take_event(rec);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "unreadable batch of events"),
            }
        } else {
            match serde_json::from_str::<EventRecord>(text) {
                Ok(rec) => self.take_event(&rec),
                Err(e) => tracing::warn!(error = %e, "unreadable event"),
            }
        }
        self.note_time(0, now_ms() - t, true);
    }

    fn take_event(self: &Rc<Self>, rec: &EventRecord) {
        if !self.alive.get() {
            return;
        }
        let applied = match self.data.borrow_mut().as_mut() {
            Some(d) => d.apply(rec),
            None => return,
        };
        self.received.set(self.received.get() + 1);
        if !applied.changed {
            self.stale.set(self.stale.get() + 1);
        }
        if applied.trial_ended && self.shown.has_ablation.get_untracked() {
            self.refresh_ablation();
        }
        if applied.experiment_ended {
            self.close_stream("ended");
            if self.shown.has_ablation.get_untracked() {
                self.refresh_ablation();
            }
        }
        if applied.changed {
            self.schedule();
        }
    }

    /// Closes the stream for good and shows why.
    fn close_stream(&self, why: &'static str) {
        self.stream_closed.set(true);
        if let Some(c) = self.stream.borrow_mut().take() {
            c.abort();
        }
        self.shown.connection.try_set(why);
    }

    /// Follows the events after event `after` (the snapshot's last) until the experiment
    /// ends or the view goes. A stream that breaks off is opened again after the last event
    /// applied (as an `EventSource` would with `Last-Event-ID`); an error status closes it.
    async fn follow(self: Rc<Self>, mut after: u64) {
        while !self.stream_closed.get() {
            let Ok(controller) = web_sys::AbortController::new() else {
                self.shown.connection.try_set("error");
                return;
            };
            *self.stream.borrow_mut() = Some(controller.clone());
            let url = format!("{}&batch={EVENT_BATCH}", events_url_after(&self.id, after));
            match open_stream(&url, &controller.signal()).await {
                Ok(reader) => {
                    self.shown.connection.try_set("live");
                    self.read_stream(reader).await;
                }
                Err(e @ FrontendError::Http { .. }) => {
                    if !self.stream_closed.get() {
                        tracing::warn!(error = %e, "the event stream was refused");
                        self.shown.connection.try_set("error");
                    }
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "the event stream did not open"),
            }
            if self.stream_closed.get() {
                return;
            }
            self.shown.connection.try_set("reconnecting");
            sleep(RECONNECT_MS).await;
            if let Some(d) = self.data.borrow().as_ref() {
                after = d.last_event;
            }
        }
    }

    /// Takes the stream's messages until it ends, breaks off or is closed: every
    /// [`READ_EVERY_MS`] the bytes at hand, at most [`EVENT_BUDGET_MS`] of work per task.
    async fn read_stream(self: &Rc<Self>, mut reader: ChunkReader) {
        let mut parser = sse::Parser::default();
        loop {
            match reader.read_at_hand().await {
                Ok(Some(bytes)) => parser.push(&bytes),
                Ok(None) | Err(_) => return,
            }
            self.reads.set(self.reads.get() + 1);
            let mut started = now_ms();
            while let Some(m) = parser.next_message() {
                if self.stream_closed.get() {
                    return;
                }
                self.on_message(&m.event, &m.data);
                if now_ms() - started >= EVENT_BUDGET_MS {
                    sleep(0).await;
                    started = now_ms();
                }
            }
            if self.stream_closed.get() {
                return;
            }
            sleep(READ_EVERY_MS).await;
        }
    }

    /// Fetches the ablation deltas (again, once the fetch in flight is done).
    fn refresh_ablation(self: &Rc<Self>) {
        if self.ablation_busy.replace(true) {
            self.ablation_again.set(true);
            return;
        }
        let me = Rc::clone(self);
        leptos::task::spawn_local(async move {
            loop {
                me.ablation_again.set(false);
                match fetch_ablation(&me.id).await {
                    Ok(r) => *me.ablation.borrow_mut() = Some(r),
                    Err(e) => tracing::warn!(error = %e, "ablation deltas unavailable"),
                }
                if !me.alive.get() || !me.ablation_again.get() {
                    break;
                }
            }
            me.ablation_busy.set(false);
            if me.alive.get() {
                me.schedule();
            }
        });
    }

    fn shutdown(&self) {
        self.alive.set(false);
        self.stream_closed.set(true);
        if let Some(c) = self.stream.borrow_mut().take() {
            c.abort();
        }
    }
}

/// A parameter value, short.
fn short_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                let a = f.abs();
                if a != 0.0 && !(1e-3..1e4).contains(&a) {
                    format!("{f:.2e}")
                } else {
                    format!("{}", (f * 1e4).round() / 1e4)
                }
            }
            _ => n.to_string(),
        },
        other => charts::value_label(other),
    }
}

/// The live view of experiment `id`.
#[component]
pub fn ExperimentView(id: ExperimentId) -> impl IntoView {
    let summary = RwSignal::new(None::<ExperimentSummary>);
    let load_error = RwSignal::new(None::<String>);
    let cancel_error = RwSignal::new(None::<String>);
    let cancelling = RwSignal::new(false);
    let shown = Shown {
        state: RwSignal::new(None),
        counts: RwSignal::new(TrialCounts::default()),
        board: RwSignal::new(Vec::new()),
        connection: RwSignal::new("loading"),
        has_ablation: RwSignal::new(false),
        slot_use: RwSignal::new(None),
    };
    let canvases = Canvases {
        curves: NodeRef::new(),
        timeline: NodeRef::new(),
        parallel: NodeRef::new(),
        ablation: NodeRef::new(),
        root: NodeRef::new(),
    };
    let live = Rc::new(Live {
        id: id.clone(),
        data: RefCell::new(None),
        ablation: RefCell::new(None),
        axes: RefCell::new(Vec::new()),
        layer: RefCell::new(None),
        curves_shown: RefCell::new(CurvesShown::default()),
        frame_pending: Cell::new(false),
        curves_dirty: Cell::new(false),
        last_curves_ms: Cell::new(f64::NEG_INFINITY),
        alive: Cell::new(true),
        dom_dirty: Cell::new(false),
        last_dom_ms: Cell::new(f64::NEG_INFINITY),
        last_parallel_ms: Cell::new(f64::NEG_INFINITY),
        frames: Cell::new(0),
        born_ms: now_ms(),
        rendered: Cell::new(false),
        draw_max_ms: Cell::new(0.0),
        draw_total_ms: Cell::new(0.0),
        timing: Cell::new([0.0; 4]),
        received: Cell::new(0),
        stale: Cell::new(0),
        ablation_busy: Cell::new(false),
        ablation_again: Cell::new(false),
        stream: RefCell::new(None),
        stream_closed: Cell::new(false),
        reads: Cell::new(0),
        canvases,
        shown,
    });
    let handle = StoredValue::new_local(Rc::clone(&live));
    on_cleanup(move || {
        // Closes the stream and breaks the cycle stream -> listener -> view.
        handle.try_with_value(|l| l.shutdown());
    });

    {
        let live = Rc::clone(&live);
        leptos::task::spawn_local(async move {
            let id = live.id.clone();
            let asked = now_ms();
            let snapshot = match fetch_snapshot(&id).await {
                Ok(s) => s,
                Err(e) => {
                    load_error.try_set(Some(e.to_string()));
                    live.shown.connection.try_set("error");
                    return;
                }
            };
            if !live.alive.get() {
                return;
            }
            let fetched = now_ms();
            let s = snapshot.experiment.clone();
            let after = snapshot.last_event;
            let ended = s.state != ExperimentState::Running;
            let data = LiveData::from_snapshot(snapshot);
            if let Some(root) = live.canvases.root.get_untracked() {
                let _ = root.set_attribute("data-snapshot-event", &after.to_string());
                let _ = root.set_attribute(
                    "data-snapshot-ms",
                    &format!(
                        "fetch and parse {:.0} ms, build {:.0} ms",
                        fetched - asked,
                        now_ms() - fetched
                    ),
                );
            }
            let axes: Vec<(String, AxisHint)> = if s.spec.params.is_empty() {
                let mut keys: Vec<(String, AxisHint)> = Vec::new();
                for t in &data.trials {
                    for k in t.params.keys() {
                        if !keys.iter().any(|(n, _)| n == k) {
                            keys.push((k.clone(), AxisHint::Infer));
                        }
                    }
                }
                keys
            } else {
                s.spec
                    .params
                    .iter()
                    .map(|p| {
                        let hint = match &p.domain {
                            Domain::Float { log: true, .. } | Domain::Int { log: true, .. } => {
                                AxisHint::Log
                            }
                            Domain::Float { .. } | Domain::Int { .. } => AxisHint::Linear,
                            Domain::Categorical { values } => AxisHint::Values(values.clone()),
                        };
                        (p.name.clone(), hint)
                    })
                    .collect()
            };
            *live.axes.borrow_mut() = axes;
            *live.data.borrow_mut() = Some(data);
            let ablation = s.spec.ablation.is_some();
            live.shown.has_ablation.try_set(ablation);
            summary.try_set(Some(s));
            if ablation {
                live.refresh_ablation();
            }
            live.schedule();
            if ended {
                live.shown.connection.try_set("ended");
            } else {
                live.follow(after).await;
            }
        });
    }

    let token = expect_context::<UserToken>().0;
    let cancel = move |_| {
        let Some(s) = summary.get_untracked() else {
            return;
        };
        cancelling.set(true);
        cancel_error.set(None);
        let t = token.get_untracked();
        leptos::task::spawn_local(async move {
            if let Err(e) = cancel_experiment(&s.id, t.as_deref()).await {
                cancel_error.try_set(Some(e.for_people()));
            }
            cancelling.try_set(false);
        });
    };

    let id_text = id.0.clone();
    let state_text = move || {
        shown
            .state
            .get()
            .or_else(|| summary.with(|s| s.as_ref().map(|s| s.state)))
            .map_or("loading", ExperimentState::as_str)
    };

    view! {
        <main
            class="live-page"
        >
            <div
                id="live"
                class="live"
                node_ref=canvases.root
                data-experiment-id=id.0.clone()
                data-state=state_text
                data-connection=move || shown.connection.get()
            >
                <div class="live-head panel">
                    <a href=Route::Experiments.href() class="back">"← Experiments"</a>
                    <h2>
                        {move || summary.with(|s| match s {
                            Some(s) => format!("{} · {}", s.id, s.name),
                            None => id_text.clone(),
                        })}
                    </h2>
                    <span id="experiment-state" class=move || format!("state-badge {}", state_text())>
                        {state_text}
                    </span>
                    <span class="connection muted">{move || match shown.connection.get() {
                        "live" => "live",
                        "reconnecting" => "reconnecting…",
                        "ended" => "",
                        "error" => "stream unavailable",
                        _ => "loading…",
                    }}</span>
                    <span id="trial-counts" class="counts">
                        {move || {
                            let c = shown.counts.get();
                            let max = summary.with(|s| s.as_ref().map_or(0, |s| s.spec.max_trials));
                            format!(
                                "{} of {max} trials done · {} running · {} queued · {} paused · {} stopped early · {} failed",
                                c.finished + c.stopped + c.failed,
                                c.running,
                                c.queued,
                                c.paused,
                                c.stopped,
                                c.failed
                            )
                        }}
                    </span>
                    <button
                        type="button"
                        id="cancel-experiment"
                        disabled=move || cancelling.get() || state_text() != "running"
                        on:click=cancel
                    >
                        "Cancel"
                    </button>
                    <p class="status error" id="cancel-error" hidden=move || cancel_error.with(Option::is_none)>
                        {move || cancel_error.get().unwrap_or_default()}
                    </p>
                    <p class="status error" id="live-error" hidden=move || load_error.with(Option::is_none)>
                        {move || load_error.get().map(|e| format!("Could not load the experiment: {e}")).unwrap_or_default()}
                    </p>
                    <p class="muted spec-line">{move || summary.with(|s| s.as_ref().map(spec_line))}</p>
                </div>
                <div class="live-grid">
                    <section class="panel">
                        <h3>"Learning curves"</h3>
                        <div class="legend-row">
                            {[TrialState::Running, TrialState::Finished, TrialState::Stopped, TrialState::Paused, TrialState::Failed]
                                .into_iter()
                                .map(|s| view! {
                                    <span class="key"><span class="swatch" style=format!("background: {}", state_colour(s))></span>{s.as_str()}</span>
                                })
                                .collect_view()}
                            <span class="key"><span class="swatch best"></span>"best"</span>
                            <span class="key">"✕ stopped early"</span>
                        </div>
                        <canvas
                            id="curves"
                            node_ref=canvases.curves
                            style=format!("width: {CHART_WIDTH}px; height: {CURVES_HEIGHT}px")
                            data-background=charts::BACKGROUND
                        ></canvas>
                        <h3>"Parameters vs metric"</h3>
                        <canvas
                            id="parallel"
                            node_ref=canvases.parallel
                            style=format!("width: {CHART_WIDTH}px; height: {PARALLEL_HEIGHT}px")
                        ></canvas>
                        <Show when=move || shown.has_ablation.get()>
                            <h3>"Ablation: each component's effect (delta against the baseline)"</h3>
                            <canvas id="ablation-chart" node_ref=canvases.ablation></canvas>
                        </Show>
                        <h3>
                            "Worker timeline "
                            <span class="muted" id="timeline-use">{move || {
                                let mode = summary.with(|s| s.as_ref().map(|s| s.spec.mode));
                                shown.slot_use.get().map(|p| {
                                    let mode = match mode {
                                        Some(albedo_shared::experiment::Mode::Bsp) => "BSP",
                                        _ => "async",
                                    };
                                    format!("· slots busy {p}% of the time ({mode})")
                                })
                            }}</span>
                        </h3>
                        <canvas id="timeline" node_ref=canvases.timeline></canvas>
                        <p class="muted hint">
                            <small>
                                "A row per worker slot (a lease takes its worker's lowest free row), a bar per attempt: grey ended with a lost worker, and the trial ran again elsewhere (12·2 is trial 12's attempt 2). Async keeps slots busy; BSP leaves them idle until a round's slowest trial ends."
                            </small>
                        </p>
                    </section>
                    <section class="panel leaderboard-panel">
                        <h3>"Leaderboard"</h3>
                        <table id="leaderboard" class="table">
                            <thead>
                                <tr>
                                    <th>"#"</th>
                                    <th>"Trial"</th>
                                    <th>"Value"</th>
                                    <th>"State"</th>
                                    <th>"Parameters"</th>
                                </tr>
                            </thead>
                            <tbody>
                                <For
                                    each=move || shown.board.get()
                                    key=|r| (r.rank, r.trial, r.value.to_bits(), r.state, r.steps)
                                    let:r
                                >
                                    <tr data-trial=r.trial.to_string() data-state=r.state.as_str()>
                                        <td class="num">{r.rank}</td>
                                        <td class="num">{r.trial}</td>
                                        <td class="num">{fmt_value(r.value)}</td>
                                        <td title=r.reason.clone().unwrap_or_default()>
                                            <span class="swatch" style=format!("background: {}", state_colour(r.state))></span>
                                            {r.state.as_str()}
                                        </td>
                                        <td class="params">{r.params.clone()}</td>
                                    </tr>
                                </For>
                            </tbody>
                        </table>
                        <p class="muted" hidden=move || !shown.board.with(Vec::is_empty)>
                            "No trial has reported yet."
                        </p>
                    </section>
                </div>
            </div>
        </main>
    }
}

/// One line about the spec: optimizer or ablation, stopping, mode, parallelism.
fn spec_line(s: &ExperimentSummary) -> String {
    let spec = &s.spec;
    let what = match (&spec.optimizer, &spec.ablation) {
        (_, Some(a)) => format!("ablation of {} components", a.components.len()),
        (Some(o), None) => {
            let name = serde_json::to_value(o)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_string))
                .unwrap_or_default();
            format!("{name} search over {} parameters", spec.params.len())
        }
        (None, None) => String::new(),
    };
    let stopping = match spec.early_stopping {
        albedo_shared::experiment::EarlyStoppingSpec::None {} => "no early stopping",
        albedo_shared::experiment::EarlyStoppingSpec::Median { .. } => "median stopping rule",
    };
    let mode = match spec.mode {
        albedo_shared::experiment::Mode::Async => "async",
        albedo_shared::experiment::Mode::Bsp => "BSP",
    };
    format!(
        "{what} · {} {} · {stopping} · {mode} · parallelism {}",
        spec.metric,
        match spec.direction {
            albedo_shared::experiment::Direction::Maximize => "maximised",
            albedo_shared::experiment::Direction::Minimize => "minimised",
        },
        spec.parallelism
            .map_or("all free slots".to_string(), |p| p.to_string())
    )
}
