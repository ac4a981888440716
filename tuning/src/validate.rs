//! Validation of a whole experiment spec; every error names its field as a dotted path into
//! the JSON spec, so the API can answer 400 with it.

use albedo_shared::experiment::{EarlyStoppingSpec, ExperimentSpec, Mode, OptimizerSpec};

use crate::{TuningError, ablation, asha, space, stopping};

/// Checks an experiment spec: a search (`params` + `optimizer`) or an ablation study
/// (`ablation`, no `params` or `optimizer`); a name and metric; `max_trials >= 1` (and enough
/// for an ablation plan); `parallelism >= 1` when given; the optimizer's own parameters;
/// grids need float step counts; `bsp` mode takes neither early stopping nor ASHA.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::{Suggestion, build_optimizer};

    fn parse(text: &str) -> ExperimentSpec {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
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
                search(LR, r#"{"type": "random"}"#, r#", "parallelism": 0"#),
                "parallelism",
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
