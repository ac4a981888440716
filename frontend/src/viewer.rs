//! The product viewer: preset selector, the wgpu canvas, and what was drawn.
//!
//! For a product with local pixels it fetches the whole grid at the step that fits the
//! canvas, stretches each channel from its 2nd to 98th percentile (gamma 1), fits the image
//! centred, and draws. After each draw the canvas carries `data-*` attributes with every
//! number needed to recompute its pixels on the CPU (see [`write_attributes`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use albedo_render::{Composite, Renderer, View, percentile_stretch, render_cpu};
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
    /// Layers and stretch.
    pub composite: Composite,
    /// Nodata value of the raster, if any.
    pub nodata: Option<f64>,
    /// Result of the GPU readback check, when the page asked for one (`?readback`).
    pub readback: Option<ReadbackCheck>,
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
    Drawn(DrawReport),
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
                    state.set(DrawState::Drawn(report));
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
            <div class="canvas-frame" style:display=move || if has_pixels() { "block" } else { "none" }>
                <canvas
                    id="render"
                    node_ref=canvas_ref
                    width=CANVAS_WIDTH
                    height=CANVAS_HEIGHT
                    style=format!("width:{CANVAS_WIDTH}px;height:{CANVAS_HEIGHT}px")
                ></canvas>
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
            let stretch = if grey {
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
                        "Stretch {}–{} %: {} · gamma {}",
                        STRETCH_PERCENTILES.0,
                        STRETCH_PERCENTILES.1,
                        stretch,
                        human(r.composite.gamma[0])
                    )}
                </p>
                {readback.map(|t| view! { <p class="readback">{t}</p> })}
            }
            .into_any()
        }
    }
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
    let channels = preset.channels();
    let composite = Composite {
        channels,
        min: channels.map(|c| ranges[c as usize].0),
        max: channels.map(|c| ranges[c as usize].1),
        gamma: [1.0; 3],
    };
    let view = View::fit(raster.width, raster.height, CANVAS_WIDTH, CANVAS_HEIGHT);
    let slices: Vec<&[f32]> = raster.bands.iter().map(Vec::as_slice).collect();

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
        nodata: raster.nodata,
        readback,
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
