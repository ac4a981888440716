//! Colormaps of the band-math views (NDVI, NDWI) and their CPU reference.
//!
//! A colormap is a few colour stops; [`Colormap::lut`] samples it into a 256-entry lookup table
//! that goes to the GPU once (a uniform array of `imagery.wgsl`). The shader computes the
//! normalized difference `(a - b) / (a + b)` of two layers, maps it linearly from the range
//! `[lo, hi]` (the composite's `min[0]`, `max[0]`, normally `[-1, 1]`) onto `[0, 1]`, and
//! picks entry `min(floor(t * 256), 255)`. [`index_u8`] is that computation on the CPU.

/// Number of entries of a colormap's lookup table.
pub const LUT_SIZE: usize = 256;

/// Colour of pixels where the index is undefined (`a + b == 0`, e.g. nodata zeros).
pub const INDEX_INVALID_RGB: [u8; 3] = [0, 0, 0];

/// A colormap of the index views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colormap {
    /// Diverging brown (bare soil, negative) through near-white (0) to green (vegetation), for
    /// NDVI.
    BrownGreen,
    /// Sequential near-white (dry, negative) to dark blue (water, positive), for NDWI.
    Blues,
}

impl Colormap {
    /// Short name, as written in the canvas' `data-colormap-name` hook.
    pub fn name(self) -> &'static str {
        match self {
            Colormap::BrownGreen => "brown-green",
            Colormap::Blues => "blues",
        }
    }

    /// Colour stops: position in `[0, 1]` (first 0, last 1, increasing) and sRGB bytes.
    pub fn stops(self) -> &'static [(f64, [u8; 3])] {
        match self {
            Colormap::BrownGreen => &[
                (0.0, [140, 81, 10]),
                (0.25, [216, 179, 101]),
                (0.5, [245, 245, 245]),
                (0.75, [120, 198, 121]),
                (1.0, [0, 104, 55]),
            ],
            Colormap::Blues => &[
                (0.0, [247, 251, 255]),
                (0.5, [107, 174, 214]),
                (1.0, [8, 48, 107]),
            ],
        }
    }

    /// The lookup table: entry `i` is the colour at position `i / 255`, interpolated linearly
    /// (in `f64`) between the two stops around it and rounded to bytes.
    pub fn lut(self) -> [[u8; 3]; LUT_SIZE] {
        let stops = self.stops();
        let mut lut = [[0u8; 3]; LUT_SIZE];
        for (i, entry) in lut.iter_mut().enumerate() {
            let t = i as f64 / (LUT_SIZE - 1) as f64;
            let upper = stops
                .iter()
                .position(|(p, _)| *p >= t)
                .unwrap_or(stops.len() - 1)
                .max(1);
            let (p0, c0) = stops[upper - 1];
            let (p1, c1) = stops[upper];
            let f = if p1 > p0 { (t - p0) / (p1 - p0) } else { 0.0 };
            for c in 0..3 {
                let v = f64::from(c0[c]) + (f64::from(c1[c]) - f64::from(c0[c])) * f;
                // In 0..=255 by construction.
                entry[c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
        lut
    }
}

/// The normalized difference `(a - b) / (a + b)` in `f32` as the shader computes it; `None`
/// where `a + b` is zero or a value is not finite.
pub fn normalized_difference(a: f32, b: f32) -> Option<f32> {
    let sum = a + b;
    if sum == 0.0 || !sum.is_finite() || !a.is_finite() || !b.is_finite() {
        return None;
    }
    Some((a - b) / sum)
}

/// Lookup-table entry of an index value: `t = clamp((value - lo) / (hi - lo), 0, 1)`, entry
/// `min(floor(t * 256), 255)`; a NaN value or an empty range gives entry 0.
pub fn lut_index(value: f32, lo: f32, hi: f32) -> usize {
    if value.is_nan() || hi.is_nan() || lo.is_nan() || hi <= lo {
        return 0;
    }
    let t = ((value - lo) / (hi - lo)).clamp(0.0, 1.0);
    // `t * 256` is in 0..=256, so the cast cannot saturate.
    ((t * LUT_SIZE as f32).floor() as usize).min(LUT_SIZE - 1)
}

/// The RGB bytes the shader draws for bands `a`, `b` in an index view over `[lo, hi]`:
/// [`INDEX_INVALID_RGB`] where the index is undefined.
pub fn index_u8(a: f32, b: f32, lo: f32, hi: f32, colormap: Colormap) -> [u8; 3] {
    match normalized_difference(a, b) {
        Some(v) => colormap.lut()[lut_index(v, lo, hi)],
        None => INDEX_INVALID_RGB,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luts_hit_their_stops() {
        for map in [Colormap::BrownGreen, Colormap::Blues] {
            let lut = map.lut();
            let stops = map.stops();
            assert_eq!(lut[0], stops[0].1, "{map:?} starts at its first stop");
            assert_eq!(
                lut[255],
                stops[stops.len() - 1].1,
                "{map:?} ends at its last"
            );
            // Neighbouring entries differ by a few steps at most: a smooth ramp.
            for pair in lut.windows(2) {
                let jump = (0..3).map(|c| pair[0][c].abs_diff(pair[1][c])).max();
                assert!(jump <= Some(4), "{map:?} jumps {jump:?}");
            }
        }
        // Half-way between 0.25 (216,179,101) and 0.5 (245,245,245) is entry 95.625/255...
        // entry 96: t = 0.37647, f = 0.50588 -> (230.67, 212.39, 173.85) rounded.
        assert_eq!(Colormap::BrownGreen.lut()[96], [231, 212, 174]);
    }

    #[test]
    fn ndvi_of_known_values() {
        assert_eq!(normalized_difference(3000.0, 1000.0), Some(0.5));
        assert_eq!(normalized_difference(1000.0, 3000.0), Some(-0.5));
        assert_eq!(normalized_difference(0.0, 0.0), None);
        assert_eq!(normalized_difference(f32::NAN, 1.0), None);
        // -1 -> entry 0, 0 -> 128, 1 -> 255 (clamped), 0.5 -> 192.
        assert_eq!(lut_index(-1.0, -1.0, 1.0), 0);
        assert_eq!(lut_index(0.0, -1.0, 1.0), 128);
        assert_eq!(lut_index(1.0, -1.0, 1.0), 255);
        assert_eq!(lut_index(0.5, -1.0, 1.0), 192);
        assert_eq!(lut_index(-7.0, -1.0, 1.0), 0);
        assert_eq!(lut_index(0.5, 1.0, 1.0), 0);
    }

    #[test]
    fn index_colours() {
        let green = Colormap::BrownGreen;
        // Dense vegetation: NIR 3000, red 500 -> 0.714 -> entry 219.
        assert_eq!(lut_index(2500.0 / 3500.0, -1.0, 1.0), 219);
        assert_eq!(index_u8(3000.0, 500.0, -1.0, 1.0, green), green.lut()[219]);
        assert_eq!(index_u8(0.0, 0.0, -1.0, 1.0, green), INDEX_INVALID_RGB);
        assert_eq!(index_u8(1.0, 1.0, -1.0, 1.0, green), green.lut()[128]);
        assert_eq!(
            index_u8(0.0, 5.0, -1.0, 1.0, Colormap::Blues),
            [247, 251, 255]
        );
        assert_eq!(index_u8(5.0, 0.0, -1.0, 1.0, Colormap::Blues), [8, 48, 107]);
    }
}
