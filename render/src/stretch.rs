//! CPU reference of the shader's stretch, and the percentile auto-stretch.
//!
//! [`stretch_u8`] is the exact formula of `imagery.wgsl` (`stretch`), followed by the
//! conversion a `*8Unorm` render target does; tests and the browser check compare GPU
//! pixels against it (within one step for float rounding on the GPU).

/// Maps a band value to a display byte the way the fragment shader does.
///
/// `v = clamp((value - min) / (max - min), 0, 1)`, then `v = v^(1/gamma)`, then
/// `round(v * 255)`. When `max <= min` the stretch is a step: 255 where `value >= max`,
/// else 0. `gamma` must be positive; gamma 1 leaves `v` unchanged. NaN maps to 0.
pub fn stretch_u8(value: f32, min: f32, max: f32, gamma: f32) -> u8 {
    // `stretch_unit` is in [0, 1], so the cast cannot saturate.
    (stretch_unit(value, min, max, gamma) * 255.0).round() as u8
}

/// The stretched value in `[0, 1]` before rounding to a byte (see [`stretch_u8`]); NaN gives 0.
pub fn stretch_unit(value: f32, min: f32, max: f32, gamma: f32) -> f32 {
    let mut v = if max > min {
        ((value - min) / (max - min)).clamp(0.0, 1.0)
    } else if value >= max {
        1.0
    } else {
        0.0
    };
    if v.is_nan() {
        return 0.0;
    }
    if v > 0.0 && gamma != 1.0 {
        v = v.powf(1.0 / gamma);
    }
    v
}

/// The `low_pct` and `high_pct` percentiles (0..=100) of the valid values, as `(min, max)` for
/// an auto-stretch.
///
/// Valid values are finite and not equal to `nodata`. Percentiles interpolate linearly
/// between the two nearest ranks (numpy's default): with `n` sorted values, percentile `p`
/// sits at rank `p / 100 * (n - 1)`. Percentages are clamped to `0..=100` and swapped if given
/// in the wrong order. With no valid value at all the result is `(0.0, 1.0)`.
pub fn percentile_stretch(
    values: &[f32],
    nodata: Option<f32>,
    low_pct: f32,
    high_pct: f32,
) -> (f32, f32) {
    let mut valid: Vec<f32> = values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && Some(*v) != nodata)
        .collect();
    if valid.is_empty() {
        return (0.0, 1.0);
    }
    let clamp_pct = |p: f32| {
        if p.is_nan() {
            0.0
        } else {
            f64::from(p.clamp(0.0, 100.0))
        }
    };
    let (mut lo_pct, mut hi_pct) = (clamp_pct(low_pct), clamp_pct(high_pct));
    if lo_pct > hi_pct {
        std::mem::swap(&mut lo_pct, &mut hi_pct);
    }
    (
        percentile_in_place(&mut valid, lo_pct),
        percentile_in_place(&mut valid, hi_pct),
    )
}

/// Linear-interpolated percentile of non-empty, finite `values`; reorders them.
fn percentile_in_place(values: &mut [f32], pct: f64) -> f32 {
    let last = values.len() - 1;
    let rank = pct * last as f64 / 100.0;
    let below = (rank.floor() as usize).min(last);
    let frac = rank - below as f64;
    let (_, &mut lower, rest) = values.select_nth_unstable_by(below, f32::total_cmp);
    if frac == 0.0 || rest.is_empty() {
        return lower;
    }
    // The next rank is the smallest value above `below`.
    let upper = rest.iter().copied().min_by(f32::total_cmp).unwrap_or(lower);
    (f64::from(lower) + (f64::from(upper) - f64::from(lower)) * frac) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretch_is_linear_and_clamped() {
        assert_eq!(stretch_u8(0.0, 0.0, 255.0, 1.0), 0);
        assert_eq!(stretch_u8(255.0, 0.0, 255.0, 1.0), 255);
        assert_eq!(stretch_u8(100.0, 0.0, 255.0, 1.0), 100);
        assert_eq!(stretch_u8(-5.0, 0.0, 255.0, 1.0), 0);
        assert_eq!(stretch_u8(1e9, 0.0, 255.0, 1.0), 255);
        // Sentinel-2 digital numbers: half-way between min and max rounds to 128.
        assert_eq!(stretch_u8(1500.0, 1000.0, 2000.0, 1.0), 128);
        assert_eq!(stretch_u8(1250.0, 1000.0, 2000.0, 1.0), 64);
    }

    #[test]
    fn gamma_brightens_midtones() {
        // v = 0.25, gamma 2: v^(1/2) = 0.5 -> 127.5 -> 128.
        assert_eq!(stretch_u8(0.25, 0.0, 1.0, 2.0), 128);
        // gamma 0.5: v^2 = 0.0625 -> 15.9 -> 16.
        assert_eq!(stretch_u8(0.25, 0.0, 1.0, 0.5), 16);
        // The ends stay put whatever the gamma.
        assert_eq!(stretch_u8(0.0, 0.0, 1.0, 2.2), 0);
        assert_eq!(stretch_u8(1.0, 0.0, 1.0, 2.2), 255);
    }

    #[test]
    fn degenerate_range_is_a_step() {
        assert_eq!(stretch_u8(5.0, 5.0, 5.0, 1.0), 255);
        assert_eq!(stretch_u8(4.0, 5.0, 5.0, 1.0), 0);
        assert_eq!(stretch_u8(f32::NAN, 0.0, 1.0, 1.0), 0);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let values: Vec<f32> = (1..=101).map(|v| v as f32).collect();
        assert_eq!(percentile_stretch(&values, None, 2.0, 98.0), (3.0, 99.0));
        assert_eq!(percentile_stretch(&values, None, 0.0, 100.0), (1.0, 101.0));
        // numpy.percentile([10, 20, 30, 40], [25, 50]) == [17.5, 25.0]
        let four = [40.0, 10.0, 30.0, 20.0];
        assert_eq!(percentile_stretch(&four, None, 25.0, 50.0), (17.5, 25.0));
        // Order of the percentages does not matter.
        assert_eq!(percentile_stretch(&four, None, 50.0, 25.0), (17.5, 25.0));
    }

    #[test]
    fn percentiles_skip_nodata_and_non_finite() {
        let values = [
            0.0,
            0.0,
            f32::NAN,
            f32::INFINITY,
            10.0,
            20.0,
            0.0,
            f32::NEG_INFINITY,
        ];
        assert_eq!(
            percentile_stretch(&values, Some(0.0), 0.0, 100.0),
            (10.0, 20.0)
        );
        assert_eq!(
            percentile_stretch(&values, Some(0.0), 50.0, 50.0),
            (15.0, 15.0)
        );
        assert_eq!(percentile_stretch(&values, None, 0.0, 100.0), (0.0, 20.0));
        assert_eq!(
            percentile_stretch(&[0.0, 0.0], Some(0.0), 2.0, 98.0),
            (0.0, 1.0)
        );
        assert_eq!(percentile_stretch(&[], None, 2.0, 98.0), (0.0, 1.0));
        assert_eq!(percentile_stretch(&[7.0], None, 2.0, 98.0), (7.0, 7.0));
    }
}
