//! The connection to the server: hello, heartbeats, reconnects with backoff, trial leases.
//!
//! Trial orders (assign, continue, stop) go to a [`TrialManager`]; the runners' reports come
//! back through a channel into an [`Outbox`], which this task sends in order once the server
//! has welcomed it. A report stays in the outbox until the server acknowledges it
//! (`ServerMsg::Ack`, a count of the reports of this connection): while the socket is down the
//! reports stay queued in memory, and after the reconnect every unacknowledged one is resent
//! first, in order (so the server may see a report twice, and must ignore the copy).
//!
//! Bound: the outbox holds at most [`MAX_QUEUED_REPORTS`] reports (about 100 bytes each, so
//! some 10 MB). Past that, the oldest metric report is dropped (with a warning); paused,
//! finished, failed and stopped reports are never dropped (there is at most one of each per
//! lease, and leases are bounded by the slots).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use tokio::sync::mpsc;

use albedo_shared::protocol::{Device, PROTOCOL_VERSION, ServerMsg, WorkerMsg};

use crate::WorkerError;
use crate::trials::{Assignment, Control, TrialManager};

/// Bytes the WebSocket codec reads at a time (see where the connection is opened).
const READ_BUFFER: usize = 8 * 1024;

/// Most trial reports kept while they cannot be sent (about 100 bytes each).
pub const MAX_QUEUED_REPORTS: usize = 100_000;

/// Trial reports not yet acknowledged, oldest first, bounded by a capacity.
///
/// Each entry remembers its index on the current connection once sent; the sent entries are
/// always a prefix of the queue.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<(Option<u64>, WorkerMsg)>,
    /// Leading entries sent on this connection.
    in_flight: usize,
    /// Reports sent on this connection.
    sent: u64,
    capacity: usize,
    dropped: u64,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` reports (see the module doc).
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            in_flight: 0,
            sent: 0,
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Queues a report; when full, drops the oldest metric report to make room.
    pub fn push(&mut self, msg: WorkerMsg) {
        if self.queue.len() >= self.capacity
            && let Some(i) = self
                .queue
                .iter()
                .position(|(_, m)| matches!(m, WorkerMsg::Metric { .. }))
        {
            self.queue.remove(i);
            if i < self.in_flight {
                self.in_flight -= 1;
            }
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "report queue full (server unreachable or not acknowledging): dropped the \
                     oldest metric reports"
                );
            }
        }
        self.queue.push_back((None, msg));
    }

    /// The oldest report not yet sent on this connection.
    pub fn next_unsent(&self) -> Option<&WorkerMsg> {
        self.queue.get(self.in_flight).map(|(_, m)| m)
    }

    /// Records that [`Outbox::next_unsent`] was sent.
    pub fn mark_sent(&mut self) {
        if let Some(entry) = self.queue.get_mut(self.in_flight) {
            entry.0 = Some(self.sent);
            self.sent += 1;
            self.in_flight += 1;
        }
    }

    /// The server has handled the first `count` reports of this connection: forgets them.
    pub fn ack(&mut self, count: u64) {
        while let Some((Some(i), _)) = self.queue.front() {
            if *i >= count {
                break;
            }
            self.queue.pop_front();
            self.in_flight -= 1;
        }
    }

    /// A new connection: everything unacknowledged is to be sent again, counted afresh.
    pub fn reconnected(&mut self) {
        for entry in self.queue.iter_mut().take(self.in_flight) {
            entry.0 = None;
        }
        self.in_flight = 0;
        self.sent = 0;
    }

    /// Reports kept (unsent or unacknowledged).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Metric reports dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// What lives across sessions: the running trials and the reports not yet sent.
struct Trials {
    manager: TrialManager,
    reports: mpsc::UnboundedReceiver<WorkerMsg>,
    outbox: Outbox,
}

/// How a worker connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server base URL, `http://host:port` (or `ws://`, `https://`, `wss://`).
    pub server: String,
    /// Bearer token from `albedo token create`.
    pub token: String,
    /// Name shown in the server's worker list.
    pub name: String,
    /// Trial slots offered.
    pub slots: u32,
    /// Devices offered.
    pub devices: Vec<Device>,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
}

/// The WebSocket URL of the worker endpoint for a server base URL.
pub fn connect_url(server: &str) -> Result<String, WorkerError> {
    let bad = |reason: &str| WorkerError::BadUrl {
        url: server.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = server.trim_end_matches('/');
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| bad("expected http://host:port"))?;
    let ws_scheme = match scheme {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(bad("scheme must be http, https, ws or wss")),
    };
    if rest.is_empty() {
        return Err(bad("no host"));
    }
    Ok(format!("{ws_scheme}://{rest}/api/workers/connect"))
}

/// Why one session ended.
enum SessionEnd {
    /// Retry after backoff.
    Retry(String),
    /// Stop the worker.
    Fatal(WorkerError),
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends the reports not yet sent on this connection, in order, in one write when they
/// fit the socket's buffer (a write apiece is a system call per report: `cargo xtask bench
/// scheduler ingest` took 134-158k reports/s that way, 163-218k batched).
async fn flush(ws: &mut Socket, outbox: &mut Outbox) -> Result<(), String> {
    let mut fed = false;
    while let Some(msg) = outbox.next_unsent() {
        let text = serde_json::to_string(msg).map_err(|e| format!("encode report: {e}"))?;
        ws.feed(Message::Text(text.into()))
            .await
            .map_err(|e| format!("send report: {e}"))?;
        outbox.mark_sent();
        fed = true;
    }
    if fed {
        ws.flush().await.map_err(|e| format!("send report: {e}"))?;
    }
    Ok(())
}

async fn session(
    config: &ClientConfig,
    url: &str,
    connected: &mut bool,
    trials: &mut Trials,
) -> SessionEnd {
    let mut request = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => {
            return SessionEnd::Fatal(WorkerError::BadUrl {
                url: url.into(),
                reason: e.to_string(),
            });
        }
    };
    let auth = match HeaderValue::from_str(&format!("Bearer {}", config.token)) {
        Ok(v) => v,
        Err(_) => {
            return SessionEnd::Fatal(WorkerError::Refused("token has invalid characters".into()));
        }
    };
    request.headers_mut().insert("authorization", auth);
    // No Nagle: reports and orders are small and latency-bound. A small read buffer: the
    // codec zero-fills the whole buffer before each read (128 KiB by default, for orders of
    // some hundred bytes).
    let ws_config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (mut ws, _) =
        match tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true).await {
            Ok(pair) => pair,
            Err(WsError::Http(resp))
                if resp.status().as_u16() == 401 || resp.status().as_u16() == 403 =>
            {
                return SessionEnd::Fatal(WorkerError::Unauthorized {
                    status: resp.status().as_u16(),
                });
            }
            Err(e) => return SessionEnd::Retry(format!("connect: {e}")),
        };
    let hello = WorkerMsg::Hello {
        protocol_version: PROTOCOL_VERSION,
        name: config.name.clone(),
        slots: config.slots,
        devices: config.devices.clone(),
        running: trials.manager.leases(),
        jobs: trials.manager.jobs(),
    };
    let text = serde_json::to_string(&hello).unwrap_or_default();
    if let Err(e) = ws.send(Message::Text(text.into())).await {
        return SessionEnd::Retry(format!("send hello: {e}"));
    }
    let mut heartbeat = Duration::from_secs(5);
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    trials.outbox.reconnected();
    let mut welcomed = false;
    loop {
        tokio::select! {
            report = trials.reports.recv() => {
                // The manager holds a sender, so the channel never closes while we run.
                if let Some(report) = report {
                    trials.manager.observe(&report);
                    trials.outbox.push(report);
                }
                // Every report already waiting goes in the same write.
                while let Ok(report) = trials.reports.try_recv() {
                    trials.manager.observe(&report);
                    trials.outbox.push(report);
                }
                if welcomed && let Err(why) = flush(&mut ws, &mut trials.outbox).await {
                    return SessionEnd::Retry(why);
                }
            }
            _ = ticker.tick() => {
                let text = serde_json::to_string(&WorkerMsg::Heartbeat).unwrap_or_default();
                if let Err(e) = ws.send(Message::Text(text.into())).await {
                    return SessionEnd::Retry(format!("send heartbeat: {e}"));
                }
            }
            frame = ws.next() => {
                let msg = match frame {
                    None => return SessionEnd::Retry("server closed the connection".into()),
                    Some(Err(e)) => return SessionEnd::Retry(format!("socket: {e}")),
                    Some(Ok(Message::Text(t))) => serde_json::from_str::<ServerMsg>(t.as_str()),
                    Some(Ok(Message::Close(_))) => return SessionEnd::Retry("server closed the connection".into()),
                    Some(Ok(_)) => continue,
                };
                match msg {
                    Ok(ServerMsg::Welcome { worker_id, heartbeat_interval_secs }) => {
                        *connected = true;
                        tracing::info!(%worker_id, server = %config.server, "connected");
                        heartbeat = Duration::from_secs(u64::from(heartbeat_interval_secs.max(1)));
                        ticker = tokio::time::interval(heartbeat);
                        ticker.tick().await;
                        welcomed = true;
                        if let Err(why) = flush(&mut ws, &mut trials.outbox).await {
                            return SessionEnd::Retry(why);
                        }
                    }
                    Ok(ServerMsg::Assign { lease, trial, experiment, attempt, spec, params, resource, may_wait }) => {
                        trials.manager.assign(Assignment {
                            lease, trial, experiment, attempt, spec, params, resource, may_wait,
                        });
                    }
                    Ok(ServerMsg::Continue { lease, resource }) => {
                        if !trials.manager.control(lease, Control::Continue(resource)) {
                            // Not here (ended, or lost with a restart of this worker): say so,
                            // so that the server re-leases the trial.
                            trials.outbox.push(WorkerMsg::Failed {
                                lease,
                                reason: format!("lease {lease} is not running on this worker"),
                            });
                            if let Err(why) = flush(&mut ws, &mut trials.outbox).await {
                                return SessionEnd::Retry(why);
                            }
                        }
                    }
                    Ok(ServerMsg::Ack { count }) => trials.outbox.ack(count),
                    Ok(ServerMsg::Stop { lease, reason }) => {
                        if trials.manager.control(lease, Control::Stop) {
                            tracing::info!(%lease, %reason, "stopping trial");
                        } else {
                            // Its ending report is already on its way.
                            tracing::debug!(%lease, "stop of a lease that is not running");
                        }
                    }
                    Ok(ServerMsg::Job { job, attempt, spec }) => {
                        tracing::info!(%job, attempt, "job started");
                        trials.manager.run_job(job, spec);
                    }
                    Ok(ServerMsg::CancelJob { job, reason }) => {
                        if trials.manager.cancel_job(job) {
                            tracing::info!(%job, %reason, "cancelling job");
                        }
                    }
                    Ok(ServerMsg::Shutdown { reason }) => {
                        return SessionEnd::Fatal(WorkerError::Refused(reason));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a message this worker does not understand");
                    }
                }
            }
        }
    }
}

/// Runs the worker until a fatal error: connects, and reconnects with exponential backoff
/// (0.5 s doubling up to `max_backoff`) whenever the connection is lost.
/// Trials keep running while the worker is disconnected; their reports are queued (see the
/// module doc).
pub async fn run(config: ClientConfig) -> Result<(), WorkerError> {
    let url = connect_url(&config.server)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut trials = Trials {
        manager: TrialManager::new(config.slots, tx),
        reports: rx,
        outbox: Outbox::new(MAX_QUEUED_REPORTS),
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut connected = false;
        match session(&config, &url, &mut connected, &mut trials).await {
            SessionEnd::Fatal(e) => return Err(e),
            SessionEnd::Retry(why) => {
                if connected {
                    backoff = Duration::from_millis(500);
                }
                tracing::warn!(reason = %why, retry_in_ms = backoff.as_millis() as u64, "disconnected");
                // Keep collecting the running trials' reports while waiting.
                let wake = tokio::time::Instant::now() + backoff;
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => break,
                        Some(report) = trials.reports.recv() => {
                            trials.manager.observe(&report);
                            trials.outbox.push(report);
                        }
                    }
                }
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_socket_url() {
        assert_eq!(
            connect_url("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080/api/workers/connect"
        );
        assert_eq!(
            connect_url("https://albedo.example").unwrap(),
            "wss://albedo.example/api/workers/connect"
        );
        assert!(connect_url("ftp://x").is_err());
        assert!(connect_url("127.0.0.1:8080").is_err());
    }

    fn metric(step: u32) -> WorkerMsg {
        WorkerMsg::Metric {
            lease: albedo_shared::protocol::LeaseId(1),
            step,
            values: Default::default(),
        }
    }

    fn drain_unsent(out: &mut Outbox) -> Vec<WorkerMsg> {
        let mut sent = Vec::new();
        while let Some(m) = out.next_unsent() {
            sent.push(m.clone());
            out.mark_sent();
        }
        sent
    }

    #[test]
    fn outbox_keeps_reports_until_acknowledged_and_resends_them_in_order() {
        let mut out = Outbox::new(100);
        for s in 1..=3 {
            out.push(metric(s));
        }
        assert_eq!(
            drain_unsent(&mut out),
            vec![metric(1), metric(2), metric(3)]
        );
        out.ack(1); // the server stored metric 1
        out.push(metric(4));
        assert_eq!(drain_unsent(&mut out), vec![metric(4)]);
        assert_eq!(out.len(), 3);
        // Connection lost: 2, 3, 4 are resent first, counted from 0 on the new connection.
        out.reconnected();
        out.push(metric(5));
        assert_eq!(
            drain_unsent(&mut out),
            vec![metric(2), metric(3), metric(4), metric(5)]
        );
        out.ack(2);
        assert_eq!(out.len(), 2);
        out.ack(2); // a repeated ack changes nothing
        assert_eq!(out.len(), 2);
        out.ack(4);
        assert!(out.is_empty());
        assert!(out.next_unsent().is_none());
    }

    #[test]
    fn outbox_drops_only_old_metrics_when_full() {
        use albedo_shared::protocol::LeaseId;
        let mut out = Outbox::new(3);
        out.push(WorkerMsg::Paused {
            lease: LeaseId(1),
            step: 0,
        });
        out.push(metric(1));
        drain_unsent(&mut out); // paused and metric 1 in flight
        out.push(metric(2));
        out.push(metric(3)); // full: metric 1 (in flight) goes
        assert_eq!(out.len(), 3);
        assert_eq!(out.dropped(), 1);
        out.push(WorkerMsg::Stopped {
            lease: LeaseId(1),
            step: 3,
        }); // metric 2 goes
        assert_eq!(
            drain_unsent(&mut out),
            vec![
                metric(3),
                WorkerMsg::Stopped {
                    lease: LeaseId(1),
                    step: 3
                }
            ]
        );
        // The server acknowledges paused and the dropped metric 1: paused goes.
        out.ack(2);
        assert_eq!(out.len(), 2);
        out.reconnected();
        assert_eq!(
            drain_unsent(&mut out),
            vec![
                metric(3),
                WorkerMsg::Stopped {
                    lease: LeaseId(1),
                    step: 3
                }
            ]
        );
        // Only ending/paused reports: nothing is dropped, the bound gives way.
        let mut out = Outbox::new(1);
        for l in 0..3 {
            out.push(WorkerMsg::Failed {
                lease: LeaseId(l),
                reason: String::new(),
            });
        }
        assert_eq!(out.len(), 3);
    }
}
