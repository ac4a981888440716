//! The live view's charts on 2D canvases: learning curves, the worker timeline, parallel
//! coordinates and the ablation bars.
//!
//! What it is: pure layout (axis scales, ticks, where a trial's polyline goes) and the
//! drawing of [`LiveData`] on a `CanvasRenderingContext2d`. Curves are drawn as one path per
//! trial state (each trial a polyline in it), so that 1000 trials of 100 points are 5 strokes
//! of 100 000 segments; early-stopped trials get a cross at their last point; the best trial
//! is drawn on top, thicker.
//!
//! What it is not: no data handling ([`crate::live`]) and no scheduling of redraws
//! ([`crate::liveview`]).

use albedo_shared::api::AblationReport;
use albedo_shared::experiment::{Direction, TrialState};
use serde_json::Value;
use web_sys::CanvasRenderingContext2d as Ctx;

use crate::live::LiveData;

/// Background of every chart.
pub const BACKGROUND: &str = "#ffffff";
const AXIS: &str = "#8a929c";
const GRID: &str = "#eceef1";
const TEXT: &str = "#4a525c";
const FONT: &str = "11px system-ui, sans-serif";

/// The colour of a trial state (curves, timeline bars, legend, leaderboard dots).
pub fn state_colour(s: TrialState) -> &'static str {
    match s {
        TrialState::Queued => "#868e96",
        TrialState::Running => "#2f9e44",
        TrialState::Paused => "#7048e8",
        TrialState::Finished => "#1c7ed6",
        TrialState::Stopped => "#e8590c",
        TrialState::Failed => "#c92a2a",
    }
}

/// States in drawing order (later on top).
pub const DRAW_ORDER: [TrialState; 5] = [
    TrialState::Failed,
    TrialState::Stopped,
    TrialState::Finished,
    TrialState::Paused,
    TrialState::Running,
];

/// About `n` round tick values covering `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return vec![lo];
    }
    let step = nice_step((hi - lo) / n as f64);
    let first = (lo / step).ceil() * step;
    let mut out = Vec::new();
    let mut k = 0.0;
    while first + k * step <= hi + step * 1e-9 && out.len() < 50 {
        out.push(first + k * step);
        k += 1.0;
    }
    out
}

/// A tick label: short, without float noise.
pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        // Two significant digits at most: 1.5e-5, 1e-5.
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A linear (or log) map from data to pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Data at the low pixel end.
    pub d0: f64,
    /// Data at the high pixel end.
    pub d1: f64,
    /// Pixel of `d0`.
    pub p0: f64,
    /// Pixel of `d1`.
    pub p1: f64,
    /// Log10 scale (data > 0).
    pub log: bool,
}

impl Scale {
    /// Pixel of a data value.
    pub fn px(&self, v: f64) -> f64 {
        let (a, b, x) = if self.log {
            (
                self.d0.max(1e-300).log10(),
                self.d1.max(1e-300).log10(),
                v.max(1e-300).log10(),
            )
        } else {
            (self.d0, self.d1, v)
        };
        if b == a {
            return (self.p0 + self.p1) / 2.0;
        }
        self.p0 + (x - a) / (b - a) * (self.p1 - self.p0)
    }
}

/// The y range of the curves: the values' range widened to round bounds (a tenth of a
/// power of ten that fits the range about 5 times), so that it changes only when a value
/// crosses one of them; a flat range is widened by 0.5 each way.
pub fn value_axis(range: Option<(f64, f64)>) -> (f64, f64) {
    match range {
        None => (0.0, 1.0),
        Some((lo, hi)) if !(lo.is_finite() && hi.is_finite()) => (0.0, 1.0),
        Some((lo, hi)) if hi - lo < 1e-9 => (lo - 0.5, hi + 0.5),
        Some((lo, hi)) => {
            let step = nice_step((hi - lo) / 5.0);
            ((lo / step).floor() * step, (hi / step).ceil() * step)
        }
    }
}

/// The round step (1, 2, 2.5 or 5 times a power of ten) at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Prepares a canvas of `w` x `h` CSS pixels at `dpr`: sizes its buffer, clears it.
pub fn begin(canvas: &web_sys::HtmlCanvasElement, ctx: &Ctx, w: f64, h: f64, dpr: f64) {
    let (bw, bh) = ((w * dpr).round() as u32, (h * dpr).round() as u32);
    if canvas.width() != bw || canvas.height() != bh {
        canvas.set_width(bw);
        canvas.set_height(bh);
    }
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.set_fill_style_str(BACKGROUND);
    ctx.fill_rect(0.0, 0.0, w, h);
    ctx.set_font(FONT);
}

fn text(ctx: &Ctx, s: &str, x: f64, y: f64, align: &str, colour: &str) {
    ctx.set_text_align(align);
    ctx.set_fill_style_str(colour);
    let _ = ctx.fill_text(s, x, y);
}

fn line(ctx: &Ctx, x0: f64, y0: f64, x1: f64, y1: f64) {
    ctx.move_to(x0, y0);
    ctx.line_to(x1, y1);
}

/// Where the curves chart puts steps and values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvesLayout {
    /// Steps to pixels.
    pub xs: Scale,
    /// Values to pixels.
    pub ys: Scale,
    /// Chart width.
    pub w: f64,
    /// Chart height.
    pub h: f64,
}

impl CurvesLayout {
    /// The layout of `data` in `w` x `h` pixels: steps from 1 to the largest (or planned)
    /// step, values over round bounds (so that the scales, and the cached layer of ended
    /// trials, rarely change).
    pub fn new(w: f64, h: f64, data: &LiveData) -> Self {
        let (left, right, top, bottom) = (48.0, 12.0, 12.0, 28.0);
        let max_step = data.max_step.max(data.planned_steps.unwrap_or(1)).max(2);
        let (lo, hi) = value_axis(data.value_range);
        CurvesLayout {
            xs: Scale {
                d0: 1.0,
                d1: f64::from(max_step),
                p0: left,
                p1: w - right,
                log: false,
            },
            ys: Scale {
                d0: lo,
                d1: hi,
                p0: h - bottom,
                p1: top,
                log: false,
            },
            w,
            h,
        }
    }
}

/// Draws the curves chart's grid, axes and labels.
pub fn draw_curve_axes(ctx: &Ctx, l: &CurvesLayout, metric: &str) {
    let (xs, ys, w, h) = (l.xs, l.ys, l.w, l.h);
    let (left, right, top, bottom) = (xs.p0, w - xs.p1, ys.p1, h - ys.p0);
    ctx.set_line_width(1.0);
    ctx.set_stroke_style_str(GRID);
    ctx.begin_path();
    let yt = nice_ticks(ys.d0, ys.d1, 5);
    for v in &yt {
        let y = ys.px(*v).round() + 0.5;
        line(ctx, left, y, w - right, y);
    }
    ctx.stroke();
    for v in &yt {
        text(
            ctx,
            &tick_label(*v),
            left - 6.0,
            ys.px(*v) + 4.0,
            "right",
            TEXT,
        );
    }
    // Steps are whole numbers.
    for v in nice_ticks(1.0, xs.d1, 8)
        .into_iter()
        .filter(|v| v.fract() == 0.0)
    {
        text(
            ctx,
            &tick_label(v),
            xs.px(v),
            h - bottom + 14.0,
            "center",
            TEXT,
        );
    }
    text(ctx, "step", w - right, h - 4.0, "right", TEXT);
    text(ctx, metric, left + 4.0, top + 8.0, "left", TEXT);
    ctx.set_stroke_style_str(AXIS);
    ctx.begin_path();
    line(ctx, left + 0.5, top, left + 0.5, h - bottom + 0.5);
    line(ctx, left, h - bottom + 0.5, w - right, h - bottom + 0.5);
    ctx.stroke();
}

/// Draws the curves of the trials `from` names (by index), each from the point it gives
/// (0: the whole curve; a later point: only the segments after it, onto what is drawn
/// already), one path per state (each trial a polyline in it); returns the number of points
/// drawn anew.
pub fn draw_curve_paths(
    ctx: &Ctx,
    l: &CurvesLayout,
    data: &LiveData,
    from: impl Fn(usize) -> Option<usize>,
) -> usize {
    let mut drawn = 0;
    ctx.set_line_width(1.2);
    // Bevel joins: at 1.2 px they look the same as round ones, and a software canvas strokes
    // 100 000 segments in about half the time.
    ctx.set_line_join("bevel");
    for state in DRAW_ORDER {
        ctx.set_stroke_style_str(state_colour(state));
        ctx.set_global_alpha(if state == TrialState::Running {
            0.95
        } else {
            0.6
        });
        ctx.begin_path();
        for (i, t) in data.trials.iter().enumerate() {
            if t.state != state {
                continue;
            }
            let Some(first) = from(i).filter(|k| *k < t.steps.len()) else {
                continue;
            };
            polyline(ctx, l, t, first);
            drawn += t.steps.len() - first;
        }
        ctx.stroke();
    }
    ctx.set_global_alpha(1.0);
    drawn
}

/// Adds a trial's curve from point `first` on to the current path (a single point as a
/// short tick, so that it still shows).
fn polyline(ctx: &Ctx, l: &CurvesLayout, t: &crate::live::TrialData, first: usize) {
    for (k, (s, v)) in t.steps.iter().zip(&t.values).enumerate().skip(first) {
        let (x, y) = (l.xs.px(f64::from(*s)), l.ys.px(*v));
        if k == first {
            ctx.move_to(x, y);
            if t.steps.len() == 1 {
                ctx.line_to(x + 2.0, y);
            }
        } else {
            ctx.line_to(x, y);
        }
    }
}

/// Draws a cross at the last point of each early-stopped trial that `include` keeps (by
/// index).
pub fn draw_stop_marks(
    ctx: &Ctx,
    l: &CurvesLayout,
    data: &LiveData,
    include: impl Fn(usize) -> bool,
) {
    ctx.set_stroke_style_str(state_colour(TrialState::Stopped));
    ctx.set_line_width(1.5);
    ctx.begin_path();
    for (_, t) in data
        .trials
        .iter()
        .enumerate()
        .filter(|(i, t)| t.state == TrialState::Stopped && include(*i))
    {
        if let Some((s, v)) = t.last_point() {
            let (x, y) = (l.xs.px(f64::from(s)), l.ys.px(v));
            line(ctx, x - 3.0, y - 3.0, x + 3.0, y + 3.0);
            line(ctx, x - 3.0, y + 3.0, x + 3.0, y - 3.0);
        }
    }
    ctx.stroke();
}

/// Draws the best trial's curve from point `first` on, thicker, over the others.
pub fn draw_best(ctx: &Ctx, l: &CurvesLayout, best: &crate::live::TrialData, first: usize) {
    if best.steps.len() < 2 || first >= best.steps.len() {
        return;
    }
    ctx.set_stroke_style_str("#111827");
    ctx.set_line_width(2.2);
    ctx.begin_path();
    polyline(ctx, l, best, first);
    ctx.stroke();
}

/// Draws the worker timeline: one row per worker slot (`name · slot k`, see [`crate::live`]
/// for how slots are numbered), one bar per lease (attempt) in the colour of the state it
/// ended in, labelled with the trial (and the attempt after the first); returns the number
/// of bars.
pub fn draw_timeline(ctx: &Ctx, w: f64, h: f64, data: &LiveData) -> usize {
    let (left, right, top, bottom) = (120.0, 12.0, 6.0, 22.0);
    let Some((t0, t1)) = data.span_ms else {
        text(ctx, "No trial has started yet.", 12.0, 20.0, "left", TEXT);
        return 0;
    };
    let start = data.leases.first().map_or(t0, |l| l.start_ms).min(t1);
    let xs = Scale {
        d0: 0.0,
        d1: ((t1 - start) as f64 / 1000.0).max(1.0),
        p0: left,
        p1: w - right,
        log: false,
    };
    let rows = data.lanes.len().max(1) as f64;
    let row_h = ((h - top - bottom) / rows).min(24.0);
    for (i, lane) in data.lanes.iter().enumerate() {
        let y = top + i as f64 * row_h;
        if i % 2 == 1 {
            ctx.set_fill_style_str("#f6f7f9");
            ctx.fill_rect(left, y, w - left - right, row_h);
        }
        let label = format!("{} · slot {}", lane.worker_name, lane.slot + 1);
        text(
            ctx,
            &clip(&label, 20),
            left - 6.0,
            y + row_h / 2.0 + 4.0,
            "right",
            TEXT,
        );
    }
    // Where each bar goes: (x0, x1, y, state at the end).
    let placed: Vec<(f64, f64, f64, TrialState)> = data
        .leases
        .iter()
        .map(|lease| {
            let end = lease.end_ms.unwrap_or(t1);
            let x0 = xs.px((lease.start_ms - start) as f64 / 1000.0);
            let x1 = xs.px((end - start) as f64 / 1000.0).max(x0 + 1.5);
            let y = top + lease.lane as f64 * row_h + 2.0;
            (x0, x1, y, lease.end_state.unwrap_or(TrialState::Running))
        })
        .collect();
    // One path and one fill per state (a thousand bars are a handful of fills); a lease
    // lost with its worker ends in a red mark where the attempt broke off.
    for state in [
        TrialState::Queued,
        TrialState::Paused,
        TrialState::Finished,
        TrialState::Stopped,
        TrialState::Failed,
        TrialState::Running,
    ] {
        ctx.begin_path();
        let mut any = false;
        for (x0, x1, y, s) in &placed {
            if *s == state {
                ctx.rect(*x0, *y, x1 - x0 - 0.5, row_h - 4.0);
                any = true;
            }
        }
        if any {
            ctx.set_fill_style_str(state_colour(state));
            ctx.fill();
        }
    }
    ctx.begin_path();
    for (x0, x1, y, s) in &placed {
        if *s == TrialState::Queued {
            ctx.rect((x1 - 2.5).max(*x0), *y, 2.0, row_h - 4.0);
        }
    }
    ctx.set_fill_style_str(state_colour(TrialState::Failed));
    ctx.fill();
    if row_h >= 12.0 {
        for (lease, (x0, x1, y, _)) in data.leases.iter().zip(&placed) {
            let label = bar_label(lease.trial.0, lease.attempt);
            if x1 - x0 > 7.0 * label.chars().count() as f64 + 4.0 {
                text(
                    ctx,
                    &label,
                    (x0 + x1) / 2.0,
                    y + row_h / 2.0 + 2.0,
                    "center",
                    "#ffffff",
                );
            }
        }
    }
    let bars = placed.len();
    ctx.set_stroke_style_str(AXIS);
    ctx.set_line_width(1.0);
    ctx.begin_path();
    let base = top + rows * row_h + 0.5;
    line(ctx, left, base, w - right, base);
    ctx.stroke();
    for v in nice_ticks(0.0, xs.d1, 8) {
        text(
            ctx,
            &format!("{}s", tick_label(v)),
            xs.px(v),
            base + 14.0,
            "center",
            TEXT,
        );
    }
    bars
}

/// The label of a timeline bar: the trial, and the attempt after the first (`12·2`).
pub fn bar_label(trial: u64, attempt: u32) -> String {
    if attempt > 1 {
        format!("{trial}·{attempt}")
    } else {
        trial.to_string()
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// One axis of the parallel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Axis {
    /// Numbers from `lo` to `hi` (log scale when `log`).
    Numeric {
        /// Parameter name.
        name: String,
        /// Smallest value.
        lo: f64,
        /// Largest value.
        hi: f64,
        /// Log scale.
        log: bool,
    },
    /// Distinct values, evenly spaced in first-seen order.
    Categories {
        /// Parameter name.
        name: String,
        /// The values (as their JSON text).
        values: Vec<String>,
    },
}

impl Axis {
    /// Where a value lies, from 0 (bottom) to 1 (top); `None` when it has no place.
    pub fn position(&self, v: &Value) -> Option<f64> {
        match self {
            Axis::Numeric { lo, hi, log, .. } => {
                let x = v.as_f64()?;
                let s = Scale {
                    d0: *lo,
                    d1: *hi,
                    p0: 0.0,
                    p1: 1.0,
                    log: *log,
                };
                Some(s.px(x))
            }
            Axis::Categories { values, .. } => {
                let key = v.to_string();
                let i = values.iter().position(|x| *x == key)?;
                Some(if values.len() == 1 {
                    0.5
                } else {
                    i as f64 / (values.len() - 1) as f64
                })
            }
        }
    }

    /// The parameter name.
    pub fn name(&self) -> &str {
        match self {
            Axis::Numeric { name, .. } | Axis::Categories { name, .. } => name,
        }
    }
}

/// What the spec says of a parameter's axis.
#[derive(Debug, Clone, PartialEq)]
pub enum AxisHint {
    /// A range on a linear scale.
    Linear,
    /// A range on a log scale.
    Log,
    /// These values, in this order.
    Values(Vec<Value>),
    /// Nothing known (an ablation's baseline): numbers where every value is one.
    Infer,
}

/// The parameter axes of the trials, one per `(name, hint)` that some trial has.
pub fn parameter_axes(data: &LiveData, params: &[(String, AxisHint)]) -> Vec<Axis> {
    params
        .iter()
        .filter_map(|(name, hint)| {
            let vals: Vec<&Value> = data
                .trials
                .iter()
                .filter_map(|t| t.params.get(name))
                .collect();
            if vals.is_empty() {
                return None;
            }
            let nums: Option<Vec<f64>> = vals.iter().map(|v| v.as_f64()).collect();
            let categories = |vals: &[&Value]| {
                let mut values: Vec<String> = Vec::new();
                for v in vals {
                    let k = v.to_string();
                    if !values.contains(&k) {
                        values.push(k);
                    }
                }
                // Numbers in increasing order, bottom to top.
                let keyed: Option<Vec<f64>> =
                    values.iter().map(|v| v.parse::<f64>().ok()).collect();
                if let Some(k) = keyed {
                    let mut pairs: Vec<(f64, String)> = k.into_iter().zip(values).collect();
                    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                    values = pairs.into_iter().map(|(_, v)| v).collect();
                }
                Axis::Categories {
                    name: name.clone(),
                    values,
                }
            };
            match (hint, nums) {
                (AxisHint::Values(spec), _) => {
                    let all: Vec<&Value> = spec.iter().collect();
                    match categories(&all) {
                        Axis::Categories { values, .. } if !values.is_empty() => {
                            Some(Axis::Categories {
                                name: name.clone(),
                                values,
                            })
                        }
                        _ => Some(categories(&vals)),
                    }
                }
                (AxisHint::Linear | AxisHint::Log | AxisHint::Infer, Some(n))
                    if n.len() > 1 || *hint != AxisHint::Infer =>
                {
                    let lo = n.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = n.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    Some(Axis::Numeric {
                        name: name.clone(),
                        lo,
                        hi,
                        log: *hint == AxisHint::Log && lo > 0.0,
                    })
                }
                _ => Some(categories(&vals)),
            }
        })
        .collect()
}

/// A parameter value for people: strings bare, an ablation's `ablate` list as the names of
/// the components left out (`baseline` when none is).
pub fn value_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "baseline".to_string(),
        Value::Array(items) => {
            let names: Option<Vec<&str>> = items.iter().map(|c| c["name"].as_str()).collect();
            match names {
                Some(n) => format!("without {}", n.join(", ")),
                None => v.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// A colour from bad (purple) to good (yellow) for a metric position in `[0, 1]`.
pub fn quality_colour(t: f64) -> String {
    const STOPS: [(f64, [f64; 3]); 4] = [
        (0.0, [68.0, 1.0, 84.0]),
        (0.35, [49.0, 104.0, 142.0]),
        (0.7, [53.0, 183.0, 121.0]),
        (1.0, [253.0, 231.0, 37.0]),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let k = STOPS.iter().position(|(p, _)| *p >= t).unwrap_or(3).max(1);
    let (p0, c0) = STOPS[k - 1];
    let (p1, c1) = STOPS[k];
    let f = if p1 > p0 { (t - p0) / (p1 - p0) } else { 0.0 };
    let c: Vec<u8> = (0..3)
        .map(|i| (c0[i] + (c1[i] - c0[i]) * f).round() as u8)
        .collect();
    format!("rgb({},{},{})", c[0], c[1], c[2])
}

/// Draws parallel coordinates: one axis per parameter, then the metric; one line per trial
/// with a value, coloured by how good it is. Returns the number of lines.
pub fn draw_parallel(ctx: &Ctx, w: f64, h: f64, data: &LiveData, axes: &[Axis]) -> usize {
    let (left, right, top, bottom) = (40.0, 60.0, 22.0, 26.0);
    let n = axes.len() + 1;
    let x_of = |i: usize| {
        if n == 1 {
            left
        } else {
            left + (w - left - right) * i as f64 / (n - 1) as f64
        }
    };
    let y_of = |t: f64| h - bottom - t * (h - top - bottom);
    let with_value: Vec<_> = data.trials.iter().filter(|t| t.value.is_some()).collect();
    let (lo, hi) = with_value
        .iter()
        .filter_map(|t| t.value)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let metric_pos = |v: f64| {
        if hi > lo { (v - lo) / (hi - lo) } else { 0.5 }
    };
    // Lines, worst first so that the best are on top.
    let mut order = with_value.clone();
    order.sort_by(|a, b| {
        let (va, vb) = (a.value.unwrap_or(0.0), b.value.unwrap_or(0.0));
        match data.direction {
            Direction::Maximize => va.total_cmp(&vb),
            Direction::Minimize => vb.total_cmp(&va),
        }
    });
    // One path per colour band (32 bands, worst first, so that the best are on top).
    const BANDS: usize = 32;
    let mut bands: Vec<Vec<&crate::live::TrialData>> = vec![Vec::new(); BANDS];
    for t in &order {
        let Some(v) = t.value else { continue };
        let m = metric_pos(v);
        let good = match data.direction {
            Direction::Maximize => m,
            Direction::Minimize => 1.0 - m,
        };
        let b = ((good * BANDS as f64) as usize).min(BANDS - 1);
        bands[b].push(t);
    }
    ctx.set_line_width(1.0);
    ctx.set_global_alpha(0.7);
    let mut lines = 0;
    for (b, trials) in bands.iter().enumerate() {
        if trials.is_empty() {
            continue;
        }
        ctx.set_stroke_style_str(&quality_colour((b as f64 + 0.5) / BANDS as f64));
        ctx.begin_path();
        for t in trials {
            let Some(v) = t.value else { continue };
            let mut started = false;
            for (i, axis) in axes.iter().enumerate() {
                let Some(p) = t.params.get(axis.name()).and_then(|x| axis.position(x)) else {
                    started = false;
                    continue;
                };
                if started {
                    ctx.line_to(x_of(i), y_of(p));
                } else {
                    ctx.move_to(x_of(i), y_of(p));
                    started = true;
                }
            }
            if started {
                ctx.line_to(x_of(n - 1), y_of(metric_pos(v)));
            }
            lines += 1;
        }
        ctx.stroke();
    }
    ctx.set_global_alpha(1.0);
    // Axes on top.
    ctx.set_stroke_style_str(AXIS);
    ctx.begin_path();
    for i in 0..n {
        let x = x_of(i).round() + 0.5;
        line(ctx, x, top, x, h - bottom);
    }
    ctx.stroke();
    for (i, axis) in axes.iter().enumerate() {
        let x = x_of(i);
        text(
            ctx,
            &clip(axis.name(), 14),
            x,
            top - 8.0,
            "center",
            "#1b1f24",
        );
        match axis {
            Axis::Numeric { lo, hi, .. } => {
                text(ctx, &tick_label(*hi), x + 4.0, top + 4.0, "left", TEXT);
                text(ctx, &tick_label(*lo), x + 4.0, h - bottom, "left", TEXT);
            }
            Axis::Categories { values, .. } => {
                for v in values.iter().take(12) {
                    let value = serde_json::from_str(v).unwrap_or(Value::Null);
                    let p = axis.position(&value).unwrap_or(0.0);
                    text(
                        ctx,
                        &clip(&value_label(&value), 12),
                        x + 4.0,
                        y_of(p) + 4.0,
                        "left",
                        TEXT,
                    );
                }
            }
        }
    }
    let x = x_of(n - 1);
    text(
        ctx,
        &clip(&data.metric, 14),
        x,
        top - 8.0,
        "center",
        "#1b1f24",
    );
    if lo.is_finite() {
        text(ctx, &tick_label(hi), x + 4.0, top + 4.0, "left", TEXT);
        text(ctx, &tick_label(lo), x + 4.0, h - bottom, "left", TEXT);
    } else {
        text(
            ctx,
            "No trial has a value yet.",
            w / 2.0,
            h / 2.0,
            "center",
            TEXT,
        );
    }
    lines
}

/// Draws each component's effect (importance: positive means the component helps) as a
/// horizontal bar; returns the number of bars with a value.
pub fn draw_ablation(ctx: &Ctx, w: f64, h: f64, report: &AblationReport) -> usize {
    let (left, right, top) = (130.0, 70.0, 24.0);
    let baseline = report
        .baseline
        .map_or("baseline: not finished yet".to_string(), |b| {
            format!("baseline {}", tick_label(b))
        });
    text(ctx, &baseline, 8.0, 14.0, "left", "#1b1f24");
    text(
        ctx,
        "bar: how much the component helps · number: metric without it − baseline",
        w - 8.0,
        14.0,
        "right",
        TEXT,
    );
    let max = report
        .components
        .iter()
        .filter_map(|c| c.importance)
        .fold(0.0f64, |a, v| a.max(v.abs()))
        .max(1e-12);
    let mid = left + (w - left - right) / 2.0;
    let half = (w - left - right) / 2.0;
    let row_h = ((h - top - 6.0) / report.components.len().max(1) as f64).min(26.0);
    let mut bars = 0;
    for (i, c) in report.components.iter().enumerate() {
        let y = top + i as f64 * row_h;
        text(
            ctx,
            &clip(&c.component, 18),
            left - 8.0,
            y + row_h / 2.0 + 4.0,
            "right",
            "#1b1f24",
        );
        match c.importance {
            Some(v) => {
                let len = v / max * half;
                ctx.set_fill_style_str(if v >= 0.0 { "#2f9e44" } else { "#c92a2a" });
                let (x0, x1) = if len >= 0.0 {
                    (mid, mid + len)
                } else {
                    (mid + len, mid)
                };
                ctx.fill_rect(x0, y + 3.0, (x1 - x0).max(1.0), row_h - 6.0);
                let delta = c.delta.map_or(String::new(), |d| {
                    format!("{}{}", if d >= 0.0 { "+" } else { "" }, tick_label(d))
                });
                text(
                    ctx,
                    &delta,
                    w - right + 6.0,
                    y + row_h / 2.0 + 4.0,
                    "left",
                    TEXT,
                );
                bars += 1;
            }
            None => text(
                ctx,
                "waiting",
                mid + 6.0,
                y + row_h / 2.0 + 4.0,
                "left",
                TEXT,
            ),
        }
    }
    ctx.set_stroke_style_str(AXIS);
    ctx.begin_path();
    line(ctx, mid.round() + 0.5, top, mid.round() + 0.5, h - 4.0);
    ctx.stroke();
    bars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = nice_ticks(1.0, 30.0, 8);
        assert_eq!(t.first(), Some(&5.0));
        assert!(t.iter().all(|v| *v >= 1.0 && *v <= 30.0));
        assert_eq!(nice_ticks(2.0, 2.0, 5), vec![2.0]);
        assert_eq!(tick_label(0.6000000000000001), "0.6");
        assert_eq!(tick_label(1e-5), "1e-5");
        assert_eq!(tick_label(25.0), "25");
    }

    #[test]
    fn scales_and_axes_place_values() {
        let s = Scale {
            d0: 1e-5,
            d1: 1.0,
            p0: 0.0,
            p1: 100.0,
            log: true,
        };
        assert!((s.px(1e-3) - 40.0).abs() < 1e-9);
        let cat = Axis::Categories {
            name: "width".into(),
            values: vec!["16".into(), "32".into(), "64".into()],
        };
        assert_eq!(cat.position(&Value::from(32)), Some(0.5));
        assert_eq!(cat.position(&Value::from(8)), None);
        assert_eq!(tick_label(1.5e-5), "1.5e-5");
        let ablate = serde_json::json!([{"name": "swir", "kind": "band_group"}]);
        assert_eq!(value_label(&ablate), "without swir");
        assert_eq!(value_label(&serde_json::json!([])), "baseline");
        assert_eq!(value_label(&serde_json::json!("relu")), "relu");
        assert_eq!(value_axis(Some((0.5, 0.5))), (0.0, 1.0));
        // Round bounds that hold the range.
        let (lo, hi) = value_axis(Some((0.113, 0.927)));
        assert!(
            (lo - 0.0).abs() < 1e-12 && (hi - 1.0).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(
            value_axis(Some((0.113, 0.931))),
            value_axis(Some((0.12, 0.95)))
        );
        assert_eq!(quality_colour(0.0), "rgb(68,1,84)");
        assert_eq!(quality_colour(1.0), "rgb(253,231,37)");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(bar_label(12, 1), "12");
        assert_eq!(bar_label(12, 2), "12·2");
    }
}
