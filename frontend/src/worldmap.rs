//! The catalog's world map: Natural Earth outlines on a 2D `<canvas id="worldmap">`,
//! equirectangular, with the footprints of the current results and the search area.
//!
//! What it is: [`MapView`] (pixels to longitude/latitude and back, zoom and pan), the hit test
//! of footprints, the drawing on a `CanvasRenderingContext2d`, and the [`WorldMap`]
//! component: drag to draw the search area, Shift+drag (or the middle button) to pan, the
//! wheel to zoom, hover a footprint to highlight its result, click one to open it. The basemap
//! is the bundled `/basemap/countries-110m.json` (see `assets/README.md`), decoded by
//! [`crate::topojson`].
//!
//! What it is not: no tiles, no other projection; the imagery renderer is `albedo-render`.
//!
//! Test hooks on the canvas: `data-state` (`loading`, `ready`, `error`), `data-view` (the
//! extent shown: west, south, east, north), `data-css-size` (`width,height` in CSS pixels),
//! `data-footprints`, `data-hovered` (a product id or empty), `data-area`.

use std::sync::Arc;

use albedo_shared::catalog::ProductId;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

use crate::search::{Area, format_degrees};
use crate::topojson::{Basemap, LonLat, decode_basemap};

/// Where the app finds the basemap (Trunk's `copy-dir` of `assets/basemap`).
pub const BASEMAP_URL: &str = "/basemap/countries-110m.json";
/// Size of the map in CSS pixels (2:1, the whole world at the widest zoom).
pub const MAP_WIDTH: u32 = 428;
/// See [`MAP_WIDTH`].
pub const MAP_HEIGHT: u32 = 214;
/// Closest zoom, degrees per CSS pixel (about 100 m).
pub const MIN_DEG_PER_PX: f64 = 0.001;
/// A drag shorter than this (pixels) is a click.
pub const CLICK_SLOP_PX: f64 = 4.0;
/// Footprints smaller than this on screen (pixels) are drawn and picked as a marker.
pub const MARKER_PX: f64 = 7.0;

/// What part of the world the map shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapView {
    /// Width in CSS pixels.
    pub width: f64,
    /// Height in CSS pixels.
    pub height: f64,
    /// Longitude/latitude at the centre.
    pub center: LonLat,
    /// Degrees per CSS pixel (both axes).
    pub deg_per_px: f64,
}

impl MapView {
    /// The whole world in `width` x `height` pixels.
    pub fn world(width: f64, height: f64) -> MapView {
        MapView {
            width,
            height,
            center: [0.0, 0.0],
            deg_per_px: (360.0 / width).max(180.0 / height),
        }
    }

    fn max_deg_per_px(&self) -> f64 {
        (360.0 / self.width).max(180.0 / self.height)
    }

    /// Pixel position of a longitude/latitude.
    pub fn to_px(&self, p: LonLat) -> [f64; 2] {
        [
            (p[0] - self.center[0]) / self.deg_per_px + self.width / 2.0,
            (self.center[1] - p[1]) / self.deg_per_px + self.height / 2.0,
        ]
    }

    /// Longitude/latitude under a pixel position.
    pub fn to_lonlat(&self, x: f64, y: f64) -> LonLat {
        [
            self.center[0] + (x - self.width / 2.0) * self.deg_per_px,
            self.center[1] - (y - self.height / 2.0) * self.deg_per_px,
        ]
    }

    /// West, south, east, north of what is shown.
    pub fn extent(&self) -> [f64; 4] {
        let [w, n] = self.to_lonlat(0.0, 0.0);
        let [e, s] = self.to_lonlat(self.width, self.height);
        [w, s, e, n]
    }

    /// The view with its zoom in range and its centre such that it stays on the world.
    fn clamped(mut self) -> MapView {
        self.deg_per_px = self.deg_per_px.clamp(MIN_DEG_PER_PX, self.max_deg_per_px());
        let half = [
            self.width / 2.0 * self.deg_per_px,
            self.height / 2.0 * self.deg_per_px,
        ];
        for (k, limit) in [180.0, 90.0].into_iter().enumerate() {
            self.center[k] = if half[k] >= limit {
                0.0
            } else {
                self.center[k].clamp(-limit + half[k], limit - half[k])
            };
        }
        self
    }

    /// Zoomed by `factor` (> 1 zooms in) keeping the point under `(x, y)` in place.
    pub fn zoomed_at(&self, x: f64, y: f64, factor: f64) -> MapView {
        let anchor = self.to_lonlat(x, y);
        let mut v = *self;
        v.deg_per_px = (self.deg_per_px / factor).clamp(MIN_DEG_PER_PX, self.max_deg_per_px());
        v.center = [
            anchor[0] - (x - v.width / 2.0) * v.deg_per_px,
            anchor[1] + (y - v.height / 2.0) * v.deg_per_px,
        ];
        v.clamped()
    }

    /// Moved so that the map follows a drag of `(dx, dy)` pixels.
    pub fn panned(&self, dx: f64, dy: f64) -> MapView {
        let mut v = *self;
        v.center = [
            self.center[0] - dx * self.deg_per_px,
            self.center[1] + dy * self.deg_per_px,
        ];
        v.clamped()
    }

    /// Whether any part of `[west, south, east, north]` is in view.
    pub fn shows(&self, bbox: [f64; 4]) -> bool {
        let [w, s, e, n] = self.extent();
        bbox[0] <= e && bbox[2] >= w && bbox[1] <= n && bbox[3] >= s
    }

    /// Showing `[west, south, east, north]` with a margin, as close as allowed.
    pub fn fit(&self, bbox: [f64; 4]) -> MapView {
        let [w, s, e, n] = bbox;
        let span_x = (e - w).abs().max(0.01) * 1.25;
        let span_y = (n - s).abs().max(0.01) * 1.25;
        let mut v = *self;
        v.deg_per_px = (span_x / self.width).max(span_y / self.height);
        v.center = [(w + e) / 2.0, (s + n) / 2.0];
        v.clamped()
    }
}

/// Whether `p` is inside `ring` (even-odd rule; longitude/latitude taken as planar).
pub fn point_in_ring(p: LonLat, ring: &[LonLat]) -> bool {
    let mut inside = false;
    let n = ring.len();
    let mut j = n.wrapping_sub(1);
    for i in 0..n {
        let (a, b) = (ring[i], ring[j]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0];
            if p[0] < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// The bounding box `[west, south, east, north]` of some rings.
pub fn rings_bbox(rings: &[Vec<LonLat>]) -> Option<[f64; 4]> {
    let mut points = rings.iter().flatten();
    let first = points.next()?;
    let mut b = [first[0], first[1], first[0], first[1]];
    for p in points {
        b = [
            b[0].min(p[0]),
            b[1].min(p[1]),
            b[2].max(p[0]),
            b[3].max(p[1]),
        ];
    }
    Some(b)
}

/// The search area of a drag from pixel `a` to pixel `b`, clamped to the world, in degrees
/// rounded as the form shows them; `None` for a click.
pub fn drag_area(view: &MapView, a: [f64; 2], b: [f64; 2]) -> Option<Area> {
    if (a[0] - b[0]).abs() < CLICK_SLOP_PX && (a[1] - b[1]).abs() < CLICK_SLOP_PX {
        return None;
    }
    let p = view.to_lonlat(a[0], a[1]);
    let q = view.to_lonlat(b[0], b[1]);
    let lon = |v: f64| round4(v.clamp(-180.0, 180.0));
    let lat = |v: f64| round4(v.clamp(-90.0, 90.0));
    Some(Area {
        west: lon(p[0].min(q[0])),
        south: lat(p[1].min(q[1])),
        east: lon(p[0].max(q[0])),
        north: lat(p[1].max(q[1])),
    })
}

fn round4(v: f64) -> f64 {
    let r = (v * 1e4).round() / 1e4;
    if r == 0.0 { 0.0 } else { r }
}

/// The footprint under pixel `(x, y)`: inside one of its rings, or within a marker's reach of
/// a footprint too small to see. The smallest wins (nested footprints stay pickable).
pub fn hit_test(view: &MapView, x: f64, y: f64, footprints: &[Vec<Vec<LonLat>>]) -> Option<usize> {
    let p = view.to_lonlat(x, y);
    let mut best: Option<(usize, f64)> = None;
    for (i, rings) in footprints.iter().enumerate() {
        let Some(b) = rings_bbox(rings) else { continue };
        let [x0, y0] = view.to_px([b[0], b[3]]);
        let [x1, y1] = view.to_px([b[2], b[1]]);
        let small = (x1 - x0) < MARKER_PX && (y1 - y0) < MARKER_PX;
        let hit = if small {
            let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
            (x - cx).abs() <= MARKER_PX / 2.0 + 1.0 && (y - cy).abs() <= MARKER_PX / 2.0 + 1.0
        } else {
            rings.iter().any(|r| point_in_ring(p, r))
        };
        let size = (b[2] - b[0]) * (b[3] - b[1]);
        if hit && best.is_none_or(|(_, s)| size < s) {
            best = Some((i, size));
        }
    }
    best.map(|(i, _)| i)
}

/// One result's footprint on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    /// The product.
    pub id: ProductId,
    /// Outer rings, longitude/latitude.
    pub rings: Vec<Vec<LonLat>>,
    /// What the map says of it while hovered (title, date).
    pub label: String,
}

/// Everything one frame of the map shows.
struct Scene<'a> {
    basemap: Option<&'a Basemap>,
    footprints: &'a [Footprint],
    hovered: Option<&'a ProductId>,
    selected: Option<&'a ProductId>,
    area: Option<Area>,
    drag: Option<([f64; 2], [f64; 2])>,
}

const OCEAN: &str = "#dce8f3";
const GRATICULE: &str = "#c3d3e3";
const LAND: &str = "#f3f0e6";
const COAST: &str = "#9d9a8f";
const FOOTPRINT: &str = "#0b5cad";
const FOOTPRINT_FILL: &str = "rgba(11, 92, 173, 0.06)";
const SELECTED: &str = "#1d7a46";
/// The hovered footprint (tests look for this colour).
pub const HOVER: &str = "#e8590c";
const HOVER_FILL: &str = "rgba(232, 89, 12, 0.75)";
const AREA: &str = "#b3261e";
const AREA_FILL: &str = "rgba(179, 38, 30, 0.08)";

fn trace(ctx: &web_sys::CanvasRenderingContext2d, view: &MapView, ring: &[LonLat]) {
    for (k, p) in ring.iter().enumerate() {
        let [x, y] = view.to_px(*p);
        if k == 0 {
            ctx.move_to(x, y);
        } else {
            ctx.line_to(x, y);
        }
    }
}

fn graticule_step(deg_per_px: f64) -> f64 {
    // About one line every 60 pixels or more.
    [30.0, 10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1]
        .into_iter()
        .find(|s| s / deg_per_px < 120.0)
        .unwrap_or(0.1)
}

fn draw_footprint(
    ctx: &web_sys::CanvasRenderingContext2d,
    view: &MapView,
    rings: &[Vec<LonLat>],
    stroke: &str,
    fill: &str,
    line_width: f64,
) {
    let Some(b) = rings_bbox(rings) else { return };
    let [x0, y0] = view.to_px([b[0], b[3]]);
    let [x1, y1] = view.to_px([b[2], b[1]]);
    ctx.begin_path();
    if (x1 - x0) < MARKER_PX && (y1 - y0) < MARKER_PX {
        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let h = MARKER_PX / 2.0;
        ctx.rect(cx - h, cy - h, MARKER_PX, MARKER_PX);
    } else {
        for r in rings {
            trace(ctx, view, r);
            ctx.close_path();
        }
    }
    ctx.set_fill_style_str(fill);
    ctx.fill();
    ctx.set_stroke_style_str(stroke);
    ctx.set_line_width(line_width);
    ctx.stroke();
}

fn draw(ctx: &web_sys::CanvasRenderingContext2d, view: &MapView, dpr: f64, scene: &Scene) {
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.set_line_dash(&js_sys::Array::new()).ok();
    ctx.set_fill_style_str(OCEAN);
    ctx.fill_rect(0.0, 0.0, view.width, view.height);

    // Graticule.
    let [w, s, e, n] = view.extent();
    let step = graticule_step(view.deg_per_px);
    ctx.begin_path();
    let mut lon = (w.max(-180.0) / step).ceil() * step;
    while lon <= e.min(180.0) {
        let [x, _] = view.to_px([lon, 0.0]);
        ctx.move_to(x, view.to_px([0.0, n.min(90.0)])[1]);
        ctx.line_to(x, view.to_px([0.0, s.max(-90.0)])[1]);
        lon += step;
    }
    let mut lat = (s.max(-90.0) / step).ceil() * step;
    while lat <= n.min(90.0) {
        let [_, y] = view.to_px([0.0, lat]);
        ctx.move_to(view.to_px([w.max(-180.0), 0.0])[0], y);
        ctx.line_to(view.to_px([e.min(180.0), 0.0])[0], y);
        lat += step;
    }
    ctx.set_stroke_style_str(GRATICULE);
    ctx.set_line_width(0.5);
    ctx.stroke();

    if let Some(map) = scene.basemap {
        ctx.begin_path();
        for ring in &map.land {
            trace(ctx, view, ring);
            ctx.close_path();
        }
        ctx.set_fill_style_str(LAND);
        ctx.fill_with_canvas_winding_rule(web_sys::CanvasWindingRule::Evenodd);
        ctx.begin_path();
        for line in &map.lines {
            trace(ctx, view, line);
        }
        ctx.set_stroke_style_str(COAST);
        ctx.set_line_width(0.6);
        ctx.stroke();
    }

    for f in scene.footprints {
        if Some(&f.id) != scene.hovered && Some(&f.id) != scene.selected {
            draw_footprint(ctx, view, &f.rings, FOOTPRINT, FOOTPRINT_FILL, 1.0);
        }
    }
    if let Some(area) = scene.area {
        ctx.begin_path();
        for [w, s, e, n] in area.parts() {
            let [x0, y0] = view.to_px([w, n]);
            let [x1, y1] = view.to_px([e, s]);
            ctx.rect(x0, y0, x1 - x0, y1 - y0);
        }
        ctx.set_fill_style_str(AREA_FILL);
        ctx.fill();
        ctx.set_stroke_style_str(AREA);
        ctx.set_line_width(1.5);
        let dash = js_sys::Array::of2(&5.0.into(), &3.0.into());
        ctx.set_line_dash(&dash).ok();
        ctx.stroke();
        ctx.set_line_dash(&js_sys::Array::new()).ok();
    }
    for f in scene.footprints {
        if Some(&f.id) == scene.selected && Some(&f.id) != scene.hovered {
            draw_footprint(ctx, view, &f.rings, SELECTED, "rgba(29, 122, 70, 0.2)", 2.0);
        }
    }
    for f in scene.footprints {
        if Some(&f.id) == scene.hovered {
            draw_footprint(ctx, view, &f.rings, HOVER, HOVER_FILL, 2.5);
        }
    }
    if let Some((a, b)) = scene.drag {
        ctx.begin_path();
        ctx.rect(
            a[0].min(b[0]),
            a[1].min(b[1]),
            (a[0] - b[0]).abs(),
            (a[1] - b[1]).abs(),
        );
        ctx.set_fill_style_str(AREA_FILL);
        ctx.fill();
        ctx.set_stroke_style_str(AREA);
        ctx.set_line_width(1.5);
        ctx.stroke();
    }
}

/// A drag in progress on the map.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Drag {
    start: [f64; 2],
    last: [f64; 2],
    pan: bool,
}

/// The world map of the catalog page.
///
/// `area` is the search area the form holds (drawn dashed); a drag calls `on_area`, a click
/// on a footprint calls `on_pick`; `hovered` links the map and the result list both ways.
#[component]
pub fn WorldMap(
    footprints: Signal<Vec<Footprint>>,
    hovered: RwSignal<Option<ProductId>>,
    selected: Signal<Option<ProductId>>,
    area: Signal<Option<Area>>,
    on_area: Callback<Area>,
    on_pick: Callback<ProductId>,
) -> impl IntoView {
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    let view = RwSignal::new(MapView::world(f64::from(MAP_WIDTH), f64::from(MAP_HEIGHT)));
    let drag = RwSignal::new(None::<Drag>);
    let basemap = RwSignal::new(None::<Result<Arc<Basemap>, String>>);

    leptos::task::spawn_local(async move {
        let loaded = match crate::api::fetch_text(BASEMAP_URL).await {
            Ok(text) => decode_basemap(&text, &["land", "countries"])
                .map(Arc::new)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match &loaded {
            Ok(map) => tracing::info!(
                rings = map.land.len(),
                points = map.land_points(),
                "basemap loaded"
            ),
            Err(e) => tracing::warn!(error = %e, "basemap unavailable"),
        }
        basemap.set(Some(loaded));
    });

    // Redraw whenever anything shown changes.
    Effect::new(move |_| {
        let Some(canvas) = canvas_ref.get() else {
            return;
        };
        let v = view.get();
        let map = basemap.get();
        let fps = footprints.get();
        let hov = hovered.get();
        let sel = selected.get();
        let area_now = area.get();
        let drag_now = drag.get().filter(|d| !d.pan).map(|d| (d.start, d.last));
        let dpr = web_sys::window()
            .map(|w| w.device_pixel_ratio())
            .unwrap_or(1.0)
            .max(1.0);
        let (bw, bh) = (
            (v.width * dpr).round() as u32,
            (v.height * dpr).round() as u32,
        );
        if canvas.width() != bw || canvas.height() != bh {
            canvas.set_width(bw);
            canvas.set_height(bh);
        }
        let Some(ctx) = canvas
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
        else {
            tracing::error!("no 2D canvas context for the world map");
            return;
        };
        let scene = Scene {
            basemap: map.as_ref().and_then(|m| m.as_ref().ok()).map(Arc::as_ref),
            footprints: &fps,
            hovered: hov.as_ref(),
            selected: sel.as_ref(),
            area: area_now,
            drag: drag_now,
        };
        draw(&ctx, &v, dpr, &scene);
        let state = match &map {
            None => "loading",
            Some(Ok(_)) => "ready",
            Some(Err(_)) => "error",
        };
        let ext = v.extent().map(|d| format!("{d:.6}")).join(",");
        let set = |k: &str, val: &str| {
            let _ = canvas.set_attribute(k, val);
        };
        set("data-state", state);
        set("data-view", &ext);
        set("data-css-size", &format!("{},{}", v.width, v.height));
        set("data-footprints", &fps.len().to_string());
        set("data-hovered", hov.as_ref().map_or("", |h| h.0.as_str()));
        set(
            "data-area",
            &area_now.map(|a| a.fields().join(",")).unwrap_or_default(),
        );
    });

    // New results that are all out of view: show them (a person would look for them).
    Effect::new(move |_| {
        footprints.with(|fps| {
            let boxes: Vec<[f64; 4]> = fps.iter().filter_map(|f| rings_bbox(&f.rings)).collect();
            let v = view.get_untracked();
            if !boxes.is_empty() && !boxes.iter().any(|b| v.shows(*b)) {
                let all = boxes.iter().fold(boxes[0], |a, b| {
                    [
                        a[0].min(b[0]),
                        a[1].min(b[1]),
                        a[2].max(b[2]),
                        a[3].max(b[3]),
                    ]
                });
                view.set(v.fit(all));
            }
        });
    });

    // The wheel zooms; a non-passive listener so that the page does not scroll meanwhile.
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        let Some(canvas) = canvas_ref.get() else {
            return false;
        };
        let on_wheel =
            Closure::<dyn FnMut(web_sys::WheelEvent)>::new(move |ev: web_sys::WheelEvent| {
                ev.prevent_default();
                let factor = if ev.delta_y() < 0.0 { 1.5 } else { 1.0 / 1.5 };
                let (x, y) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
                view.update(|v| *v = v.zoomed_at(x, y, factor));
            });
        let options = web_sys::AddEventListenerOptions::new();
        options.set_passive(false);
        let added = canvas
            .add_event_listener_with_callback_and_add_event_listener_options(
                "wheel",
                on_wheel.as_ref().unchecked_ref(),
                &options,
            )
            .is_ok();
        // The map lives as long as the page: the listener stays with it.
        on_wheel.forget();
        added
    });

    let pick_index = move |x: f64, y: f64| -> Option<ProductId> {
        footprints.with(|fps| {
            let rings: Vec<Vec<Vec<LonLat>>> = fps.iter().map(|f| f.rings.clone()).collect();
            hit_test(&view.get_untracked(), x, y, &rings).map(|i| fps[i].id.clone())
        })
    };

    let on_pointerdown = move |ev: web_sys::PointerEvent| {
        if ev.button() != 0 && ev.button() != 1 {
            return;
        }
        ev.prevent_default();
        let p = [f64::from(ev.offset_x()), f64::from(ev.offset_y())];
        if let Some(canvas) = canvas_ref.get_untracked() {
            let _ = canvas.set_pointer_capture(ev.pointer_id());
        }
        drag.set(Some(Drag {
            start: p,
            last: p,
            pan: ev.shift_key() || ev.button() == 1,
        }));
    };
    let on_pointermove = move |ev: web_sys::PointerEvent| {
        let p = [f64::from(ev.offset_x()), f64::from(ev.offset_y())];
        match drag.get_untracked() {
            Some(d) if d.pan => {
                view.update(|v| *v = v.panned(p[0] - d.last[0], p[1] - d.last[1]));
                drag.set(Some(Drag { last: p, ..d }));
            }
            Some(d) => drag.set(Some(Drag { last: p, ..d })),
            None => {
                let under = pick_index(p[0], p[1]);
                if hovered.get_untracked() != under {
                    hovered.set(under);
                }
            }
        }
    };
    let on_pointerup = move |ev: web_sys::PointerEvent| {
        let Some(d) = drag.get_untracked() else {
            return;
        };
        drag.set(None);
        let p = [f64::from(ev.offset_x()), f64::from(ev.offset_y())];
        if d.pan {
            return;
        }
        match drag_area(&view.get_untracked(), d.start, p) {
            Some(a) => on_area.run(a),
            None => {
                if let Some(id) = pick_index(p[0], p[1]) {
                    on_pick.run(id);
                }
            }
        }
    };
    let on_pointerleave = move |_: web_sys::PointerEvent| {
        if drag.get_untracked().is_none() && hovered.get_untracked().is_some() {
            hovered.set(None);
        }
    };

    let zoom_to_results = move |_| {
        let b = footprints.with(|fps| {
            let all: Vec<Vec<LonLat>> = fps.iter().flat_map(|f| f.rings.clone()).collect();
            rings_bbox(&all)
        });
        if let Some(b) = b {
            view.update(|v| *v = v.fit(b));
        }
    };
    let zoom_to_area = move |_| {
        if let Some(a) = area.get_untracked() {
            let b = if a.west <= a.east {
                [a.west, a.south, a.east, a.north]
            } else {
                [-180.0, a.south, 180.0, a.north]
            };
            view.update(|v| *v = v.fit(b));
        }
    };
    let world = move |_| view.update(|v| *v = MapView::world(v.width, v.height));

    let extent_label = move || {
        let [w, s, e, n] = view.get().extent();
        format!(
            "{}..{} E, {}..{} N",
            format_degrees(w.max(-180.0)),
            format_degrees(e.min(180.0)),
            format_degrees(s.max(-90.0)),
            format_degrees(n.min(90.0))
        )
    };

    view! {
        <div class="worldmap">
            <div class="map-tools">
                <button type="button" id="map-world" on:click=world>"World"</button>
                <button
                    type="button"
                    id="map-zoom-results"
                    on:click=zoom_to_results
                    disabled=move || footprints.with(Vec::is_empty)
                >
                    "Zoom to results"
                </button>
                <button
                    type="button"
                    id="map-zoom-area"
                    on:click=zoom_to_area
                    disabled=move || area.with(Option::is_none)
                >
                    "Zoom to area"
                </button>
            </div>
            <canvas
                id="worldmap"
                node_ref=canvas_ref
                width=MAP_WIDTH
                height=MAP_HEIGHT
                style=format!("width:{MAP_WIDTH}px;height:{MAP_HEIGHT}px")
                aria-label="World map: drag to draw the search area, Shift+drag to pan, \
                            wheel to zoom; footprints of the results"
                on:pointerdown=on_pointerdown
                on:pointermove=on_pointermove
                on:pointerup=on_pointerup
                on:pointerleave=on_pointerleave
            ></canvas>
            <p class="map-help" id="map-help">
                {move || {
                    let under = hovered
                        .with(|h| {
                            h.as_ref()
                                .and_then(|id| {
                                    footprints
                                        .with(|fps| {
                                            fps.iter().find(|f| &f.id == id).map(|f| f.label.clone())
                                        })
                                })
                        });
                    match (basemap.get(), under) {
                        (_, Some(label)) => view! {
                            <span class="map-hovered">{format!("▸ {label}")}</span>
                        }
                        .into_any(),
                        (Some(Err(e)), None) => view! {
                            <span class="status error" id="basemap-error">
                                {format!(
                                    "World outlines unavailable ({e}); drawing an area still works.",
                                )}
                            </span>
                        }
                        .into_any(),
                        _ => view! {
                            <span>
                                "Drag to draw the search area · Shift+drag to pan · wheel to zoom"
                            </span>
                        }
                        .into_any(),
                    }
                }}
            </p>
            <p class="map-attribution">
                <span>"Outlines: Natural Earth"</span>
                <span class="map-extent" id="map-extent">{extent_label}</span>
            </p>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> MapView {
        MapView::world(428.0, 214.0)
    }

    #[test]
    fn pixels_and_degrees_round_trip() {
        let v = world();
        assert_eq!(v.to_px([-180.0, 90.0]), [0.0, 0.0]);
        assert_eq!(v.to_px([180.0, -90.0]), [428.0, 214.0]);
        let ll = v.to_lonlat(107.0, 53.5);
        assert!((ll[0] + 90.0).abs() < 1e-9 && (ll[1] - 45.0).abs() < 1e-9);
        assert_eq!(v.extent(), [-180.0, -90.0, 180.0, 90.0]);
    }

    #[test]
    fn zoom_keeps_the_point_under_the_cursor_and_stays_on_the_world() {
        let v = world().zoomed_at(100.0, 60.0, 4.0);
        let before = world().to_lonlat(100.0, 60.0);
        let after = v.to_lonlat(100.0, 60.0);
        assert!((before[0] - after[0]).abs() < 1e-9 && (before[1] - after[1]).abs() < 1e-9);
        // Zooming out past the world is the world.
        assert_eq!(v.zoomed_at(10.0, 10.0, 0.001), world());
        // Panning cannot leave the world.
        let p = v.panned(10_000.0, 10_000.0);
        let [w, _, _, n] = p.extent();
        assert!(
            (w + 180.0).abs() < 1e-9 && (n - 90.0).abs() < 1e-9,
            "{:?}",
            p.extent()
        );
        // Deep zoom stops at the limit.
        let deep = world().zoomed_at(0.0, 0.0, 1e9);
        assert_eq!(deep.deg_per_px, MIN_DEG_PER_PX);
    }

    #[test]
    fn fit_shows_the_box() {
        let b = [-106.2, 39.6, -104.8, 40.7];
        let v = world().fit(b);
        let [w, s, e, n] = v.extent();
        assert!(w < b[0] && s < b[1] && e > b[2] && n > b[3]);
        assert!(e - w < 5.0, "zoomed in: {:?}", v.extent());
        assert!(v.shows(b) && v.shows([-110.0, 30.0, -105.0, 40.0]));
        assert!(!v.shows([10.0, 45.0, 11.0, 46.0]));
    }

    #[test]
    fn a_drag_gives_the_area_in_degrees() {
        let v = world();
        let a = drag_area(&v, [150.0, 120.0], [100.0, 80.0]).unwrap();
        let p = v.to_lonlat(100.0, 80.0);
        let q = v.to_lonlat(150.0, 120.0);
        assert!((a.west - p[0]).abs() < 1e-4 && (a.north - p[1]).abs() < 1e-4);
        assert!((a.east - q[0]).abs() < 1e-4 && (a.south - q[1]).abs() < 1e-4);
        assert!(
            drag_area(&v, [10.0, 10.0], [12.0, 11.0]).is_none(),
            "a click"
        );
        let clamped = drag_area(&v, [-20.0, -20.0], [500.0, 300.0]).unwrap();
        assert_eq!(
            clamped,
            Area {
                west: -180.0,
                south: -90.0,
                east: 180.0,
                north: 90.0
            }
        );
    }

    #[test]
    fn hit_test_prefers_the_smallest_and_reaches_tiny_footprints() {
        let square =
            |w: f64, s: f64, e: f64, n: f64| vec![vec![[w, s], [e, s], [e, n], [w, n], [w, s]]];
        let big = square(-40.0, -20.0, 40.0, 20.0);
        let small = square(-10.0, -5.0, 10.0, 5.0);
        let tiny = square(100.0, 45.0, 100.01, 45.01);
        let fps = vec![big, small, tiny];
        let v = world();
        let [cx, cy] = v.to_px([0.0, 0.0]);
        assert_eq!(hit_test(&v, cx, cy, &fps), Some(1));
        let [bx, by] = v.to_px([30.0, 15.0]);
        assert_eq!(hit_test(&v, bx, by, &fps), Some(0));
        let [tx, ty] = v.to_px([100.005, 45.005]);
        assert_eq!(hit_test(&v, tx + 2.0, ty - 2.0, &fps), Some(2));
        let [ox, oy] = v.to_px([-120.0, -60.0]);
        assert_eq!(hit_test(&v, ox, oy, &fps), None);
    }

    #[test]
    fn points_in_rings() {
        let ring = vec![[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]];
        assert!(point_in_ring([1.0, 1.0], &ring));
        assert!(!point_in_ring([5.0, 1.0], &ring));
        assert!(!point_in_ring([1.0, 1.0], &[]));
    }
}
