//! The router, the state every handler shares, and [`run`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::services::{ServeDir, ServeFile};

use albedo_shared::api::Health;

use crate::engine::Engine;
use crate::error::BackendError;
use crate::store::Store;
use crate::workers::WorkerRegistry;
use crate::{auth, catalog, datasets, experiments, models, serving, stac, workers};

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder of the built browser app (index.html + wasm); `None` serves a page that says
    /// how to build it.
    pub static_dir: Option<PathBuf>,
    /// Seconds between worker heartbeats.
    pub heartbeat_interval_secs: u32,
    /// How long the leases of a worker that is gone wait for it to reconnect before its
    /// trials go back to the queue; `None`: three heartbeat intervals.
    pub lease_grace: Option<Duration>,
    /// Folders under which `POST /api/ingest` may read server-side files
    /// (`{"paths": [...]}`); empty disables that (STAC bodies are still accepted).
    pub ingest_roots: Vec<PathBuf>,
    /// Decoded tiles and built overview tiles of `/api/products/{id}/tiles`, shared by all
    /// requests; bounded in bytes.
    pub tile_cache: crate::catalog::TileCache,
}

impl Config {
    /// The lease grace period in effect.
    pub fn lease_grace(&self) -> Duration {
        self.lease_grace.unwrap_or(Duration::from_secs(
            3 * u64::from(self.heartbeat_interval_secs.max(1)),
        ))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            static_dir: None,
            heartbeat_interval_secs: 5,
            lease_grace: None,
            ingest_roots: Vec::new(),
            tile_cache: crate::catalog::TileCache::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The embedded store.
    pub store: Store,
    /// Connected workers.
    pub workers: Arc<WorkerRegistry>,
    /// The experiment engine.
    pub engine: Engine,
    /// Models loaded for online serving.
    pub models: Arc<crate::serving::ModelCache>,
    /// Configuration.
    pub config: Arc<Config>,
}

impl AppState {
    /// State over `store` with `config`; starts the experiment engine, which resumes the
    /// experiments that were running.
    pub fn new(store: Store, config: Config) -> Result<Self, BackendError> {
        let engine = Engine::start(store.path(), config.lease_grace())?;
        store.with_conn(|c| {
            c.execute_batch(models::SCHEMA)?;
            Ok(c.execute_batch(serving::SCHEMA)?)
        })?;
        Ok(AppState {
            store,
            workers: Arc::new(WorkerRegistry::default()),
            engine,
            models: Arc::default(),
            config: Arc::new(config),
        })
    }
}

async fn health(State(state): State<AppState>) -> Result<Json<Health>, BackendError> {
    let products = state.store.call(|s| s.count_products()).await?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        products,
        workers: state.workers.len() as u64,
    }))
}

async fn no_frontend() -> impl IntoResponse {
    Html(
        "<!doctype html><title>Albedo</title><h1>Albedo</h1>\
         <p>The browser app is not built into this server. Run <code>cargo xtask demo</code>, \
         or start <code>albedo serve --static DIR</code> with the folder Trunk built.</p>\
         <p>The JSON API is under <a href=\"/api/health\">/api</a>, the STAC API under \
         <a href=\"/stac\">/stac</a>.</p>",
    )
}

async fn api_not_found() -> BackendError {
    BackendError::not_found("API route")
}

/// The whole application: `/api`, `/stac`, and the static browser app.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .merge(catalog::routes())
        .merge(crate::ingest::routes())
        .merge(workers::routes())
        .merge(experiments::routes())
        .merge(datasets::routes())
        .merge(models::routes())
        .merge(serving::routes())
        .merge(crate::classify::routes())
        .fallback(api_not_found);
    let app = Router::new()
        .nest("/api", api)
        .nest("/stac", stac::routes());
    let app = match &state.config.static_dir {
        Some(dir) => app
            .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => app.fallback(no_frontend),
    };
    app.layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state)
}

/// Serves the application on `listener` until `shutdown` resolves, then finishes the
/// requests in flight and returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = router(state);
    // Small messages (worker orders, reports) must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
