//! The one error type of the browser app.

use albedo_render::RenderError;

/// What can go wrong between the API and the canvas.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// The request did not complete (server down, network error).
    #[error("network error: {0}")]
    Network(String),
    /// The server answered with an error status.
    #[error("{message} (HTTP {status}, {code})")]
    Http {
        /// HTTP status code.
        status: u16,
        /// `ErrorBody::code`, or `http` when the body was not an `ErrorBody`.
        code: String,
        /// `ErrorBody::message`, or the body's text.
        message: String,
        /// `ErrorBody::field`: the offending field of the request, when one is to blame.
        field: Option<String>,
    },
    /// The body did not decode (JSON or raster wire format).
    #[error("could not read the server's answer: {0}")]
    Decode(String),
    /// The GPU side failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl FrontendError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The request's field the server blamed (`ErrorBody::field`), if any.
    pub fn field(&self) -> Option<String> {
        match self {
            Self::Http { field, .. } => field.clone(),
            _ => None,
        }
    }

    /// What a person reads: a 401 says how to get a user token.
    pub fn for_people(&self) -> String {
        match self {
            Self::Http { status: 401, .. } => crate::token::NEEDS_TOKEN.to_string(),
            other => other.to_string(),
        }
    }
}
