//! The workers page (`#/workers`): every connected worker with its devices, slots, the
//! trials it runs now (links to their experiments) and how long ago it was last heard from;
//! refreshed every 2 seconds.
//!
//! What it is not: no control of workers (they connect with their own token).
//!
//! Hooks for browser tests: `#workers[data-refreshes]` (answers so far),
//! `#workers-table tr[data-worker-id]` with `data-slots` and `data-running`.

use albedo_shared::api::WorkerInfo;
use leptos::prelude::*;

use crate::api::fetch_workers;
use crate::browser::every;
use crate::route::Route;

/// How often the list is fetched again.
pub const REFRESH_MS: i32 = 2000;

/// Seconds for people: `0.4 s ago`, `12 s ago`, `3 min ago`.
pub fn ago(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "–".into();
    }
    if secs < 10.0 {
        format!("{secs:.1} s ago")
    } else if secs < 120.0 {
        format!("{secs:.0} s ago")
    } else {
        format!("{:.0} min ago", secs / 60.0)
    }
}

/// The workers page.
#[component]
pub fn WorkersPage() -> impl IntoView {
    let list = RwSignal::new(None::<Result<Vec<WorkerInfo>, String>>);
    let refreshes = RwSignal::new(0u64);
    let busy = StoredValue::new(false);
    let refresh = move || {
        if busy.get_value() {
            return;
        }
        busy.set_value(true);
        leptos::task::spawn_local(async move {
            let got = fetch_workers().await.map_err(|e| e.to_string());
            busy.try_set_value(false);
            list.try_set(Some(got));
            refreshes.try_update(|n| *n += 1);
        });
    };
    refresh();
    every(REFRESH_MS, refresh);

    view! {
        <main class="workers-page">
            <section class="panel" id="workers" data-refreshes=move || refreshes.get().to_string()>
                <h2>"Workers"</h2>
                <p class="muted">
                    "Workers connect with a worker token: "
                    <code>"albedo-worker --server URL --token T --slots N"</code>
                    ". This list refreshes every 2 s."
                </p>
                {move || match list.get() {
                    None => view! { <p class="status loading">"Loading workers…"</p> }.into_any(),
                    Some(Err(e)) => view! {
                        <p class="status error">{format!("Could not list workers: {e}")}</p>
                    }.into_any(),
                    Some(Ok(l)) if l.is_empty() => view! {
                        <p class="status" id="workers-empty">"No worker is connected."</p>
                    }.into_any(),
                    Some(Ok(l)) => {
                        let slots: u32 = l.iter().map(|w| w.slots).sum();
                        let busy: usize = l
                            .iter()
                            .map(|w| w.running.iter().filter(|r| !r.waiting).count())
                            .sum();
                        let rows = l
                            .into_iter()
                            .map(|w| {
                                let devices = w
                                    .devices
                                    .iter()
                                    .map(|d| format!("{}: {}", d.kind, d.name))
                                    .collect::<Vec<_>>()
                                    .join("; ");
                                let running = w
                                    .running
                                    .iter()
                                    .map(|r| {
                                        let href = Route::Experiment(r.experiment.clone()).href();
                                        view! {
                                            <a class="trial-link" href=href>
                                                {format!(
                                                    "{} · trial {}{}",
                                                    r.experiment,
                                                    r.trial,
                                                    if r.waiting { " (waiting)" } else { "" },
                                                )}
                                            </a>
                                        }
                                    })
                                    .collect_view();
                                let idle = w.running.is_empty();
                                view! {
                                    <tr
                                        data-worker-id=w.worker_id.clone()
                                        data-slots=w.slots.to_string()
                                        data-running=w.running.len().to_string()
                                    >
                                        <td class="name">{w.name.clone()}</td>
                                        <td class="muted">{w.worker_id.clone()}</td>
                                        <td>{devices}</td>
                                        <td class="num">{w.slots}</td>
                                        <td class="running">
                                            {running}
                                            {idle.then(|| view! { <span class="muted">"idle"</span> })}
                                        </td>
                                        <td class="num heartbeat">{ago(w.last_seen_secs_ago)}</td>
                                        <td class="muted">{w.connected_at.get(..19).unwrap_or(&w.connected_at).replace('T', " ")}</td>
                                    </tr>
                                }
                            })
                            .collect_view();
                        view! {
                            <p class="count" id="workers-summary">
                                {format!("{busy} of {slots} slots busy")}
                            </p>
                            <table id="workers-table" class="table">
                                <thead>
                                    <tr>
                                        <th>"Name"</th>
                                        <th>"Id"</th>
                                        <th>"Devices"</th>
                                        <th>"Slots"</th>
                                        <th>"Running trials"</th>
                                        <th>"Last heard"</th>
                                        <th>"Connected (UTC)"</th>
                                    </tr>
                                </thead>
                                <tbody>{rows}</tbody>
                            </table>
                        }.into_any()
                    }
                }}
            </section>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(ago(0.43), "0.4 s ago");
        assert_eq!(ago(12.2), "12 s ago");
        assert_eq!(ago(600.0), "10 min ago");
        assert_eq!(ago(f64::NAN), "–");
    }
}
