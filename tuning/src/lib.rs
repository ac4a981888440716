//! `albedo-tuning`: the experiment algorithms, pure and synchronous.
//!
//! What it is: search spaces and their validation; optimizers (grid, random, TPE, ASHA)
//! behind one [`Optimizer`] trait; early stopping (median rule, none) behind
//! [`EarlyStopper`]; ablation (leave one component out) with per-component deltas. Every
//! algorithm is seedable (trial `i` of seed `s` always draws from the same stream) and takes
//! what it needs as data: the history of trials with their states and per-step values.
//!
//! What it is not: no I/O, no async, no clock, no knowledge of workers or storage. The
//! backend's driver owns the history, feeds it in and carries out the decisions.
//!
//! Layout:
//! - [`trial`]: [`Trial`], what the algorithms see of a trial.
//! - [`space`]: validation, sampling, grids, the seeded per-trial generator.
//! - [`optimizer`]: the [`Optimizer`] trait, [`Suggestion`], [`build_optimizer`], grid and
//!   random search.
//! - [`tpe`]: tree-structured Parzen estimator.
//! - [`asha`]: asynchronous successive halving.
//! - [`stopping`]: the median stopping rule and none.
//! - [`ablation`]: leave-one-component-out plans and deltas.
//! - [`sim`]: zero-overhead simulation of a workload's ideal schedule (async or BSP).
//! - [`synthetic`]: the scheduler benchmark's fixed workload (curves and step times).
//! - [`validate`]: validation of a whole experiment spec.
//! - [`error`]: this crate's error enum.

pub mod ablation;
pub mod asha;
pub mod error;
pub mod optimizer;
pub mod sim;
pub mod space;
pub mod stopping;
pub mod synthetic;
pub mod tpe;
pub mod trial;
pub mod validate;

pub use error::TuningError;
pub use optimizer::{Optimizer, Suggestion, build_optimizer};
pub use stopping::{EarlyStopper, build_stopper};
pub use trial::Trial;
pub use validate::validate_spec;
