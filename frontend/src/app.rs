//! The page: header (navigation, user token), then the page of the current hash route:
//! the catalog (search form, world map, results, viewer), the experiments (list and form),
//! the live view of one experiment, the workers, the models (register, classify), the
//! datasets, or the viewer of one product (with a classified product's overlay).
//!
//! The catalog is mounted the first time it is shown and then kept (hidden while another
//! page is shown), so that its search, map and viewer are as they were when a person comes
//! back; the other pages are built when shown and cleaned up when left (their timers and
//! event streams stop).

use albedo_shared::catalog::{Product, ProductId};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

use crate::api::fetch_products;
use crate::catalog::CatalogPage;
use crate::datasets::DatasetsPage;
use crate::experiments::ExperimentsPage;
use crate::liveview::ExperimentView;
use crate::models::ModelsPage;
use crate::presets::{CLASSIFIED_COLLECTION, default_selection};
use crate::route::Route;
use crate::token::{TokenBox, UserToken};
use crate::viewer::{Viewer, resolve_opened};
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
    let catalog_shown =
        Memo::new(move |_| route.with(|r| matches!(r, Route::Catalog | Route::Product { .. })));
    // `#/products/<id>?overlay=<id>` opens a product (and its classes) in the catalog's viewer.
    let opened = Memo::new(move |_| {
        route.with(|r| match r {
            Route::Product { id, overlay } => Some((id.clone(), overlay.clone())),
            _ => None,
        })
    });
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
                {nav("models", "#/models", "Models")}
                {nav("datasets", "#/datasets", "Datasets")}
            </nav>
            <TokenBox />
        </header>
        <div class="catalog-page" hidden=move || !catalog_shown.get()>
            <Show when=move || catalog_mounted.get()>
                <CatalogWithViewer opened />
            </Show>
        </div>
        {move || match route.get() {
            Route::Catalog | Route::Product { .. } => ().into_any(),
            Route::Experiments => view! { <ExperimentsPage /> }.into_any(),
            Route::Experiment(id) => view! { <ExperimentView id /> }.into_any(),
            Route::Workers => view! { <WorkersPage /> }.into_any(),
            Route::Models => view! { <ModelsPage /> }.into_any(),
            Route::Datasets => view! { <DatasetsPage /> }.into_any(),
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

/// The catalog page: search form, world map, results, and the viewer, which shows the
/// product a `#/products/...` route opened (with its overlay) or the one clicked in the list.
#[component]
fn CatalogWithViewer(opened: Memo<Option<(ProductId, Option<ProductId>)>>) -> impl IntoView {
    let selected = RwSignal::new(None::<Product>);
    // The classified product drawn over the selected one: (source id, classified id).
    let overlay = RwSignal::new(None::<(ProductId, ProductId)>);
    let note = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let open = move |id: ProductId, over: Option<ProductId>| {
        error.set(None);
        leptos::task::spawn_local(async move {
            match resolve_opened(&id, over).await {
                Ok((product, over, text)) => {
                    overlay.set(over.map(|o| (product.id.clone(), o)));
                    note.set(text);
                    selected.set(Some(product));
                }
                Err(e) => {
                    tracing::warn!(error = %e, product = %id, "could not open");
                    error.set(Some(format!("Could not open {id}: {}", e.for_people())));
                }
            }
        });
    };
    Effect::new(move |_| {
        if let Some((id, over)) = opened.get() {
            open(id, over);
        }
    });
    // A classified product picked in the list is shown over its source too.
    Effect::new(move |_| {
        let picked = selected.with(|p| {
            p.as_ref()
                .filter(|p| p.collection == CLASSIFIED_COLLECTION)
                .map(|p| p.id.clone())
        });
        if let Some(id) = picked {
            open(id, None);
        }
    });
    // The overlay belongs to its source: another product clicked in the list drops it.
    let overlay_id = Memo::new(move |_| {
        let (source, classified) = overlay.get()?;
        selected.with(|p| {
            p.as_ref()
                .is_some_and(|p| p.id == source)
                .then_some(classified)
        })
    });

    // Until a result is opened, the viewer shows the first Sentinel-2 product with local
    // pixels (the JSON API lists local products first).
    leptos::task::spawn_local(async move {
        match fetch_products().await {
            Ok(list) => {
                if selected.with_untracked(Option::is_none)
                    && opened.get_untracked().is_none()
                    && let Some(first) = default_selection(&list.products)
                {
                    tracing::info!(product = %first.id, "selected by default");
                    selected.set(Some(first.clone()));
                }
            }
            Err(e) => tracing::warn!(error = %e, "no default product for the viewer"),
        }
    });

    // A classified product waits for its source (above) instead of being drawn alone.
    let selected_product: Memo<Option<Product>> = Memo::new(move |_| {
        selected
            .get()
            .filter(|p| p.collection != CLASSIFIED_COLLECTION)
    });

    view! {
        <main class="layout">
            <CatalogPage selected />
            <div class="viewer-column">
                {move || error.get().map(|e| view! {
                    <p class="status error" role="alert" id="product-error">{e}</p>
                })}
                {move || overlay_id.get().and(note.get()).map(|n| view! {
                    <p class="notice" id="product-note">{n}</p>
                })}
                <Viewer product=selected_product overlay=overlay_id />
            </div>
        </main>
    }
}
