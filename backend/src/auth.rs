//! The one layer that decides who may call what.
//!
//! Every request passes through [`authenticate`], which looks the route up in
//! [`requirement`] and either lets it through, attaches the caller's identity as a request
//! extension, or answers 401. Handlers never read credentials themselves: a handler that
//! needs a worker takes `Extension<WorkerIdentity>`, which only this layer inserts.
//!
//! Today: worker routes need a worker bearer token (created with `albedo token create`);
//! the browser API and STAC are open. Users, projects and their tokens will be added here.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::BackendError;

/// Who a worker route is talking to: the name of the token it presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// Name the token was created with.
    pub token_name: String,
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone.
    Public,
    /// A valid worker token.
    Worker,
}

/// The policy: which paths need which credentials.
pub fn requirement(path: &str) -> Requirement {
    if path == "/api/workers/connect" || path.starts_with("/api/workers/connect/") {
        Requirement::Worker
    } else {
        Requirement::Public
    }
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The authentication middleware (see the module docs).
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match requirement(req.uri().path()) {
        Requirement::Public => next.run(req).await,
        Requirement::Worker => {
            let Some(token) = bearer(&req).map(str::to_string) else {
                return BackendError::Unauthorized(
                    "worker routes need `Authorization: Bearer <token>` (see `albedo token create`)"
                        .into(),
                )
                .into_response();
            };
            match state
                .store
                .call(move |s| s.check_worker_token(&token))
                .await
            {
                Ok(Some(token_name)) => {
                    req.extensions_mut().insert(WorkerIdentity { token_name });
                    next.run(req).await
                }
                Ok(None) => {
                    BackendError::Unauthorized("unknown worker token".into()).into_response()
                }
                Err(e) => e.into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_worker_routes_need_a_token() {
        assert_eq!(requirement("/api/workers/connect"), Requirement::Worker);
        assert_eq!(requirement("/api/workers"), Requirement::Public);
        assert_eq!(requirement("/api/products"), Requirement::Public);
        assert_eq!(requirement("/stac"), Requirement::Public);
    }
}
