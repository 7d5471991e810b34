//! Our own SIMD dot products: Q5_0 · Q8_0 (which candle computes with scalar code; gemma-3's
//! attention and feed-forward projections use it), and four-row kernels for Q5_0 and Q8_0 that
//! share each activation block between four weight rows (the 262k-row output layer and every
//! decode step are dominated by these). Picked at run time; candle's portable `vec_dot` defines
//! the result.

#[cfg(target_arch = "x86_64")]
use crate::kernels::has_avx2_fma_f16c;
use candle_core::quantized::k_quants::GgmlType;
use candle_core::quantized::GgmlDType;

/// Values per Q5_0/Q8_0 block.
const QK: usize = 32;
/// Bytes of one block: f16 scale, 4 bytes of fifth bits, 16 bytes of nibbles.
const Q5_0_BYTES: usize = 22;
/// Bytes of one Q8_0 block: f16 scale, 32 signed bytes.
const Q8_0_BYTES: usize = 34;

/// A dot product between weight blocks and activation blocks over `n` values.
pub(super) type DotFn<T> = fn(usize, &[T], &[<T as GgmlType>::VecDotType]) -> f32;

/// The fastest dot product this CPU has for weight type `T`.
pub(super) fn dot_for<T: GgmlType>() -> DotFn<T> {
    #[cfg(target_arch = "x86_64")]
    if <T::VecDotType as GgmlType>::DTYPE == GgmlDType::Q8_0 && has_avx2_fma_f16c() {
        match T::DTYPE {
            GgmlDType::Q8_0 => return dot_dispatch::<T, false>,
            GgmlDType::Q5_0 => return dot_dispatch::<T, true>,
            _ => {}
        }
    }
    T::vec_dot
}

/// Four dot products of four weight rows with the same activations.
pub(super) type Dot4Fn<T> = fn(usize, [&[T]; 4], &[<T as GgmlType>::VecDotType]) -> [f32; 4];

/// A four-row kernel for weight type `T`, where this CPU has one.
pub(super) fn dot4_for<T: GgmlType>() -> Option<Dot4Fn<T>> {
    #[cfg(target_arch = "x86_64")]
    if <T::VecDotType as GgmlType>::DTYPE == GgmlDType::Q8_0 && has_avx2_fma_f16c() {
        match T::DTYPE {
            GgmlDType::Q8_0 => return Some(dot4_dispatch::<T, false>),
            GgmlDType::Q5_0 => return Some(dot4_dispatch::<T, true>),
            _ => {}
        }
    }
    None
}

#[cfg(target_arch = "x86_64")]
fn dot4_dispatch<T: GgmlType, const Q5: bool>(
    n: usize,
    rows: [&[T]; 4],
    ys: &[T::VecDotType],
) -> [f32; 4] {
    dot4_dispatch_rows::<T, Q5, 4>(n, rows, ys)
}

#[cfg(target_arch = "x86_64")]
fn dot4_dispatch_rows<T: GgmlType, const Q5: bool, const R: usize>(
    n: usize,
    rows: [&[T]; R],
    ys: &[T::VecDotType],
) -> [f32; R] {
    let blocks = n / QK;
    let row_bytes = blocks * if Q5 { Q5_0_BYTES } else { Q8_0_BYTES };
    let xs = rows.map(bytes_of);
    let y = bytes_of(ys);
    assert!(xs.iter().all(|x| x.len() >= row_bytes) && y.len() >= blocks * Q8_0_BYTES);
    // SAFETY: AVX2, FMA and F16C were detected in `dot4_for`; every slice holds `blocks` blocks.
    unsafe { dot_rows_avx2::<Q5, R>(blocks, xs, y) }
}

#[cfg(target_arch = "x86_64")]
fn dot_dispatch<T: GgmlType, const Q5: bool>(n: usize, xs: &[T], ys: &[T::VecDotType]) -> f32 {
    let [dot] = dot4_dispatch_rows::<T, Q5, 1>(n, [xs], ys);
    dot
}

/// How far past the weights being multiplied the kernels ask for more. Decoding streams every
/// weight once per token, and the hardware prefetcher alone keeps too few loads in flight: asking
/// 2 KiB ahead made the Q5_0 and packed Q8_0 products 25–30 % faster on one thread (1 KiB: 15 %,
/// 4 KiB: as 2 KiB; BENCHMARKS.md).
const PREFETCH_AHEAD: usize = 2048;

/// Starts loading the cache line [`PREFETCH_AHEAD`] bytes past `p`.
#[inline(always)]
fn prefetch_ahead(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::*;
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_AHEAD) as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch_ahead`] for each cache line of `len` bytes from `p`: for the weight rows that
/// candle's kernels multiply.
pub(super) fn prefetch_rows_ahead(p: *const u8, len: usize) {
    for offset in (0..len).step_by(64) {
        prefetch_ahead(p.wrapping_add(offset));
    }
}

/// The bytes of a slice of padding-free plain data: candle blocks (their layouts are
/// `repr(C)` and fixed by GGUF) or floats.
pub(super) fn bytes_of<B>(blocks: &[B]) -> &[u8] {
    // SAFETY: any initialised memory may be viewed as bytes.
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr() as *const u8, std::mem::size_of_val(blocks))
    }
}

/// One IEEE half to f32 with the F16C instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "f16c")]
#[inline]
unsafe fn half_to_f32(bits: u16) -> f32 {
    use std::arch::x86_64::*;
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// The 32 signed values of the Q5_0 block at `xb`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q5_0_values(xb: *const u8) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    // byte i of the 32 values takes byte i/8 of the fifth bits...
    let spread = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    // ...and is all ones exactly when its bit i%8 is set once the other bits are forced on
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    let low_mask = _mm_set1_epi8(0x0F);
    let qh = (xb.add(2) as *const u32).read_unaligned();
    let packed = _mm_loadu_si128(xb.add(6) as *const __m128i);
    let low = _mm_and_si128(packed, low_mask);
    let high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_mask);
    let nibbles = _mm256_set_m128i(high, low);
    let bits = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), spread);
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(bits, others), _mm256_set1_epi64x(-1));
    // value − 16: without the fifth bit the byte becomes nibble | 0xF0 = nibble − 16
    _mm256_or_si256(
        nibbles,
        _mm256_andnot_si256(set, _mm256_set1_epi8(0xF0u8 as i8)),
    )
}

/// `R` dot products of Q5_0 (`Q5`) or Q8_0 weight rows with one row of Q8_0 activations.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_avx2<const Q5: bool, const R: usize>(
    blocks: usize,
    xs: [&[u8]; R],
    y: &[u8],
) -> [f32; R] {
    use std::arch::x86_64::*;
    let stride = if Q5 { Q5_0_BYTES } else { Q8_0_BYTES };
    let pairs = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); R];
    let py = y.as_ptr();
    let px = xs.map(|x| x.as_ptr());
    for b in 0..blocks {
        let yb = py.add(b * Q8_0_BYTES);
        let dy = half_to_f32((yb as *const u16).read_unaligned());
        let qy = _mm256_loadu_si256(yb.add(2) as *const __m256i);
        for r in 0..R {
            let xb = px[r].add(b * stride);
            prefetch_ahead(xb);
            let dx = half_to_f32((xb as *const u16).read_unaligned());
            let qx = if Q5 {
                q5_0_values(xb)
            } else {
                _mm256_loadu_si256(xb.add(2) as *const __m256i)
            };
            // signed × signed through maddubs: |x| · (y with x's sign)
            let ax = _mm256_sign_epi8(qx, qx);
            let sy = _mm256_sign_epi8(qy, qx);
            let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), pairs);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy), _mm256_cvtepi32_ps(dot), acc[r]);
        }
    }
    acc.map(|a| {
        let hi = _mm256_extractf128_ps(a, 1);
        let sum4 = _mm_add_ps(_mm256_castps256_ps128(a), hi);
        let sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
        _mm_cvtss_f32(_mm_add_ss(sum2, _mm_shuffle_ps(sum2, sum2, 1)))
    })
}

/// `blocks` as f32 in `out`, bit for bit what candle's `to_float` gives, vectorised for Q5_0
/// and Q8_0 (candle's versions are scalar; the GEMM path dequantizes every panel it uses).
pub(super) fn dequantize<T: GgmlType>(blocks: &[T], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if matches!(T::DTYPE, GgmlDType::Q5_0 | GgmlDType::Q8_0) && has_avx2_fma_f16c() {
        assert_eq!(out.len(), blocks.len() * QK, "dequantize output length");
        let bytes = bytes_of(blocks);
        // SAFETY: AVX2 and F16C are present; `bytes` holds whole blocks of the dtype and `out`
        // has room for all their values.
        unsafe {
            if T::DTYPE == GgmlDType::Q5_0 {
                dequantize_avx2::<true>(bytes, out)
            } else {
                dequantize_avx2::<false>(bytes, out)
            }
        }
        return;
    }
    T::to_float(blocks, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn dequantize_avx2<const Q5: bool>(bytes: &[u8], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let stride = if Q5 { Q5_0_BYTES } else { Q8_0_BYTES };
    let (px, po) = (bytes.as_ptr(), out.as_mut_ptr());
    for b in 0..bytes.len() / stride {
        let xb = px.add(b * stride);
        let d = _mm256_set1_ps(half_to_f32((xb as *const u16).read_unaligned()));
        let q = if Q5 {
            q5_0_values(xb)
        } else {
            _mm256_loadu_si256(xb.add(2) as *const __m256i)
        };
        let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
        let eighths = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
        for (i, part) in eighths.into_iter().enumerate() {
            let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part));
            _mm256_storeu_ps(po.add(b * QK + 8 * i), _mm256_mul_ps(v, d));
        }
    }
}

/// Bytes of one group-block of [`PackedQ8`]: four f16 scales, then four rows of 32 values.
const GROUP_BLOCK_BYTES: usize = 8 + 4 * QK;

/// A Q8_0 matrix regrouped four rows at a time for decoding: per group and block, the four
/// rows' f16 scales and then their 4 × 32 values, so a group is one sequential stream (the
/// four scales convert in one instruction). Used for the output layer, which a decode step
/// reads whole: memory-bound, so the layout keeps the file's 34 bytes per row-block.
pub(super) struct PackedQ8 {
    blocks: usize,
    data: Vec<u8>,
}

impl PackedQ8 {
    /// Regroups `rows` × `cols` Q8_0 blocks (`raw`); `None` unless rows come in fours.
    pub fn pack(raw: &[u8], rows: usize, cols: usize) -> Option<Self> {
        if !rows.is_multiple_of(4)
            || !cols.is_multiple_of(QK)
            || raw.len() != rows * cols / QK * Q8_0_BYTES
        {
            return None;
        }
        let blocks = cols / QK;
        let mut data = vec![0u8; rows / 4 * blocks * GROUP_BLOCK_BYTES];
        for (g, group) in data
            .chunks_exact_mut(blocks * GROUP_BLOCK_BYTES)
            .enumerate()
        {
            for (b, out) in group.chunks_exact_mut(GROUP_BLOCK_BYTES).enumerate() {
                for r in 0..4 {
                    let at = ((4 * g + r) * blocks + b) * Q8_0_BYTES;
                    let block = &raw[at..at + Q8_0_BYTES];
                    out[2 * r..2 * r + 2].copy_from_slice(&block[..2]);
                    out[8 + QK * r..8 + QK * (r + 1)].copy_from_slice(&block[2..]);
                }
            }
        }
        Some(PackedQ8 { blocks, data })
    }

    pub fn groups(&self) -> usize {
        self.data.len() / (self.blocks * GROUP_BLOCK_BYTES).max(1)
    }

    /// Rows 4g..4g+4 · one row of Q8_0 activations (`y`, with its scales `dy` as f32).
    pub fn dot4(&self, group: usize, y: &[u8], dy: &[f32]) -> [f32; 4] {
        let size = self.blocks * GROUP_BLOCK_BYTES;
        let g = &self.data[group * size..(group + 1) * size];
        assert!(y.len() >= self.blocks * Q8_0_BYTES && dy.len() >= self.blocks);
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma_f16c() {
            // SAFETY: AVX2, FMA and F16C are present; `g`, `y` and `dy` hold `blocks` blocks.
            return unsafe { packed_dot4_avx2(self.blocks, g, y, dy) };
        }
        let mut out = [0f32; 4];
        for (b, gb) in g.chunks_exact(GROUP_BLOCK_BYTES).enumerate() {
            let qy = &y[b * Q8_0_BYTES + 2..(b + 1) * Q8_0_BYTES];
            for (r, o) in out.iter_mut().enumerate() {
                let scale = half::f16::from_le_bytes([gb[2 * r], gb[2 * r + 1]]).to_f32();
                let values = &gb[8 + QK * r..8 + QK * (r + 1)];
                let dot: i32 = values
                    .iter()
                    .zip(qy)
                    .map(|(&x, &y)| x as i8 as i32 * y as i8 as i32)
                    .sum();
                *o += dot as f32 * scale * dy[b];
            }
        }
        out
    }
}

/// The scales of Q8_0 activation blocks as f32.
pub(super) fn q8_0_scales(y: &[u8]) -> Vec<f32> {
    y.chunks_exact(Q8_0_BYTES)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn packed_dot4_avx2(blocks: usize, g: &[u8], y: &[u8], dy: &[f32]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let pairs = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 4];
    let (pg, py) = (g.as_ptr(), y.as_ptr());
    for b in 0..blocks {
        let gb = pg.add(b * GROUP_BLOCK_BYTES);
        prefetch_ahead(gb);
        prefetch_ahead(gb.wrapping_add(64));
        let qy = _mm256_loadu_si256(py.add(b * Q8_0_BYTES + 2) as *const __m256i);
        let mut scales = [0f32; 4];
        let halves = _mm_loadl_epi64(gb as *const __m128i);
        _mm_storeu_ps(
            scales.as_mut_ptr(),
            _mm_mul_ps(_mm_cvtph_ps(halves), _mm_set1_ps(*dy.get_unchecked(b))),
        );
        for r in 0..4 {
            let qx = _mm256_loadu_si256(gb.add(8 + QK * r) as *const __m256i);
            let ax = _mm256_sign_epi8(qx, qx);
            let sy = _mm256_sign_epi8(qy, qx);
            let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), pairs);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(scales[r]), _mm256_cvtepi32_ps(dot), acc[r]);
        }
    }
    acc.map(|a| {
        let hi = _mm256_extractf128_ps(a, 1);
        let sum4 = _mm_add_ps(_mm256_castps256_ps128(a), hi);
        let sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
        _mm_cvtss_f32(_mm_add_ss(sum2, _mm_shuffle_ps(sum2, sum2, 1)))
    })
}

/// `x` rounded through the activation format `dtype` (Q8_0 or Q8_K) and back, exactly as
/// candle's `from_float` then `to_float` would, but vectorised (AVX-512, else AVX2); `false`
/// when this CPU or format has no fast version (the caller then uses candle's).
pub(super) fn round_trip_q8(dtype: GgmlDType, x: &[f32], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        if !avx512 && !crate::kernels::has_avx2_fma() {
            return false;
        }
        let block = match dtype {
            GgmlDType::Q8_0 => QK,
            GgmlDType::Q8K => QK_K,
            _ => return false,
        };
        if !x.len().is_multiple_of(block) || out.len() != x.len() {
            return false;
        }
        for (src, dst) in x.chunks_exact(block).zip(out.chunks_exact_mut(block)) {
            // SAFETY: the instruction set checked above is present; both blocks are `block`
            // long, a multiple of 16.
            unsafe {
                match (avx512, block == QK) {
                    (true, true) => round_trip_q8_0_avx512(src, dst),
                    (true, false) => round_trip_q8k_avx512(src, dst),
                    (false, true) => round_trip_avx2::q8_0(src, dst),
                    (false, false) => round_trip_avx2::q8k(src, dst),
                }
            }
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (dtype, x, out);
        false
    }
}

/// The round trips for CPUs with AVX2 but not AVX-512: the same arithmetic on eight lanes.
#[cfg(target_arch = "x86_64")]
mod round_trip_avx2 {
    use super::{QK, QK_K};
    use std::arch::x86_64::*;

    /// `round(v)` with halves away from zero (Rust's `f32::round`), clamped to i8's range.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn round_away_i8(v: __m256) -> __m256 {
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
        let frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0), _mm256_sub_ps(v, t));
        let up = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
        // t ± 1 toward v's sign where the fraction is at least one half
        let step = _mm256_or_ps(_mm256_set1_ps(1.0), _mm256_and_ps(v, _mm256_set1_ps(-0.0)));
        let r = _mm256_add_ps(t, _mm256_and_ps(up, step));
        _mm256_min_ps(
            _mm256_max_ps(r, _mm256_set1_ps(-128.0)),
            _mm256_set1_ps(127.0),
        )
    }

    /// The largest |value| of `x` (a multiple of eight long).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn abs_max(x: &[f32]) -> f32 {
        let mut m = _mm256_setzero_ps();
        for c in x.chunks_exact(8) {
            // SAFETY: `c` holds eight floats.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            m = _mm256_max_ps(m, _mm256_andnot_ps(_mm256_set1_ps(-0.0), v));
        }
        let s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps::<1>(s, s)))
    }

    /// `out = d · round_away_i8(x · id)`, eight values at a time.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn quantize(x: &[f32], out: &mut [f32], id: f32, d: f32) {
        let (id, d) = (_mm256_set1_ps(id), _mm256_set1_ps(d));
        for (c, o) in x.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
            // SAFETY: `c` and `o` hold eight floats each.
            unsafe {
                let q = round_away_i8(_mm256_mul_ps(_mm256_loadu_ps(c.as_ptr()), id));
                _mm256_storeu_ps(o.as_mut_ptr(), _mm256_mul_ps(d, q));
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q8_0(x: &[f32], out: &mut [f32]) {
        let d = abs_max(&x[..QK]) / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        quantize(x, out, id, half::f16::from_f32(d).to_f32());
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q8k(x: &[f32], out: &mut [f32]) {
        let amax = abs_max(&x[..QK_K]);
        if amax == 0.0 {
            out.fill(0.0);
            return;
        }
        // the first value of largest magnitude gives the sign, as in candle
        let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
        let iscale = -127.0 / max;
        quantize(x, out, iscale, 1.0 / iscale);
    }
}

/// Values per Q8_K block.
const QK_K: usize = 256;

/// `round(v)` with halves away from zero (Rust's `f32::round`), clamped to i8's range.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn round_away_i8(v: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    let frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, _mm512_set1_ps(0.5));
    // t ± 1 toward v's sign where the fraction is at least one half
    let step = _mm512_or_ps(_mm512_set1_ps(1.0), _mm512_and_ps(v, _mm512_set1_ps(-0.0)));
    let r = _mm512_mask_add_ps(t, up, t, step);
    _mm512_min_ps(
        _mm512_max_ps(r, _mm512_set1_ps(-128.0)),
        _mm512_set1_ps(127.0),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn round_trip_q8_0_avx512(x: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (a, b) = (
        _mm512_loadu_ps(x.as_ptr()),
        _mm512_loadu_ps(x.as_ptr().add(16)),
    );
    let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let scale = _mm512_set1_ps(half::f16::from_f32(d).to_f32());
    let id = _mm512_set1_ps(id);
    for (v, at) in [(a, 0), (b, 16)] {
        let q = round_away_i8(_mm512_mul_ps(v, id));
        _mm512_storeu_ps(out.as_mut_ptr().add(at), _mm512_mul_ps(scale, q));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn round_trip_q8k_avx512(x: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut amax_v = _mm512_setzero_ps();
    for i in (0..QK_K).step_by(16) {
        amax_v = _mm512_max_ps(amax_v, _mm512_abs_ps(_mm512_loadu_ps(x.as_ptr().add(i))));
    }
    let amax = _mm512_reduce_max_ps(amax_v);
    if amax == 0.0 {
        out.fill(0.0);
        return;
    }
    // the first value of largest magnitude gives the sign, as in candle
    let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
    let iscale = -127.0 / max;
    let d = _mm512_set1_ps(1.0 / iscale);
    let iscale = _mm512_set1_ps(iscale);
    for i in (0..QK_K).step_by(16) {
        let q = round_away_i8(_mm512_mul_ps(iscale, _mm512_loadu_ps(x.as_ptr().add(i))));
        _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_mul_ps(d, q));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::{BlockQ5_0, BlockQ8_0};
    use half::f16;

    /// The portable Q5_0 · Q8_0 dot product (what the SIMD version must equal up to rounding).
    fn q5_0_q8_0_scalar(blocks: usize, x: &[u8], y: &[u8]) -> f32 {
        let mut sum = 0.0f32;
        for b in 0..blocks {
            let xb = &x[b * Q5_0_BYTES..(b + 1) * Q5_0_BYTES];
            let yb = &y[b * Q8_0_BYTES..(b + 1) * Q8_0_BYTES];
            let dx = f16::from_le_bytes([xb[0], xb[1]]).to_f32();
            let dy = f16::from_le_bytes([yb[0], yb[1]]).to_f32();
            let qh = u32::from_le_bytes([xb[2], xb[3], xb[4], xb[5]]);
            let mut acc = 0i32;
            for j in 0..QK {
                let nibble = if j < 16 {
                    xb[6 + j] & 0x0F
                } else {
                    xb[6 + j - 16] >> 4
                };
                let high = ((qh >> j) & 1) as u8;
                let v = (nibble | (high << 4)) as i32 - 16;
                acc += v * yb[2 + j] as i8 as i32;
            }
            sum += acc as f32 * dx * dy;
        }
        sum
    }

    #[test]
    fn q5_0_dot_matches_candles_reference() {
        let n = 640;
        let w: Vec<f32> = (0..n)
            .map(|i| (((i * 7919) % 201) as f32 - 100.0) / 13.0)
            .collect();
        let a: Vec<f32> = (0..n)
            .map(|i| (((i * 104_729) % 255) as f32 - 127.0) / 17.0)
            .collect();
        let mut wq = vec![BlockQ5_0::zeros(); n / QK];
        let mut aq = vec![BlockQ8_0::zeros(); n / QK];
        BlockQ5_0::from_float(&w, &mut wq);
        BlockQ8_0::from_float(&a, &mut aq);
        let reference = BlockQ5_0::vec_dot_unopt(n, &wq, &aq);
        let scalar = q5_0_q8_0_scalar(n / QK, bytes_of(&wq), bytes_of(&aq));
        assert!(
            (scalar - reference).abs() <= 1e-3 * reference.abs().max(1.0),
            "{scalar} vs {reference}"
        );
        let fast = dot_for::<BlockQ5_0>()(n, &wq, &aq);
        assert!(
            (fast - reference).abs() <= 1e-3 * reference.abs().max(1.0),
            "{fast} vs {reference}"
        );
    }

    #[test]
    fn the_vectorised_round_trip_equals_candles_bit_for_bit() {
        use candle_core::quantized::k_quants::BlockQ8K;
        // halves, ties between signs, zeros, large and tiny values
        let mut x: Vec<f32> = (0..1024)
            .map(|i| {
                (((i * 7919) % 2001) as f32 - 1000.0) / 37.0 * if i % 97 == 0 { 1e4 } else { 1.0 }
            })
            .collect();
        x[0..32].fill(0.0);
        x[40] = 127.0;
        x[41] = 0.5;
        x[42] = -0.5;
        x[300] = -9e4;
        x[301] = 9e4;
        let mut fast = vec![0f32; x.len()];
        let mut blocks0 = vec![BlockQ8_0::zeros(); x.len() / 32];
        BlockQ8_0::from_float(&x, &mut blocks0);
        let mut want0 = vec![0f32; x.len()];
        BlockQ8_0::to_float(&blocks0, &mut want0);
        let vectorised =
            std::arch::is_x86_feature_detected!("avx512f") || crate::kernels::has_avx2_fma();
        assert_eq!(round_trip_q8(GgmlDType::Q8_0, &x, &mut fast), vectorised);
        if vectorised {
            assert_eq!(fast, want0);
        }
        let mut blocks_k = vec![BlockQ8K::zeros(); x.len() / 256];
        BlockQ8K::from_float(&x, &mut blocks_k);
        let mut want_k = vec![0f32; x.len()];
        BlockQ8K::to_float(&blocks_k, &mut want_k);
        assert_eq!(round_trip_q8(GgmlDType::Q8K, &x, &mut fast), vectorised);
        if vectorised {
            assert_eq!(fast, want_k);
        }
    }

    #[test]
    fn vectorised_dequantization_equals_candles_bit_for_bit() {
        let values: Vec<f32> = (0..2048)
            .map(|i| {
                (((i * 7919) % 1001) as f32 - 500.0) / 19.0 * if i % 61 == 0 { 1e3 } else { 1.0 }
            })
            .collect();
        let mut q5 = vec![BlockQ5_0::zeros(); values.len() / QK];
        BlockQ5_0::from_float(&values, &mut q5);
        let (mut want, mut got) = (vec![0f32; values.len()], vec![1f32; values.len()]);
        BlockQ5_0::to_float(&q5, &mut want);
        dequantize(&q5, &mut got);
        assert_eq!(got, want);
        let mut q8 = vec![BlockQ8_0::zeros(); values.len() / QK];
        BlockQ8_0::from_float(&values, &mut q8);
        BlockQ8_0::to_float(&q8, &mut want);
        dequantize(&q8, &mut got);
        assert_eq!(got, want);
    }

    #[test]
    fn four_row_kernels_match_single_rows() {
        let n = 640;
        let rows = 4;
        let nb = n / QK;
        let w: Vec<f32> = (0..n * rows)
            .map(|i| (((i * 7919) % 201) as f32 - 100.0) / 13.0)
            .collect();
        let a: Vec<f32> = (0..n)
            .map(|i| (((i * 104_729) % 255) as f32 - 127.0) / 17.0)
            .collect();
        let mut aq = vec![BlockQ8_0::zeros(); nb];
        BlockQ8_0::from_float(&a, &mut aq);
        let mut w5 = vec![BlockQ5_0::zeros(); rows * nb];
        let mut w8 = vec![BlockQ8_0::zeros(); rows * nb];
        BlockQ5_0::from_float(&w, &mut w5);
        BlockQ8_0::from_float(&w, &mut w8);
        let dot4 = dot4_for::<BlockQ5_0>().expect("an AVX2 machine");
        let got = dot4(n, std::array::from_fn(|r| &w5[r * nb..(r + 1) * nb]), &aq);
        for (r, g) in got.iter().enumerate() {
            let want = BlockQ5_0::vec_dot_unopt(n, &w5[r * nb..(r + 1) * nb], &aq);
            assert!(
                (g - want).abs() <= 1e-3 * want.abs().max(1.0),
                "q5 row {r}: {g} vs {want}"
            );
        }
        let packed = PackedQ8::pack(bytes_of(&w8), rows, n).unwrap();
        let dy = q8_0_scales(bytes_of(&aq));
        let got = packed.dot4(0, bytes_of(&aq), &dy);
        for (r, g) in got.iter().enumerate() {
            let want = BlockQ8_0::vec_dot_unopt(n, &w8[r * nb..(r + 1) * nb], &aq);
            assert!(
                (g - want).abs() <= 1e-3 * want.abs().max(1.0),
                "packed row {r}: {g} vs {want}"
            );
        }
        let dot4 = dot4_for::<BlockQ8_0>().expect("an AVX2 machine");
        let got = dot4(n, std::array::from_fn(|r| &w8[r * nb..(r + 1) * nb]), &aq);
        for (r, g) in got.iter().enumerate() {
            let want = BlockQ8_0::vec_dot_unopt(n, &w8[r * nb..(r + 1) * nb], &aq);
            assert!(
                (g - want).abs() <= 1e-3 * want.abs().max(1.0),
                "q8 row {r}: {g} vs {want}"
            );
        }
    }
}
