//! Small browser helpers the pages share: timers tied to a component's life, the next
//! animation frame, waiting, the clock, what is on screen, and moving to another page.
//!
//! What it is not: nothing of Leptos beyond `on_cleanup` and stored values.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

/// Calls `f` every `ms` milliseconds while the current component lives (the interval is
/// cleared when it is cleaned up).
pub fn every(ms: i32, f: impl FnMut() + 'static) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let closure = Closure::<dyn FnMut()>::new(f);
    let Ok(handle) = window.set_interval_with_callback_and_timeout_and_arguments_0(
        closure.as_ref().unchecked_ref(),
        ms,
    ) else {
        tracing::warn!("setInterval failed");
        return;
    };
    // The closure lives as long as the component's owner; the interval stops first.
    let _holder = StoredValue::new_local(closure);
    on_cleanup(move || {
        if let Some(w) = web_sys::window() {
            w.clear_interval_with_handle(handle);
        }
    });
}

/// Runs `f` once at the next animation frame.
pub fn next_frame(f: impl FnOnce() + 'static) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let cb = Closure::once_into_js(f);
    if window.request_animation_frame(cb.unchecked_ref()).is_err() {
        tracing::warn!("requestAnimationFrame failed");
    }
}

/// Runs `f` once after `ms` milliseconds.
pub fn after(ms: i32, f: impl FnOnce() + 'static) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let cb = Closure::once_into_js(f);
    if window
        .set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), ms)
        .is_err()
    {
        tracing::warn!("setTimeout failed");
    }
}

/// Waits `ms` milliseconds (a `setTimeout`: the page runs other tasks, frames included,
/// meanwhile).
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let set = web_sys::window().and_then(|w| {
            w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
                .ok()
        });
        if set.is_none() {
            let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Milliseconds of the page's monotonic clock.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// The device pixel ratio (at least 1).
pub fn dpr() -> f64 {
    web_sys::window()
        .map(|w| w.device_pixel_ratio())
        .unwrap_or(1.0)
        .max(1.0)
}

/// Whether some of `el` is inside the window (scrolled into view).
pub fn on_screen(el: &web_sys::Element) -> bool {
    let Some(height) = web_sys::window()
        .and_then(|w| w.inner_height().ok())
        .and_then(|h| h.as_f64())
    else {
        return true;
    };
    let r = el.get_bounding_client_rect();
    r.bottom() > 0.0 && r.top() < height
}

/// Goes to another page of the app (`#/experiments/e3`).
pub fn navigate(href: &str) {
    if let Some(w) = web_sys::window()
        && w.location().set_hash(href.trim_start_matches('#')).is_err()
    {
        tracing::warn!(href, "could not change the address");
    }
}

/// The 2D context of a canvas.
pub fn context_2d(
    canvas: &web_sys::HtmlCanvasElement,
) -> Option<web_sys::CanvasRenderingContext2d> {
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
}
