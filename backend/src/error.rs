//! The one error enum of `albedo-backend`, and the one place it becomes an HTTP answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use albedo_shared::api::ErrorBody;

/// Everything that can go wrong while serving a request or running a command.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The thing asked for does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `product 'X'`.
        what: String,
    },
    /// The request is malformed; `field` names the offending parameter or JSON path.
    #[error("invalid {field}: {reason}")]
    BadRequest {
        /// The offending field.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The request is well formed but cannot be served here (e.g. remote-only pixels).
    #[error("{0}")]
    Unavailable(String),
    /// Missing or wrong credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The embedded database failed.
    #[error("storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    /// Reading a raster failed.
    #[error(transparent)]
    Raster(#[from] albedo_raster::RasterError),
    /// A stored document could not be (de)serialised.
    #[error("stored document is invalid: {0}")]
    Json(#[from] serde_json::Error),
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl BackendError {
    /// A [`BackendError::BadRequest`] for `field`.
    pub fn bad_request(field: impl Into<String>, reason: impl Into<String>) -> Self {
        BackendError::BadRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A [`BackendError::NotFound`] for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        BackendError::NotFound { what: what.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            BackendError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            BackendError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            BackendError::Unavailable(_) => (StatusCode::CONFLICT, "unavailable"),
            BackendError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            BackendError::Raster(e) if e.is_bad_request() => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            BackendError::Raster(e) if e.is_not_found() => (StatusCode::NOT_FOUND, "not_found"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<albedo_tuning::TuningError> for BackendError {
    fn from(e: albedo_tuning::TuningError) -> Self {
        BackendError::bad_request(e.field(), e.reason())
    }
}

/// Parses a JSON request body of at most `max_bytes`: an error names the path of the
/// offending field (`params[0].low`, `max_trials`), or `body` when the JSON itself is broken.
pub fn parse_json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    max_bytes: usize,
) -> Result<T, BackendError> {
    if body.len() > max_bytes {
        return Err(BackendError::bad_request(
            "body",
            format!("at most {max_bytes} bytes are accepted here"),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if matches!(path.as_str(), "" | "." | "?") {
            "body".to_string()
        } else {
            path
        };
        BackendError::bad_request(field, e.into_inner().to_string())
    })?;
    de.end()
        .map_err(|e| BackendError::bad_request("body", e.to_string()))?;
    Ok(value)
}

impl IntoResponse for BackendError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let field = match &self {
            BackendError::BadRequest { field, .. } => Some(field.clone()),
            _ => None,
        };
        let body = ErrorBody {
            code: code.to_string(),
            message: self.to_string(),
            field,
        };
        (status, Json(body)).into_response()
    }
}
