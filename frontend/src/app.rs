//! The page: header, product list, viewer.

use albedo_shared::catalog::{Product, ProductId};
use leptos::prelude::*;

use crate::api::fetch_products;
use crate::catalog::ProductListView;
use crate::presets::default_selection;
use crate::viewer::Viewer;

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let products =
        LocalResource::new(|| async { fetch_products().await.map_err(|e| e.to_string()) });
    let selected = RwSignal::new(None::<ProductId>);

    // When the list arrives, select the first Sentinel-2 product with local pixels.
    Effect::new(move |_| {
        products.with(|loaded| {
            if let Some(Ok(list)) = loaded
                && selected.get_untracked().is_none()
                && let Some(first) = default_selection(&list.products)
            {
                tracing::info!(product = %first.id, "selected by default");
                selected.set(Some(first.id.clone()));
            }
        });
    });

    let selected_product: Memo<Option<Product>> = Memo::new(move |_| {
        let id = selected.get()?;
        products.with(|loaded| match loaded {
            Some(Ok(list)) => list.products.iter().find(|p| p.id == id).cloned(),
            _ => None,
        })
    });

    view! {
        <header class="app-header">
            <h1>"Albedo"</h1>
            <p class="subtitle">
                "Copernicus Sentinel workbench: browse products, view their bands, train and \
                 tune models"
            </p>
        </header>
        <main class="layout">
            <section class="catalog" aria-label="Products">
                <h2>"Products"</h2>
                {move || match products.get() {
                    None => view! {
                        <p class="status loading" id="products-loading">"Loading products…"</p>
                    }
                    .into_any(),
                    Some(Err(message)) => view! {
                        <p class="status error" id="products-error" role="alert">
                            {format!("Could not load the product list: {message}")}
                        </p>
                    }
                    .into_any(),
                    Some(Ok(list)) if list.products.is_empty() => view! {
                        <p class="status">
                            "The catalog is empty. Ingest products with "
                            <code>"albedo ingest PATH"</code>
                            "."
                        </p>
                    }
                    .into_any(),
                    Some(Ok(list)) => view! { <ProductListView list selected /> }.into_any(),
                }}
            </section>
            <Viewer product=selected_product />
        </main>
    }
}
