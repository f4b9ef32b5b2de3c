//! A linear layer with a fast path for a few rows on the CPU (decode steps).
//!
//! candle's gemm multiplies a `1 × k` row by a `k × n` matrix at about
//! 16 GB/s of weights on the 2-core development VM, PyTorch's at 44 GB/s
//! (`engine/examples` history, BENCHMARKS.md), and decoding streams every
//! weight once per token. For up to 16 rows on the CPU in f32 this computes
//! each output as dot products of a contiguous weight row with every input
//! row (the weight row read once), weight rows split over rayon's threads;
//! everything else goes to candle's matmul.

use candle_core::{CpuStorage, CustomOp2, D, DType, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

/// `y = x Wᵀ + b` with W `[out, in]` as checkpoints store it.
#[derive(Clone, Debug)]
pub struct Lin {
    w: Tensor,
    b: Option<Tensor>,
    inner: candle_nn::Linear,
}

impl Lin {
    /// Wraps a candle linear layer.
    pub fn new(l: candle_nn::Linear) -> Self {
        Self {
            w: l.weight().clone(),
            b: l.bias().cloned(),
            inner: l,
        }
    }
}

impl Module for Lin {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let k = x.dim(D::Minus1)?;
        let rows = x.elem_count() / k.max(1);
        if rows <= MAX_ROWS
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.w.dtype() == DType::F32
            && self.w.is_contiguous()
        {
            let y = x.contiguous()?.apply_op2_no_bwd(&self.w, &MatVec)?;
            match &self.b {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            }
        } else {
            self.inner.forward(x)
        }
    }
}

/// Up to this many rows take the streaming path (a batched decode step).
const MAX_ROWS: usize = 16;

struct MatVec;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums: the compiler vectorises this, and the loop
    // is bound by memory bandwidth, not arithmetic (explicit AVX2/FMA
    // through pulp measured no faster on the 2B shapes).
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

impl CustomOp2 for MatVec {
    fn name(&self) -> &'static str {
        "matvec-f32"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(xs), CpuStorage::F32(ws)) = (s1, s2) else {
            candle_core::bail!("matvec-f32: f32 storage expected");
        };
        let (out, k) = l2.shape().dims2()?;
        let n = l1.shape().elem_count() / k.max(1);
        if !l1.is_contiguous() || !l2.is_contiguous() || n * k != l1.shape().elem_count() {
            candle_core::bail!(
                "matvec-f32: contiguous rows of {k} values and a contiguous weight expected"
            );
        }
        let x = &xs[l1.start_offset()..l1.start_offset() + n * k];
        let w = &ws[l2.start_offset()..l2.start_offset() + out * k];
        // y[b, j] = w_j · x_b: each weight row is read once for all rows of x.
        let mut yt = vec![0f32; out * n];
        const ROWS: usize = 64;
        yt.par_chunks_mut(ROWS * n).enumerate().for_each(|(c, ys)| {
            for (jj, yj) in ys.chunks_mut(n).enumerate() {
                let r = (c * ROWS + jj) * k;
                let wr = &w[r..r + k];
                for (b, y) in yj.iter_mut().enumerate() {
                    *y = dot(wr, &x[b * k..(b + 1) * k]);
                }
            }
        });
        let y = if n == 1 {
            yt
        } else {
            let mut y = vec![0f32; out * n];
            for j in 0..out {
                for b in 0..n {
                    y[b * out + j] = yt[j * n + b];
                }
            }
            y
        };
        let mut dims = l1.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = out;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>())
            .expect("difference")
    }

    #[test]
    fn few_rows_equal_candle_matmul() {
        let d = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (130, 45), &d).expect("w");
        let x = Tensor::randn(0f32, 1.0, (3, 45), &d).expect("x");
        let l = Lin::new(candle_nn::Linear::new(w.clone(), None));
        let fast = l.forward(&x).expect("fast");
        let slow = x.matmul(&w.t().expect("t")).expect("slow");
        assert_eq!(fast.dims(), &[3, 130]);
        let err = max_diff(&fast, &slow);
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn one_row_equals_candle_matmul() {
        let d = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (300, 77), &d).expect("w");
        let b = Tensor::randn(0f32, 1.0, 300, &d).expect("b");
        let x = Tensor::randn(0f32, 1.0, (1, 1, 77), &d).expect("x");
        let l = Lin::new(candle_nn::Linear::new(w.clone(), Some(b.clone())));
        let fast = l.forward(&x).expect("fast");
        let slow = candle_nn::Linear::new(w, Some(b))
            .forward(&x)
            .expect("slow");
        assert_eq!(fast.dims(), &[1, 1, 300]);
        let err = max_diff(&fast, &slow);
        assert!(err < 1e-4, "{err}");
    }
}
