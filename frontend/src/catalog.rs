//! The catalog page: the search form, the world map and the result list.
//!
//! What it is: a form over the STAC item search (collection, date range, cloud cover, orbit
//! direction, polarisation, area typed or dragged on the [`WorldMap`], and "only products
//! with pixels here", ticked by default so that the first page shows products the viewer can
//! open rather than remote-only mosaics; it restricts the search to the local products'
//! `ids`, at most [`MAX_LOCAL_IDS`] of them, and every other filter still applies), paged by the `next`
//! links of the answers (Previous goes back through the requests made), results with their
//! quick-looks (or a "remote" placeholder where the pixels are not on this server), the
//! footprints on the map, and hover linking between the list and the map. Clicking a result
//! opens it in the viewer. The form's meaning is [`crate::search`]'s.
//!
//! What it is not: no search logic of its own: the backend's `/stac/search` answers.
//!
//! Hooks for browser tests: the rows are `.product[data-product-id]` buttons (class
//! `selected`, `hovered`), `#search-local` (the checkbox, `data-local` the number of local
//! products), `#results-count`, `#results-prev`, `#results-next`,
//! `#search-error`, `#results[data-state]` (`loading`, `done`, `error`) and
//! `#results[data-searches]` (searches answered so far).

use std::collections::HashMap;

use albedo_shared::catalog::{PixelAccess, Product, ProductId};
use leptos::prelude::*;
use serde_json::Value;

use crate::api::{
    CollectionInfo, fetch_collections, fetch_local_ids, fetch_product, quicklook_url, search,
};
use crate::search::{
    Area, CLOUD_ANY, ORBITS, PAGE_SIZES, POLARISATIONS, ResultItem, SearchForm, SearchPage,
    SortOrder, count_line, parse_area,
};
use crate::worldmap::{Footprint, WorldMap};

/// Most local products the "pixels here" filter names (by `ids` in every search request).
pub const MAX_LOCAL_IDS: usize = 2000;

/// The products whose pixels are on this server, and how many products the catalog holds.
#[derive(Debug, Clone, PartialEq, Default)]
struct LocalProducts {
    ids: Vec<ProductId>,
    total: u64,
}

/// A page of results with what the JSON API says of each product.
#[derive(Debug, Clone, PartialEq)]
struct Results {
    page: SearchPage,
    /// Index of the first result of this page in the whole result list.
    first_index: u64,
    /// The products of the page (absent where `/api/products/{id}` failed).
    products: HashMap<ProductId, Product>,
}

/// Runs one search and looks up the products of its page (in parallel).
async fn run_search(body: Value, first_index: u64) -> Result<Results, String> {
    let page = search(&body).await.map_err(|e| e.to_string())?;
    let lookups = page.items.iter().map(|item| {
        let id = item.id.clone();
        async move { (fetch_product(&id).await, id) }
    });
    let mut products = HashMap::new();
    for (found, id) in futures_util::future::join_all(lookups).await {
        match found {
            Ok(p) => {
                products.insert(id, p);
            }
            Err(e) => tracing::warn!(product = %id, error = %e, "product lookup failed"),
        }
    }
    Ok(Results {
        page,
        first_index,
        products,
    })
}

/// The catalog page; `selected` is the product the viewer shows.
#[component]
pub fn CatalogPage(selected: RwSignal<Option<Product>>) -> impl IntoView {
    let form = RwSignal::new(SearchForm::default());
    // Request bodies of the pages visited in this search, the current one last.
    let pages = RwSignal::new(Vec::<Value>::new());
    let results = RwSignal::new(None::<Result<Results, String>>);
    let loading = RwSignal::new(false);
    // Searches answered so far (a hook for tests: it changes when a new page is shown).
    let answered = RwSignal::new(0u64);
    let form_error = RwSignal::new(None::<String>);
    let generation = StoredValue::new(0u64);
    let hovered = RwSignal::new(None::<ProductId>);
    let collections =
        LocalResource::new(|| async { fetch_collections().await.map_err(|e| e.to_string()) });
    // Known before the first search (`None` until then).
    let local = RwSignal::new(None::<LocalProducts>);

    // Fetches the last page of `pages`; a newer request wins over an older one.
    let load = move || {
        let Some(body) = pages.with_untracked(|p| p.last().cloned()) else {
            return;
        };
        let limit = body["limit"].as_u64().unwrap_or(1);
        let first_index = (pages.with_untracked(Vec::len) as u64 - 1) * limit;
        generation.update_value(|g| *g += 1);
        let mine = generation.get_value();
        loading.set(true);
        leptos::task::spawn_local(async move {
            let outcome = run_search(body, first_index).await;
            if generation.get_value() != mine {
                return;
            }
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, "search failed");
            }
            results.set(Some(outcome));
            loading.set(false);
            answered.update(|n| *n += 1);
        });
    };

    let submit = move || {
        let Some(ids) = local.with_untracked(|l| l.as_ref().map(|l| l.ids.clone())) else {
            // The first search starts once the local products are known.
            return;
        };
        match form.with_untracked(|f| f.request(&ids)) {
            Ok(body) => {
                form_error.set(None);
                pages.set(vec![body]);
                load();
            }
            Err(e) => form_error.set(Some(e)),
        }
    };
    // The first search: the products with pixels here (every product where none has),
    // newest first.
    leptos::task::spawn_local(async move {
        let known = match fetch_local_ids(MAX_LOCAL_IDS).await {
            Ok((ids, total)) => LocalProducts { ids, total },
            Err(e) => {
                tracing::warn!(error = %e, "local products unknown: searching every product");
                LocalProducts::default()
            }
        };
        if known.ids.is_empty() {
            form.try_update(|f| f.local_only = false);
        }
        if local.try_set(Some(known)).is_none() {
            submit();
        }
    });

    let next = move |_| {
        let body = results.with_untracked(|r| match r {
            Some(Ok(r)) => r.page.next.clone(),
            _ => None,
        });
        if let Some(body) = body {
            pages.update(|p| p.push(body));
            load();
        }
    };
    let previous = move |_| {
        if pages.with_untracked(Vec::len) > 1 {
            pages.update(|p| {
                p.pop();
            });
            load();
        }
    };

    let area = Signal::derive(move || form.with(|f| parse_area(&f.area).ok().flatten()));
    let footprints = Signal::derive(move || {
        results.with(|r| match r {
            Some(Ok(r)) => r
                .page
                .items
                .iter()
                .map(|i| Footprint {
                    id: i.id.clone(),
                    rings: i.footprint.clone(),
                    label: format!("{} · {}", i.title, i.day()),
                })
                .collect(),
            _ => Vec::new(),
        })
    });
    let selected_id = Signal::derive(move || selected.with(|p| p.as_ref().map(|p| p.id.clone())));

    let open = move |id: ProductId| {
        let known = results.with_untracked(|r| match r {
            Some(Ok(r)) => r.products.get(&id).cloned(),
            _ => None,
        });
        match known {
            Some(p) => selected.set(Some(p)),
            None => leptos::task::spawn_local(async move {
                match fetch_product(&id).await {
                    Ok(p) => selected.set(Some(p)),
                    Err(e) => form_error.set(Some(format!("Could not open {id}: {e}"))),
                }
            }),
        }
    };
    let on_area = Callback::new(move |a: Area| form.update(|f| f.area = a.fields()));
    let on_pick = Callback::new(open);

    view! {
        <section class="catalog" aria-label="Catalog search">
            <h2>"Catalog"</h2>
            <SearchFormView form collections local submit />
            <WorldMap
                footprints
                hovered
                selected=selected_id
                area
                on_area
                on_pick
            />
            <p class="status error" id="search-error" role="alert" hidden=move || {
                form_error.with(Option::is_none)
                    && results.with(|r| !matches!(r, Some(Err(_))))
            }>
                {move || {
                    form_error
                        .get()
                        .or_else(|| {
                            results.with(|r| match r {
                                Some(Err(e)) => Some(format!("Search failed: {e}")),
                                _ => None,
                            })
                        })
                        .unwrap_or_default()
                }}
            </p>
            <div
                class="results"
                id="results"
                class:loading=loading
                data-searches=move || answered.get().to_string()
                data-state=move || {
                    if loading.get() {
                        "loading"
                    } else {
                        match results.with(|r| r.as_ref().map(Result::is_ok)) {
                            Some(true) => "done",
                            Some(false) => "error",
                            None => "loading",
                        }
                    }
                }
            >
                <div class="results-head">
                    <p class="count" id="results-count">
                        {move || match results.get() {
                            None => "Searching…".to_string(),
                            Some(Err(_)) => "No results".to_string(),
                            Some(Ok(r)) => count_line(r.first_index, r.page.items.len(), r.page.matched),
                        }}
                    </p>
                    <div class="pager">
                        <button
                            type="button"
                            id="results-prev"
                            on:click=previous
                            disabled=move || loading.get() || pages.with(|p| p.len() <= 1)
                        >
                            "← Previous"
                        </button>
                        <button
                            type="button"
                            id="results-next"
                            on:click=next
                            disabled=move || {
                                loading.get()
                                    || results.with(|r| !matches!(r, Some(Ok(r)) if r.page.next.is_some()))
                            }
                        >
                            "Next →"
                        </button>
                    </div>
                </div>
                <ul class="products">
                    {move || match results.get() {
                        Some(Ok(r)) => r
                            .page
                            .items
                            .into_iter()
                            .map(|item| {
                                let product = r.products.get(&item.id).cloned();
                                view! {
                                    <ResultRow item product selected=selected_id hovered open />
                                }
                            })
                            .collect_view()
                            .into_any(),
                        _ => ().into_any(),
                    }}
                </ul>
            </div>
        </section>
    }
}

/// The search form.
#[component]
fn SearchFormView(
    form: RwSignal<SearchForm>,
    collections: LocalResource<Result<Vec<CollectionInfo>, String>>,
    local: RwSignal<Option<LocalProducts>>,
    submit: impl Fn() + Copy + 'static,
) -> impl IntoView {
    let local_count = move || local.with(|l| l.as_ref().map_or(0, |l| l.ids.len()));
    let local_label = move || {
        local.with(|l| match l {
            None => "Only products with pixels here".to_string(),
            Some(l) if l.ids.is_empty() => "No product has pixels on this server".to_string(),
            Some(l) => format!(
                "Only products with pixels here ({}{} of {})",
                l.ids.len(),
                if l.ids.len() >= MAX_LOCAL_IDS {
                    "+"
                } else {
                    ""
                },
                l.total
            ),
        })
    };
    let text = move |get: fn(&SearchForm) -> &String| move || form.with(|f| get(f).clone());
    let area_input = move |k: usize, id: &'static str, label: &'static str, limit: u32| {
        view! {
            <label class="area-field">
                <span>{label}</span>
                <input
                    id=id
                    type="number"
                    step="any"
                    min=format!("-{limit}")
                    max=limit.to_string()
                    placeholder=if k.is_multiple_of(2) { "lon" } else { "lat" }
                    prop:value=move || form.with(|f| f.area[k].clone())
                    on:input=move |ev| form.update(|f| f.area[k] = event_target_value(&ev))
                />
            </label>
        }
    };
    view! {
        <form
            class="search-form"
            id="search-form"
            novalidate
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <label class="wide">
                <span>"Collection"</span>
                <select
                    id="search-collection"
                    prop:value=text(|f| &f.collection)
                    on:change=move |ev| form.update(|f| f.collection = event_target_value(&ev))
                >
                    <option value="">"All collections"</option>
                    {move || match collections.get() {
                        Some(Ok(list)) => list
                            .into_iter()
                            .map(|c| {
                                let span = match &c.days {
                                    (Some(a), Some(b)) if a == b => format!(" ({a})"),
                                    (Some(a), Some(b)) => format!(" ({a} – {b})"),
                                    _ => String::new(),
                                };
                                let selected = form.with_untracked(|f| f.collection == c.id);
                                view! {
                                    <option value=c.id.clone() selected=selected>
                                        {format!("{}{span}", c.id)}
                                    </option>
                                }
                            })
                            .collect_view()
                            .into_any(),
                        _ => ().into_any(),
                    }}
                </select>
            </label>
            {move || match collections.get() {
                Some(Err(e)) => view! {
                    <p class="status error wide" id="collections-error">
                        {format!("Collections could not be listed: {e}")}
                    </p>
                }
                .into_any(),
                _ => ().into_any(),
            }}
            <label>
                <span>"From"</span>
                <input
                    id="search-from"
                    type="date"
                    prop:value=text(|f| &f.from)
                    on:input=move |ev| form.update(|f| f.from = event_target_value(&ev))
                />
            </label>
            <label>
                <span>"To"</span>
                <input
                    id="search-to"
                    type="date"
                    prop:value=text(|f| &f.to)
                    on:input=move |ev| form.update(|f| f.to = event_target_value(&ev))
                />
            </label>
            <label class="wide cloud">
                <span>"Max cloud cover"</span>
                <input
                    id="search-cloud"
                    type="range"
                    min="0"
                    max=CLOUD_ANY.to_string()
                    step="1"
                    prop:value=move || form.with(|f| f.max_cloud.to_string())
                    on:input=move |ev| {
                        let v = event_target_value(&ev).parse().unwrap_or(CLOUD_ANY);
                        form.update(|f| f.max_cloud = v.min(CLOUD_ANY));
                    }
                />
                <output id="search-cloud-value">
                    {move || {
                        let v = form.with(|f| f.max_cloud);
                        if v >= CLOUD_ANY { "any".to_string() } else { format!("≤ {v} %") }
                    }}
                </output>
            </label>
            <p class="hint wide" hidden=move || form.with(|f| f.max_cloud >= CLOUD_ANY)>
                "A cloud limit leaves out products without a cloud cover (Sentinel-1)."
            </p>
            <label>
                <span>"Orbit"</span>
                <select
                    id="search-orbit"
                    prop:value=text(|f| &f.orbit)
                    on:change=move |ev| form.update(|f| f.orbit = event_target_value(&ev))
                >
                    {ORBITS
                        .iter()
                        .map(|(value, label)| view! { <option value=*value>{*label}</option> })
                        .collect_view()}
                </select>
            </label>
            <label>
                <span>"Polarisation"</span>
                <select
                    id="search-polarisation"
                    prop:value=text(|f| &f.polarisation)
                    on:change=move |ev| form.update(|f| f.polarisation = event_target_value(&ev))
                >
                    <option value="">"any"</option>
                    {POLARISATIONS
                        .iter()
                        .map(|p| view! { <option value=*p>{*p}</option> })
                        .collect_view()}
                </select>
            </label>
            <fieldset class="wide area">
                <legend>"Area (degrees; or drag a box on the map)"</legend>
                {area_input(0, "bbox-west", "West", 180)}
                {area_input(1, "bbox-south", "South", 90)}
                {area_input(2, "bbox-east", "East", 180)}
                {area_input(3, "bbox-north", "North", 90)}
            </fieldset>
            <label
                class="inline wide local-toggle"
                title="Products whose band files are on this server: the viewer draws them. The others are metadata only (their pixels are on a remote store)."
            >
                <input
                    id="search-local"
                    type="checkbox"
                    style="width: auto; height: auto; margin: 0"
                    data-local=move || local_count().to_string()
                    disabled=move || local_count() == 0
                    prop:checked=move || form.with(|f| f.local_only)
                    on:change=move |ev| {
                        form.update(|f| f.local_only = event_target_checked(&ev));
                        submit();
                    }
                />
                <span>{local_label}</span>
            </label>
            <div class="form-actions wide">
                <button type="submit" id="search-submit" class="primary">"Search"</button>
                <button
                    type="button"
                    id="search-reset"
                    on:click=move |_| {
                        let none_local = local.with_untracked(|l| {
                            l.as_ref().is_some_and(|l| l.ids.is_empty())
                        });
                        form.set(SearchForm {
                            local_only: !none_local,
                            ..SearchForm::default()
                        });
                        submit();
                    }
                >
                    "Reset"
                </button>
                <label class="inline">
                    <span>"Per page"</span>
                    <select
                        id="search-limit"
                        prop:value=move || form.with(|f| f.limit.to_string())
                        on:change=move |ev| {
                            let v = event_target_value(&ev).parse().unwrap_or(PAGE_SIZES[0]);
                            form.update(|f| f.limit = v);
                        }
                    >
                        {PAGE_SIZES
                            .iter()
                            .map(|n| view! { <option value=n.to_string()>{n.to_string()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label class="inline">
                    <span>"Order"</span>
                    <select
                        id="search-sort"
                        prop:value=move || form.with(|f| f.sort.key())
                        on:change=move |ev| {
                            form.update(|f| f.sort = SortOrder::from_key(&event_target_value(&ev)))
                        }
                    >
                        <option value="newest">"Newest"</option>
                        <option value="oldest">"Oldest"</option>
                    </select>
                </label>
            </div>
        </form>
    }
}

/// One result: quick-look, title, what a Sentinel scientist scans for.
#[component]
fn ResultRow(
    item: ResultItem,
    product: Option<Product>,
    selected: Signal<Option<ProductId>>,
    hovered: RwSignal<Option<ProductId>>,
    open: impl Fn(ProductId) + Copy + 'static,
) -> impl IntoView {
    let id = item.id.clone();
    let is_selected = Memo::new({
        let id = id.clone();
        move |_| selected.with(|s| s.as_ref() == Some(&id))
    });
    let is_hovered = Memo::new({
        let id = id.clone();
        move |_| hovered.with(|h| h.as_ref() == Some(&id))
    });
    let local = matches!(
        product.as_ref().map(|p| &p.pixels),
        Some(PixelAccess::Local { .. })
    );
    let known = product.is_some();
    let thumb_failed = RwSignal::new(false);
    let thumb = {
        let id = id.clone();
        let title = item.title.clone();
        move || {
            if local && !thumb_failed.get() {
                view! {
                    <img
                        class="thumb"
                        src=quicklook_url(&id, 128)
                        width="64"
                        height="64"
                        loading="lazy"
                        alt=format!("Quick-look of {title}")
                        on:error=move |_| thumb_failed.set(true)
                    />
                }
                .into_any()
            } else if local {
                view! { <span class="thumb placeholder">"no preview"</span> }.into_any()
            } else if known {
                view! {
                    <span
                        class="thumb placeholder remote"
                        title="The pixels are on a remote object store: metadata only"
                    >
                        "remote"
                    </span>
                }
                .into_any()
            } else {
                view! { <span class="thumb placeholder">"?"</span> }.into_any()
            }
        }
    };
    let cloud = item.cloud_cover.map(|c| format!("{c:.1} % cloud"));
    let orbit = item.orbit_state.clone();
    let pols = (!item.polarizations.is_empty()).then(|| item.polarizations.join("+"));
    let kind = product.as_ref().and_then(|p| p.product_type.clone());
    let enter = {
        let id = id.clone();
        move || hovered.set(Some(id.clone()))
    };
    let leave = {
        let id = id.clone();
        move || {
            if hovered.with_untracked(|h| h.as_ref() == Some(&id)) {
                hovered.set(None);
            }
        }
    };
    let (enter2, leave2) = (enter.clone(), leave.clone());
    view! {
        <li>
            <button
                type="button"
                class="product"
                class:selected=is_selected
                class:hovered=is_hovered
                class:remote=!local
                aria-pressed=move || if is_selected.get() { "true" } else { "false" }
                data-product-id=id.0.clone()
                on:click={
                    let id = id.clone();
                    move |_| open(id.clone())
                }
                on:mouseenter=move |_| enter()
                on:mouseleave=move |_| leave()
                on:focus=move |_| enter2()
                on:blur=move |_| leave2()
            >
                {thumb}
                <span class="product-text">
                    <span class="product-title">{item.title.clone()}</span>
                    <span class="product-meta">
                        <span class="collection">{item.collection.clone()}</span>
                        {kind.map(|k| view! { <span class="kind">{k}</span> })}
                        <span class="date">{item.day()}</span>
                        {cloud.map(|c| view! { <span class="cloud">{c}</span> })}
                        {orbit.map(|o| view! { <span class="orbit">{o}</span> })}
                        {pols.map(|p| view! { <span class="pols">{p}</span> })}
                    </span>
                    <span class=if local { "pixels local" } else { "pixels remote" }>
                        {if local {
                            "local pixels"
                        } else if known {
                            "metadata only"
                        } else {
                            "pixels unknown"
                        }}
                    </span>
                </span>
            </button>
        </li>
    }
}
