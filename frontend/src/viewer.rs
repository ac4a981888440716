//! The product viewer: preset selector, the wgpu canvas with pan and zoom, the class overlay,
//! and what was drawn.
//!
//! For a product with local pixels it fetches, once, every band its presets show over the
//! whole grid at the step that fits the canvas (the overview), and uploads them as texture
//! layers: switching presets, moving a contrast slider or the overlay's opacity redraws on the
//! GPU without a fetch. Each preset stretches its channels from their 2nd to 98th percentiles
//! (gamma 1; SAR presets in dB, calibrated ones on fixed dB ranges). Missing data (the
//! raster's nodata value, or 0 for Sentinel digital numbers, see
//! [`crate::presets::implied_nodata`]) is drawn as a neutral checkerboard and left out of the
//! percentiles.
//!
//! The mouse wheel zooms around the cursor and dragging pans; once the view is finer than the
//! overview, the tiles of the matching pyramid level are fetched
//! (`/api/products/{id}/tiles/{z}/{x}/{y}`) as they come into view and drawn over it; tiles
//! stay on the GPU (up to [`MAX_TILES`]) so coming back needs no fetch.
//!
//! With an overlay (a product of a classify job, collection `albedo-classified`), its `class`
//! raster is fetched over the same texels as each layer (nearest sample, never averaged) and
//! drawn over the imagery through its palette (`albedo:classes`), with an opacity slider and a
//! legend.
//!
//! After each draw the canvas carries `data-*` attributes with every number needed to
//! recompute its pixels on the CPU (see [`write_attributes`]).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use albedo_render::{
    Colormap, Composite, CpuLayer, LayerId, Overlay, Placement, Renderer, ValueScale, View,
    normalized_difference, render_layers_cpu,
};
use albedo_shared::api::ClassInfo;
use albedo_shared::catalog::{Product, ProductId};
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use crate::api::{GridWindow, fetch_json, fetch_product, fetch_raster, fetch_tile};
use crate::error::FrontendError;
use crate::presets::{
    Preset, channel_range, fetch_step, implied_nodata, local_grid, preset_bands, presets_for,
};
use crate::tiles::{TileKey, visible_tiles, wanted_level, zoom_view};

/// Canvas width in pixels (attribute and CSS size alike; no devicePixelRatio scaling).
pub const CANVAS_WIDTH: u32 = 768;
/// Canvas height in pixels.
pub const CANVAS_HEIGHT: u32 = 512;
/// Tiles kept on the GPU (and their values on the CPU); the least recently drawn go first.
pub const MAX_TILES: usize = 48;
/// Default opacity of the class overlay.
pub const DEFAULT_OPACITY: f32 = 0.6;
/// Milliseconds the view must rest before the tiles it lacks are fetched.
pub const TILE_DELAY_MS: i32 = 200;
/// Zoom factor of one wheel notch or zoom button press.
pub const ZOOM_STEP: f32 = 1.25;
/// The renderer layer of the overview.
const BASE: LayerId = albedo_render::BASE_LAYER;

/// The classes drawn over the imagery.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayView {
    /// The classified product.
    pub product: ProductId,
    /// Its classes (`albedo:classes`).
    pub classes: Vec<ClassInfo>,
    /// Opacity, 0 to 1.
    pub opacity: f32,
}

impl OverlayView {
    /// The renderer's overlay: each class's colour, every other value clear.
    pub fn overlay(&self) -> Overlay {
        let pairs: Vec<(u8, [u8; 3])> = self
            .classes
            .iter()
            .map(|c| (c.value, c.rgb().unwrap_or([128, 128, 128])))
            .collect();
        Overlay::from_classes(&pairs, self.opacity)
    }
}

/// Which tiles a draw used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TileStatus {
    /// The pyramid level drawn over the overview, if the view needs one.
    pub level: Option<u32>,
    /// Its zoom in tile URLs.
    pub zoom: Option<u32>,
    /// Tiles drawn over the overview.
    pub drawn: Vec<TileKey>,
    /// Tiles of the view still being fetched.
    pub pending: usize,
    /// Tile requests made for this product so far.
    pub requested: u32,
    /// Tiles on the GPU.
    pub cached: usize,
    /// The last tile error, if any.
    pub error: Option<String>,
}

/// Everything about one finished draw.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawReport {
    /// `webgpu` or `webgl2`.
    pub backend: &'static str,
    /// The product drawn.
    pub product: ProductId,
    /// Preset name.
    pub preset: String,
    /// Bands the preset shows.
    pub bands: Vec<String>,
    /// Bands uploaded, in texture-layer order (every band of every preset).
    pub layers: Vec<String>,
    /// What the values are (SAR units and calibration), if the preset says.
    pub note: Option<String>,
    /// Size of the product grid.
    pub grid: (u32, u32),
    /// Grid window of the overview.
    pub window: GridWindow,
    /// Grid pixels per overview texel.
    pub step: u32,
    /// Overview width in texels.
    pub tex_width: u32,
    /// Overview height in texels.
    pub tex_height: u32,
    /// Canvas mapping (in overview texels).
    pub view: View,
    /// The view that fits the product (what "Fit" restores).
    pub fit: View,
    /// Layers and stretch as drawn (the sliders change it).
    pub composite: Composite,
    /// The preset's own stretch (what "Auto" restores).
    pub auto: Composite,
    /// Smallest and largest value each output channel shows (the sliders' ranges).
    pub value_ranges: [(f32, f32); 3],
    /// The nodata value in use: the raster's, or the one implied for the mission.
    pub nodata: Option<f64>,
    /// Result of the GPU readback check, when the page asked for one (`?readback`).
    pub readback: Option<ReadbackCheck>,
    /// The overview's band values (texture layers), for the pixel read-out.
    pub pixels: BandValues,
    /// Tiles drawn over the overview.
    pub tiles: TileStatus,
    /// The class overlay, if one is drawn.
    pub overlay: Option<OverlayView>,
    /// Why the overlay asked for could not be drawn.
    pub overlay_error: Option<String>,
}

/// Band values kept on the CPU after upload; compared by identity (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct BandValues(pub Arc<Vec<Vec<f32>>>);

impl PartialEq for BandValues {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// GPU output read back before presenting, compared with the CPU reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadbackCheck {
    /// Largest difference of one channel byte.
    pub max_diff: u8,
    /// Channel bytes that differ by more than one step.
    pub mismatches: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum DrawState {
    Idle,
    Loading(String),
    Drawn(Box<DrawReport>),
    Failed(String),
}

/// One fetched tile, kept on the CPU for the read-out.
#[derive(Debug)]
struct TileData {
    placement: Placement,
    width: u32,
    height: u32,
    window: GridWindow,
    bands: Vec<Vec<f32>>,
    classes: Option<Vec<f32>>,
}

/// The classified product of an overlay.
#[derive(Debug, Clone)]
struct OverlaySource {
    id: ProductId,
    band: String,
    grid: (u32, u32),
    classes: Vec<ClassInfo>,
}

/// What the viewer holds outside the reactive system: the loaded product, its tiles and
/// overlay, shared by the draw paths.
#[derive(Debug, Default)]
struct Scene {
    /// Load number of what is on the GPU (tile answers of an older load are dropped).
    generation: u64,
    grid: (u32, u32),
    step: u32,
    layers: Vec<String>,
    overview_classes: Option<Vec<f32>>,
    overlay: Option<OverlaySource>,
    tiles: HashMap<TileKey, TileData>,
    /// Tiles by last use, oldest first.
    lru: VecDeque<TileKey>,
    pending: HashSet<TileKey>,
    requested: u32,
    tile_error: Option<String>,
}

impl Scene {
    /// Marks `key` as just used.
    fn touch(&mut self, key: TileKey) {
        self.lru.retain(|k| *k != key);
        self.lru.push_back(key);
    }
}

type RendererSlot = Rc<RefCell<Option<Renderer>>>;

/// Handles the draw paths share (all `Copy`).
#[derive(Clone, Copy)]
struct Ctx {
    renderer: StoredValue<RendererSlot, LocalStorage>,
    scene: StoredValue<Rc<RefCell<Scene>>, LocalStorage>,
    state: RwSignal<DrawState>,
    canvas: NodeRef<html::Canvas>,
}

/// What the read-out says about canvas pixel `(x, y)` of a draw: the grid pixel it shows,
/// each band's raw value, the dB or index value, and the class. `None` over the background.
fn pixel_readout(r: &DrawReport, scene: &Scene, x: u32, y: u32) -> Option<String> {
    let tx = r.view.origin_x + (x as f32 + 0.5) * r.view.texels_per_pixel;
    let ty = r.view.origin_y + (y as f32 + 0.5) * r.view.texels_per_pixel;
    // The topmost layer under the pixel: a drawn tile, else the overview.
    let hit = r.tiles.drawn.iter().rev().find_map(|key| {
        let t = scene.tiles.get(key)?;
        texel_of(&t.placement, t.width, t.height, tx, ty).map(|(lx, ly)| {
            let step = key.level_step();
            let values: Vec<&[f32]> = t.bands.iter().map(Vec::as_slice).collect();
            let i = ly as usize * t.width as usize + lx as usize;
            let class = t.classes.as_ref().and_then(|c| c.get(i).copied());
            (
                t.window.x + lx * step,
                t.window.y + ly * step,
                step,
                values,
                i,
                class,
            )
        })
    });
    let (gx, gy, cell, values, i, class) = match hit {
        Some(h) => h,
        None => {
            let (lx, ly) = texel_of(&Placement::IDENTITY, r.tex_width, r.tex_height, tx, ty)?;
            let values: Vec<&[f32]> = r.pixels.0.iter().map(Vec::as_slice).collect();
            let i = ly as usize * r.tex_width as usize + lx as usize;
            let class = scene
                .overview_classes
                .as_ref()
                .and_then(|c| c.get(i).copied());
            (
                r.window.x + lx * r.step,
                r.window.y + ly * r.step,
                1,
                values,
                i,
                class,
            )
        }
    };
    let value = |layer: usize| values.get(layer).and_then(|b| b.get(i)).copied();
    let mut lines = vec![if cell > 1 {
        format!("x {gx}, y {gy} (mean of {cell} × {cell} px)")
    } else {
        format!("x {gx}, y {gy}")
    }];
    let missing = r.composite.is_missing(&values, i);
    for name in &r.bands {
        let layer = r.layers.iter().position(|l| l == name);
        let v = layer.and_then(value);
        let text = match v {
            Some(v) if r.nodata == Some(f64::from(v)) => format!("{} (nodata)", human(v)),
            Some(v) => human(v),
            None => "–".to_string(),
        };
        lines.push(format!("{name} {text}"));
    }
    if r.composite.index.is_some() {
        let a = value(r.composite.channels[0] as usize);
        let b = value(r.composite.channels[1] as usize);
        let v = a
            .zip(b)
            .filter(|_| !missing)
            .and_then(|(a, b)| normalized_difference(a, b))
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "undefined".to_string());
        lines.push(format!("{} {v}", r.preset));
    } else if !matches!(r.composite.scale, ValueScale::Linear) || r.composite.minus[0].is_some() {
        let shown: Vec<String> = (0..if r.bands.len() == 1 { 1 } else { 3 })
            .map(|c| {
                r.composite
                    .channel_value(&values, i, c)
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "no data".to_string())
            })
            .collect();
        let unit = if matches!(r.composite.scale, ValueScale::Decibel { .. })
            || r.preset.ends_with("dB")
        {
            " dB"
        } else {
            ""
        };
        lines.push(format!("{} {}{unit}", r.preset, shown.join(", ")));
    } else if missing {
        lines.push("no data".to_string());
    }
    if let (Some(o), Some(k)) = (&r.overlay, class) {
        let name = o
            .classes
            .iter()
            .find(|c| f32::from(c.value) == k)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| "no class".to_string());
        lines.push(format!("class {name} ({})", human(k)));
    }
    Some(lines.join("\n"))
}

/// The texel of a `width` x `height` layer at `placement` under view texel `(tx, ty)`.
fn texel_of(p: &Placement, width: u32, height: u32, tx: f32, ty: f32) -> Option<(u32, u32)> {
    let (lx, ly) = p.texel(tx, ty);
    let inside = lx >= 0.0 && ly >= 0.0 && lx < width as f32 && ly < height as f32;
    inside.then_some((lx as u32, ly as u32))
}

/// The viewer of the selected product, with the classes of `overlay` (a classified product
/// of the same grid) drawn over it when given.
#[component]
pub fn Viewer(
    product: Memo<Option<Product>>,
    /// The classified product to draw over the imagery.
    #[prop(optional)]
    overlay: Option<Memo<Option<ProductId>>>,
) -> impl IntoView {
    let canvas_ref = NodeRef::<html::Canvas>::new();
    let renderer: RendererSlot = Rc::default();
    // `None` while the GPU starts, then the backend name or why there is none.
    let gpu = RwSignal::new(None::<Result<&'static str, String>>);
    let chosen_preset = RwSignal::new(None::<String>);
    let state = RwSignal::new(DrawState::Idle);
    let generation = Rc::new(Cell::new(0u64));
    let scene: Rc<RefCell<Scene>> = Rc::default();
    let ctx = Ctx {
        renderer: StoredValue::new_local(renderer.clone()),
        scene: StoredValue::new_local(scene.clone()),
        state,
        canvas: canvas_ref,
    };
    {
        // Leaving the viewer disposes its signals and stored values: a load or a tile fetch
        // still in flight must see that it is no longer current before it touches them.
        // (The app is single-threaded: the wrapper only satisfies `on_cleanup`'s bounds.)
        let held = send_wrapper::SendWrapper::new((generation.clone(), scene));
        on_cleanup(move || {
            let (generation, scene) = &*held;
            generation.set(generation.get() + 1);
            scene.borrow_mut().generation += 1;
        });
    }
    let overlay_id = Memo::new(move |_| overlay.and_then(|o| o.get()));

    {
        let renderer = renderer.clone();
        canvas_ref.on_load(move |canvas| {
            spawn_local(async move {
                match create_renderer(canvas).await {
                    Ok(r) => {
                        let name = r.backend_name();
                        tracing::info!(backend = name, adapter = r.adapter_name(), "GPU ready");
                        *renderer.borrow_mut() = Some(r);
                        gpu.set(Some(Ok(name)));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "no GPU renderer");
                        gpu.set(Some(Err(e)));
                    }
                }
            });
        });
    }

    let presets = Memo::new(move |_| product.with(|p| p.as_ref().map(presets_for)));
    let preset = Memo::new(move |_| {
        let presets = presets.get()?;
        let chosen = chosen_preset.get();
        presets
            .iter()
            .find(|p| Some(&p.name) == chosen.as_ref())
            .or(presets.first())
            .cloned()
    });

    // A new product (or overlay): fetch the overview and draw it with the current preset.
    Effect::new(move |_| {
        let product = product.get();
        let overlay = overlay_id.get();
        let gpu = gpu.get();
        let Some(canvas) = canvas_ref.get_untracked() else {
            return;
        };
        let Some(product) = product else {
            set_state_attr(&canvas, "idle");
            state.set(DrawState::Idle);
            return;
        };
        let Some(grid) = local_grid(&product) else {
            set_state_attr(&canvas, "idle");
            state.set(DrawState::Idle);
            return;
        };
        let Some(preset) = preset.get_untracked() else {
            let message = format!("product {} lists no bands", product.id);
            set_error_attrs(&canvas, &message);
            state.set(DrawState::Failed(message));
            return;
        };
        match gpu {
            None => {
                set_state_attr(&canvas, "loading");
                state.set(DrawState::Loading("Starting the GPU…".to_string()));
                return;
            }
            Some(Err(e)) => {
                let message = format!("no GPU renderer: {e}");
                set_error_attrs(&canvas, &message);
                state.set(DrawState::Failed(message));
                return;
            }
            Some(Ok(_)) => {}
        }
        let current = generation.get() + 1;
        generation.set(current);
        set_state_attr(&canvas, "loading");
        let all = presets.get_untracked().unwrap_or_default();
        let layers = preset_bands(&all);
        state.set(DrawState::Loading(format!(
            "Loading {} of {}…",
            layers.join(", "),
            product.title
        )));
        let slot = ctx.renderer.get_value();
        let scene = ctx.scene.get_value();
        let generation = generation.clone();
        spawn_local(async move {
            let is_current = || generation.get() == current;
            let job = Load {
                product: &product,
                overlay: overlay.as_ref(),
                preset: &preset,
                layers,
                grid,
                generation: current,
            };
            let result = load_and_draw(&slot, &scene, job, &is_current).await;
            if !is_current() {
                return;
            }
            match result {
                Ok(Some(report)) => {
                    write_attributes(&canvas, &report);
                    tracing::info!(
                        product = %report.product,
                        layers = ?report.layers,
                        step = report.step,
                        "drawn"
                    );
                    state.set(DrawState::Drawn(Box::new(report)));
                }
                Ok(None) => {}
                Err(e) => {
                    let message = e.to_string();
                    tracing::error!(error = %message, product = %product.id, "draw failed");
                    set_error_attrs(&canvas, &message);
                    state.set(DrawState::Failed(message));
                }
            }
        });
    });

    // Another preset of the same product: the bands are on the GPU already.
    Effect::new(move |_| {
        let Some(preset) = preset.get() else {
            return;
        };
        let loaded = state.with_untracked(|s| match s {
            DrawState::Drawn(r) => Some(r.preset.clone()),
            _ => None,
        });
        if loaded.is_none() || loaded.as_deref() == Some(preset.name.as_str()) {
            return;
        }
        update(ctx, |r| {
            let scene = ctx.scene.get_value();
            let scene = scene.borrow();
            let pixels = r.pixels.0.clone();
            let values: Vec<&[f32]> = pixels.iter().map(Vec::as_slice).collect();
            let nodata = r.nodata.map(|v| v as f32);
            if let Some(composite) = preset.composite(&scene.layers, &values, nodata) {
                apply_preset(r, &preset, composite, &values);
            }
        });
    });

    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        ev.prevent_default();
        let factor = wheel_factor(ev.delta_y(), ev.delta_mode());
        let (x, y) = (ev.offset_x() as f32, ev.offset_y() as f32);
        zoom_at(ctx, x, y, factor);
    };
    // Dragging: the pointer position where the drag last moved.
    let drag = StoredValue::new(None::<(i32, i32)>);
    let on_down = move |ev: leptos::ev::PointerEvent| {
        if ev.button() != 0 {
            return;
        }
        if let Some(c) = canvas_ref.get_untracked() {
            let _ = c.set_pointer_capture(ev.pointer_id());
            let _ = c
                .unchecked_ref::<web_sys::Element>()
                .set_attribute("data-dragging", "1");
        }
        drag.set_value(Some((ev.client_x(), ev.client_y())));
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        let Some((x0, y0)) = drag.get_value() else {
            return;
        };
        let (x, y) = (ev.client_x(), ev.client_y());
        if (x, y) == (x0, y0) {
            return;
        }
        drag.set_value(Some((x, y)));
        let (dx, dy) = ((x - x0) as f32, (y - y0) as f32);
        update(ctx, |r| {
            r.view.origin_x -= dx * r.view.texels_per_pixel;
            r.view.origin_y -= dy * r.view.texels_per_pixel;
        });
    };
    let on_up = move |_: leptos::ev::PointerEvent| {
        drag.set_value(None);
        if let Some(c) = canvas_ref.get_untracked() {
            let _ = c
                .unchecked_ref::<web_sys::Element>()
                .remove_attribute("data-dragging");
        }
    };

    // What the slider rows depend on; not the values, so dragging keeps its element.
    let slider_setup = Memo::new(move |_| match state.get() {
        DrawState::Drawn(r) => Some((
            r.product.clone(),
            r.preset.clone(),
            r.bands.clone(),
            r.value_ranges,
            r.composite.index,
            r.composite.minus,
            r.note.clone(),
        )),
        _ => None,
    });
    let drawn_composite = Memo::new(move |_| match state.get() {
        DrawState::Drawn(r) => Some(r.composite),
        _ => None,
    });
    let contrast_view = move || {
        let (_, preset_name, bands, ranges, index, minus, note) = slider_setup.get()?;
        if let Some(map) = index {
            return Some(legend_view(map).into_any());
        }
        let db = preset_name.ends_with("dB");
        let grey = bands.len() == 1 || (minus.iter().all(Option::is_some));
        let rows = if grey { 1 } else { 3 };
        let rows_view = (0..rows)
            .map(|c| {
                let band_label = |c: usize| match minus[c] {
                    Some(_) => {
                        format!("{}/{}", bands[0], bands.get(1).cloned().unwrap_or_default())
                    }
                    None => bands.get(c).or(bands.first()).cloned().unwrap_or_default(),
                };
                let label = if grey {
                    band_label(0)
                } else {
                    format!("{} {}", ["R", "G", "B"][c], band_label(c))
                };
                let label = if db { format!("{label} (dB)") } else { label };
                let (lo, hi) = ranges[c];
                let step = slider_step(lo, hi);
                // In grey, one row sets all three channels.
                let targets: Vec<usize> = if grey { vec![0, 1, 2] } else { vec![c] };
                let value = move |f: fn(&Composite) -> [f32; 3]| {
                    move || drawn_composite.get().map(|k| f(&k)[c]).unwrap_or_default()
                };
                let setter = |which: Field| {
                    let targets = targets.clone();
                    move |ev: leptos::ev::Event| {
                        let Ok(v) = event_target_value(&ev).parse::<f32>() else {
                            return;
                        };
                        if !v.is_finite() || (which == Field::Gamma && v <= 0.0) {
                            return;
                        }
                        let targets = targets.clone();
                        update(ctx, move |r| {
                            for &t in &targets {
                                match which {
                                    Field::Min => r.composite.min[t] = v,
                                    Field::Max => r.composite.max[t] = v,
                                    Field::Gamma => r.composite.gamma[t] = v,
                                }
                            }
                        });
                    }
                };
                let min_v = value(|k| k.min);
                let max_v = value(|k| k.max);
                let gamma_v = value(|k| k.gamma);
                view! {
                    <div class="contrast-row" data-channel=c.to_string()>
                        <span class="channel">{label}</span>
                        <label for=format!("min-{c}")>"min"</label>
                        <input type="range" id=format!("min-{c}")
                            min=lo.to_string() max=hi.to_string() step=step.to_string()
                            prop:value=move || min_v().to_string()
                            on:input=setter(Field::Min) />
                        <output id=format!("min-{c}-value")>{move || human(min_v())}</output>
                        <label for=format!("max-{c}")>"max"</label>
                        <input type="range" id=format!("max-{c}")
                            min=lo.to_string() max=hi.to_string() step=step.to_string()
                            prop:value=move || max_v().to_string()
                            on:input=setter(Field::Max) />
                        <output id=format!("max-{c}-value")>{move || human(max_v())}</output>
                        <label for=format!("gamma-{c}")>"gamma"</label>
                        <input type="range" id=format!("gamma-{c}")
                            min=GAMMA_RANGE.0.to_string() max=GAMMA_RANGE.1.to_string()
                            step="0.01"
                            prop:value=move || gamma_v().to_string()
                            on:input=setter(Field::Gamma) />
                        <output id=format!("gamma-{c}-value")>{move || human(gamma_v())}</output>
                    </div>
                }
            })
            .collect_view();
        let auto = move |_| update(ctx, |r| r.composite = r.auto);
        Some(
            view! {
                <div class="contrast" aria-label="Contrast">
                    {rows_view}
                    <button type="button" id="auto-stretch" on:click=auto>
                        "Preset stretch"
                    </button>
                    {note.map(|n| view! { <p class="preset-note" id="preset-note">{n}</p> })}
                </div>
            }
            .into_any(),
        )
    };

    // The overlay's legend and opacity.
    let overlay_setup = Memo::new(move |_| match state.get() {
        DrawState::Drawn(r) => Some((r.overlay.map(|o| (o.product, o.classes)), r.overlay_error)),
        _ => None,
    });
    let opacity = Memo::new(move |_| match state.get() {
        DrawState::Drawn(r) => r.overlay.map(|o| o.opacity),
        _ => None,
    });
    let overlay_view = move || {
        let (shown, error) = overlay_setup.get()?;
        if let Some(e) = error {
            return Some(
                view! {
                    <p class="status error overlay-error" id="overlay-error" role="alert">
                        {format!("Could not draw the classes: {e}")}
                    </p>
                }
                .into_any(),
            );
        }
        let (id, classes) = shown?;
        let set_opacity = move |ev: leptos::ev::Event| {
            let Ok(v) = event_target_value(&ev).parse::<f32>() else {
                return;
            };
            if !(0.0..=1.0).contains(&v) {
                return;
            }
            update(ctx, move |r| {
                if let Some(o) = r.overlay.as_mut() {
                    o.opacity = v;
                }
            });
        };
        let entries = classes
            .into_iter()
            .map(|c| {
                view! {
                    <li data-value=c.value.to_string() data-color=c.color.clone()>
                        <span class="swatch" style:background=c.color.clone()></span>
                        {format!("{} ({})", c.name, c.value)}
                    </li>
                }
            })
            .collect_view();
        Some(
            view! {
                <div class="overlay-panel" id="overlay-panel">
                    <p class="overlay-title">
                        "Classes of "
                        <a href=format!("#/products/{}", id.0)>{id.0.clone()}</a>
                    </p>
                    <label for="overlay-opacity">"Opacity"</label>
                    <input type="range" id="overlay-opacity" min="0" max="1" step="0.01"
                        prop:value=move || opacity.get().unwrap_or(0.0).to_string()
                        on:input=set_opacity />
                    <output id="overlay-opacity-value">
                        {move || format!("{:.0} %", opacity.get().unwrap_or(0.0) * 100.0)}
                    </output>
                    <ul class="class-legend" id="class-legend">{entries}</ul>
                </div>
            }
            .into_any(),
        )
    };

    // Pixel values under the cursor.
    let hover = RwSignal::new(None::<String>);
    let on_hover = move |ev: leptos::ev::MouseEvent| {
        let (x, y) = (ev.offset_x(), ev.offset_y());
        let text = match state.get_untracked() {
            DrawState::Drawn(r) if x >= 0 && y >= 0 => {
                let scene = ctx.scene.get_value();
                let scene = scene.borrow();
                pixel_readout(&r, &scene, x as u32, y as u32)
            }
            _ => None,
        };
        hover.set(text);
    };
    let centre = (CANVAS_WIDTH as f32 / 2.0, CANVAS_HEIGHT as f32 / 2.0);

    let has_pixels = move || product.with(|p| p.as_ref().and_then(local_grid).is_some());
    view! {
        <section class="viewer" aria-label="Viewer">
            {move || product.get().map(|p| view! { <ViewerHeader product=p /> })}
            {move || match product.get() {
                None => Some(view! {
                    <p class="notice">"Select a product with local pixels to view it."</p>
                }.into_any()),
                Some(p) if local_grid(&p).is_none() => Some(view! {
                    <p class="notice remote-notice">
                        "Metadata only: this product's pixels are in a remote archive that this \
                         server cannot reach. Its catalog entry is shown above."
                    </p>
                }.into_any()),
                Some(_) => None,
            }}
            <div class="controls" style:display=move || if has_pixels() { "flex" } else { "none" }>
                <label for="preset">"Bands"</label>
                <select
                    id="preset"
                    prop:value=move || preset.get().map(|p| p.name).unwrap_or_default()
                    on:change=move |ev| chosen_preset.set(Some(event_target_value(&ev)))
                >
                    {move || {
                        presets
                            .get()
                            .unwrap_or_default()
                            .into_iter()
                            .map(|p| {
                                let label = if p.bands.len() == 1 || p.name.contains('/') {
                                    p.name.clone()
                                } else {
                                    format!("{} ({})", p.name, p.bands.join(", "))
                                };
                                view! { <option value=p.name.clone()>{label}</option> }
                            })
                            .collect_view()
                    }}
                </select>
                <span class="zoom-buttons" role="group" aria-label="Zoom">
                    <button type="button" id="zoom-in" title="Zoom in"
                        on:click=move |_| zoom_at(ctx, centre.0, centre.1, ZOOM_STEP * ZOOM_STEP)>"+"</button>
                    <button type="button" id="zoom-out" title="Zoom out"
                        on:click=move |_| zoom_at(ctx, centre.0, centre.1, 1.0 / (ZOOM_STEP * ZOOM_STEP))>"−"</button>
                    <button type="button" id="zoom-fit" title="Fit the whole product"
                        on:click=move |_| update(ctx, |r| r.view = r.fit)>"Fit"</button>
                </span>
                <span class="gpu">
                    {move || match gpu.get() {
                        None => "GPU: starting…".to_string(),
                        Some(Ok(name)) => format!("GPU: {}", backend_label(name)),
                        Some(Err(_)) => "GPU: unavailable".to_string(),
                    }}
                </span>
            </div>
            <div class="viewer-body" style:display=move || if has_pixels() { "flex" } else { "none" }>
                <div class="canvas-frame">
                    <canvas
                        id="render"
                        node_ref=canvas_ref
                        width=CANVAS_WIDTH
                        height=CANVAS_HEIGHT
                        style=format!("width:{CANVAS_WIDTH}px;height:{CANVAS_HEIGHT}px;touch-action:none")
                        title="Wheel to zoom, drag to pan"
                        on:mousemove=on_hover
                        on:mouseleave=move |_| hover.set(None)
                        on:wheel=on_wheel
                        on:pointerdown=on_down
                        on:pointermove=on_move
                        on:pointerup=on_up
                        on:pointercancel=on_up
                    ></canvas>
                </div>
                <div class="side">
                    <div id="pixel-readout" aria-live="polite">
                        {move || hover.get().unwrap_or_else(|| "Hover the image for values".to_string())}
                    </div>
                    {overlay_view}
                </div>
            </div>
            <div class="contrast-frame" style:display=move || if has_pixels() { "block" } else { "none" }>
                {contrast_view}
            </div>
            <div class="draw-info" style:display=move || if has_pixels() { "block" } else { "none" }>
                {move || state_view(state.get())}
            </div>
        </section>
    }
}

/// Sets the preset's composite and the slider ranges it implies.
fn apply_preset(r: &mut DrawReport, preset: &Preset, composite: Composite, values: &[&[f32]]) {
    r.preset = preset.name.clone();
    r.bands = preset.bands.clone();
    r.note = preset.note.clone();
    r.composite = composite;
    r.auto = composite;
    r.value_ranges = if composite.index.is_some() {
        [(-1.0, 1.0); 3]
    } else {
        [0, 1, 2].map(|c| {
            let (lo, hi) = channel_range(&composite, values, c);
            // The fixed dB ranges stay reachable when the data lie inside them.
            (lo.min(composite.min[c]), hi.max(composite.max[c]))
        })
    };
}

/// The zoom factor of a wheel event: twice per 300 pixels of scroll (a mouse notch of 100
/// pixels zooms by 2^(1/3), about 1.26; trackpads' small deltas zoom smoothly), lines counted
/// as 40 pixels and pages as 800, at most 4x per event.
pub fn wheel_factor(delta_y: f64, delta_mode: u32) -> f32 {
    let pixels = match delta_mode {
        1 => delta_y * 40.0,
        2 => delta_y * 800.0,
        _ => delta_y,
    };
    (2f64.powf(-pixels / 300.0) as f32).clamp(0.25, 4.0)
}

/// Zooms the drawn view by `factor` around canvas pixel `(x, y)`.
fn zoom_at(ctx: Ctx, x: f32, y: f32, factor: f32) {
    update(ctx, |r| {
        let min_tpp = 1.0 / (16.0 * r.step as f32);
        let max_tpp = r.fit.texels_per_pixel * 4.0;
        r.view = zoom_view(&r.view, x, y, factor, min_tpp, max_tpp);
    });
}

/// Changes the drawn report (stretch, view, opacity), redraws from what is on the GPU, and
/// fetches the tiles the new view needs.
fn update(ctx: Ctx, change: impl FnOnce(&mut DrawReport)) {
    let DrawState::Drawn(mut report) = ctx.state.get_untracked() else {
        return;
    };
    let before = report.clone();
    change(&mut report);
    if report == before {
        return;
    }
    redraw(ctx, report);
}

/// Draws `report` (the overview and the loaded tiles its view needs), publishes it, and
/// requests the tiles still missing.
fn redraw(ctx: Ctx, mut report: Box<DrawReport>) {
    let Some(canvas) = ctx.canvas.get_untracked() else {
        return;
    };
    let scene_rc = ctx.scene.get_value();
    let missing = {
        let mut scene = scene_rc.borrow_mut();
        let missing = plan_tiles(&mut scene, &mut report, false);
        for key in &report.tiles.drawn {
            scene.touch(*key);
        }
        missing
    };
    let overlay = report.overlay.as_ref().map(OverlayView::overlay);
    let mut layers = vec![BASE];
    layers.extend(report.tiles.drawn.iter().map(TileKey::layer_id));
    // The renderer is out of its slot while a fetch draws: that draw wins anyway.
    let Some(drawn) = ctx.renderer.with_value(|slot| {
        let mut slot = slot.borrow_mut();
        let gpu = slot.as_mut()?;
        report.tiles.cached = gpu.layer_count().saturating_sub(1);
        Some(gpu.draw_layers(&report.composite, &report.view, overlay.as_ref(), &layers))
    }) else {
        return;
    };
    match drawn {
        Ok(()) => {
            report.readback = None;
            write_attributes(&canvas, &report);
            ctx.state.set(DrawState::Drawn(report.clone()));
            if !missing.is_empty() {
                // Tiles are asked for once the view rests: a wheel spin or a drag passes
                // through views whose tiles nobody would look at.
                let view = report.view;
                crate::browser::after(TILE_DELAY_MS, move || request_tiles(ctx, view));
            }
        }
        Err(e) => {
            let message = e.to_string();
            tracing::error!(error = %message, "redraw failed");
            set_error_attrs(&canvas, &message);
            ctx.state.set(DrawState::Failed(message));
        }
    }
}

/// Fetches the tiles the drawn view still lacks, if it is still `view`.
fn request_tiles(ctx: Ctx, view: View) {
    let DrawState::Drawn(mut report) = ctx.state.get_untracked() else {
        return;
    };
    if report.view != view {
        return;
    }
    let missing = {
        let scene = ctx.scene.get_value();
        let mut scene = scene.borrow_mut();
        plan_tiles(&mut scene, &mut report, true)
    };
    if missing.is_empty() {
        return;
    }
    if let Some(canvas) = ctx.canvas.get_untracked() {
        write_attributes(&canvas, &report);
    }
    ctx.state.set(DrawState::Drawn(report.clone()));
    for key in missing {
        spawn_local(fetch_tile_task(ctx, report.product.clone(), key));
    }
}

/// Works out the tiles `report`'s view needs: fills `report.tiles` (the loaded ones to draw)
/// and returns those neither loaded nor being fetched; with `fetch`, they are marked pending
/// (the caller fetches them).
fn plan_tiles(scene: &mut Scene, report: &mut DrawReport, fetch: bool) -> Vec<TileKey> {
    let level = wanted_level(&report.view, report.step);
    let wanted = match level {
        Some(level) => visible_tiles(
            &report.view,
            (CANVAS_WIDTH, CANVAS_HEIGHT),
            report.grid,
            report.step,
            level,
        ),
        None => Vec::new(),
    };
    let drawn: Vec<TileKey> = wanted
        .iter()
        .copied()
        .filter(|k| scene.tiles.contains_key(k))
        .collect();
    let missing: Vec<TileKey> = wanted
        .iter()
        .copied()
        .filter(|k| !scene.tiles.contains_key(k) && !scene.pending.contains(k))
        .collect();
    if fetch {
        for k in &missing {
            scene.pending.insert(*k);
        }
        scene.requested += missing.len() as u32;
    }
    // Tiles still to come: being fetched, or to be asked for once the view rests.
    let pending = wanted
        .iter()
        .filter(|k| !scene.tiles.contains_key(k))
        .count();
    report.tiles = TileStatus {
        level,
        zoom: level.map(|l| {
            TileKey {
                level: l,
                x: 0,
                y: 0,
            }
            .zoom(report.grid)
        }),
        drawn,
        pending,
        requested: scene.requested,
        cached: scene.tiles.len(),
        error: scene.tile_error.clone(),
    };
    missing
}

/// Fetches one tile (and its classes), uploads it, and redraws if it is still wanted.
async fn fetch_tile_task(ctx: Ctx, product: ProductId, key: TileKey) {
    let scene_rc = ctx.scene.get_value();
    let (generation, grid, step, layers, overlay) = {
        let s = scene_rc.borrow();
        (
            s.generation,
            s.grid,
            s.step,
            s.layers.clone(),
            s.overlay.clone(),
        )
    };
    let result = async {
        let raster = fetch_tile(&product, key.zoom(grid), key.x, key.y, &layers).await?;
        let classes = match &overlay {
            Some(o) => Some(
                class_samples(
                    o,
                    grid,
                    key.grid_window(grid),
                    key.level_step(),
                    (raster.width, raster.height),
                )
                .await?,
            ),
            None => None,
        };
        Ok::<_, FrontendError>((raster, classes))
    }
    .await;
    if scene_rc.borrow().generation != generation {
        return;
    }
    let (raster, classes) = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, ?key, "tile failed");
            let mut s = scene_rc.borrow_mut();
            s.pending.remove(&key);
            s.tile_error = Some(format!("tile {}/{}/{}: {e}", key.zoom(grid), key.x, key.y));
            drop(s);
            update(ctx, |r| r.tiles.error = Some(e.to_string()));
            return;
        }
    };
    let slot = ctx.renderer.get_value();
    let is_current = || scene_rc.borrow().generation == generation;
    let Some(mut lease) = Lease::wait(&slot, &is_current).await else {
        return;
    };
    let placement = key.placement(step);
    let uploaded = {
        let gpu = lease.renderer();
        let slices: Vec<&[f32]> = raster.bands.iter().map(Vec::as_slice).collect();
        gpu.upload_layer(
            key.layer_id(),
            placement,
            raster.width,
            raster.height,
            &slices,
        )
        .and_then(|()| match &classes {
            Some(c) => gpu.upload_classes(key.layer_id(), c),
            None => Ok(()),
        })
    };
    {
        let mut s = scene_rc.borrow_mut();
        s.pending.remove(&key);
        match uploaded {
            Ok(()) => {
                s.tiles.insert(
                    key,
                    TileData {
                        placement,
                        width: raster.width,
                        height: raster.height,
                        window: key.grid_window(grid),
                        bands: raster.bands,
                        classes,
                    },
                );
                s.touch(key);
                // Evict the least recently used tiles beyond the budget.
                while s.tiles.len() > MAX_TILES {
                    let Some(old) = s.lru.pop_front() else { break };
                    s.tiles.remove(&old);
                    lease.renderer().retain_layers(|id| id != old.layer_id());
                }
            }
            Err(e) => s.tile_error = Some(e.to_string()),
        }
    }
    drop(lease);
    // Redraw with the new tile (a no-op change still redraws through `redraw`).
    if let DrawState::Drawn(report) = ctx.state.get_untracked() {
        redraw(ctx, report);
    }
}

/// The class values of the classified product over the texels of a layer: grid `window` of
/// the source every `step` grid pixels, `size` texels. The same grid is read directly
/// (`/raster` takes every `step`-th pixel: classes are never averaged); a classified grid of
/// another size is sampled at the nearest class pixel.
async fn class_samples(
    o: &OverlaySource,
    grid: (u32, u32),
    window: GridWindow,
    step: u32,
    size: (u32, u32),
) -> Result<Vec<f32>, FrontendError> {
    let bands = [o.band.clone()];
    if o.grid == grid {
        let r = fetch_raster(&o.id, &bands, window, step).await?;
        if (r.width, r.height) != size {
            return Err(FrontendError::Decode(format!(
                "class raster of {}x{} for {}x{} texels",
                r.width, r.height, size.0, size.1
            )));
        }
        return Ok(r.bands.into_iter().next().unwrap_or_default());
    }
    let (sx, sy) = (
        f64::from(o.grid.0) / f64::from(grid.0),
        f64::from(o.grid.1) / f64::from(grid.1),
    );
    let cx0 = (f64::from(window.x) * sx).floor() as u32;
    let cy0 = (f64::from(window.y) * sy).floor() as u32;
    let cx1 = ((f64::from(window.x + window.width) * sx).ceil() as u32).min(o.grid.0);
    let cy1 = ((f64::from(window.y + window.height) * sy).ceil() as u32).min(o.grid.1);
    let cstep = ((f64::from(step) * sx).floor() as u32).max(1);
    let cwin = GridWindow {
        x: cx0,
        y: cy0,
        width: cx1.saturating_sub(cx0).max(1),
        height: cy1.saturating_sub(cy0).max(1),
    };
    let r = fetch_raster(&o.id, &bands, cwin, cstep).await?;
    let values = r.bands.into_iter().next().unwrap_or_default();
    let mut out = Vec::with_capacity(size.0 as usize * size.1 as usize);
    for j in 0..size.1 {
        for i in 0..size.0 {
            let gx = f64::from(window.x + i * step);
            let gy = f64::from(window.y + j * step);
            let cx = ((gx * sx).floor() as u32).saturating_sub(cx0) / cstep;
            let cy = ((gy * sy).floor() as u32).saturating_sub(cy0) / cstep;
            let cx = cx.min(r.width.saturating_sub(1));
            let cy = cy.min(r.height.saturating_sub(1));
            out.push(
                values
                    .get((cy * r.width + cx) as usize)
                    .copied()
                    .unwrap_or(255.0),
            );
        }
    }
    Ok(out)
}

/// The classified product `id`: its grid, class band and classes (`albedo:classes` of its
/// STAC item).
async fn overlay_source(id: &ProductId) -> Result<OverlaySource, FrontendError> {
    let derived = fetch_product(id).await?;
    let grid = local_grid(&derived)
        .ok_or_else(|| FrontendError::Decode(format!("{id} has no pixels on this server")))?;
    let band = derived
        .bands
        .iter()
        .find(|b| b.name == "class")
        .or(derived.bands.first())
        .map(|b| b.name.clone())
        .ok_or_else(|| FrontendError::Decode(format!("{id} lists no band")))?;
    let classes = fetch_classes(&derived).await?;
    Ok(OverlaySource {
        id: id.clone(),
        band,
        grid,
        classes,
    })
}

/// The `albedo:classes` of a classified product (from its STAC item).
pub async fn fetch_classes(product: &Product) -> Result<Vec<ClassInfo>, FrontendError> {
    let item = fetch_stac_item(product).await?;
    serde_json::from_value(item["properties"]["albedo:classes"].clone())
        .map_err(|e| FrontendError::Decode(format!("albedo:classes of {}: {e}", product.id)))
}

/// The STAC item of a product, as JSON.
pub async fn fetch_stac_item(product: &Product) -> Result<serde_json::Value, FrontendError> {
    let enc = |s: &str| -> String { js_sys::encode_uri_component(s).into() };
    fetch_json(
        &format!(
            "/stac/collections/{}/items/{}",
            enc(&product.collection),
            enc(&product.id.0)
        ),
        "STAC item",
    )
    .await
}

/// What [`load_and_draw`] loads.
struct Load<'a> {
    product: &'a Product,
    overlay: Option<&'a ProductId>,
    preset: &'a Preset,
    layers: Vec<String>,
    grid: (u32, u32),
    generation: u64,
}

/// Fetches the overview (and the overlay's classes), uploads, and draws. `Ok(None)` when a
/// newer request took over.
async fn load_and_draw(
    slot: &RendererSlot,
    scene_rc: &Rc<RefCell<Scene>>,
    job: Load<'_>,
    is_current: &dyn Fn() -> bool,
) -> Result<Option<DrawReport>, FrontendError> {
    let Load {
        product,
        overlay,
        preset,
        layers,
        grid: (grid_w, grid_h),
        generation,
    } = job;
    let step = fetch_step(grid_w, grid_h, CANVAS_WIDTH, CANVAS_HEIGHT);
    let window = GridWindow {
        x: 0,
        y: 0,
        width: grid_w,
        height: grid_h,
    };
    let raster = fetch_raster(&product.id, &layers, window, step).await?;
    if !is_current() {
        return Ok(None);
    }
    let nodata = raster.nodata.or_else(|| implied_nodata(product));
    let nodata32 = nodata.map(|v| v as f32);
    let pixels = BandValues(Arc::new(raster.bands));
    let slices: Vec<&[f32]> = pixels.0.iter().map(Vec::as_slice).collect();
    let composite = preset
        .composite(&layers, &slices, nodata32)
        .ok_or_else(|| FrontendError::Decode(format!("preset {} lacks a band", preset.name)))?;

    // The overlay: its failure is shown beside the imagery, not instead of it.
    let mut overlay_error = None;
    let mut overlay_state = None;
    if let Some(id) = overlay {
        let loaded = async {
            let source = overlay_source(id).await?;
            let classes = class_samples(
                &source,
                (grid_w, grid_h),
                window,
                step,
                (raster.width, raster.height),
            )
            .await?;
            Ok::<_, FrontendError>((source, classes))
        }
        .await;
        match loaded {
            Ok(v) => overlay_state = Some(v),
            Err(e) => {
                tracing::warn!(error = %e, overlay = %id, "no overlay");
                overlay_error = Some(e.to_string());
            }
        }
        if !is_current() {
            return Ok(None);
        }
    }

    let fit = View::fit(raster.width, raster.height, CANVAS_WIDTH, CANVAS_HEIGHT);
    let overlay_view = overlay_state.as_ref().map(|(s, _)| OverlayView {
        product: s.id.clone(),
        classes: s.classes.clone(),
        opacity: DEFAULT_OPACITY,
    });
    let overlay = overlay_view.as_ref().map(OverlayView::overlay);

    // The renderer is lent to one draw at a time; a readback awaits while holding it.
    let Some(mut lease) = Lease::wait(slot, is_current).await else {
        return Ok(None);
    };
    let renderer = lease.renderer();
    renderer.set_bands(raster.width, raster.height, &slices)?;
    if let Some((_, classes)) = &overlay_state {
        renderer.upload_classes(BASE, classes)?;
    }
    {
        let mut scene = scene_rc.borrow_mut();
        *scene = Scene {
            generation,
            grid: (grid_w, grid_h),
            step,
            layers: layers.clone(),
            overview_classes: overlay_state.as_ref().map(|(_, c)| c.clone()),
            overlay: overlay_state.as_ref().map(|(s, _)| s.clone()),
            ..Scene::default()
        };
    }
    let readback = if readback_requested() {
        // Before the first present: headless WebGPU may lose the device when presenting.
        let gpu = renderer
            .read_back(&composite, &fit, overlay.as_ref(), &[BASE])
            .await?;
        let cpu_layer = CpuLayer {
            placement: Placement::IDENTITY,
            width: raster.width,
            height: raster.height,
            bands: &slices,
            classes: overlay_state.as_ref().map(|(_, c)| c.as_slice()),
        };
        let cpu = render_layers_cpu(
            &[cpu_layer],
            &composite,
            overlay.as_ref(),
            &fit,
            CANVAS_WIDTH,
            CANVAS_HEIGHT,
        );
        let diffs = gpu.iter().zip(&cpu).map(|(a, b)| a.abs_diff(*b));
        Some(ReadbackCheck {
            max_diff: diffs.clone().max().unwrap_or(0),
            mismatches: diffs.filter(|d| *d > 1).count(),
        })
    } else {
        None
    };
    renderer.draw_layers(&composite, &fit, overlay.as_ref(), &[BASE])?;
    let mut report = DrawReport {
        backend: renderer.backend_name(),
        product: product.id.clone(),
        preset: preset.name.clone(),
        bands: preset.bands.clone(),
        layers,
        note: preset.note.clone(),
        grid: (grid_w, grid_h),
        window,
        step,
        tex_width: raster.width,
        tex_height: raster.height,
        view: fit,
        fit,
        composite,
        auto: composite,
        value_ranges: [(0.0, 1.0); 3],
        nodata,
        readback,
        pixels: pixels.clone(),
        tiles: TileStatus::default(),
        overlay: overlay_view,
        overlay_error,
    };
    apply_preset(&mut report, preset, composite, &slices);
    Ok(Some(report))
}

#[component]
fn ViewerHeader(product: Product) -> impl IntoView {
    let mut facts = vec![product.collection.clone()];
    facts.extend(product.platform.clone());
    facts.extend(product.product_type.clone());
    facts.extend(product.datetime.clone());
    if let Some(c) = product.cloud_cover {
        facts.push(format!("{c:.1} % cloud"));
    }
    if let Some((w, h)) = local_grid(&product) {
        facts.push(format!("{w} × {h} px grid, {} bands", product.bands.len()));
    }
    let attribution = product.attribution.clone();
    let href = format!("#/products/{}", product.id.0);
    view! {
        <header class="viewer-header">
            <h2 id="viewer-title">{product.title.clone()}</h2>
            <p class="facts">{facts.join(" · ")} " · " <a href=href class="permalink">"link"</a></p>
            {attribution.map(|a| view! { <p class="attribution">{a}</p> })}
        </header>
    }
}

fn state_view(state: DrawState) -> impl IntoView {
    match state {
        DrawState::Idle => view! { <p class="status"></p> }.into_any(),
        DrawState::Loading(text) => view! { <p class="status loading">{text}</p> }.into_any(),
        DrawState::Failed(text) => view! {
            <p class="status error" role="alert">{format!("Could not draw: {text}")}</p>
        }
        .into_any(),
        DrawState::Drawn(r) => {
            let names = ["R", "G", "B"];
            let grey = r.bands.len() == 1 || r.composite.minus.iter().all(Option::is_some);
            let channel_name = |c: usize| match r.composite.minus[c] {
                Some(b) => format!(
                    "{}/{}",
                    r.layers[r.composite.channels[c] as usize], r.layers[b as usize]
                ),
                None => r.layers[r.composite.channels[c] as usize].clone(),
            };
            let stretch = if let Some(map) = r.composite.index {
                format!(
                    "({} − {}) / ({} + {}) over {} – {}, colormap {}",
                    r.bands[0],
                    r.bands[1],
                    r.bands[0],
                    r.bands[1],
                    human(r.composite.min[0]),
                    human(r.composite.max[0]),
                    map.name()
                )
            } else if grey {
                format!(
                    "{}: {} – {}",
                    channel_name(0),
                    human(r.composite.min[0]),
                    human(r.composite.max[0])
                )
            } else {
                (0..3)
                    .map(|c| {
                        format!(
                            "{} {}: {} – {}",
                            names[c],
                            channel_name(c),
                            human(r.composite.min[c]),
                            human(r.composite.max[c])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" · ")
            };
            let readback = r.readback.map(|c| {
                format!(
                    "GPU readback vs CPU reference: max difference {}, {} bytes off by more than 1",
                    c.max_diff, c.mismatches
                )
            });
            let tiles = match (r.tiles.zoom, r.tiles.level) {
                (Some(z), Some(level)) => format!(
                    " · zoom {z} tiles (1 px = {} grid px): {} drawn, {} loading",
                    1u32 << level,
                    r.tiles.drawn.len(),
                    r.tiles.pending
                ),
                _ => String::new(),
            };
            let zoom = r.fit.texels_per_pixel / r.view.texels_per_pixel;
            view! {
                <p class="status drawn">
                    {format!(
                        "{} · {} · {} × {} texels (every {} grid px of {} × {}) · zoom {}×{}",
                        backend_label(r.backend),
                        r.preset,
                        r.tex_width,
                        r.tex_height,
                        r.step,
                        r.window.width,
                        r.window.height,
                        human(zoom),
                        tiles,
                    )}
                </p>
                <p class="stretch">
                    {format!(
                        "{}: {} · gamma {}{}",
                        if r.composite.index.is_some() {
                            "Index".to_string()
                        } else if r.composite == r.auto {
                            "Preset stretch".to_string()
                        } else {
                            "Manual stretch".to_string()
                        },
                        stretch,
                        if r.composite.index.is_some() {
                            "n/a".to_string()
                        } else if grey {
                            human(r.composite.gamma[0])
                        } else {
                            r.composite.gamma.map(human).join(", ")
                        },
                        match r.nodata {
                            Some(v) => format!(" · nodata {v} shown as a checkerboard"),
                            None => String::new(),
                        }
                    )}
                </p>
                {r.tiles.error.map(|e| view! { <p class="status error tile-error">{format!("Some tiles failed: {e}")}</p> })}
                {readback.map(|t| view! { <p class="readback">{t}</p> })}
            }
            .into_any()
        }
    }
}

/// CSS gradient of a colormap, from its stops.
pub fn colormap_gradient(map: Colormap) -> String {
    let stops: Vec<String> = map
        .stops()
        .iter()
        .map(|(p, c)| format!("rgb({},{},{}) {}%", c[0], c[1], c[2], p * 100.0))
        .collect();
    format!("linear-gradient(to right, {})", stops.join(", "))
}

/// The legend of an index view: a colour bar over `[-1, 1]`.
fn legend_view(map: Colormap) -> impl IntoView {
    view! {
        <div class="legend" id="legend" data-colormap-name=map.name()>
            <div class="legend-bar" style:background=colormap_gradient(map)></div>
            <div class="legend-labels">
                <span>"-1"</span>
                <span>"0"</span>
                <span>"1"</span>
            </div>
        </div>
    }
}

/// Range of the gamma sliders.
pub const GAMMA_RANGE: (f32, f32) = (0.2, 5.0);

/// Which number of a channel's stretch a slider sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Min,
    Max,
    Gamma,
}

/// Slider step for values between `lo` and `hi`: a thousandth of the range, whole numbers
/// when the range is wide (digital numbers), and 1 for an empty range.
pub fn slider_step(lo: f32, hi: f32) -> f32 {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let step = span / 1000.0;
    if step >= 1.0 { step.floor() } else { step }
}

/// `WebGPU` / `WebGL2` for the backend name the renderer reports.
fn backend_label(name: &str) -> &str {
    match name {
        "webgpu" => "WebGPU",
        "webgl2" => "WebGL2",
        other => other,
    }
}

/// A number for people: integers as such, others with four significant digits.
fn human(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e7 {
        format!("{v:.0}")
    } else {
        let digits = (4 - (v.abs().log10().floor() as i32 + 1)).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    }
}

/// The renderer for the canvas (WebGPU or WebGL2).
#[cfg(target_arch = "wasm32")]
async fn create_renderer(canvas: web_sys::HtmlCanvasElement) -> Result<Renderer, String> {
    Renderer::for_canvas(canvas)
        .await
        .map_err(|e| e.to_string())
}

/// Outside a browser (native builds of this crate, for its unit tests) there is no canvas.
#[cfg(not(target_arch = "wasm32"))]
async fn create_renderer(_canvas: web_sys::HtmlCanvasElement) -> Result<Renderer, String> {
    Err("drawing needs a browser canvas".to_string())
}

/// The renderer taken out of its slot for one draw; put back when dropped.
struct Lease<'a> {
    slot: &'a Rc<RefCell<Option<Renderer>>>,
    renderer: Option<Renderer>,
}

impl<'a> Lease<'a> {
    /// Takes the renderer, waiting while another draw holds it. `None` if this draw was
    /// superseded meanwhile.
    async fn wait(
        slot: &'a Rc<RefCell<Option<Renderer>>>,
        is_current: &dyn Fn() -> bool,
    ) -> Option<Lease<'a>> {
        loop {
            if !is_current() {
                return None;
            }
            if let Some(renderer) = slot.borrow_mut().take() {
                return Some(Lease {
                    slot,
                    renderer: Some(renderer),
                });
            }
            next_tick().await;
        }
    }

    fn renderer(&mut self) -> &mut Renderer {
        self.renderer.as_mut().expect("held until drop")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        *self.slot.borrow_mut() = self.renderer.take();
    }
}

/// Resolves after a short timeout, letting other tasks run.
async fn next_tick() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 15);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Whether the page URL asks for a readback check (`?readback`).
fn readback_requested() -> bool {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .is_some_and(|q| {
            q.trim_start_matches('?')
                .split('&')
                .any(|kv| kv == "readback" || kv.starts_with("readback="))
        })
}

/// Comma list of three numbers, each printed so it parses back to the same `f32`.
fn list3<T: std::fmt::Display>(values: [T; 3]) -> String {
    format!("{},{},{}", values[0], values[1], values[2])
}

/// Writes the canvas hooks a browser test reads to recompute the pixels.
pub fn write_attributes(canvas: &web_sys::HtmlCanvasElement, r: &DrawReport) {
    let el: &web_sys::Element = canvas.unchecked_ref();
    let w = &r.window;
    let minus = r.composite.minus.map(|m| m.map_or(-1, i64::from));
    let tiles: Vec<String> = r
        .tiles
        .drawn
        .iter()
        .map(|k| format!("{}/{}", k.x, k.y))
        .collect();
    let attrs = [
        ("data-backend", r.backend.to_string()),
        ("data-product", r.product.0.clone()),
        ("data-bands", r.bands.join(",")),
        ("data-layers", r.layers.join(",")),
        ("data-grid", format!("{},{}", r.grid.0, r.grid.1)),
        (
            "data-window",
            format!("{},{},{},{}", w.x, w.y, w.width, w.height),
        ),
        ("data-step", r.step.to_string()),
        ("data-tex-width", r.tex_width.to_string()),
        ("data-tex-height", r.tex_height.to_string()),
        ("data-origin-x", r.view.origin_x.to_string()),
        ("data-origin-y", r.view.origin_y.to_string()),
        ("data-texels-per-pixel", r.view.texels_per_pixel.to_string()),
        ("data-preset", r.preset.clone()),
        ("data-channels", list3(r.composite.channels)),
        ("data-minus", list3(minus)),
        ("data-db-factor", r.composite.scale.db_factor().to_string()),
        ("data-min", list3(r.composite.min)),
        ("data-max", list3(r.composite.max)),
        ("data-gamma", list3(r.composite.gamma)),
        (
            "data-nodata",
            r.nodata.map(|v| v.to_string()).unwrap_or_default(),
        ),
        (
            "data-tile-level",
            r.tiles.level.map(|v| v.to_string()).unwrap_or_default(),
        ),
        (
            "data-tile-zoom",
            r.tiles.zoom.map(|v| v.to_string()).unwrap_or_default(),
        ),
        ("data-tiles-drawn", tiles.join(" ")),
        ("data-tiles-pending", r.tiles.pending.to_string()),
        ("data-tile-requests", r.tiles.requested.to_string()),
        ("data-tiles-cached", r.tiles.cached.to_string()),
    ];
    for (name, value) in attrs {
        let _ = el.set_attribute(name, &value);
    }
    match &r.overlay {
        Some(o) => {
            let classes: Vec<String> = o
                .classes
                .iter()
                .map(|c| format!("{}:{}", c.value, c.color.trim_start_matches('#')))
                .collect();
            let _ = el.set_attribute("data-overlay", &o.product.0);
            let _ = el.set_attribute("data-overlay-opacity", &o.opacity.to_string());
            let _ = el.set_attribute("data-overlay-classes", &classes.join(","));
        }
        None => {
            for name in [
                "data-overlay",
                "data-overlay-opacity",
                "data-overlay-classes",
            ] {
                let _ = el.remove_attribute(name);
            }
        }
    }
    match r.composite.index {
        Some(map) => {
            let lut: Vec<String> = map
                .lut()
                .iter()
                .map(|c| format!("{:02x}{:02x}{:02x}", c[0], c[1], c[2]))
                .collect();
            let _ = el.set_attribute("data-colormap", &lut.join(","));
            let _ = el.set_attribute("data-colormap-name", map.name());
            let _ = el.set_attribute(
                "data-colormap-range",
                &format!("{},{}", r.composite.min[0], r.composite.max[0]),
            );
        }
        None => {
            for name in ["data-colormap", "data-colormap-name", "data-colormap-range"] {
                let _ = el.remove_attribute(name);
            }
        }
    }
    match r.readback {
        Some(c) => {
            let _ = el.set_attribute("data-readback-max-diff", &c.max_diff.to_string());
            let _ = el.set_attribute("data-readback-mismatches", &c.mismatches.to_string());
        }
        None => {
            let _ = el.remove_attribute("data-readback-max-diff");
            let _ = el.remove_attribute("data-readback-mismatches");
        }
    }
    let _ = el.remove_attribute("data-error");
    // Last, so a test waiting for "drawn" sees every other attribute already set.
    let _ = el.set_attribute("data-state", "drawn");
}

fn set_state_attr(canvas: &web_sys::HtmlCanvasElement, state: &str) {
    let el: &web_sys::Element = canvas.unchecked_ref();
    let _ = el.remove_attribute("data-error");
    let _ = el.set_attribute("data-state", state);
}

fn set_error_attrs(canvas: &web_sys::HtmlCanvasElement, message: &str) {
    let el: &web_sys::Element = canvas.unchecked_ref();
    let _ = el.set_attribute("data-error", message);
    let _ = el.set_attribute("data-state", "error");
}

/// What `#/products/<id>?overlay=<classified>` opens: the product, the classified product
/// drawn over it, and a note for people. A classified product opened by itself is shown over
/// its source (`albedo:source` of its STAC item).
pub async fn resolve_opened(
    id: &ProductId,
    overlay: Option<ProductId>,
) -> Result<(Product, Option<ProductId>, Option<String>), FrontendError> {
    let product = fetch_product(id).await?;
    if overlay.is_none() && product.collection == CLASSIFIED_COLLECTION {
        let item = fetch_stac_item(&product).await?;
        let source = item["properties"]["albedo:source"]
            .as_str()
            .map(|s| ProductId(s.to_string()))
            .ok_or_else(|| FrontendError::Decode(format!("{id} names no albedo:source")))?;
        let source_product = fetch_product(&source).await?;
        let note = format!(
            "{} holds classes: they are drawn over its source {}.",
            id.0, source.0
        );
        return Ok((source_product, Some(id.clone()), Some(note)));
    }
    let note = overlay
        .as_ref()
        .map(|o| format!("Classes of {} over {}.", o.0, product.id.0));
    Ok((product, overlay, note))
}

pub use crate::presets::CLASSIFIED_COLLECTION;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slider_steps() {
        assert_eq!(slider_step(0.0, 10000.0), 10.0);
        assert_eq!(slider_step(100.0, 2600.0), 2.0);
        assert_eq!(slider_step(-30.0, 5.0), 0.035);
        assert_eq!(slider_step(4.0, 4.0), 1.0);
    }

    #[test]
    fn gradient_lists_the_stops() {
        assert_eq!(
            colormap_gradient(Colormap::Blues),
            "linear-gradient(to right, rgb(247,251,255) 0%, rgb(107,174,214) 50%, \
             rgb(8,48,107) 100%)"
        );
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(1234.0), "1234");
        assert_eq!(human(0.5), "0.5000");
        assert_eq!(human(1.25), "1.250");
    }

    #[test]
    fn wheel_zoom_factors() {
        assert_eq!(wheel_factor(-300.0, 0), 2.0);
        assert_eq!(wheel_factor(300.0, 0), 0.5);
        assert!((wheel_factor(-100.0, 0) - 1.2599).abs() < 1e-4);
        // Three lines: 120 px, 2^0.4.
        assert!((wheel_factor(-3.0, 1) - 1.3195).abs() < 1e-4);
        assert_eq!(wheel_factor(-10.0, 2), 4.0);
        assert_eq!(wheel_factor(0.0, 0), 1.0);
    }

    #[test]
    fn class_colours() {
        let o = OverlayView {
            product: ProductId("c".into()),
            classes: vec![
                ClassInfo {
                    value: 0,
                    name: "water".into(),
                    color: "#0000ff".into(),
                },
                ClassInfo {
                    value: 3,
                    name: "odd".into(),
                    color: "blue".into(),
                },
            ],
            opacity: 0.5,
        }
        .overlay();
        assert_eq!(o.palette[0], [0, 0, 255, 255]);
        assert_eq!(o.palette[3], [128, 128, 128, 255]);
        assert_eq!(o.palette[255], [0, 0, 0, 0]);
        assert_eq!(o.opacity, 0.5);
    }
}
