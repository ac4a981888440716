//! The connection to the server: hello, heartbeats, reconnects with backoff.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use albedo_shared::protocol::{Device, PROTOCOL_VERSION, ServerMsg, WorkerMsg};

use crate::WorkerError;

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

async fn session(config: &ClientConfig, url: &str, connected: &mut bool) -> SessionEnd {
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
    let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
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
    };
    let text = serde_json::to_string(&hello).unwrap_or_default();
    if let Err(e) = ws.send(Message::Text(text.into())).await {
        return SessionEnd::Retry(format!("send hello: {e}"));
    }
    let mut heartbeat = Duration::from_secs(5);
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    loop {
        tokio::select! {
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
pub async fn run(config: ClientConfig) -> Result<(), WorkerError> {
    let url = connect_url(&config.server)?;
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut connected = false;
        match session(&config, &url, &mut connected).await {
            SessionEnd::Fatal(e) => return Err(e),
            SessionEnd::Retry(why) => {
                if connected {
                    backoff = Duration::from_millis(500);
                }
                tracing::warn!(reason = %why, retry_in_ms = backoff.as_millis() as u64, "disconnected");
                tokio::time::sleep(backoff).await;
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
}
