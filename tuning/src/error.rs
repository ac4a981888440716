//! The one error enum of `albedo-tuning`.

/// Errors of the tuning algorithms.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TuningError {
    /// A search space, experiment spec or algorithm parameter is invalid; `field` names it
    /// as a dotted path into the JSON spec (`params.lr.low`, `optimizer.gamma`).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field, as the experiment spec names it.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
}

impl TuningError {
    /// Shorthand for [`TuningError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field this error names.
    pub fn field(&self) -> &str {
        match self {
            Self::Invalid { field, .. } => field,
        }
    }

    /// Why, without the field.
    pub fn reason(&self) -> &str {
        match self {
            Self::Invalid { reason, .. } => reason,
        }
    }
}
