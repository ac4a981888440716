//! The one layer that decides who may call what.
//!
//! Every request passes through [`authenticate`], which looks the request up in
//! [`requirement`] and either lets it through, attaches the caller's identity as a request
//! extension, or answers 401. Handlers never read credentials themselves: a handler that
//! needs a worker takes `Extension<WorkerIdentity>`, which only this layer inserts.
//!
//! Today: worker routes need a worker token and every request that changes something under
//! `/api` (any method but GET, HEAD and OPTIONS) needs a user token; both are created with
//! `albedo token create --scope worker|user`. Reading the catalog, STAC (its POST search
//! included) and experiments is open. Users, projects and per-project tokens will be added
//! here, and only here.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::BackendError;
use crate::store::TokenScope;

/// Who a worker route is talking to: the name of the token it presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// Name the token was created with.
    pub token_name: String,
}

/// Who changed something: the name of the user token presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
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
    /// A valid user token.
    User,
}

/// The policy: which requests need which credentials.
pub fn requirement(method: &Method, path: &str) -> Requirement {
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if path == "/api/workers/connect" || path.starts_with("/api/workers/connect/") {
        Requirement::Worker
    } else if !reads && (path == "/api" || path.starts_with("/api/")) {
        Requirement::User
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
    let scope = match requirement(req.method(), req.uri().path()) {
        Requirement::Public => return next.run(req).await,
        Requirement::Worker => TokenScope::Worker,
        Requirement::User => TokenScope::User,
    };
    let Some(token) = bearer(&req).map(str::to_string) else {
        let what = match scope {
            TokenScope::Worker => {
                "worker routes need `Authorization: Bearer <token>` \
                 (see `albedo token create --scope worker`)"
            }
            TokenScope::User => {
                "changing anything needs `Authorization: Bearer <token>` \
                 (see `albedo token create --scope user`)"
            }
        };
        return BackendError::Unauthorized(what.into()).into_response();
    };
    match state
        .store
        .call(move |s| s.check_token(scope, &token))
        .await
    {
        Ok(Some(token_name)) => {
            match scope {
                TokenScope::Worker => {
                    req.extensions_mut().insert(WorkerIdentity { token_name });
                }
                TokenScope::User => {
                    req.extensions_mut().insert(UserIdentity { token_name });
                }
            }
            next.run(req).await
        }
        Ok(None) => {
            BackendError::Unauthorized(format!("unknown {} token", scope.as_str())).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_routes_and_api_changes_need_tokens() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            requirement(&get, "/api/workers/connect"),
            Requirement::Worker
        );
        assert_eq!(requirement(&get, "/api/workers"), Requirement::Public);
        assert_eq!(requirement(&get, "/api/products"), Requirement::Public);
        assert_eq!(requirement(&get, "/stac"), Requirement::Public);
        assert_eq!(requirement(&post, "/stac/search"), Requirement::Public);
        assert_eq!(requirement(&get, "/api/experiments"), Requirement::Public);
        assert_eq!(requirement(&post, "/api/experiments"), Requirement::User);
        assert_eq!(requirement(&Method::DELETE, "/api/x"), Requirement::User);
        assert_eq!(requirement(&post, "/api"), Requirement::User);
        assert_eq!(requirement(&post, "/apix"), Requirement::Public);
    }
}
