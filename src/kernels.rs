//! Element-wise kernels of the encoder and the LLM: GELU, softmax, LayerNorm, RMSNorm, gated
//! activations, dot products, and dot/axpy against half-precision rows (the LLM's KV cache). Each has an AVX-512 version, picked at run time, and a portable one;
//! those a decode step and log-likelihood scoring run for every token (attention's dot/axpy
//! and softmax, the gated activation, the vocabulary's log-sum-exp) also have an AVX2+FMA
//! version for CPUs without AVX-512 (AMD EPYC before Zen 4 among them).
//!
//! Our crate builds at opt-level 1 in the test profile, where LLVM does not vectorise loops, so
//! the fast paths are written with explicit intrinsics.

use half::f16;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether this CPU runs the AVX-512 kernels (checked once; `std` caches the answer).
#[inline]
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU runs the AVX2+FMA kernels.
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU runs the AVX2+FMA kernels that read half-precision values (F16C).
#[inline]
pub(crate) fn has_avx2_fma_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma() && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

// Abramowitz & Stegun 7.1.26: erf to 1.5e-7 absolute.
const ERF_P: f32 = 0.327_591_1;
const ERF_A: [f32; 5] = [
    0.254_829_6,
    -0.284_496_74,
    1.421_413_8,
    -1.453_152_1,
    1.061_405_4,
];
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

fn erf_scalar(z: f32) -> f32 {
    let a = z.abs();
    let t = 1.0 / (1.0 + ERF_P * a);
    let poly = ((((ERF_A[4] * t + ERF_A[3]) * t + ERF_A[2]) * t + ERF_A[1]) * t + ERF_A[0]) * t;
    let y = 1.0 - poly * (-a * a).exp();
    y.copysign(z)
}

/// `x ← x · Φ(x)` (exact-erf GELU, as BERT's `gelu`).
pub(crate) fn gelu(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F.
        unsafe { gelu_avx512(x) };
        return;
    }
    for v in x {
        *v = 0.5 * *v * (1.0 + erf_scalar(*v * FRAC_1_SQRT_2));
    }
}

/// `row ← softmax(row)`.
pub(crate) fn softmax(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F.
        unsafe { softmax_avx512(row) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { avx2::softmax(row) };
        return;
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row {
        *v *= inv;
    }
}

/// `log Σ exp(row)`, around the row's maximum; the sum is accumulated in f64 (each
/// 16-lane partial sum is widened), so a 262k-entry vocabulary loses no precision to it.
pub(crate) fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max as f64;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F.
        return max as f64 + unsafe { sum_exp_avx512(row, max) }.ln();
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        return max as f64 + unsafe { avx2::sum_exp(row, max) }.ln();
    }
    let sum: f64 = row.iter().map(|&l| ((l - max) as f64).exp()).sum();
    max as f64 + sum.ln()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_exp_avx512(row: &[f32], max: f32) -> f64 {
    let n = row.len();
    let p = row.as_ptr();
    let max = _mm512_set1_ps(max);
    let mut sum = 0f64;
    // each lane sums at most 64 values (all ≤ 1) in f32 before the chunk is widened
    for start in (0..n).step_by(1024) {
        let end = (start + 1024).min(n);
        let mut acc = _mm512_setzero_ps();
        let mut i = start;
        while i < end {
            let mask = tail_mask(end - i);
            let e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, p.add(i)), max));
            acc = _mm512_mask_add_ps(acc, mask, acc, e);
            i += 16;
        }
        sum += _mm512_reduce_add_ps(acc) as f64;
    }
    sum
}

/// `x ← LayerNorm(x + add) · weight + bias`, row by row (rows of `weight.len()` values).
pub(crate) fn add_layer_norm(x: &mut [f32], add: &[f32], weight: &[f32], bias: &[f32], eps: f32) {
    let width = weight.len();
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && width.is_multiple_of(16) {
        for (row, add) in x.chunks_exact_mut(width).zip(add.chunks_exact(width)) {
            // SAFETY: the CPU has AVX-512F; all four slices are `width` long, a multiple of 16.
            unsafe { add_layer_norm_avx512(row, add, weight, bias, eps) };
        }
        return;
    }
    for (row, add) in x.chunks_exact_mut(width).zip(add.chunks_exact(width)) {
        for (v, a) in row.iter_mut().zip(add) {
            *v += a;
        }
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// e^x for x ≤ 88, to ~2e-7 relative: 2^n · p(r), r = x − n·ln 2, p of degree 6.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_avx512(x: __m512) -> __m512 {
    let x = _mm512_max_ps(
        _mm512_min_ps(x, _mm512_set1_ps(88.0)),
        _mm512_set1_ps(-88.0),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
    let mut p = _mm512_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_vec(x: __m512) -> __m512 {
    let z = _mm512_mul_ps(x, _mm512_set1_ps(FRAC_1_SQRT_2));
    let a = _mm512_abs_ps(z);
    let one = _mm512_set1_ps(1.0);
    let t = _mm512_div_ps(one, _mm512_fmadd_ps(a, _mm512_set1_ps(ERF_P), one));
    let mut poly = _mm512_set1_ps(ERF_A[4]);
    for c in [ERF_A[3], ERF_A[2], ERF_A[1], ERF_A[0]] {
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(c));
    }
    poly = _mm512_mul_ps(poly, t);
    let e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a)));
    // erf(|z|) = 1 − poly·e; Φ·2 = 1 ± erf(|z|).
    let erf_abs = _mm512_fnmadd_ps(poly, e, one);
    let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(z, _mm512_setzero_ps());
    let erf = _mm512_mask_sub_ps(erf_abs, negative, _mm512_setzero_ps(), erf_abs);
    _mm512_mul_ps(
        _mm512_mul_ps(x, _mm512_set1_ps(0.5)),
        _mm512_add_ps(one, erf),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_avx512(x: &mut [f32]) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let mut i = 0;
    while i + 16 <= n {
        _mm512_storeu_ps(p.add(i), gelu_vec(_mm512_loadu_ps(p.add(i))));
        i += 16;
    }
    if i < n {
        let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
        let v = _mm512_maskz_loadu_ps(mask, p.add(i));
        _mm512_mask_storeu_ps(p.add(i), mask, gelu_vec(v));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_avx512(row: &mut [f32]) {
    let n = row.len();
    let p = row.as_mut_ptr();
    let full = n / 16 * 16;
    let tail: __mmask16 = ((1u32 << (n - full)) - 1) as u16;
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut max = neg_inf;
    let mut i = 0;
    while i < full {
        max = _mm512_max_ps(max, _mm512_loadu_ps(p.add(i)));
        i += 16;
    }
    if tail != 0 {
        max = _mm512_max_ps(max, _mm512_mask_loadu_ps(neg_inf, tail, p.add(full)));
    }
    let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
    let mut sum = _mm512_setzero_ps();
    i = 0;
    while i < full {
        let e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), max));
        _mm512_storeu_ps(p.add(i), e);
        sum = _mm512_add_ps(sum, e);
        i += 16;
    }
    if tail != 0 {
        let e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, p.add(full)), max));
        _mm512_mask_storeu_ps(p.add(full), tail, e);
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
    }
    let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
    i = 0;
    while i < full {
        _mm512_storeu_ps(p.add(i), _mm512_mul_ps(_mm512_loadu_ps(p.add(i)), inv));
        i += 16;
    }
    if tail != 0 {
        let v = _mm512_maskz_loadu_ps(tail, p.add(full));
        _mm512_mask_storeu_ps(p.add(full), tail, _mm512_mul_ps(v, inv));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_layer_norm_avx512(
    row: &mut [f32],
    add: &[f32],
    weight: &[f32],
    bias: &[f32],
    eps: f32,
) {
    let n = row.len();
    let (p, a, w, b) = (
        row.as_mut_ptr(),
        add.as_ptr(),
        weight.as_ptr(),
        bias.as_ptr(),
    );
    let mut sum = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let v = _mm512_add_ps(_mm512_loadu_ps(p.add(i)), _mm512_loadu_ps(a.add(i)));
        _mm512_storeu_ps(p.add(i), v);
        sum = _mm512_add_ps(sum, v);
        i += 16;
    }
    let mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) / n as f32);
    let mut sq = _mm512_setzero_ps();
    i = 0;
    while i < n {
        let d = _mm512_sub_ps(_mm512_loadu_ps(p.add(i)), mean);
        sq = _mm512_fmadd_ps(d, d, sq);
        i += 16;
    }
    let var = _mm512_reduce_add_ps(sq) / n as f32;
    let inv = _mm512_set1_ps(1.0 / (var + eps).sqrt());
    i = 0;
    while i < n {
        let d = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), mean), inv);
        let v = _mm512_fmadd_ps(d, _mm512_loadu_ps(w.add(i)), _mm512_loadu_ps(b.add(i)));
        _mm512_storeu_ps(p.add(i), v);
        i += 16;
    }
}

/// `row ← RMSNorm(row) · weight`, row by row (rows of `weight.len()` values).
pub(crate) fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) {
    let width = weight.len();
    for row in x.chunks_exact_mut(width) {
        let inv = 1.0 / (dot(row, row) / width as f32 + eps).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            *v *= inv * w;
        }
    }
}

/// The activation of a gated feed-forward layer, applied in place to `gate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gated {
    /// `gelu_tanh(gate) · up` (Gemma's GeGLU).
    GeluTanh,
    /// `silu(gate) · up` (Llama's and Qwen's SwiGLU).
    Silu,
}

/// `gate ← act(gate) · up`.
pub(crate) fn gated(act: Gated, gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F.
        unsafe { gated_avx512(act, gate, up) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { avx2::gated(act, gate, up) };
        return;
    }
    for (g, u) in gate.iter_mut().zip(up) {
        let x = *g;
        let a = match act {
            Gated::GeluTanh => 0.5 * x * (1.0 + (GELU_C * (x + 0.044_715 * x * x * x)).tanh()),
            Gated::Silu => x / (1.0 + (-x).exp()),
        };
        *g = a * u;
    }
}

const GELU_C: f32 = 0.797_884_6; // √(2/π)

/// `Σ a·b`.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { dot_avx512(a, b) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { avx2::dot(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `Σ a·b`, with `b` in half precision (a cached key).
pub(crate) fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { dot_f16_avx512(a, b) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C.
        return unsafe { avx2::dot_f16(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y.to_f32()).sum()
}

/// `y ← y + alpha · x`, with `x` in half precision (a cached value).
pub(crate) fn axpy_f16(alpha: f32, x: &[f16], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F.
        unsafe { axpy_f16_avx512(alpha, x, y) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C.
        unsafe { avx2::axpy_f16(alpha, x, y) };
        return;
    }
    for (v, a) in y.iter_mut().zip(x) {
        *v += alpha * a.to_f32();
    }
}

/// `out ← Σⱼ weights[j] · values[j·stride..][..out.len()]`, the values in half precision (an
/// attention head's cached values, `stride` apart). Each element is the same chain of fused
/// multiply-adds, in the same order, as [`axpy_f16`] position by position into zeros, but the
/// sums stay in registers instead of making a round trip through memory per position.
pub(crate) fn weighted_sum_f16(weights: &[f32], values: &[f16], stride: usize, out: &mut [f32]) {
    let n = out.len();
    if let Some(last) = weights.len().checked_sub(1) {
        assert!(last * stride + n <= values.len(), "weighted_sum_f16 values");
    }
    #[cfg(target_arch = "x86_64")]
    if n.is_multiple_of(128) && has_avx512() {
        // SAFETY: the CPU has AVX-512F; every row read lies inside `values` (checked above).
        unsafe { weighted_sum_f16_avx512(weights, values, stride, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if n.is_multiple_of(64) && has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C; the rows lie inside `values`.
        unsafe { avx2::weighted_sum_f16(weights, values, stride, out) };
        return;
    }
    out.fill(0.0);
    for (j, &w) in weights.iter().enumerate() {
        axpy_f16(w, &values[j * stride..j * stride + n], out);
    }
}

/// [`weighted_sum_f16`] 128 outputs at a time in eight 16-lane sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weighted_sum_f16_avx512(weights: &[f32], values: &[f16], stride: usize, out: &mut [f32]) {
    let pv = values.as_ptr().cast::<u16>();
    for chunk in (0..out.len()).step_by(128) {
        let mut acc = [_mm512_setzero_ps(); 8];
        for (j, &w) in weights.iter().enumerate() {
            let a = _mm512_set1_ps(w);
            let row = pv.add(j * stride + chunk);
            for (c, acc) in acc.iter_mut().enumerate() {
                let v = _mm512_cvtph_ps(_mm256_loadu_si256(row.add(16 * c).cast()));
                *acc = _mm512_fmadd_ps(a, v, *acc);
            }
        }
        for (c, acc) in acc.into_iter().enumerate() {
            _mm512_storeu_ps(out.as_mut_ptr().add(chunk + 16 * c), acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn axpy_f16_avx512(alpha: f32, x: &[f16], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (px, py) = (x.as_ptr().cast::<u16>(), y.as_mut_ptr());
    let a = _mm512_set1_ps(alpha);
    let mut i = 0;
    while i + 16 <= n {
        let xs = _mm512_cvtph_ps(_mm256_loadu_si256(px.add(i).cast()));
        let v = _mm512_fmadd_ps(a, xs, _mm512_loadu_ps(py.add(i)));
        _mm512_storeu_ps(py.add(i), v);
        i += 16;
    }
    for (v, x) in y[i..n].iter_mut().zip(&x[i..n]) {
        *v += alpha * x.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn tail_mask(rest: usize) -> __mmask16 {
    ((1u32 << rest.min(16)) - 1) as u16
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
        acc1 = _mm512_fmadd_ps(
            _mm512_loadu_ps(pa.add(i + 16)),
            _mm512_loadu_ps(pb.add(i + 16)),
            acc1,
        );
        i += 32;
    }
    while i < n {
        let m = tail_mask(n - i);
        acc0 = _mm512_fmadd_ps(
            _mm512_maskz_loadu_ps(m, pa.add(i)),
            _mm512_maskz_loadu_ps(m, pb.add(i)),
            acc0,
        );
        i += 16;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_f16_avx512(a: &[f32], b: &[f16]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr().cast::<u16>());
    let half = |i: usize| _mm512_cvtph_ps(_mm256_loadu_si256(pb.add(i).cast()));
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), half(i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16)), half(i + 16), acc1);
        i += 32;
    }
    if i + 16 <= n {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), half(i), acc0);
        i += 16;
    }
    let rest: f32 = a[i..n]
        .iter()
        .zip(&b[i..n])
        .map(|(x, y)| x * y.to_f32())
        .sum();
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + rest
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gated_avx512(act: Gated, gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let (pg, pu) = (gate.as_mut_ptr(), up.as_ptr());
    let one = _mm512_set1_ps(1.0);
    let c = _mm512_set1_ps(GELU_C);
    let c3 = _mm512_set1_ps(0.044_715 * GELU_C);
    let mut i = 0;
    while i < n {
        let m = tail_mask(n - i);
        let x = _mm512_maskz_loadu_ps(m, pg.add(i));
        let a = match act {
            Gated::GeluTanh => {
                // 0.5·x·(1 + tanh(z)) = x · σ(2z) = x / (1 + e^(−2z))
                let x2 = _mm512_mul_ps(x, x);
                let z = _mm512_mul_ps(x, _mm512_fmadd_ps(c3, x2, c));
                let e = exp_avx512(_mm512_mul_ps(z, _mm512_set1_ps(-2.0)));
                _mm512_div_ps(x, _mm512_add_ps(one, e))
            }
            Gated::Silu => {
                let e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), x));
                _mm512_div_ps(x, _mm512_add_ps(one, e))
            }
        };
        let v = _mm512_mul_ps(a, _mm512_maskz_loadu_ps(m, pu.add(i)));
        _mm512_mask_storeu_ps(pg.add(i), m, v);
        i += 16;
    }
}

/// The AVX2+FMA kernels: eight lanes; a tail shorter than eight goes through a padded
/// buffer (AMD's masked stores are microcoded and would cost more than the arithmetic).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Gated, GELU_C};
    use half::f16;
    use std::arch::x86_64::*;

    /// `f` over eight lanes of `x[i..]` (lanes past the end read as `pad`), storing the lanes
    /// that exist; returns the result vector with the padding lanes as computed.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn tail(x: &mut [f32], pad: f32, f: impl Fn(__m256) -> __m256) -> __m256 {
        let mut buf = [pad; 8];
        buf[..x.len()].copy_from_slice(x);
        // SAFETY: `buf` holds eight floats.
        let v = f(unsafe { _mm256_loadu_ps(buf.as_ptr()) });
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), v) };
        let n = x.len();
        x.copy_from_slice(&buf[..n]);
        v
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn hmax(v: __m256) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps::<1>(s, s)))
    }

    /// e^x, the same reduction and polynomial as the AVX-512 version; 2^n is built in the
    /// exponent bits (inputs clamped to ±88, so n stays within −127..=127).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp(x: __m256) -> __m256 {
        let x = _mm256_max_ps(
            _mm256_min_ps(x, _mm256_set1_ps(88.0)),
            _mm256_set1_ps(-88.0),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_145_75), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm256_set1_ps(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                acc1,
            );
            i += 16;
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
        let rest: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
        hsum(_mm256_add_ps(acc0, acc1)) + rest
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr().cast::<u16>());
        let half = |i: usize| _mm256_cvtph_ps(_mm_loadu_si128(pb.add(i).cast()));
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), half(i), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), half(i + 8), acc1);
            i += 16;
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), half(i), acc0);
            i += 8;
        }
        let rest: f32 = a[i..n]
            .iter()
            .zip(&b[i..n])
            .map(|(x, y)| x * y.to_f32())
            .sum();
        hsum(_mm256_add_ps(acc0, acc1)) + rest
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn axpy_f16(alpha: f32, x: &[f16], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let (px, py) = (x.as_ptr().cast::<u16>(), y.as_mut_ptr());
        let a = _mm256_set1_ps(alpha);
        let mut i = 0;
        while i + 8 <= n {
            let xs = _mm256_cvtph_ps(_mm_loadu_si128(px.add(i).cast()));
            let v = _mm256_fmadd_ps(a, xs, _mm256_loadu_ps(py.add(i)));
            _mm256_storeu_ps(py.add(i), v);
            i += 8;
        }
        for (v, x) in y[i..n].iter_mut().zip(&x[i..n]) {
            *v += alpha * x.to_f32();
        }
    }

    /// `super::weighted_sum_f16` 64 outputs at a time in eight 8-lane sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_sum_f16(
        weights: &[f32],
        values: &[f16],
        stride: usize,
        out: &mut [f32],
    ) {
        let pv = values.as_ptr().cast::<u16>();
        for chunk in (0..out.len()).step_by(64) {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (j, &w) in weights.iter().enumerate() {
                let a = _mm256_set1_ps(w);
                let row = pv.add(j * stride + chunk);
                for (c, acc) in acc.iter_mut().enumerate() {
                    let v = _mm256_cvtph_ps(_mm_loadu_si128(row.add(8 * c).cast()));
                    *acc = _mm256_fmadd_ps(a, v, *acc);
                }
            }
            for (c, acc) in acc.into_iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(chunk + 8 * c), acc);
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gated(act: Gated, gate: &mut [f32], up: &[f32]) {
        let n = gate.len().min(up.len());
        let one = _mm256_set1_ps(1.0);
        let c = _mm256_set1_ps(GELU_C);
        let c3 = _mm256_set1_ps(0.044_715 * GELU_C);
        // 0.5·x·(1 + tanh(z)) = x / (1 + e^(−2z)); silu(x) = x / (1 + e^(−x))
        let activate = |x: __m256| {
            let e = match act {
                Gated::GeluTanh => {
                    let z = _mm256_mul_ps(x, _mm256_fmadd_ps(c3, _mm256_mul_ps(x, x), c));
                    exp(_mm256_mul_ps(z, _mm256_set1_ps(-2.0)))
                }
                Gated::Silu => exp(_mm256_sub_ps(_mm256_setzero_ps(), x)),
            };
            _mm256_div_ps(x, _mm256_add_ps(one, e))
        };
        let (pg, pu) = (gate.as_mut_ptr(), up.as_ptr());
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_mul_ps(
                activate(_mm256_loadu_ps(pg.add(i))),
                _mm256_loadu_ps(pu.add(i)),
            );
            _mm256_storeu_ps(pg.add(i), v);
            i += 8;
        }
        if i < n {
            tail(&mut gate[i..n], 0.0, activate);
            for (g, u) in gate[i..n].iter_mut().zip(&up[i..n]) {
                *g *= u;
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax(row: &mut [f32]) {
        let n = row.len();
        let full = n / 8 * 8;
        let p = row.as_mut_ptr();
        let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < full {
            max = _mm256_max_ps(max, _mm256_loadu_ps(p.add(i)));
            i += 8;
        }
        let max = row[full..].iter().fold(hmax(max), |m, &v| m.max(v));
        let max = _mm256_set1_ps(max);
        let mut sum = _mm256_setzero_ps();
        i = 0;
        while i < full {
            let e = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), max));
            _mm256_storeu_ps(p.add(i), e);
            sum = _mm256_add_ps(sum, e);
            i += 8;
        }
        if full < n {
            // padding lanes are −∞ − max, whose e^x is 0 after the clamp's underflow
            let e = tail(&mut row[full..], f32::NEG_INFINITY, |v| {
                exp(_mm256_sub_ps(v, max))
            });
            let lanes = _mm256_cmpgt_epi32(
                _mm256_set1_epi32((n - full) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            sum = _mm256_add_ps(sum, _mm256_and_ps(e, _mm256_castsi256_ps(lanes)));
        }
        let inv = 1.0 / hsum(sum);
        let scale = _mm256_set1_ps(inv);
        let p = row.as_mut_ptr();
        i = 0;
        while i < full {
            _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), scale));
            i += 8;
        }
        for v in &mut row[full..] {
            *v *= inv;
        }
    }

    /// `Σ exp(row − max)`, each 1,024-value chunk summed in f32 lanes, then in f64.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum_exp(row: &[f32], max: f32) -> f64 {
        let max_v = _mm256_set1_ps(max);
        let mut sum = 0f64;
        for chunk in row.chunks(1024) {
            let full = chunk.len() / 8 * 8;
            let p = chunk.as_ptr();
            let mut acc = _mm256_setzero_ps();
            let mut i = 0;
            while i < full {
                acc = _mm256_add_ps(acc, exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), max_v)));
                i += 8;
            }
            let rest: f64 = chunk[full..]
                .iter()
                .map(|&l| ((l - max) as f64).exp())
                .sum();
            sum += hsum(acc) as f64 + rest;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0)
            .collect()
    }

    #[test]
    fn attention_and_gate_kernels_match_the_formulas() {
        for n in [1, 7, 8, 9, 16, 17, 256, 300] {
            let a = sample(n);
            let b: Vec<f32> = sample(n + 3)[3..].iter().map(|v| v * 0.5).collect();
            let exact32: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let fast32 = dot(&a, &b) as f64;
            assert!(
                (fast32 - exact32).abs() < 1e-4 * (1.0 + exact32.abs()),
                "dot over {n}: {fast32} vs {exact32}"
            );
            // the cached side in half precision, as the KV cache keeps it
            let halves: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
            let exact: f64 = a
                .iter()
                .zip(&halves)
                .map(|(x, y)| *x as f64 * y.to_f64())
                .sum();
            let fast = dot_f16(&a, &halves) as f64;
            assert!(
                (fast - exact).abs() < 1e-4 * (1.0 + exact.abs()),
                "dot_f16 over {n}: {fast} vs {exact}"
            );
            let mut y = a.clone();
            axpy_f16(0.7, &halves, &mut y);
            for ((v, x), h) in y.iter().zip(&a).zip(&halves) {
                assert!(
                    (v - (x + 0.7 * h.to_f32())).abs() < 1e-5,
                    "axpy_f16 over {n}"
                );
            }
            for act in [Gated::GeluTanh, Gated::Silu] {
                let mut g = a.clone();
                gated(act, &mut g, &b);
                for ((v, x), u) in g.iter().zip(&a).zip(&b) {
                    let f = match act {
                        Gated::GeluTanh => {
                            0.5 * x * (1.0 + (GELU_C * (x + 0.044_715 * x * x * x)).tanh())
                        }
                        Gated::Silu => x / (1.0 + (-x).exp()),
                    };
                    let expect = f * u;
                    assert!(
                        (v - expect).abs() < 1e-5 * (1.0 + expect.abs()),
                        "{act:?}({x}) · {u}: {v} vs {expect}"
                    );
                }
            }
        }
    }

    #[test]
    fn weighted_sums_are_the_axpy_chain_bit_for_bit() {
        // head sizes for each path (AVX-512, AVX2, portable) and rows `stride` apart
        for (n, stride) in [(256, 256), (128, 384), (64, 192), (80, 80), (256, 1024)] {
            for positions in [0, 1, 5, 130] {
                let values: Vec<f16> = sample(positions.max(1) * stride)
                    .iter()
                    .map(|&v| f16::from_f32(v * 0.3))
                    .collect();
                let weights: Vec<f32> = sample(positions + 11)[11..]
                    .iter()
                    .map(|w| w / 40.0)
                    .collect();
                let mut chain = vec![0f32; n];
                for (j, &w) in weights.iter().enumerate() {
                    axpy_f16(w, &values[j * stride..j * stride + n], &mut chain);
                }
                let mut sum = vec![f32::NAN; n];
                weighted_sum_f16(&weights, &values, stride, &mut sum);
                assert_eq!(
                    sum.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    chain.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{positions} positions of {n} values, stride {stride}"
                );
            }
        }
    }

    #[test]
    fn fast_kernels_match_portable_ones() {
        for n in [1, 15, 16, 17, 150, 384] {
            let x = sample(n);
            let mut fast = x.clone();
            gelu(&mut fast);
            for (v, f) in x.iter().zip(&fast) {
                let exact = 0.5 * v * (1.0 + erf_scalar(v * FRAC_1_SQRT_2));
                assert!((exact - f).abs() < 1e-5, "gelu({v}) {f} vs {exact}");
            }
            let mut fast = x.clone();
            softmax(&mut fast);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = x.iter().map(|v| (v - max).exp()).sum();
            for (v, f) in x.iter().zip(&fast) {
                let exact = (v - max).exp() / sum;
                assert!((exact - f).abs() < 1e-6, "softmax {f} vs {exact}");
            }
        }
        assert!((erf_scalar(0.5) - 0.520_499_9).abs() < 1e-6);
        for n in [1, 17, 1024, 1025, 262_144] {
            let row: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 4001) as f32 - 3000.0) / 97.0)
                .collect();
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let exact = max
                + row
                    .iter()
                    .map(|&l| (l as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            let fast = log_sum_exp(&row);
            assert!(
                (fast - exact).abs() < 1e-6,
                "log_sum_exp over {n}: {fast} vs {exact}"
            );
        }
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f64::NEG_INFINITY);
        let w: Vec<f32> = sample(384).iter().map(|v| v * 0.1 + 1.0).collect();
        let b = sample(384);
        let x = sample(768);
        let add: Vec<f32> = x.iter().map(|v| v * 0.3).collect();
        let mut fast = x.clone();
        add_layer_norm(&mut fast, &add, &w, &b, 1e-12);
        let mut slow: Vec<f32> = x.iter().zip(&add).map(|(a, b)| a + b).collect();
        for row in slow.chunks_exact_mut(384) {
            let mean = row.iter().sum::<f32>() / 384.0;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 384.0;
            for (i, v) in row.iter_mut().enumerate() {
                *v = (*v - mean) / var.sqrt() * w[i] + b[i];
            }
        }
        for (f, s) in fast.iter().zip(&slow) {
            assert!((f - s).abs() < 1e-4, "{f} vs {s}");
        }
    }
}
