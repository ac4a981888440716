//! The product viewer: preset selector, the wgpu canvas, and what was drawn.
//!
//! For a product with local pixels it fetches the whole grid at the step that fits the
//! canvas, stretches each channel from its 2nd to 98th percentile (gamma 1), fits the image
//! centred, and draws. After each draw the canvas carries `data-*` attributes with every
//! number needed to recompute its pixels on the CPU (see [`write_attributes`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use albedo_render::{
    Colormap, Composite, Renderer, View, normalized_difference, percentile_stretch, render_cpu,
};
use albedo_shared::catalog::{Product, ProductId};
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use crate::api::{GridWindow, fetch_raster};
use crate::error::FrontendError;
use crate::presets::{Preset, fetch_step, local_grid, presets_for};

/// Canvas width in pixels (attribute and CSS size alike; no devicePixelRatio scaling).
pub const CANVAS_WIDTH: u32 = 768;
/// Canvas height in pixels.
pub const CANVAS_HEIGHT: u32 = 512;
/// Percentiles of the auto-stretch.
pub const STRETCH_PERCENTILES: (f32, f32) = (2.0, 98.0);

/// Everything about one finished draw.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawReport {
    /// `webgpu` or `webgl2`.
    pub backend: &'static str,
    /// The product drawn.
    pub product: ProductId,
    /// Preset name.
    pub preset: String,
    /// Bands fetched, in texture-layer order.
    pub bands: Vec<String>,
    /// Grid window fetched.
    pub window: GridWindow,
    /// Grid pixels per texel.
    pub step: u32,
    /// Texture width in texels.
    pub tex_width: u32,
    /// Texture height in texels.
    pub tex_height: u32,
    /// Canvas mapping.
    pub view: View,
    /// Layers and stretch as drawn (the sliders change it).
    pub composite: Composite,
    /// The percentile auto-stretch of this fetch (what "Auto" restores).
    pub auto: Composite,
    /// Smallest and largest valid value of each fetched band (the sliders' ranges).
    pub value_ranges: Vec<(f32, f32)>,
    /// Nodata value of the raster, if any.
    pub nodata: Option<f64>,
    /// Result of the GPU readback check, when the page asked for one (`?readback`).
    pub readback: Option<ReadbackCheck>,
    /// The fetched band values (texture layers), for the pixel read-out.
    pub pixels: BandValues,
}

/// Band values kept on the CPU after upload; compared by identity (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct BandValues(pub Arc<Vec<Vec<f32>>>);

impl PartialEq for BandValues {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What the read-out says about canvas pixel `(x, y)` of a draw: the grid pixel it shows,
/// each band's raw value, and the index value for an index view. `None` over the background.
pub fn pixel_readout(r: &DrawReport, x: u32, y: u32) -> Option<String> {
    let (tx, ty) = r.view.texel_at(x, y, r.tex_width, r.tex_height)?;
    let gx = r.window.x + tx * r.step;
    let gy = r.window.y + ty * r.step;
    let i = ty as usize * r.tex_width as usize + tx as usize;
    let value = |layer: usize| r.pixels.0.get(layer).and_then(|b| b.get(i)).copied();
    let mut lines = vec![format!("x {gx}, y {gy}")];
    for (layer, name) in r.bands.iter().enumerate() {
        let v = value(layer).map(human).unwrap_or_else(|| "–".to_string());
        lines.push(format!("{name} {v}"));
    }
    if r.composite.index.is_some() {
        let a = value(r.composite.channels[0] as usize);
        let b = value(r.composite.channels[1] as usize);
        let v = a
            .zip(b)
            .and_then(|(a, b)| normalized_difference(a, b))
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "undefined".to_string());
        lines.push(format!("{} {v}", r.preset));
    }
    Some(lines.join("\n"))
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

/// The viewer of the selected product.
#[component]
pub fn Viewer(product: Memo<Option<Product>>) -> impl IntoView {
    let canvas_ref = NodeRef::<html::Canvas>::new();
    let renderer: Rc<RefCell<Option<Renderer>>> = Rc::default();
    // `None` while the GPU starts, then the backend name or why there is none.
    let gpu = RwSignal::new(None::<Result<&'static str, String>>);
    let chosen_preset = RwSignal::new(None::<String>);
    let state = RwSignal::new(DrawState::Idle);
    let generation = Rc::new(Cell::new(0u64));
    let renderer_for_sliders = renderer.clone();

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

    Effect::new(move |_| {
        let product = product.get();
        let preset = preset.get();
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
        let Some(preset) = preset else {
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
        state.set(DrawState::Loading(format!(
            "Loading {} of {}…",
            preset.bands.join(", "),
            product.title
        )));
        let renderer = renderer.clone();
        let generation = generation.clone();
        spawn_local(async move {
            let is_current = || generation.get() == current;
            let result = load_and_draw(&renderer, &product, &preset, grid, &is_current).await;
            if !is_current() {
                return;
            }
            match result {
                Ok(Some(report)) => {
                    write_attributes(&canvas, &report);
                    tracing::info!(
                        product = %report.product,
                        bands = ?report.bands,
                        step = report.step,
                        min = ?report.composite.min,
                        max = ?report.composite.max,
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

    // Live contrast: redraws the uploaded bands with a new stretch (no fetch).
    let restretch = {
        // Arena-held, so the closure is `Send` as Leptos' reactive views ask.
        let renderer = StoredValue::new_local(renderer_for_sliders);
        move |change: &dyn Fn(&mut Composite, &DrawReport)| {
            let DrawState::Drawn(mut report) = state.get_untracked() else {
                return;
            };
            let Some(canvas) = canvas_ref.get_untracked() else {
                return;
            };
            let before = report.composite;
            let r = report.clone();
            change(&mut report.composite, &r);
            if report.composite == before {
                return;
            }
            // The renderer is out of its slot while a fetch draws: that draw wins anyway.
            let Some(drawn) = renderer.with_value(|slot| {
                let mut slot = slot.borrow_mut();
                let gpu = slot.as_mut()?;
                Some(gpu.draw(&report.composite, &report.view))
            }) else {
                return;
            };
            match drawn {
                Ok(()) => {
                    report.readback = None;
                    write_attributes(&canvas, &report);
                    state.set(DrawState::Drawn(report));
                }
                Err(e) => {
                    let message = e.to_string();
                    tracing::error!(error = %message, "redraw failed");
                    set_error_attrs(&canvas, &message);
                    state.set(DrawState::Failed(message));
                }
            }
        }
    };
    // What the slider rows depend on; not the values, so dragging keeps its element.
    let slider_setup = Memo::new(move |_| match state.get() {
        DrawState::Drawn(r) => Some((
            r.product.clone(),
            r.preset.clone(),
            r.bands.clone(),
            r.composite.channels,
            r.value_ranges.clone(),
            r.composite.index,
        )),
        _ => None,
    });
    let drawn_composite = Memo::new(move |_| match state.get() {
        DrawState::Drawn(r) => Some(r.composite),
        _ => None,
    });
    let contrast_view = {
        move || {
            let (_, _, bands, channels, ranges, index) = slider_setup.get()?;
            if let Some(map) = index {
                return Some(legend_view(map).into_any());
            }
            let grey = bands.len() == 1;
            let rows = if grey { 1 } else { 3 };
            let rows_view = (0..rows)
                .map(|c| {
                    let layer = channels[c] as usize;
                    let label = if grey {
                        bands[0].clone()
                    } else {
                        format!("{} {}", ["R", "G", "B"][c], bands[layer])
                    };
                    let (lo, hi) = ranges.get(layer).copied().unwrap_or((0.0, 1.0));
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
                            restretch(&|k: &mut Composite, _: &DrawReport| {
                                for &t in &targets {
                                    match which {
                                        Field::Min => k.min[t] = v,
                                        Field::Max => k.max[t] = v,
                                        Field::Gamma => k.gamma[t] = v,
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
            let auto = move |_| restretch(&|k: &mut Composite, r: &DrawReport| *k = r.auto);
            Some(
                view! {
                    <div class="contrast" aria-label="Contrast">
                        {rows_view}
                        <button type="button" id="auto-stretch" on:click=auto>
                            {format!(
                                "Auto ({}-{} %)",
                                STRETCH_PERCENTILES.0,
                                STRETCH_PERCENTILES.1
                            )}
                        </button>
                    </div>
                }
                .into_any(),
            )
        }
    };

    // Pixel values under the cursor.
    let hover = RwSignal::new(None::<String>);
    let on_hover = move |ev: leptos::ev::MouseEvent| {
        let (x, y) = (ev.offset_x(), ev.offset_y());
        let text = match state.get_untracked() {
            DrawState::Drawn(r) if x >= 0 && y >= 0 => pixel_readout(&r, x as u32, y as u32),
            _ => None,
        };
        hover.set(text);
    };

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
                                let label = if p.bands.len() == 1 {
                                    p.name.clone()
                                } else {
                                    format!("{} ({})", p.name, p.bands.join(", "))
                                };
                                view! { <option value=p.name.clone()>{label}</option> }
                            })
                            .collect_view()
                    }}
                </select>
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
                        style=format!("width:{CANVAS_WIDTH}px;height:{CANVAS_HEIGHT}px")
                        on:mousemove=on_hover
                        on:mouseleave=move |_| hover.set(None)
                    ></canvas>
                </div>
                <div id="pixel-readout" aria-live="polite">
                    {move || hover.get().unwrap_or_else(|| "Hover the image for values".to_string())}
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
    view! {
        <header class="viewer-header">
            <h2 id="viewer-title">{product.title.clone()}</h2>
            <p class="facts">{facts.join(" · ")}</p>
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
            let grey = r.bands.len() == 1;
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
                    r.bands[0],
                    human(r.composite.min[0]),
                    human(r.composite.max[0])
                )
            } else {
                (0..3)
                    .map(|c| {
                        format!(
                            "{} {}: {} – {}",
                            names[c],
                            r.bands[r.composite.channels[c] as usize],
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
            view! {
                <p class="status drawn">
                    {format!(
                        "{} · {} · {} × {} texels (every {} grid px of {} × {}) · {} texels/px",
                        backend_label(r.backend),
                        r.preset,
                        r.tex_width,
                        r.tex_height,
                        r.step,
                        r.window.width,
                        r.window.height,
                        human(r.view.texels_per_pixel),
                    )}
                </p>
                <p class="stretch">
                    {format!(
                        "{}: {} · gamma {}",
                        if r.composite.index.is_some() {
                            "Index".to_string()
                        } else if r.composite == r.auto {
                            format!(
                                "Stretch {}–{} %",
                                STRETCH_PERCENTILES.0, STRETCH_PERCENTILES.1
                            )
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
                        }
                    )}
                </p>
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

/// Smallest and largest finite value other than `nodata`; `(0, 1)` when there is none.
pub fn value_range(values: &[f32], nodata: Option<f32>) -> (f32, f32) {
    let mut range: Option<(f32, f32)> = None;
    for &v in values {
        if !v.is_finite() || Some(v) == nodata {
            continue;
        }
        range = Some(match range {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
    }
    range.unwrap_or((0.0, 1.0))
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

/// Fetches, stretches, uploads and draws. `Ok(None)` when a newer request took over.
async fn load_and_draw(
    slot: &Rc<RefCell<Option<Renderer>>>,
    product: &Product,
    preset: &Preset,
    (grid_w, grid_h): (u32, u32),
    is_current: &dyn Fn() -> bool,
) -> Result<Option<DrawReport>, FrontendError> {
    let step = fetch_step(grid_w, grid_h, CANVAS_WIDTH, CANVAS_HEIGHT);
    let window = GridWindow {
        x: 0,
        y: 0,
        width: grid_w,
        height: grid_h,
    };
    let raster = fetch_raster(&product.id, &preset.bands, window, step).await?;
    if !is_current() {
        return Ok(None);
    }
    let nodata = raster.nodata.map(|v| v as f32);
    let ranges: Vec<(f32, f32)> = raster
        .bands
        .iter()
        .map(|b| percentile_stretch(b, nodata, STRETCH_PERCENTILES.0, STRETCH_PERCENTILES.1))
        .collect();
    let value_ranges: Vec<(f32, f32)> = raster
        .bands
        .iter()
        .map(|b| value_range(b, nodata))
        .collect();
    let channels = preset.channels();
    let composite = preset.index_composite().unwrap_or(Composite {
        channels,
        min: channels.map(|c| ranges[c as usize].0),
        max: channels.map(|c| ranges[c as usize].1),
        gamma: [1.0; 3],
        index: None,
    });
    let view = View::fit(raster.width, raster.height, CANVAS_WIDTH, CANVAS_HEIGHT);
    let pixels = BandValues(Arc::new(raster.bands));
    let slices: Vec<&[f32]> = pixels.0.iter().map(Vec::as_slice).collect();

    // The renderer is lent to one draw at a time; a readback awaits while holding it.
    let Some(mut lease) = Lease::wait(slot, is_current).await else {
        return Ok(None);
    };
    let renderer = lease.renderer();
    renderer.set_bands(raster.width, raster.height, &slices)?;
    let readback = if readback_requested() {
        // Before the first present: headless WebGPU may lose the device when presenting.
        let gpu = renderer.read_back(&composite, &view).await?;
        let cpu = render_cpu(
            &slices,
            raster.width,
            raster.height,
            &composite,
            &view,
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
    renderer.draw(&composite, &view)?;
    Ok(Some(DrawReport {
        backend: renderer.backend_name(),
        product: product.id.clone(),
        preset: preset.name.clone(),
        bands: preset.bands.clone(),
        window,
        step,
        tex_width: raster.width,
        tex_height: raster.height,
        view,
        composite,
        auto: composite,
        value_ranges,
        nodata: raster.nodata,
        readback,
        pixels: pixels.clone(),
    }))
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
    let attrs = [
        ("data-backend", r.backend.to_string()),
        ("data-product", r.product.0.clone()),
        ("data-bands", r.bands.join(",")),
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
        ("data-min", list3(r.composite.min)),
        ("data-max", list3(r.composite.max)),
        ("data-gamma", list3(r.composite.gamma)),
        (
            "data-nodata",
            r.nodata.map(|v| v.to_string()).unwrap_or_default(),
        ),
    ];
    for (name, value) in attrs {
        let _ = el.set_attribute(name, &value);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_range_skips_nodata_and_non_finite() {
        assert_eq!(
            value_range(&[0.0, 5.0, f32::NAN, -2.0, 0.0], Some(0.0)),
            (-2.0, 5.0)
        );
        assert_eq!(value_range(&[3.0], None), (3.0, 3.0));
        assert_eq!(value_range(&[0.0, f32::INFINITY], Some(0.0)), (0.0, 1.0));
    }

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
}
