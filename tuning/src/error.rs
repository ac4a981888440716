//! The one error enum of `albedo-tuning`.

/// Errors of the tuning algorithms.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TuningError {
    /// A search space or algorithm parameter is invalid; `field` names it.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field, as the experiment spec names it.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
}
