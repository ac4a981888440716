//! The product list: one button a product, with what a Sentinel scientist scans for.

use albedo_shared::catalog::{PixelAccess, Product, ProductId, ProductList};
use leptos::prelude::*;

/// The list of products; clicking one selects it.
#[component]
pub fn ProductListView(list: ProductList, selected: RwSignal<Option<ProductId>>) -> impl IntoView {
    let shown = list.products.len();
    let total = list.total;
    let rows = list
        .products
        .into_iter()
        .map(|product| view! { <ProductRow product selected /> })
        .collect_view();
    view! {
        <p class="count">
            {if shown as u64 == total {
                format!("{total} products")
            } else {
                format!("{shown} of {total} products")
            }}
        </p>
        <ul class="products">{rows}</ul>
    }
}

#[component]
fn ProductRow(product: Product, selected: RwSignal<Option<ProductId>>) -> impl IntoView {
    let id = product.id.clone();
    let is_selected = Memo::new({
        let id = id.clone();
        move |_| selected.with(|s| s.as_ref() == Some(&id))
    });
    let local = matches!(product.pixels, PixelAccess::Local { .. });
    let date = product
        .datetime
        .as_deref()
        .map(|d| d.get(..10).unwrap_or(d).to_string())
        .unwrap_or_else(|| "date unknown".to_string());
    let cloud = product.cloud_cover.map(|c| format!("{c:.1} % cloud"));
    let kind = product.product_type.clone();
    view! {
        <li>
            <button
                type="button"
                class="product"
                class:selected=is_selected
                class:remote=!local
                aria-pressed=move || if is_selected.get() { "true" } else { "false" }
                data-product-id=id.0.clone()
                on:click=move |_| selected.set(Some(id.clone()))
            >
                <span class="product-title">{product.title.clone()}</span>
                <span class="product-meta">
                    <span class="collection">{product.collection.clone()}</span>
                    {kind.map(|k| view! { <span class="kind">{k}</span> })}
                    <span class="date">{date}</span>
                    {cloud.map(|c| view! { <span class="cloud">{c}</span> })}
                </span>
                <span class=if local { "pixels local" } else { "pixels remote" }>
                    {if local { "local pixels" } else { "metadata only" }}
                </span>
            </button>
        </li>
    }
}
