//! A weight matrix kept in its file's (quantized) encoding, and the matrix products over it.
//!
//! Two strategies, picked by the number of token rows `m`:
//! - few rows (decoding): the activations are quantized once to the weight's dot-product type and
//!   every output row is one integer dot product (candle's SIMD `vec_dot` kernels), threads split
//!   the output rows — memory-bound, so reading the compact encoding is what matters;
//! - many rows (prefill, scoring): threads take panels of output rows, dequantize each panel to
//!   f32 once and multiply it with all `m` rows by a cache-blocked GEMM — compute-bound, so the
//!   dequantization cost is shared by every token of the prompt. A matrix packed for
//!   decoding (the output layer, whose logits are wanted for a few rows only) keeps the
//!   dot-product path at any `m`.
//!
//! Both paths see the same activations: the GEMM path rounds them through the dot-product
//! type first (as llama.cpp does everywhere), so the two differ only by summation order.

use super::quant::{bytes_of, PackedQ8};
use super::team;
use crate::error::{Error, Result};
use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, GgmlType,
};
use candle_core::quantized::GgmlDType;
use gemm::{gemm, Parallelism};
use memmap2::Mmap;
use std::ops::Range;
use std::sync::Arc;

/// Up to this many token rows take the dot-product path.
pub(crate) const DOT_MAX_ROWS: usize = 4;
/// Output rows per dequantized panel of the GEMM path.
const PANEL_ROWS: usize = 64;
/// Output rows per task of the dot-product path.
const DOT_CHUNK: usize = 64;

/// Runs `$body` with `$T` bound to the block type of `$dtype`.
macro_rules! with_block_type {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            GgmlDType::F32 => {
                type $T = f32;
                $body
            }
            GgmlDType::F16 => {
                type $T = half::f16;
                $body
            }
            GgmlDType::BF16 => {
                type $T = half::bf16;
                $body
            }
            GgmlDType::Q4_0 => {
                type $T = BlockQ4_0;
                $body
            }
            GgmlDType::Q4_1 => {
                type $T = BlockQ4_1;
                $body
            }
            GgmlDType::Q5_0 => {
                type $T = BlockQ5_0;
                $body
            }
            GgmlDType::Q5_1 => {
                type $T = BlockQ5_1;
                $body
            }
            GgmlDType::Q8_0 => {
                type $T = BlockQ8_0;
                $body
            }
            GgmlDType::Q2K => {
                type $T = BlockQ2K;
                $body
            }
            GgmlDType::Q3K => {
                type $T = BlockQ3K;
                $body
            }
            GgmlDType::Q4K => {
                type $T = BlockQ4K;
                $body
            }
            GgmlDType::Q5K => {
                type $T = BlockQ5K;
                $body
            }
            GgmlDType::Q6K => {
                type $T = BlockQ6K;
                $body
            }
            GgmlDType::Q8_1 | GgmlDType::Q8K => {
                unreachable!("checked in Weight::new")
            }
        }
    };
}

/// Bytes of a mapped file (a GGUF or safetensors checkpoint, or an owned buffer).
#[derive(Clone)]
pub enum Storage {
    Mapped(Arc<Mmap>),
    Owned(Arc<Vec<u8>>),
    /// Values computed at load time (e.g. converted norms), always aligned for f32.
    Floats(Arc<Vec<f32>>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
            Storage::Floats(v) => bytes_of(v.as_slice()),
        }
    }
}

/// A `[rows, cols]` weight matrix in its stored encoding; `y = x · Wᵀ` maps `cols` inputs to
/// `rows` outputs.
#[derive(Clone)]
pub struct Weight {
    dtype: GgmlDType,
    rows: usize,
    cols: usize,
    storage: Storage,
    range: Range<usize>,
    /// A regrouped copy for decoding (see [`Weight::pack_for_decoding`]).
    packed: Option<Arc<PackedQ8>>,
}

impl Weight {
    pub(crate) fn new(
        name: &str,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        map: Arc<Mmap>,
        range: Range<usize>,
    ) -> Result<Self> {
        Self::from_storage(name, dtype, rows, cols, Storage::Mapped(map), range)
    }

    pub(crate) fn from_storage(
        name: &str,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        storage: Storage,
        range: Range<usize>,
    ) -> Result<Self> {
        if matches!(dtype, GgmlDType::Q8_1 | GgmlDType::Q8K) {
            return Err(Error::Model(format!(
                "tensor {name}: {dtype:?} is an activation format, not a weight format"
            )));
        }
        let align = with_block_type!(dtype, T => std::mem::align_of::<T>());
        let ptr = storage.bytes()[range.clone()].as_ptr() as usize;
        if !ptr.is_multiple_of(align)
            || range.len() != rows * cols / dtype.block_size() * dtype.type_size()
        {
            return Err(Error::Model(format!(
                "tensor {name}: data is misaligned or has the wrong length for {rows}×{cols} {dtype:?}"
            )));
        }
        Ok(Weight {
            dtype,
            rows,
            cols,
            storage,
            range,
            packed: None,
        })
    }

    /// An F32 matrix over values computed at load time.
    pub(crate) fn from_f32(name: &str, rows: usize, cols: usize, values: Vec<f32>) -> Result<Self> {
        let len = values.len() * 4;
        Self::from_storage(
            name,
            GgmlDType::F32,
            rows,
            cols,
            Storage::Floats(Arc::new(values)),
            0..len,
        )
    }

    /// Keeps a copy of a Q8_0 matrix regrouped four rows at a time, which decoding reads as
    /// one stream (worth its memory for the output layer, read whole at every step). Every
    /// product then uses it, whatever its number of rows: the output layer is only ever
    /// multiplied with the few rows whose logits are wanted (a prompt's last position, a
    /// batch of scored continuations), where integer dot products beat dequantizing 262k
    /// rows for the GEMM (≈ 20 % of an eval run). Other formats are left as they are.
    pub fn pack_for_decoding(&mut self) {
        if self.dtype == GgmlDType::Q8_0 {
            let raw = &self.storage.bytes()[self.range.clone()];
            self.packed = PackedQ8::pack(raw, self.rows, self.cols).map(Arc::new);
        }
    }

    /// Drops the copy [`Weight::pack_for_decoding`] made (when the matrix is no longer
    /// multiplied on the host).
    pub fn drop_packed(&mut self) {
        self.packed = None;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The stored bytes (GGUF block layout), e.g. to upload them to a device.
    pub fn raw(&self) -> &[u8] {
        &self.storage.bytes()[self.range.clone()]
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    fn blocks<T: GgmlType>(&self) -> &[T] {
        let bytes = &self.storage.bytes()[self.range.clone()];
        // SAFETY: `new` checked the alignment and that the byte length is a whole number of
        // `T` blocks (`type_size` is `size_of::<T>()`); every bit pattern is a valid block
        // (integers and IEEE halves/floats).
        unsafe {
            std::slice::from_raw_parts(
                bytes.as_ptr() as *const T,
                bytes.len() / std::mem::size_of::<T>(),
            )
        }
    }

    /// Row `r`, dequantized into `out` (`cols` values).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        with_block_type!(self.dtype, T => {
            let per_row = self.cols / T::BLCK_SIZE;
            T::to_float(&self.blocks::<T>()[r * per_row..(r + 1) * per_row], &mut out[..self.cols]);
        })
    }

    /// The whole matrix as f32 (for small tensors such as norm weights).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        with_block_type!(self.dtype, T => T::to_float(self.blocks::<T>(), &mut out));
        out
    }

    /// `out[m × rows] = x[m × cols] · Wᵀ`, on the current [`team`].
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        if self.takes_dot_path(m) {
            return run_dot_jobs(&[self.dot_job(x, m, out)]);
        }
        self.check_shapes(x, m, out);
        if let Some(packed) = &self.packed {
            return matmul_packed(packed, x, m, self.cols, self.rows, out);
        }
        with_block_type!(self.dtype, T => {
            matmul_panels::<T>(self.blocks::<T>(), x, m, self.cols, self.rows, out)
        })
    }

    fn check_shapes(&self, x: &[f32], m: usize, out: &[f32]) {
        assert_eq!(x.len(), m * self.cols, "matmul input shape");
        assert!(out.len() >= m * self.rows, "matmul output shape");
    }

    /// Whether `m` rows go through one integer dot product per output row (see the module doc).
    fn takes_dot_path(&self, m: usize) -> bool {
        m <= DOT_MAX_ROWS && self.packed.is_none()
    }

    /// This matrix's share of a dot-product pass over `m` rows of `x` into `out`.
    fn dot_job<'a>(&'a self, x: &[f32], m: usize, out: &mut [f32]) -> Box<dyn DotChunks + 'a> {
        self.check_shapes(x, m, out);
        with_block_type!(self.dtype, T => {
            Box::new(DotJob::new(self.blocks::<T>(), x, self.cols, self.rows, out))
        })
    }
}

/// `outs[i] = x · weights[i]ᵀ` for matrices that read the same input (a layer's q, k and v;
/// gate and up). Decoding runs all their dot products in one parallel pass, so a step
/// dispatches its team once per group rather than once per matrix.
pub fn matmul_many(weights: &[&Weight], x: &[f32], m: usize, outs: &mut [&mut [f32]]) {
    assert_eq!(weights.len(), outs.len(), "one output per matrix");
    if !weights.iter().all(|w| w.takes_dot_path(m)) {
        for (w, out) in weights.iter().zip(outs.iter_mut()) {
            w.matmul(x, m, out);
        }
        return;
    }
    let jobs: Vec<_> = weights
        .iter()
        .zip(outs.iter_mut())
        .map(|(w, out)| w.dot_job(x, m, out))
        .collect();
    run_dot_jobs(&jobs);
}

/// A raw pointer that tasks writing disjoint elements may share.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub(super) *mut f32);
// SAFETY: used only where each task writes its own disjoint set of elements.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(super) fn ptr(self) -> *mut f32 {
        self.0
    }

    /// `len` elements from `start`, as a slice.
    ///
    /// # Safety
    /// The range lies inside the buffer, which outlives the slice, and no other task touches it.
    pub(super) unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

/// One matrix's share of a dot-product pass: the activations quantized to its dot type, and
/// the product of rows `DOT_CHUNK·c..` for any chunk `c`.
trait DotChunks: Sync {
    fn chunks(&self) -> usize;
    fn run(&self, c: usize);
}

struct DotJob<'a, T: GgmlType> {
    w: &'a [T],
    xq: Vec<T::VecDotType>,
    k: usize,
    n: usize,
    dst: SharedMut,
    dot: super::quant::DotFn<T>,
    dot4: Option<super::quant::Dot4Fn<T>>,
}

impl<'a, T: GgmlType> DotJob<'a, T> {
    fn new(w: &'a [T], x: &[f32], k: usize, n: usize, out: &mut [f32]) -> Self {
        let kb = k / T::BLCK_SIZE;
        let m = x.len() / k;
        let mut xq = vec![T::VecDotType::zeros(); m * kb];
        for (row, q) in x.chunks_exact(k).zip(xq.chunks_exact_mut(kb)) {
            T::VecDotType::from_float(row, q);
        }
        DotJob {
            w,
            xq,
            k,
            n,
            dst: SharedMut(out.as_mut_ptr()),
            dot: super::quant::dot_for::<T>(),
            dot4: super::quant::dot4_for::<T>(),
        }
    }
}

impl<T: GgmlType> DotChunks for DotJob<'_, T> {
    fn chunks(&self) -> usize {
        self.n.div_ceil(DOT_CHUNK)
    }

    fn run(&self, c: usize) {
        let (k, n, dst) = (self.k, self.n, self.dst);
        let kb = k / T::BLCK_SIZE;
        let row = |j: usize| &self.w[j * kb..(j + 1) * kb];
        let (start, end) = (c * DOT_CHUNK, ((c + 1) * DOT_CHUNK).min(n));
        let mut j = start;
        if let Some(dot4) = self.dot4 {
            while j + 4 <= end {
                for (i, q) in self.xq.chunks_exact(kb).enumerate() {
                    let v = dot4(k, [row(j), row(j + 1), row(j + 2), row(j + 3)], q);
                    for (r, v) in v.into_iter().enumerate() {
                        // SAFETY: elements (i, j..j+4) belong to this task's row chunk c.
                        unsafe { *dst.ptr().add(i * n + j + r) = v };
                    }
                }
                j += 4;
            }
        }
        for j in j..end {
            super::quant::prefetch_rows_ahead(
                row(j).as_ptr().cast(),
                std::mem::size_of_val(row(j)),
            );
            for (i, q) in self.xq.chunks_exact(kb).enumerate() {
                let v = (self.dot)(k, row(j), q);
                // SAFETY: element (i, j) is written by the one task that owns row chunk c.
                unsafe { *dst.ptr().add(i * n + j) = v };
            }
        }
    }
}

/// Runs every chunk of every job in one parallel pass.
fn run_dot_jobs(jobs: &[Box<dyn DotChunks + '_>]) {
    let mut starts = Vec::with_capacity(jobs.len());
    let mut total = 0;
    for job in jobs {
        starts.push(total);
        total += job.chunks();
    }
    team::for_each(total, |c| {
        let i = starts.partition_point(|&s| s <= c) - 1;
        jobs[i].run(c - starts[i]);
    });
}

fn matmul_packed(packed: &PackedQ8, x: &[f32], m: usize, k: usize, n: usize, out: &mut [f32]) {
    let kb = k / BlockQ8_0::BLCK_SIZE;
    let mut xq = vec![BlockQ8_0::zeros(); m * kb];
    for (row, q) in x.chunks_exact(k).zip(xq.chunks_exact_mut(kb)) {
        BlockQ8_0::from_float(row, q);
    }
    let bytes = bytes_of(&xq);
    let row_bytes = bytes.len() / m;
    let scales = super::quant::q8_0_scales(bytes);
    let dst = SharedMut(out.as_mut_ptr());
    let groups_per_task = DOT_CHUNK / 4;
    team::for_each(packed.groups().div_ceil(groups_per_task), |c| {
        let end = ((c + 1) * groups_per_task).min(packed.groups());
        for g in c * groups_per_task..end {
            for i in 0..m {
                let v = packed.dot4(
                    g,
                    &bytes[i * row_bytes..(i + 1) * row_bytes],
                    &scales[i * kb..(i + 1) * kb],
                );
                for (r, v) in v.into_iter().enumerate() {
                    // SAFETY: rows 4g..4g+4 belong to this task's groups.
                    unsafe { *dst.ptr().add(i * n + 4 * g + r) = v };
                }
            }
        }
    });
}

fn matmul_panels<T: GgmlType>(w: &[T], x: &[f32], m: usize, k: usize, n: usize, out: &mut [f32]) {
    let kb = k / T::BLCK_SIZE;
    let mut rounded = vec![0f32; m * k];
    let rows = SharedMut(rounded.as_mut_ptr());
    team::for_each_init(
        m,
        || vec![T::VecDotType::zeros(); kb],
        |q, i| {
            let src = &x[i * k..(i + 1) * k];
            // SAFETY: task i alone writes row i of `rounded`.
            let dst = unsafe { rows.slice(i * k, k) };
            let dtype = <T::VecDotType as GgmlType>::DTYPE;
            if !super::quant::round_trip_q8(dtype, src, dst) {
                T::VecDotType::from_float(src, q);
                T::VecDotType::to_float(q, dst);
            }
        },
    );
    let x = &rounded;
    let dst = SharedMut(out.as_mut_ptr());
    team::for_each_init(
        n.div_ceil(PANEL_ROWS),
        Vec::new,
        |panel: &mut Vec<f32>, p| {
            let j0 = p * PANEL_ROWS;
            let nb = PANEL_ROWS.min(n - j0);
            panel.resize(nb * k, 0.0);
            super::quant::dequantize(&w[j0 * kb..(j0 + nb) * kb], panel);
            // SAFETY: lhs is m×k (row stride k), the panel is nb×k read transposed (k×nb with
            // column stride k), and the destination block is columns j0..j0+nb of the m×n
            // output (row stride n), which no other task writes.
            unsafe {
                gemm(
                    m,
                    nb,
                    k,
                    dst.ptr().add(j0),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    panel.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::GgmlType;

    /// A weight of `dtype` built from known values, and its exact f32 values to compare with.
    fn weight_of(dtype: GgmlDType, rows: usize, cols: usize) -> (Weight, Vec<f32>) {
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| (((i * 7919) % 255) as f32 - 127.0) / 64.0)
            .collect();
        let (bytes, dequant) = with_block_type!(dtype, T => {
            let mut blocks = vec![T::zeros(); rows * cols / T::BLCK_SIZE];
            T::from_float(&values, &mut blocks);
            let mut dequant = vec![0f32; rows * cols];
            T::to_float(&blocks, &mut dequant);
            (bytes_of(&blocks).to_vec(), dequant)
        });
        let len = bytes.len();
        let w = Weight::from_storage(
            "test",
            dtype,
            rows,
            cols,
            Storage::Owned(Arc::new(bytes)),
            0..len,
        )
        .unwrap();
        (w, dequant)
    }

    fn q8_weight(rows: usize, cols: usize) -> (Weight, Vec<f32>) {
        weight_of(GgmlDType::Q8_0, rows, cols)
    }

    /// Every format a checkpoint may store, through both products (the dot path for a few
    /// rows, the GEMM for more), against the f32 product of its own dequantized values; and
    /// one row read back as those values.
    #[test]
    fn every_weight_format_multiplies_as_its_values() {
        use GgmlDType::*;
        // 38 rows: the four-row kernels leave two over
        let (rows, cols) = (38, 512);
        for dtype in [
            F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K,
        ] {
            let (w, dense) = weight_of(dtype, rows, cols);
            let mut row = vec![0f32; cols];
            w.row_into(5, &mut row);
            assert_eq!(row, dense[5 * cols..6 * cols], "{dtype:?}");
            for m in [1, 3, DOT_MAX_ROWS + 1] {
                let x: Vec<f32> = (0..m * cols)
                    .map(|i| ((i % 13) as f32 - 6.0) / 7.0)
                    .collect();
                let mut out = vec![0f32; m * rows];
                w.matmul(&x, m, &mut out);
                for i in 0..m {
                    for j in 0..rows {
                        let terms = (0..cols).map(|c| x[i * cols + c] * dense[j * cols + c]);
                        let exact: f32 = terms.clone().sum();
                        let magnitude: f32 = terms.map(f32::abs).sum();
                        let got = out[i * rows + j];
                        // activations are rounded to 8 bits on the way (as in llama.cpp),
                        // which costs up to 0.0004 of the terms' magnitude here
                        assert!(
                            (got - exact).abs() < 0.002 * magnitude,
                            "{dtype:?} m={m} ({i},{j}): {got} vs {exact}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn one_pass_over_several_matrices_equals_one_product_each() {
        let cols = 96;
        let (a, _) = q8_weight(130, cols);
        let (b, _) = q8_weight(36, cols);
        for m in [1, 3, DOT_MAX_ROWS + 1] {
            let x: Vec<f32> = (0..m * cols)
                .map(|i| ((i % 11) as f32 - 5.0) / 3.0)
                .collect();
            let (mut fa, mut fb) = (vec![0f32; m * 130], vec![0f32; m * 36]);
            matmul_many(&[&a, &b], &x, m, &mut [&mut fa, &mut fb]);
            let (mut sa, mut sb) = (vec![0f32; m * 130], vec![0f32; m * 36]);
            a.matmul(&x, m, &mut sa);
            b.matmul(&x, m, &mut sb);
            assert_eq!(fa, sa, "m={m}");
            assert_eq!(fb, sb, "m={m}");
        }
    }
}
