//! The page: header (navigation, user token), then the page of the current hash route:
//! the catalog (search form, world map, results, viewer), the experiments (list and form),
//! the live view of one experiment, or the workers.
//!
//! The catalog is mounted the first time it is shown and then kept (hidden while another
//! page is shown), so that its search, map and viewer are as they were when a person comes
//! back; the other pages are built when shown and cleaned up when left (their timers and
//! event streams stop).

use albedo_shared::catalog::Product;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

use crate::api::fetch_products;
use crate::catalog::CatalogPage;
use crate::experiments::ExperimentsPage;
use crate::liveview::ExperimentView;
use crate::presets::default_selection;
use crate::route::Route;
use crate::token::{TokenBox, UserToken};
use crate::viewer::Viewer;
use crate::workers::WorkersPage;

fn current_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    // The token first: it leaves the address bar before the route is read.
    let token = RwSignal::new(crate::token::take_from_location().or_else(crate::token::load));
    provide_context(UserToken(token));
    let hash = RwSignal::new(current_hash());
    let on_hash = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        if let Some(t) = crate::token::take_from_location() {
            token.set(Some(t));
        }
        hash.set(current_hash());
    });
    if let Some(w) = web_sys::window()
        && w.add_event_listener_with_callback("hashchange", on_hash.as_ref().unchecked_ref())
            .is_err()
    {
        tracing::warn!("no hashchange listener: links between pages will not work");
    }
    // The app lives as long as the page.
    on_hash.forget();
    let route = Memo::new(move |_| Route::parse(&hash.get()));
    let catalog_shown = Memo::new(move |_| route.with(|r| *r == Route::Catalog));
    let catalog_mounted = RwSignal::new(false);
    Effect::new(move |_| {
        if catalog_shown.get() && !catalog_mounted.get_untracked() {
            catalog_mounted.set(true);
        }
    });

    let nav = move |section: &'static str, href: &'static str, text: &'static str| {
        view! {
            <a
                href=href
                id=format!("nav-{section}")
                class="nav-link"
                class:active=move || route.with(|r| r.section() == section)
                aria-current=move || route.with(|r| (r.section() == section).then_some("page"))
            >
                {text}
            </a>
        }
    };

    view! {
        <header class="app-header">
            <h1>"Albedo"</h1>
            <nav class="app-nav" aria-label="Pages">
                {nav("catalog", "#/", "Catalog")}
                {nav("experiments", "#/experiments", "Experiments")}
                {nav("workers", "#/workers", "Workers")}
            </nav>
            <TokenBox />
        </header>
        <div class="catalog-page" hidden=move || !catalog_shown.get()>
            <Show when=move || catalog_mounted.get()>
                <CatalogWithViewer />
            </Show>
        </div>
        {move || match route.get() {
            Route::Catalog => ().into_any(),
            Route::Experiments => view! { <ExperimentsPage /> }.into_any(),
            Route::Experiment(id) => view! { <ExperimentView id /> }.into_any(),
            Route::Workers => view! { <WorkersPage /> }.into_any(),
            Route::Unknown(h) => view! {
                <main class="panel notfound">
                    <h2>"No such page"</h2>
                    <p>{format!("Nothing lives at #{h}. ")}<a href="#/">"Back to the catalog"</a></p>
                </main>
            }
            .into_any(),
        }}
    }
}

/// The catalog page: search form, world map, results, and the viewer.
#[component]
fn CatalogWithViewer() -> impl IntoView {
    let selected = RwSignal::new(None::<Product>);

    // Until a result is opened, the viewer shows the first Sentinel-2 product with local
    // pixels (the JSON API lists local products first).
    leptos::task::spawn_local(async move {
        match fetch_products().await {
            Ok(list) => {
                if selected.with_untracked(Option::is_none)
                    && let Some(first) = default_selection(&list.products)
                {
                    tracing::info!(product = %first.id, "selected by default");
                    selected.set(Some(first.clone()));
                }
            }
            Err(e) => tracing::warn!(error = %e, "no default product for the viewer"),
        }
    });

    let selected_product: Memo<Option<Product>> = Memo::new(move |_| selected.get());

    view! {
        <main class="layout">
            <CatalogPage selected />
            <Viewer product=selected_product />
        </main>
    }
}
