//! Validation of a whole experiment spec; every error names its field as a dotted path into
//! the JSON spec, so the API can answer 400 with it.

use albedo_shared::experiment::{
    EarlyStoppingSpec, ExperimentSpec, MAX_PREFETCH, Mode, OptimizerSpec,
};
use albedo_shared::protocol::TrialSpec;

use crate::{TuningError, ablation, asha, space, stopping};

/// Checks an experiment spec: a search (`params` + `optimizer`) or an ablation study
/// (`ablation`, no `params` or `optimizer`); a name and metric; `max_trials >= 1` (and enough
/// for an ablation plan); `parallelism >= 1` when given; the optimizer's own parameters;
/// grids need float step counts; `bsp` mode takes neither early stopping nor ASHA nor
/// prefetch; `prefetch <= MAX_PREFETCH`.
pub fn validate_spec(spec: &ExperimentSpec) -> Result<(), TuningError> {
    if spec.name.trim().is_empty() {
        return Err(TuningError::invalid("name", "an experiment needs a name"));
    }
    if spec.metric.trim().is_empty() {
        return Err(TuningError::invalid(
            "metric",
            "name the metric to optimise",
        ));
    }
    if spec.max_trials == 0 {
        return Err(TuningError::invalid("max_trials", "must be at least 1"));
    }
    if spec.parallelism == Some(0) {
        return Err(TuningError::invalid("parallelism", "must be at least 1"));
    }
    if spec.max_attempts == 0 {
        return Err(TuningError::invalid("max_attempts", "must be at least 1"));
    }
    if spec.prefetch > MAX_PREFETCH {
        return Err(TuningError::invalid(
            "prefetch",
            format!("at most {MAX_PREFETCH} trials per slot may wait on a worker"),
        ));
    }
    if spec.prefetch > 0 && spec.mode == Mode::Bsp {
        return Err(TuningError::invalid(
            "prefetch",
            "bsp mode runs whole rounds: no trial may wait on a worker (prefetch must be 0)",
        ));
    }
    validate_trial(&spec.trial)?;
    stopping::build_stopper(&spec.early_stopping, spec.direction)?;
    if spec.mode == Mode::Bsp && spec.early_stopping != EarlyStoppingSpec::default() {
        return Err(TuningError::invalid(
            "early_stopping",
            "bsp mode runs whole rounds without early stopping",
        ));
    }
    match (&spec.ablation, &spec.optimizer) {
        (Some(_), Some(_)) => Err(TuningError::invalid(
            "optimizer",
            "an ablation study takes no optimizer",
        )),
        (Some(_), None) if !spec.params.is_empty() => Err(TuningError::invalid(
            "params",
            "an ablation study takes no search space (put fixed values in ablation.baseline)",
        )),
        (Some(ab), None) => {
            ablation::validate_ablation(ab)?;
            let needed = ab.components.len() + 1;
            if (spec.max_trials as usize) < needed {
                return Err(TuningError::invalid(
                    "max_trials",
                    format!("the ablation study needs {needed} trials"),
                ));
            }
            Ok(())
        }
        (None, None) => Err(TuningError::invalid(
            "optimizer",
            "missing: a search needs an optimizer (or give an ablation study)",
        )),
        (None, Some(optimizer)) => {
            space::validate_space(&spec.params)?;
            match optimizer {
                OptimizerSpec::Grid {} => {
                    for p in &spec.params {
                        space::grid_points(p)?;
                    }
                    space::grid(&spec.params).map(|_| ())
                }
                OptimizerSpec::Random {} => Ok(()),
                OptimizerSpec::Tpe {
                    n_ei_candidates,
                    gamma,
                    ..
                } => {
                    if !(*gamma > 0.0 && *gamma < 1.0) {
                        return Err(TuningError::invalid(
                            "optimizer.gamma",
                            format!("must lie strictly between 0 and 1, got {gamma}"),
                        ));
                    }
                    if *n_ei_candidates == 0 {
                        return Err(TuningError::invalid(
                            "optimizer.n_ei_candidates",
                            "must be at least 1",
                        ));
                    }
                    Ok(())
                }
                OptimizerSpec::Asha {
                    min_resource,
                    max_resource,
                    reduction_factor,
                } => {
                    if spec.mode == Mode::Bsp {
                        return Err(TuningError::invalid(
                            "mode",
                            "asha is asynchronous; it cannot run in bsp mode",
                        ));
                    }
                    asha::rungs(*min_resource, *max_resource, *reduction_factor).map(|_| ())
                }
            }
        }
    }
}

/// Checks what a trial runs: a synthetic trial has steps and a positive step time; a
/// command names a program.
fn validate_trial(trial: &TrialSpec) -> Result<(), TuningError> {
    match trial {
        TrialSpec::Synthetic { steps, step_ms, .. } => {
            if *steps == 0 {
                return Err(TuningError::invalid("trial.steps", "must be at least 1"));
            }
            if let Some(ms) = step_ms
                && !(ms.is_finite() && *ms >= 0.0)
            {
                return Err(TuningError::invalid(
                    "trial.step_ms",
                    "must be a finite number of milliseconds, 0 or more",
                ));
            }
            Ok(())
        }
        TrialSpec::Command { program, .. } => {
            if program.trim().is_empty() {
                return Err(TuningError::invalid(
                    "trial.program",
                    "name a program to run",
                ));
            }
            Ok(())
        }
        // An empty `dataset_root` is the server's own dataset folder (it fills it in).
        TrialSpec::EoCnn {
            dataset,
            version,
            device,
            threads,
            ..
        } => {
            if dataset.trim().is_empty() {
                return Err(TuningError::invalid("trial.dataset", "name a dataset"));
            }
            if *version == Some(0) {
                return Err(TuningError::invalid(
                    "trial.version",
                    "versions start at 1 (leave it out for the newest)",
                ));
            }
            if let Some(d) = device
                && !matches!(d.as_str(), "cpu" | "wgpu")
            {
                return Err(TuningError::invalid("trial.device", "must be cpu or wgpu"));
            }
            if *threads == Some(0) {
                return Err(TuningError::invalid("trial.threads", "must be at least 1"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::{Suggestion, build_optimizer};

    /// Parses a spec; one without a `trial` runs synthetic trials.
    fn parse(text: &str) -> ExperimentSpec {
        let text = if text.contains(r#""trial""#) {
            text.to_string()
        } else {
            text.replacen('{', r#"{"trial": {"kind": "synthetic", "steps": 5}, "#, 1)
        };
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn search(params: &str, optimizer: &str, extra: &str) -> ExperimentSpec {
        parse(&format!(
            r#"{{"name": "s", "metric": "acc", "direction": "maximize", "max_trials": 10,
                "params": [{params}], "optimizer": {optimizer}{extra}}}"#
        ))
    }

    const LR: &str = r#"{"name": "lr", "type": "float", "low": 1e-5, "high": 1, "log": true}"#;

    #[test]
    fn bad_specs_name_the_field() {
        let cases = [
            (
                search(
                    r#"{"name": "lr", "type": "float", "low": 2, "high": 1}"#,
                    r#"{"type": "random"}"#,
                    "",
                ),
                "params.lr.low",
            ),
            (
                search(
                    r#"{"name": "lr", "type": "float", "low": 0, "high": 1, "log": true}"#,
                    r#"{"type": "random"}"#,
                    "",
                ),
                "params.lr.low",
            ),
            (search(LR, r#"{"type": "grid"}"#, ""), "params.lr.steps"),
            (
                search(LR, r#"{"type": "tpe", "gamma": 0}"#, ""),
                "optimizer.gamma",
            ),
            (
                search(
                    LR,
                    r#"{"type": "asha", "min_resource": 9, "max_resource": 3}"#,
                    "",
                ),
                "optimizer.max_resource",
            ),
            (
                search(
                    LR,
                    r#"{"type": "asha", "min_resource": 1, "max_resource": 9}"#,
                    r#", "mode": "bsp""#,
                ),
                "mode",
            ),
            (
                search(
                    LR,
                    r#"{"type": "random"}"#,
                    r#", "mode": "bsp", "early_stopping": {"type": "median"}"#,
                ),
                "early_stopping",
            ),
            (
                search(
                    LR,
                    r#"{"type": "random"}"#,
                    r#", "early_stopping": {"type": "median", "interval_steps": 0}"#,
                ),
                "early_stopping.interval_steps",
            ),
            (
                search(LR, r#"{"type": "random"}"#, r#", "prefetch": 5"#),
                "prefetch",
            ),
            (
                search(
                    LR,
                    r#"{"type": "random"}"#,
                    r#", "mode": "bsp", "prefetch": 1"#,
                ),
                "prefetch",
            ),
            (
                search(LR, r#"{"type": "random"}"#, r#", "parallelism": 0"#),
                "parallelism",
            ),
            (
                search(LR, r#"{"type": "random"}"#, r#", "max_attempts": 0"#),
                "max_attempts",
            ),
            (
                search(
                    LR,
                    r#"{"type": "random"}"#,
                    r#", "trial": {"kind": "synthetic", "steps": 0}"#,
                ),
                "trial.steps",
            ),
            (
                search(
                    LR,
                    r#"{"type": "random"}"#,
                    r#", "trial": {"kind": "command", "program": " "}"#,
                ),
                "trial.program",
            ),
            (
                parse(
                    r#"{"name": "s", "metric": "acc", "direction": "maximize", "max_trials": 10,
                        "params": [], "optimizer": {"type": "random"}}"#,
                ),
                "params",
            ),
            (
                parse(
                    r#"{"name": "s", "metric": "acc", "direction": "maximize", "max_trials": 0,
                        "optimizer": {"type": "random"}, "params": [{"name": "x",
                        "type": "categorical", "values": [1]}]}"#,
                ),
                "max_trials",
            ),
            (
                parse(
                    r#"{"name": "s", "metric": "acc", "direction": "maximize", "max_trials": 3}"#,
                ),
                "optimizer",
            ),
            (
                parse(
                    r#"{"name": "s", "metric": "acc", "direction": "maximize", "max_trials": 2,
                        "ablation": {"components": [{"name": "a", "kind": "block"},
                                                    {"name": "b", "kind": "named"}]}}"#,
                ),
                "max_trials",
            ),
        ];
        for (spec, field) in cases {
            let err = validate_spec(&spec).unwrap_err();
            assert_eq!(err.field(), field, "{err}");
            assert!(build_optimizer(&spec).is_err());
        }
    }

    #[test]
    fn good_specs_build_their_optimizer() {
        for optimizer in [
            r#"{"type": "random"}"#,
            r#"{"type": "tpe"}"#,
            r#"{"type": "asha", "min_resource": 1, "max_resource": 20}"#,
        ] {
            let spec = search(LR, optimizer, "");
            let mut opt = build_optimizer(&spec).unwrap();
            assert!(
                matches!(opt.suggest(&[]), Some(Suggestion::New { .. })),
                "{optimizer}"
            );
        }
        let grid = search(
            r#"{"name": "lr", "type": "float", "low": 1e-5, "high": 1, "log": true, "steps": 6}"#,
            r#"{"type": "grid"}"#,
            "",
        );
        assert!(build_optimizer(&grid).is_ok());
        let ablation = parse(
            r#"{"name": "s", "metric": "acc", "direction": "maximize", "max_trials": 3,
                "ablation": {"components": [{"name": "a", "kind": "block"},
                                            {"name": "b", "kind": "named"}]}}"#,
        );
        assert!(build_optimizer(&ablation).is_ok());
    }
}
