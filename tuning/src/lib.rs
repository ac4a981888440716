//! `albedo-tuning`: the experiment algorithms, pure and synchronous.
//!
//! What it will hold (the experiment-engine issue fills it): search spaces and their
//! validation; optimizers (grid, random, TPE, ASHA); early stopping (median rule, none);
//! ablation (leave one component out). Every algorithm is seedable and takes time as data.
//!
//! What it is not: no I/O, no async, no clock, no knowledge of workers or storage. The
//! backend's driver feeds it observations and asks it for decisions.
//!
//! Layout: [`error`] holds this crate's error enum; the algorithm modules land with the
//! engine. Nothing here pretends to work before then.

pub mod error;

pub use error::TuningError;
