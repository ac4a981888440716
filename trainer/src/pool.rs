//! 2x2 max pooling (stride 2) followed by ReLU, one pair of input rows at a time: the
//! kernel under [`crate::kernels`]' `pool_relu`. Each output also records which of its
//! window's four values won (0..4, row-major; the first maximum wins a tie and a NaN wins,
//! as in burn's `max_pool2d`) plus [`DEAD`] when ReLU zeroed it, one byte per output, for
//! the backward pass.
//!
//! On x86-64 CPUs with AVX2 (detected at run time) 8 outputs at a time: two loads per input
//! row, even and odd columns split by shuffles, three compare-and-blend steps; the rest of
//! a row, and other CPUs, take the scalar loop. Both give the same bytes (tested).

/// Added to a winner's index when ReLU zeroed the output (no gradient flows back).
pub(crate) const DEAD: u8 = 4;

/// Pools the rows `top` and `bottom` (at least `2 * out.len()` values each) into `out`,
/// the winners into `won`.
pub(crate) fn rows(top: &[f32], bottom: &[f32], out: &mut [f32], won: &mut [u8]) {
    let n = out.len();
    assert!(top.len() >= 2 * n && bottom.len() >= 2 * n && won.len() == n);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected; the assert above bounds every access.
        #[allow(unsafe_code)]
        unsafe {
            done = avx2::rows(top, bottom, out, won)
        };
    }
    scalar(top, bottom, out, won, done);
}

/// Outputs `from..` one at a time.
fn scalar(top: &[f32], bottom: &[f32], out: &mut [f32], won: &mut [u8], from: usize) {
    for j in from..out.len() {
        let v = [top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]];
        let mut k = 0;
        for (n, &value) in v.iter().enumerate().skip(1) {
            // NaN wins, as in max_pool2d: a NaN input is not hidden.
            if value > v[k] || (value.is_nan() && !v[k].is_nan()) {
                k = n;
            }
        }
        // ReLU as burn's: `x <= 0` becomes 0 (a NaN stays, and passes its gradient).
        if v[k] <= 0.0 {
            out[j] = 0.0;
            won[j] = k as u8 + DEAD;
        } else {
            out[j] = v[k];
            won[j] = k as u8;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::*;

    use super::DEAD;

    /// The first `8 * (out.len() / 8)` outputs; returns how many.
    ///
    /// # Safety
    /// The CPU has AVX2; `top` and `bottom` hold at least `2 * out.len()` values, `won`
    /// `out.len()` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows(
        top: &[f32],
        bottom: &[f32],
        out: &mut [f32],
        won: &mut [u8],
    ) -> usize {
        let n = out.len() / 8 * 8;
        let (t, b) = (top.as_ptr(), bottom.as_ptr());
        let (o, w) = (out.as_mut_ptr(), won.as_mut_ptr());
        let zero = _mm256_setzero_ps();
        let dead = _mm256_set1_epi32(i32::from(DEAD));
        let mut j = 0;
        while j < n {
            let (v0, v1) = unsafe { split(t.add(2 * j)) };
            let (v2, v3) = unsafe { split(b.add(2 * j)) };
            let mut best = v0;
            let mut idx = _mm256_setzero_si256();
            for (k, v) in [(1, v1), (2, v2), (3, v3)] {
                // Greater (ordered), or a NaN over a number.
                let take = _mm256_or_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(v, best),
                    _mm256_andnot_ps(
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(best, best),
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
                    ),
                );
                best = _mm256_blendv_ps(best, v, take);
                idx = _mm256_blendv_epi8(idx, _mm256_set1_epi32(k), _mm256_castps_si256(take));
            }
            let off = _mm256_cmp_ps::<_CMP_LE_OQ>(best, zero);
            best = _mm256_andnot_ps(off, best);
            idx = _mm256_add_epi32(idx, _mm256_and_si256(dead, _mm256_castps_si256(off)));
            unsafe { _mm256_storeu_ps(o.add(j), best) };
            // Bytes of the eight 32-bit indices (each below 8).
            let words = _mm256_packs_epi32(idx, idx);
            let bytes = _mm256_packus_epi16(words, words);
            let lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(bytes));
            let hi = _mm_cvtsi128_si32(_mm256_extracti128_si256::<1>(bytes));
            unsafe {
                w.add(j).cast::<i32>().write_unaligned(lo);
                w.add(j + 4).cast::<i32>().write_unaligned(hi);
            }
            j += 8;
        }
        n
    }

    /// Even and odd columns of the 16 values at `p`, in order (the shuffles work per
    /// 128-bit lane; the permutation puts the lanes' halves back in order).
    ///
    /// # Safety
    /// The CPU has AVX2; `p` points at 16 readable values.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn split(p: *const f32) -> (__m256, __m256) {
        let (lo, hi) = unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) };
        let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
        let odd = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
        (
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                even,
            ))),
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                odd,
            ))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector path gives the scalar path's bytes: ties, NaNs, zeros, negatives.
    #[test]
    fn the_vector_path_equals_the_scalar_path() {
        let values = [0.0f32, -1.0, 1.0, 2.0, f32::NAN, -0.0, 2.0, 0.5];
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        for n in [0, 3, 8, 13, 32] {
            let mut pick = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                values[(s % values.len() as u64) as usize]
            };
            let top: Vec<f32> = (0..2 * n).map(|_| pick()).collect();
            let bottom: Vec<f32> = (0..2 * n).map(|_| pick()).collect();
            let (mut out, mut won) = (vec![9f32; n], vec![9u8; n]);
            rows(&top, &bottom, &mut out, &mut won);
            let (mut out2, mut won2) = (vec![9f32; n], vec![9u8; n]);
            scalar(&top, &bottom, &mut out2, &mut won2, 0);
            assert_eq!(won, won2, "{n}");
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&out2), "{n}");
        }
    }
}
