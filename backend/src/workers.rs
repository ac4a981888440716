//! Workers: the WebSocket they connect to and the registry of who is connected.
//!
//! - `GET /api/workers/connect` (WebSocket, bearer token checked by [`crate::auth`]): the
//!   protocol of `albedo_shared::protocol`. The first frame must be a `hello` of the same
//!   protocol version; the server answers `welcome` and registers the worker until its socket
//!   closes or it stays silent for three heartbeat intervals.
//! - `GET /api/workers`: the connected workers ([`WorkerInfo`]) and the trials they run.
//!
//! Trial reports go to the engine (`crate::engine`) in the order they arrive, and the
//! engine's orders (assign, continue, stop, ack) go out on the socket. What it is not: no
//! decisions about trials; this module only moves messages and watches for silence.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use futures_util::SinkExt;

use albedo_shared::api::WorkerInfo;
use albedo_shared::protocol::{Device, PROTOCOL_VERSION, ServerMsg, WorkerMsg};

use crate::app::AppState;
use crate::auth::WorkerIdentity;
use crate::engine::Cmd;
use crate::error::BackendError;

/// Most slots one worker may offer.
pub const MAX_SLOTS: u32 = 1024;

#[derive(Debug)]
struct Entry {
    name: String,
    slots: u32,
    devices: Vec<Device>,
    connected_at: String,
    last_seen: Instant,
}

/// The workers connected now.
#[derive(Debug, Default)]
pub struct WorkerRegistry {
    next_id: AtomicU64,
    workers: Mutex<HashMap<String, Entry>>,
}

impl WorkerRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of connected workers.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no worker is connected.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The connected workers, by id.
    pub fn list(&self) -> Vec<WorkerInfo> {
        let mut out: Vec<WorkerInfo> = self
            .lock()
            .iter()
            .map(|(id, e)| WorkerInfo {
                worker_id: id.clone(),
                name: e.name.clone(),
                slots: e.slots,
                devices: e.devices.clone(),
                connected_at: e.connected_at.clone(),
                last_seen_secs_ago: e.last_seen.elapsed().as_secs_f64(),
                running: Vec::new(),
            })
            .collect();
        out.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        out
    }

    fn register(&self, name: String, slots: u32, devices: Vec<Device>) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("w{n}");
        let connected_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        self.lock().insert(
            id.clone(),
            Entry {
                name,
                slots,
                devices,
                connected_at,
                last_seen: Instant::now(),
            },
        );
        id
    }

    fn touch(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            e.last_seen = Instant::now();
        }
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/workers", get(list))
        .route("/workers/connect", get(connect))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<WorkerInfo>>, BackendError> {
    let mut running = state.engine.running().await?;
    let mut list = state.workers.list();
    for w in &mut list {
        w.running = running.remove(&w.worker_id).unwrap_or_default();
    }
    Ok(Json(list))
}

async fn connect(
    State(state): State<AppState>,
    Extension(identity): Extension<WorkerIdentity>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    // The codec zero-fills its whole read buffer before each read (128 KiB by default); a
    // worker's writes are batches of reports of some 100 bytes each.
    ws.read_buffer_size(32 * 1024)
        .on_upgrade(move |socket| session(state, identity, socket))
}

async fn send(socket: &mut WebSocket, msg: &ServerMsg) -> bool {
    match frame(msg) {
        Some(m) => socket.send(m).await.is_ok(),
        None => false,
    }
}

/// `msg` as the text frame the protocol sends.
fn frame(msg: &ServerMsg) -> Option<Message> {
    serde_json::to_string(msg)
        .ok()
        .map(|text| Message::Text(text.into()))
}

/// Sends `first` and every order already waiting behind it, in one write when they fit the
/// socket's buffer: the engine hands a worker its orders of a batch together (at an
/// experiment's start, a lease per slot and per prefetch place), and a write apiece was a
/// system call and a wake-up of the worker per order.
async fn send_waiting(
    socket: &mut WebSocket,
    first: ServerMsg,
    orders: &mut tokio::sync::mpsc::UnboundedReceiver<ServerMsg>,
) -> bool {
    let mut next = Some(first);
    while let Some(msg) = next {
        let Some(m) = frame(&msg) else {
            return false;
        };
        if socket.feed(m).await.is_err() {
            return false;
        }
        next = orders.try_recv().ok();
    }
    socket.flush().await.is_ok()
}

fn parse(msg: &Message) -> Option<Result<WorkerMsg, String>> {
    match msg {
        Message::Text(t) => Some(serde_json::from_str(t.as_str()).map_err(|e| e.to_string())),
        Message::Binary(_) => Some(Err("binary frames are not part of the protocol".into())),
        _ => None,
    }
}

async fn session(state: AppState, identity: WorkerIdentity, mut socket: WebSocket) {
    let interval = Duration::from_secs(u64::from(state.config.heartbeat_interval_secs.max(1)));
    let silence_limit = interval * 3;
    // The first frame must be a hello.
    let hello = tokio::time::timeout(silence_limit, socket.recv()).await;
    let (name, slots, devices, running, jobs) = match hello {
        Ok(Some(Ok(msg))) => match parse(&msg) {
            Some(Ok(WorkerMsg::Hello {
                protocol_version,
                name,
                slots,
                devices,
                running,
                jobs,
            })) if protocol_version == PROTOCOL_VERSION => (name, slots, devices, running, jobs),
            Some(Ok(WorkerMsg::Hello {
                protocol_version, ..
            })) => {
                let reason = format!(
                    "protocol version {protocol_version} is not supported; this server speaks \
                     {PROTOCOL_VERSION}"
                );
                send(&mut socket, &ServerMsg::Shutdown { reason }).await;
                return;
            }
            other => {
                let reason = match other {
                    Some(Err(e)) => format!("bad first frame: {e}"),
                    _ => "the first frame must be a hello".into(),
                };
                send(&mut socket, &ServerMsg::Shutdown { reason }).await;
                return;
            }
        },
        _ => return,
    };
    if slots == 0 || slots > MAX_SLOTS {
        let reason = format!("slots must be between 1 and {MAX_SLOTS}, got {slots}");
        send(&mut socket, &ServerMsg::Shutdown { reason }).await;
        return;
    }
    let worker_id = state.workers.register(name.clone(), slots, devices);
    tracing::info!(%worker_id, %name, slots, token = %identity.token_name, "worker connected");
    let welcome = ServerMsg::Welcome {
        worker_id: worker_id.clone(),
        heartbeat_interval_secs: state.config.heartbeat_interval_secs,
    };
    let conn = state.engine.next_conn_id();
    let (tx, mut orders) = tokio::sync::mpsc::unbounded_channel();
    if send(&mut socket, &welcome).await
        && state
            .engine
            .send(Cmd::Connected {
                conn,
                worker_id: worker_id.clone(),
                name,
                slots,
                running,
                jobs,
                tx,
            })
            .is_ok()
    {
        loop {
            tokio::select! {
                order = orders.recv() => match order {
                    Some(msg) => {
                        if !send_waiting(&mut socket, msg, &mut orders).await {
                            break;
                        }
                    }
                    // The engine dropped this connection (it reloaded): the worker
                    // reconnects and claims its leases again.
                    None => break,
                },
                frame = tokio::time::timeout(silence_limit, socket.recv()) => match frame {
                    Err(_) => {
                        tracing::warn!(%worker_id, "worker silent past its heartbeat limit");
                        break;
                    }
                    Ok(None | Some(Err(_))) => break,
                    Ok(Some(Ok(msg))) => match parse(&msg) {
                        Some(Ok(WorkerMsg::Heartbeat)) => state.workers.touch(&worker_id),
                        Some(Ok(WorkerMsg::Hello { .. })) => {
                            let reason = "hello sent twice".to_string();
                            send(&mut socket, &ServerMsg::Shutdown { reason }).await;
                            break;
                        }
                        Some(Ok(report)) => {
                            state.workers.touch(&worker_id);
                            if state.engine.send(Cmd::Report { conn, msg: report }).is_err() {
                                break;
                            }
                        }
                        Some(Err(e)) => {
                            let reason = format!("bad frame: {e}");
                            send(&mut socket, &ServerMsg::Shutdown { reason }).await;
                            break;
                        }
                        None => state.workers.touch(&worker_id),
                    },
                },
            }
        }
    }
    let _ = state.engine.send(Cmd::Gone { conn });
    state.workers.remove(&worker_id);
    tracing::info!(%worker_id, "worker disconnected");
}
