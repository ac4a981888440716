//! Direct 3x3 convolutions (stride 1, padding 1, no dilation, one group) on f32 NCHW
//! tensors, for x86-64 CPUs with AVX2 and FMA (detected at run time): the forward pass with
//! an optional bias, and the two gradients of a training pass (of the input: the forward
//! kernel over the padded output gradient with the weights flipped and transposed; of the
//! weights: a reduction over the plane, per image, then over the batch in a fixed order).
//!
//! Why not im2col and a matrix product, as burn flex does: with this network's few channels
//! (13 to 64) the unfolded matrix is 9 times the activation and the products are thin;
//! here each image's padded input (at most a few hundred KB) stays in the core's cache and
//! every loaded vector feeds several multiply-adds held in registers.
//!
//! How: a plane is cut into "spots", vectors of 8 consecutive outputs of a row (a row whose
//! width is not a multiple of 8 ends with a spot that overlaps the one before it; the
//! weight gradient masks the overlap). Forward, a tile is 4 output channels x `NV` spots
//! of accumulators, run over every input channel and the 9 taps: per tap, `NV` vector loads
//! and 4 weight broadcasts feed `4 * NV` FMAs. The weight gradient's tile is 4 output
//! channels x the 3 taps of a kernel row of one input channel (12 accumulators), run over
//! strips of rows that keep the output gradient in the L1 cache. The same code is built
//! twice (`kernels!`): for AVX2 (16 registers: `NV` 2) and with AVX-512 VL too (32
//! registers: `NV` 4, and no spilled accumulators).
//!
//! Where it does not apply ([`supported`]: another CPU, or a plane narrower than 8 pixels)
//! the callers use burn's convolution. The results equal burn's `conv2d` and its gradients
//! up to float rounding (tests below, for each build this CPU runs, and in
//! [`crate::kernels`]).

use rayon::prelude::*;

/// Vector width (f32 lanes of an AVX2 register).
const LANES: usize = 8;
/// Output channels per tile.
const CT: usize = 4;

/// Whether this CPU runs these kernels and a `[_, _, h, w]` plane suits them.
pub(crate) fn supported(h: usize, w: usize) -> bool {
    h >= 1 && w >= LANES && cpu_has_avx2_fma()
}

fn cpu_has_avx2_fma() -> bool {
    Isa::detect().is_some()
}

/// The spots of an `h x w` plane: where each vector starts in the output plane and in the
/// padded input plane (row stride `w + 2`), and how many of its leading lanes an earlier
/// spot already covers (non-zero only for the last spot of a row whose width is not a
/// multiple of 8).
#[derive(Debug)]
struct Spots {
    out: Vec<usize>,
    inp: Vec<usize>,
    covered: Vec<usize>,
    /// The spots in strips of whole rows of about [`STRIP`] pixels: the weight gradient
    /// runs every input channel and kernel row over a strip while its output gradient
    /// rows stay in the L1 cache.
    strips: Vec<std::ops::Range<usize>>,
}

/// Pixels per strip of rows (4 output gradient planes x 512 pixels = 8 KB).
const STRIP: usize = 512;

impl Spots {
    fn new(h: usize, w: usize) -> Spots {
        let mut s = Spots {
            out: Vec::new(),
            inp: Vec::new(),
            covered: Vec::new(),
            strips: Vec::new(),
        };
        let rows = (STRIP / w.max(1)).max(1);
        for y in 0..h {
            if y % rows == 0 {
                let at = s.out.len();
                s.strips.push(at..at);
            }
            let mut x = 0;
            while x < w {
                let start = x.min(w - LANES);
                s.out.push(y * w + start);
                s.inp.push(y * (w + 2) + start);
                s.covered.push(x - start);
                x = start + LANES;
            }
            let end = s.out.len();
            if let Some(last) = s.strips.last_mut() {
                last.end = end;
            }
        }
        s
    }

    fn masked(&self) -> bool {
        self.covered.iter().any(|&c| c > 0)
    }
}

/// `x` (`[b, c, h, w]`) with a zero border of one pixel: `[b, c, h + 2, w + 2]`.
pub(crate) fn pad(x: &[f32], [b, c, h, w]: [usize; 4]) -> Vec<f32> {
    let (hp, wp) = (h + 2, w + 2);
    assert_eq!(x.len(), b * c * h * w, "pad: input length");
    let mut out = vec![0f32; b * c * hp * wp];
    if h * w == 0 {
        return out;
    }
    out.par_chunks_mut(hp * wp)
        .zip(x.par_chunks(h * w))
        .for_each(|(o, i)| {
            for (y, row) in i.chunks_exact(w).enumerate() {
                let at = (y + 1) * wp + 1;
                o[at..at + w].copy_from_slice(row);
            }
        });
    out
}

/// Weights `[co, ci, 3, 3]` packed per tile of 4 output channels: `[co / 4, ci, 9, 4]`
/// (the last tile's missing channels zero).
fn pack(weight: &[f32], co: usize, ci: usize) -> Vec<f32> {
    let blocks = co.div_ceil(CT);
    let mut p = vec![0f32; blocks * ci * 9 * CT];
    for o in 0..co {
        for i in 0..ci {
            for t in 0..9 {
                p[((o / CT * ci + i) * 9 + t) * CT + o % CT] = weight[(o * ci + i) * 9 + t];
            }
        }
    }
    p
}

/// The forward convolution of a padded input `xp` (`[b, ci, h + 2, w + 2]`, see [`pad`])
/// with `weight` (`[co, ci, 3, 3]`) plus `bias` (`[co]`): `[b, co, h, w]`. Callers check
/// [`supported`] first.
pub(crate) fn forward(
    xp: &[f32],
    dims: [usize; 4],
    weight: &[f32],
    co: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    forward_on(detected(), xp, dims, weight, co, bias)
}

/// The kernels' instruction set on this CPU.
fn detected() -> Isa {
    Isa::detect().expect("conv3x3: callers check `supported` first")
}

fn forward_on(
    isa: Isa,
    xp: &[f32],
    [b, ci, h, w]: [usize; 4],
    weight: &[f32],
    co: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    assert!(supported(h, w), "conv3x3: unsupported {h}x{w} plane or CPU");
    let pp = (h + 2) * (w + 2);
    assert_eq!(xp.len(), b * ci * pp, "conv3x3: padded input length");
    assert_eq!(weight.len(), co * ci * 9, "conv3x3: weight length");
    let zeros = vec![0f32; co];
    let bias = bias.unwrap_or(&zeros);
    assert_eq!(bias.len(), co, "conv3x3: bias length");
    let packed = pack(weight, co, ci);
    let spots = Spots::new(h, w);
    let hw = h * w;
    let mut out = vec![0f32; b * co * hw];
    if b == 0 || co == 0 {
        return out;
    }
    let job = Forward {
        geo: Geometry::new(isa, [ci, co, h, w], &spots),
        packed: &packed,
        bias,
    };
    out.par_chunks_mut(co * hw)
        .zip(xp.par_chunks(ci * pp))
        .for_each(|(o, x)| job.image(x, o));
    out
}

/// The input's gradient of [`forward`]: `dy` (`[b, co, h, w]`) convolved with the weights
/// flipped in both axes and transposed. `[b, ci, h, w]`.
pub(crate) fn backward_input(dy: &[f32], dims: [usize; 4], weight: &[f32], ci: usize) -> Vec<f32> {
    backward_input_on(detected(), dy, dims, weight, ci)
}

fn backward_input_on(
    isa: Isa,
    dy: &[f32],
    [b, co, h, w]: [usize; 4],
    weight: &[f32],
    ci: usize,
) -> Vec<f32> {
    let mut flipped = vec![0f32; weight.len()];
    for o in 0..co {
        for i in 0..ci {
            for t in 0..9 {
                flipped[(i * co + o) * 9 + 8 - t] = weight[(o * ci + i) * 9 + t];
            }
        }
    }
    let dyp = pad(dy, [b, co, h, w]);
    forward_on(isa, &dyp, [b, co, h, w], &flipped, ci, None)
}

/// The weights' gradient of [`forward`] (`[co, ci, 3, 3]`) from the padded input `xp`
/// (`[b, ci, h + 2, w + 2]`) and the output's gradient `dy` (`[b, co, h, w]`), summed in
/// f32 per image and in f64 across images, in an order that does not depend on the threads.
pub(crate) fn backward_weight(xp: &[f32], dy: &[f32], dims: [usize; 4], co: usize) -> Vec<f32> {
    backward_weight_on(detected(), xp, dy, dims, co)
}

fn backward_weight_on(
    isa: Isa,
    xp: &[f32],
    dy: &[f32],
    [b, ci, h, w]: [usize; 4],
    co: usize,
) -> Vec<f32> {
    assert!(supported(h, w), "conv3x3: unsupported {h}x{w} plane or CPU");
    let pp = (h + 2) * (w + 2);
    let hw = h * w;
    assert_eq!(xp.len(), b * ci * pp, "conv3x3: padded input length");
    assert_eq!(dy.len(), b * co * hw, "conv3x3: output gradient length");
    let spots = Spots::new(h, w);
    let job = WeightGrad {
        geo: Geometry::new(isa, [ci, co, h, w], &spots),
        masked: spots.masked(),
    };
    // Each image's sums in f32 (in parallel), then over the images in order in f64: the
    // same order whatever the threads (a seed repeats a run bit for bit).
    let per_image = co.div_ceil(CT) * CT * ci * 9;
    let mut sums = vec![0f32; b * per_image];
    if per_image > 0 {
        sums.par_chunks_mut(per_image)
            .zip(xp.par_chunks((ci * pp).max(1)))
            .zip(dy.par_chunks((co * hw).max(1)))
            .for_each(|((s, x), g)| job.image(x, g, s));
    }
    let mut total = vec![0f64; co * ci * 9];
    for s in sums.chunks_exact(per_image.max(1)) {
        for (t, v) in total.iter_mut().zip(s) {
            *t += f64::from(*v);
        }
    }
    total.into_iter().map(|v| v as f32).collect()
}

/// Which of this module's kernel builds the CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// AVX2 and FMA: 16 vector registers.
    Avx2,
    /// The same 8-lane code built with AVX-512 VL as well: 32 vector registers, so wider
    /// tiles (AVX-512 CPUs, e.g. AMD Zen 4, Intel Skylake-SP and later).
    Avx512Vl,
}

impl Isa {
    #[cfg(target_arch = "x86_64")]
    fn detect() -> Option<Isa> {
        use std::arch::is_x86_feature_detected as has;
        static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let avx2 = has!("avx2") && has!("fma");
            if avx2 && has!("avx512f") && has!("avx512vl") {
                Some(Isa::Avx512Vl)
            } else {
                avx2.then_some(Isa::Avx2)
            }
        })
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect() -> Option<Isa> {
        None
    }
}

/// A convolution's shapes, shared by every image of a pass.
struct Geometry<'a> {
    isa: Isa,
    /// Input and output channels.
    ci: usize,
    co: usize,
    /// Output plane size, padded input row and plane sizes.
    hw: usize,
    row: usize,
    pp: usize,
    spots: &'a Spots,
}

impl<'a> Geometry<'a> {
    fn new(isa: Isa, [ci, co, h, w]: [usize; 4], spots: &'a Spots) -> Geometry<'a> {
        // The kernels' `unsafe` rests on this: the build `isa` names runs on this CPU.
        let runs = match isa {
            Isa::Avx2 => Isa::detect().is_some(),
            Isa::Avx512Vl => Isa::detect() == Some(Isa::Avx512Vl),
        };
        assert!(runs, "conv3x3: {isa:?} kernels on a CPU without them");
        Geometry {
            isa,
            ci,
            co,
            hw: h * w,
            row: w + 2,
            pp: (h + 2) * (w + 2),
            spots,
        }
    }

    /// Checks one image's padded input `x` and its `co` output (or output gradient)
    /// planes, and that every spot's 3x3 window and output vector lie inside their planes:
    /// the bounds the kernels' loads and stores rely on.
    fn check(&self, x: &[f32], planes: &[f32]) {
        assert_eq!(x.len(), self.ci * self.pp);
        assert_eq!(planes.len(), self.co * self.hw);
        let last = self.spots.inp.iter().max().copied().unwrap_or(0);
        assert!(last + 2 * self.row + 2 + LANES <= self.pp);
        assert!(self.spots.out.iter().all(|&s| s + LANES <= self.hw));
    }
}

/// What every image of a forward pass shares.
struct Forward<'a> {
    geo: Geometry<'a>,
    packed: &'a [f32],
    bias: &'a [f32],
}

impl Forward<'_> {
    /// One image: `x` its padded input planes, `o` its output planes.
    fn image(&self, x: &[f32], o: &mut [f32]) {
        let isa = self.geo.isa;
        self.geo.check(x, o);
        for block in 0..self.geo.co.div_ceil(CT) {
            let n = (self.geo.co - block * CT).min(CT);
            let w = &self.packed[block * self.geo.ci * 9 * CT..(block + 1) * self.geo.ci * 9 * CT];
            let mut bias = [0f32; CT];
            bias[..n].copy_from_slice(&self.bias[block * CT..block * CT + n]);
            let o = &mut o[block * CT * self.geo.hw..(block * CT + n) * self.geo.hw];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` runs on this CPU (asserted in `Geometry::new`), and `check`
            // and the slicing above bound every load and store.
            #[allow(unsafe_code)]
            unsafe {
                match isa {
                    Isa::Avx2 => avx2::forward_block(x, w, &bias, self, n, o),
                    Isa::Avx512Vl => avx512vl::forward_block(x, w, &bias, self, n, o),
                }
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (w, bias, o, isa);
        }
    }
}

/// What every image of a weight gradient shares.
struct WeightGrad<'a> {
    geo: Geometry<'a>,
    masked: bool,
}

impl WeightGrad<'_> {
    /// One image's sums into `sums` (`[co rounded up to 4, ci, 9]`).
    fn image(&self, x: &[f32], g: &[f32], sums: &mut [f32]) {
        let isa = self.geo.isa;
        self.geo.check(x, g);
        assert_eq!(sums.len(), self.geo.co.div_ceil(CT) * CT * self.geo.ci * 9);
        let mut spare = Vec::new();
        for block in 0..self.geo.co.div_ceil(CT) {
            let n = (self.geo.co - block * CT).min(CT);
            let mut g = &g[block * CT * self.geo.hw..(block * CT + n) * self.geo.hw];
            if n < CT {
                // The kernels read 4 planes: the missing ones are zeros.
                spare.resize(CT * self.geo.hw, 0.0);
                spare[..g.len()].copy_from_slice(g);
                g = &spare;
            }
            let s = &mut sums[block * CT * self.geo.ci * 9..(block + 1) * CT * self.geo.ci * 9];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `Forward::image`; `g` holds 4 planes.
            #[allow(unsafe_code)]
            unsafe {
                match isa {
                    Isa::Avx2 => avx2::weight_block(x, g, self, s),
                    Isa::Avx512Vl => avx512vl::weight_block(x, g, self, s),
                }
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (g, s, isa);
        }
    }
}

/// The kernels, built once per instruction set: `$features` for `target_feature`, `$nv`
/// spots per forward tile (8 accumulators and 2 loaded vectors fit AVX2's 16 registers;
/// AVX-512 VL's 32 take 16 and 4).
macro_rules! kernels {
    ($name:ident, $features:literal, $nv:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        mod $name {
            use std::arch::x86_64::*;

            use super::{CT, Forward, WeightGrad};

            /// Spots per forward tile.
            const NV: usize = $nv;

            /// Output channels `[block * 4, block * 4 + n)` of one image into `o` (`n`
            /// planes).
            ///
            /// # Safety
            /// The CPU has these features; `x` holds `ci` padded planes, `w` `ci * 9 * 4`
            /// packed weights, and every spot's window and output vector lie inside their
            /// planes (checked by the caller).
            #[target_feature(enable = $features)]
            pub(super) unsafe fn forward_block(
                x: &[f32],
                w: &[f32],
                bias: &[f32; CT],
                job: &Forward<'_>,
                n: usize,
                o: &mut [f32],
            ) {
                let count = job.geo.spots.out.len();
                let full = count / NV * NV;
                let mut s = 0;
                while s < full {
                    unsafe { forward_tile::<NV>(x, w, bias, job, n, o, s) };
                    s += NV;
                }
                while s < count {
                    unsafe { forward_tile::<1>(x, w, bias, job, n, o, s) };
                    s += 1;
                }
            }

            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn forward_tile<const V: usize>(
                x: &[f32],
                w: &[f32],
                bias: &[f32; CT],
                job: &Forward<'_>,
                n: usize,
                o: &mut [f32],
                s: usize,
            ) {
                let row = job.geo.row;
                let taps = [
                    0,
                    1,
                    2,
                    row,
                    row + 1,
                    row + 2,
                    2 * row,
                    2 * row + 1,
                    2 * row + 2,
                ];
                let mut base = [0usize; V];
                for (k, b) in base.iter_mut().enumerate() {
                    *b = job.geo.spots.inp[s + k];
                }
                let mut acc = [[_mm256_setzero_ps(); V]; CT];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = [_mm256_set1_ps(bias[j]); V];
                }
                let xp = x.as_ptr();
                let wp = w.as_ptr();
                for c in 0..job.geo.ci {
                    let xc = unsafe { xp.add(c * job.geo.pp) };
                    let wc = unsafe { wp.add(c * 9 * CT) };
                    for (t, &off) in taps.iter().enumerate() {
                        let mut v = [_mm256_setzero_ps(); V];
                        for k in 0..V {
                            v[k] = unsafe { _mm256_loadu_ps(xc.add(base[k] + off)) };
                        }
                        for (j, a) in acc.iter_mut().enumerate() {
                            let wv = _mm256_set1_ps(unsafe { *wc.add(t * CT + j) });
                            for k in 0..V {
                                a[k] = _mm256_fmadd_ps(wv, v[k], a[k]);
                            }
                        }
                    }
                }
                let op = o.as_mut_ptr();
                for (j, a) in acc.iter().enumerate().take(n) {
                    for k in 0..V {
                        let at = j * job.geo.hw + job.geo.spots.out[s + k];
                        unsafe { _mm256_storeu_ps(op.add(at), a[k]) };
                    }
                }
            }

            /// One image's weight-gradient sums of 4 output channels into `sums`
            /// (`[4, ci, 9]`), `g` holding their 4 gradient planes.
            ///
            /// # Safety
            /// As [`forward_block`].
            #[target_feature(enable = $features)]
            pub(super) unsafe fn weight_block(
                x: &[f32],
                g: &[f32],
                job: &WeightGrad<'_>,
                sums: &mut [f32],
            ) {
                // Vector sums `[ci, ky, 4, kx]`, kept across the strips, reduced at the end.
                let mut acc = vec![_mm256_setzero_ps(); job.geo.ci * 9 * CT];
                for strip in &job.geo.spots.strips {
                    for c in 0..job.geo.ci {
                        for ky in 0..3 {
                            let a = &mut acc[(c * 3 + ky) * 3 * CT..(c * 3 + ky + 1) * 3 * CT];
                            let at = c * job.geo.pp + ky * job.geo.row;
                            let strip = strip.clone();
                            if job.masked {
                                unsafe { weight_strip::<true>(x, g, job, strip, at, a) };
                            } else {
                                unsafe { weight_strip::<false>(x, g, job, strip, at, a) };
                            }
                        }
                    }
                }
                for c in 0..job.geo.ci {
                    for ky in 0..3 {
                        for j in 0..CT {
                            for kx in 0..3 {
                                sums[(j * job.geo.ci + c) * 9 + ky * 3 + kx] +=
                                    hsum(acc[((c * 3 + ky) * CT + j) * 3 + kx]);
                            }
                        }
                    }
                }
            }

            /// The spots `strip` of one input channel's kernel row (`at`: where it starts
            /// in `x`), added to `a` (`[4, kx]`). `MASKED`: some spot overlaps the one
            /// before it.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn weight_strip<const MASKED: bool>(
                x: &[f32],
                g: &[f32],
                job: &WeightGrad<'_>,
                strip: std::ops::Range<usize>,
                at: usize,
                a: &mut [__m256],
            ) {
                let spots = job.geo.spots;
                let (out, inp) = (&spots.out[strip.clone()], &spots.inp[strip.clone()]);
                let covered = &spots.covered[strip];
                let xr = unsafe { x.as_ptr().add(at) };
                let gp = g.as_ptr();
                let hw = job.geo.hw;
                let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let mut acc = [[_mm256_setzero_ps(); 3]; CT];
                for (j, v) in acc.iter_mut().enumerate() {
                    v.copy_from_slice(&a[j * 3..j * 3 + 3]);
                }
                for ((&o, &b), &cov) in out.iter().zip(inp).zip(covered) {
                    let xv = unsafe {
                        [
                            _mm256_loadu_ps(xr.add(b)),
                            _mm256_loadu_ps(xr.add(b + 1)),
                            _mm256_loadu_ps(xr.add(b + 2)),
                        ]
                    };
                    let keep = if MASKED {
                        _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                            lane,
                            _mm256_set1_epi32(cov as i32 - 1),
                        ))
                    } else {
                        _mm256_setzero_ps()
                    };
                    for (j, acc) in acc.iter_mut().enumerate() {
                        let mut gj = unsafe { _mm256_loadu_ps(gp.add(j * hw + o)) };
                        if MASKED {
                            gj = _mm256_and_ps(gj, keep);
                        }
                        for kx in 0..3 {
                            acc[kx] = _mm256_fmadd_ps(gj, xv[kx], acc[kx]);
                        }
                    }
                }
                for (j, v) in acc.iter().enumerate() {
                    a[j * 3..j * 3 + 3].copy_from_slice(v);
                }
            }

            #[target_feature(enable = $features)]
            #[inline]
            fn hsum(v: __m256) -> f32 {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
                _mm_cvtss_f32(s)
            }
        }
    };
}

kernels!(avx2, "avx2,fma", 2);
kernels!(avx512vl, "avx2,fma,avx512f,avx512vl", 4);

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution by its definition, in f64.
    fn reference(
        x: &[f32],
        [b, ci, h, w]: [usize; 4],
        weight: &[f32],
        co: usize,
        bias: &[f32],
    ) -> Vec<f32> {
        let mut out = vec![0f32; b * co * h * w];
        for n in 0..b {
            for o in 0..co {
                for y in 0..h {
                    for xx in 0..w {
                        let mut s = f64::from(bias[o]);
                        for i in 0..ci {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (yy, xs) = (y + ky, xx + kx);
                                    if yy < 1 || xs < 1 || yy > h || xs > w {
                                        continue;
                                    }
                                    s += f64::from(x[((n * ci + i) * h + yy - 1) * w + xs - 1])
                                        * f64::from(weight[((o * ci + i) * 3 + ky) * 3 + kx]);
                                }
                            }
                        }
                        out[((n * co + o) * h + y) * w + xx] = s as f32;
                    }
                }
            }
        }
        out
    }

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(y.abs()).max(1.0),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// Shapes with every remainder: channels not a multiple of 4, spots not a multiple of
    /// 3, rows whose width is not a multiple of 8 (overlapping spots).
    const SHAPES: [[usize; 5]; 4] = [
        // b, ci, co, h, w
        [2, 3, 5, 8, 8],
        [3, 13, 16, 9, 16],
        [1, 2, 7, 5, 11],
        [2, 4, 4, 1, 8],
    ];

    /// Every build of the kernels this CPU runs.
    fn isas() -> Vec<Isa> {
        match Isa::detect() {
            None => {
                eprintln!("skipped: this CPU lacks AVX2/FMA");
                Vec::new()
            }
            Some(Isa::Avx2) => vec![Isa::Avx2],
            Some(Isa::Avx512Vl) => vec![Isa::Avx2, Isa::Avx512Vl],
        }
    }

    #[test]
    fn forward_equals_the_definition() {
        for (isa, (k, [b, ci, co, h, w])) in isas()
            .into_iter()
            .flat_map(|isa| SHAPES.into_iter().enumerate().map(move |s| (isa, s)))
        {
            let x = noise(b * ci * h * w, k as u64);
            let weight = noise(co * ci * 9, 100 + k as u64);
            let bias = noise(co, 200 + k as u64);
            let got = forward_on(
                isa,
                &pad(&x, [b, ci, h, w]),
                [b, ci, h, w],
                &weight,
                co,
                Some(&bias),
            );
            let want = reference(&x, [b, ci, h, w], &weight, co, &bias);
            close(
                &got,
                &want,
                &format!("{isa:?} forward {b}x{ci}->{co} {h}x{w}"),
            );
        }
    }

    /// Gradients of `sum(forward(x) * r)` against the definition's: `dx` and `dw` are
    /// linear in `r`, so finite differences are exact up to rounding; checked instead
    /// against the adjoint identities `<dx, u> = <r, conv(u, w)>` and
    /// `<dw, v> = <r, conv(x, v)>` for random `u`, `v`.
    #[test]
    fn gradients_satisfy_the_adjoint_identities() {
        let dot = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
        };
        for (isa, (k, [b, ci, co, h, w])) in isas()
            .into_iter()
            .flat_map(|isa| SHAPES.into_iter().enumerate().map(move |s| (isa, s)))
        {
            let dims = [b, ci, h, w];
            let x = noise(b * ci * h * w, k as u64);
            let weight = noise(co * ci * 9, 100 + k as u64);
            let r = noise(b * co * h * w, 300 + k as u64);
            let u = noise(b * ci * h * w, 400 + k as u64);
            let v = noise(co * ci * 9, 500 + k as u64);
            let zero = vec![0f32; co];
            let dx = backward_input_on(isa, &r, [b, co, h, w], &weight, ci);
            let lhs = dot(&dx, &u);
            let rhs = dot(&r, &reference(&u, dims, &weight, co, &zero));
            assert!(
                (lhs - rhs).abs() <= 1e-4 * rhs.abs().max(1.0),
                "{isa:?} dx {dims:?}: {lhs} vs {rhs}"
            );
            let dw = backward_weight_on(isa, &pad(&x, dims), &r, dims, co);
            let lhs = dot(&dw, &v);
            let rhs = dot(&r, &reference(&x, dims, &v, co, &zero));
            assert!(
                (lhs - rhs).abs() <= 1e-4 * rhs.abs().max(1.0),
                "{isa:?} dw {dims:?}: {lhs} vs {rhs}"
            );
        }
    }
}
