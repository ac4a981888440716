//! Search spaces: validation, sampling and grids.
//!
//! Validation errors name the field as a dotted path into the spec (`params.lr.low`).
//! Sampling: floats uniform on `[low, high]` (log-uniform when `log`), ints uniform on
//! `low..=high` (log-uniform over `[low - 0.5, high + 0.5]` then rounded when `log`),
//! categoricals uniform over their values.

use std::collections::HashSet;

use albedo_shared::experiment::{Domain, ParamSpec, Params};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::Value;

use crate::TuningError;

/// Most points a grid may have.
pub const MAX_GRID_POINTS: usize = 1_000_000;

/// Field path of a parameter's attribute: `params.<name>.<attr>`.
fn field(name: &str, attr: &str) -> String {
    format!("params.{name}.{attr}")
}

/// Checks a search space: at least one parameter, unique non-empty names, finite bounds,
/// `low <= high`, `log` only with `low > 0`, non-empty categoricals, grid step counts >= 1.
pub fn validate_space(params: &[ParamSpec]) -> Result<(), TuningError> {
    if params.is_empty() {
        return Err(TuningError::invalid(
            "params",
            "the search space is empty: give at least one parameter",
        ));
    }
    let mut seen = HashSet::new();
    for (i, p) in params.iter().enumerate() {
        if p.name.trim().is_empty() {
            return Err(TuningError::invalid(
                format!("params[{i}].name"),
                "a parameter needs a name",
            ));
        }
        if !seen.insert(p.name.as_str()) {
            return Err(TuningError::invalid(
                field(&p.name, "name"),
                format!("duplicate parameter name {:?}", p.name),
            ));
        }
        let steps_ok = |steps: Option<u32>| match steps {
            Some(0) => Err(TuningError::invalid(
                field(&p.name, "steps"),
                "a grid needs at least 1 step",
            )),
            _ => Ok(()),
        };
        match &p.domain {
            Domain::Float {
                low,
                high,
                log,
                steps,
            } => {
                if !low.is_finite() {
                    return Err(TuningError::invalid(
                        field(&p.name, "low"),
                        "not a finite number",
                    ));
                }
                if !high.is_finite() {
                    return Err(TuningError::invalid(
                        field(&p.name, "high"),
                        "not a finite number",
                    ));
                }
                if low > high {
                    return Err(TuningError::invalid(
                        field(&p.name, "low"),
                        format!("low {low} is greater than high {high}"),
                    ));
                }
                if *log && *low <= 0.0 {
                    return Err(TuningError::invalid(
                        field(&p.name, "low"),
                        format!("log scale needs low > 0, got {low}"),
                    ));
                }
                steps_ok(*steps)?;
            }
            Domain::Int {
                low,
                high,
                log,
                steps,
            } => {
                if low > high {
                    return Err(TuningError::invalid(
                        field(&p.name, "low"),
                        format!("low {low} is greater than high {high}"),
                    ));
                }
                if *log && *low <= 0 {
                    return Err(TuningError::invalid(
                        field(&p.name, "low"),
                        format!("log scale needs low > 0, got {low}"),
                    ));
                }
                steps_ok(*steps)?;
            }
            Domain::Categorical { values } => {
                if values.is_empty() {
                    return Err(TuningError::invalid(
                        field(&p.name, "values"),
                        "a categorical needs at least one value",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The grid points of one parameter, in increasing order (categoricals in their order).
/// Floats need `steps` (evenly spaced from `low` to `high` inclusive, geometrically when
/// `log`); ints take `steps` points rounded and deduplicated, or every integer without it.
pub fn grid_points(param: &ParamSpec) -> Result<Vec<Value>, TuningError> {
    let too_many = |steps: &Option<u32>| match steps {
        Some(n) if *n as usize > MAX_GRID_POINTS => Err(TuningError::invalid(
            field(&param.name, "steps"),
            format!("{n} steps is more than a grid may have ({MAX_GRID_POINTS})"),
        )),
        _ => Ok(()),
    };
    let spaced = |low: f64, high: f64, log: bool, steps: u32| -> Vec<f64> {
        if steps <= 1 || low == high {
            return vec![low];
        }
        let (a, b) = if log {
            (low.ln(), high.ln())
        } else {
            (low, high)
        };
        (0..steps)
            .map(|i| {
                let x = a + (b - a) * f64::from(i) / f64::from(steps - 1);
                let x = if log { x.exp() } else { x };
                x.clamp(low, high)
            })
            .collect()
    };
    match &param.domain {
        Domain::Float {
            low,
            high,
            log,
            steps,
        } => {
            too_many(steps)?;
            let Some(steps) = steps else {
                return Err(TuningError::invalid(
                    field(&param.name, "steps"),
                    "grid search over a float range needs a step count",
                ));
            };
            Ok(spaced(*low, *high, *log, *steps)
                .into_iter()
                .map(Value::from)
                .collect())
        }
        Domain::Int {
            low,
            high,
            log,
            steps,
        } => {
            too_many(steps)?;
            let ints: Vec<i64> = match steps {
                None => {
                    let n = high.abs_diff(*low).saturating_add(1);
                    if n > MAX_GRID_POINTS as u64 {
                        return Err(TuningError::invalid(
                            field(&param.name, "steps"),
                            format!("{n} integers is too many for a grid: give a step count"),
                        ));
                    }
                    (*low..=*high).collect()
                }
                Some(steps) => {
                    let mut v: Vec<i64> = spaced(*low as f64, *high as f64, *log, *steps)
                        .into_iter()
                        .map(|x| (x.round() as i64).clamp(*low, *high))
                        .collect();
                    v.dedup();
                    v
                }
            };
            Ok(ints.into_iter().map(Value::from).collect())
        }
        Domain::Categorical { values } => Ok(values.clone()),
    }
}

/// Every point of the cartesian product of the parameters' grids: parameters in spec order,
/// the last one varying fastest. Validates the space first.
pub fn grid(params: &[ParamSpec]) -> Result<Vec<Params>, TuningError> {
    validate_space(params)?;
    let axes = params
        .iter()
        .map(grid_points)
        .collect::<Result<Vec<_>, _>>()?;
    let total = axes
        .iter()
        .try_fold(1usize, |acc, a| acc.checked_mul(a.len()))
        .filter(|&n| n <= MAX_GRID_POINTS)
        .ok_or_else(|| {
            TuningError::invalid(
                "params",
                format!("the grid has more than {MAX_GRID_POINTS} points"),
            )
        })?;
    let mut out = Vec::with_capacity(total);
    for mut i in 0..total {
        let mut config = Params::new();
        for (p, axis) in params.iter().zip(&axes).rev() {
            config.insert(p.name.clone(), axis[i % axis.len()].clone());
            i /= axis.len();
        }
        out.push(config);
    }
    Ok(out)
}

/// Draws one value of a parameter.
pub fn sample_param<R: Rng + ?Sized>(domain: &Domain, rng: &mut R) -> Value {
    match domain {
        Domain::Float { low, high, log, .. } => {
            let u: f64 = rng.random();
            let x = if *log {
                (low.ln() + u * (high.ln() - low.ln())).exp()
            } else {
                low + u * (high - low)
            };
            Value::from(x.clamp(*low, *high))
        }
        Domain::Int { low, high, log, .. } => {
            if *log {
                let (a, b) = ((*low as f64 - 0.5).ln(), (*high as f64 + 0.5).ln());
                let u: f64 = rng.random();
                let x = (a + u * (b - a)).exp().round() as i64;
                Value::from(x.clamp(*low, *high))
            } else {
                Value::from(rng.random_range(*low..=*high))
            }
        }
        Domain::Categorical { values } => values[rng.random_range(0..values.len())].clone(),
    }
}

/// Draws one configuration: every parameter independently.
pub fn sample<R: Rng + ?Sized>(params: &[ParamSpec], rng: &mut R) -> Params {
    params
        .iter()
        .map(|p| (p.name.clone(), sample_param(&p.domain, rng)))
        .collect()
}

/// The random generator of trial `index` of an experiment seeded with `seed`: the same pair
/// always gives the same stream, and neighbouring indices give unrelated streams. (It is
/// rand's `StdRng`, ChaCha12 in rand 0.9: the streams hold within a rand major version.)
pub fn trial_rng(seed: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(index.wrapping_add(0x5EED))))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(name: &str, domain: Domain) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            domain,
        }
    }
    fn float(low: f64, high: f64, log: bool, steps: Option<u32>) -> Domain {
        Domain::Float {
            low,
            high,
            log,
            steps,
        }
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases: Vec<(Vec<ParamSpec>, &str)> = vec![
            (vec![], "params"),
            (vec![p("lr", float(1.0, 0.1, false, None))], "params.lr.low"),
            (vec![p("lr", float(0.0, 1.0, true, None))], "params.lr.low"),
            (vec![p("lr", float(-1.0, 1.0, true, None))], "params.lr.low"),
            (
                vec![p("lr", float(f64::NAN, 1.0, false, None))],
                "params.lr.low",
            ),
            (
                vec![p("lr", float(0.0, f64::INFINITY, false, None))],
                "params.lr.high",
            ),
            (
                vec![p("lr", float(0.0, 1.0, false, Some(0)))],
                "params.lr.steps",
            ),
            (
                vec![p(
                    "depth",
                    Domain::Int {
                        low: 0,
                        high: 4,
                        log: true,
                        steps: None,
                    },
                )],
                "params.depth.low",
            ),
            (
                vec![p(
                    "depth",
                    Domain::Int {
                        low: 5,
                        high: 4,
                        log: false,
                        steps: None,
                    },
                )],
                "params.depth.low",
            ),
            (
                vec![p("act", Domain::Categorical { values: vec![] })],
                "params.act.values",
            ),
            (
                vec![
                    p("lr", float(0.0, 1.0, false, None)),
                    p("lr", float(0.0, 2.0, false, None)),
                ],
                "params.lr.name",
            ),
            (vec![p(" ", float(0.0, 1.0, false, None))], "params[0].name"),
        ];
        for (space, want) in cases {
            let err = validate_space(&space).unwrap_err();
            assert_eq!(err.field(), want, "{err}");
            assert!(err.to_string().contains(want), "{err}");
        }
        assert!(validate_space(&[p("lr", float(1e-5, 1.0, true, None))]).is_ok());
    }

    #[test]
    fn grid_over_float_needs_steps() {
        let err = grid(&[p("lr", float(0.0, 1.0, false, None))]).unwrap_err();
        assert_eq!(err.field(), "params.lr.steps");
    }

    #[test]
    fn grid_enumerates_the_product_in_order() {
        let space = vec![
            p("lr", float(0.001, 0.1, true, Some(3))),
            p(
                "depth",
                Domain::Int {
                    low: 1,
                    high: 2,
                    log: false,
                    steps: None,
                },
            ),
            p(
                "act",
                Domain::Categorical {
                    values: vec![json!("relu"), json!("gelu")],
                },
            ),
        ];
        let points = grid(&space).unwrap();
        assert_eq!(points.len(), 3 * 2 * 2);
        let as_tuple = |c: &Params| {
            (
                c["lr"].as_f64().unwrap(),
                c["depth"].as_i64().unwrap(),
                c["act"].as_str().unwrap().to_owned(),
            )
        };
        let first = as_tuple(&points[0]);
        assert!((first.0 - 0.001).abs() < 1e-12);
        assert_eq!((first.1, first.2.as_str()), (1, "relu"));
        assert_eq!(as_tuple(&points[1]).2, "gelu");
        assert_eq!(as_tuple(&points[2]).1, 2);
        assert!((as_tuple(&points[4]).0 - 0.01).abs() < 1e-12);
        assert!((as_tuple(&points[11]).0 - 0.1).abs() < 1e-12);
        let distinct: HashSet<String> = points
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        assert_eq!(distinct.len(), 12);
        let one = grid_points(&p("c", float(2.0, 2.0, false, Some(5)))).unwrap();
        assert_eq!(one, vec![json!(2.0)]);
        let huge = grid_points(&p("c", float(0.0, 1.0, false, Some(u32::MAX)))).unwrap_err();
        assert_eq!(huge.field(), "params.c.steps");
        let int_steps = grid_points(&p(
            "n",
            Domain::Int {
                low: 1,
                high: 100,
                log: true,
                steps: Some(3),
            },
        ))
        .unwrap();
        assert_eq!(int_steps, vec![json!(1), json!(10), json!(100)]);
    }

    #[test]
    fn sampling_stays_in_range_and_covers_it() {
        let space = vec![
            p("lr", float(1e-5, 1.0, true, None)),
            p("drop", float(0.0, 0.5, false, None)),
            p(
                "depth",
                Domain::Int {
                    low: 1,
                    high: 3,
                    log: false,
                    steps: None,
                },
            ),
            p(
                "batch",
                Domain::Int {
                    low: 1,
                    high: 1024,
                    log: true,
                    steps: None,
                },
            ),
            p(
                "w",
                Domain::Categorical {
                    values: vec![json!(16), json!(32)],
                },
            ),
        ];
        let mut rng = trial_rng(1, 0);
        let mut depths = HashSet::new();
        let mut small_lr = 0;
        let n = 2000;
        for _ in 0..n {
            let c = sample(&space, &mut rng);
            let lr = c["lr"].as_f64().unwrap();
            assert!((1e-5..=1.0).contains(&lr));
            if lr < 1e-3 {
                small_lr += 1;
            }
            assert!((0.0..=0.5).contains(&c["drop"].as_f64().unwrap()));
            let d = c["depth"].as_i64().unwrap();
            assert!((1..=3).contains(&d));
            depths.insert(d);
            assert!((1..=1024).contains(&c["batch"].as_i64().unwrap()));
            assert!([json!(16), json!(32)].contains(&c["w"]));
        }
        assert_eq!(depths.len(), 3, "ints are inclusive of both ends");
        // Log-uniform on [1e-5, 1]: P(lr < 1e-3) = 2/5.
        let frac = f64::from(small_lr) / f64::from(n);
        assert!((0.35..0.45).contains(&frac), "{frac}");
    }
}
