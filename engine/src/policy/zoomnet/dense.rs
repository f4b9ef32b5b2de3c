//! A fully connected layer whose backward pass stays in matrix products.
//!
//! `candle_nn::Linear` adds its bias with `broadcast_add`, so the bias
//! gradient is a `sum_keepdim` over the leading dimensions, which candle's CPU
//! backend computes one element at a time with two integer divisions each, on
//! one thread. For ZoomNet's per-pixel and per-patch layers (a 128-episode
//! batch has 524 288 global-view pixels) that reduction took a fifth of an
//! imitation step (BENCHMARKS.md, "ZoomNet against PyTorch"). Here the bias
//! enters as the outer product `1ₙ · bᵀ`, so its gradient is the matrix
//! product `1ₙᵀ · g`, computed by the same GEMM kernels as the weights'.
//!
//! The parameters are `<name>.weight` `[out, in]` and `<name>.bias` `[out]`,
//! as `candle_nn::linear` names them, so checkpoints are unchanged.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `y = x·Wᵀ + b` over the last dimension of `x`.
#[derive(Clone, Debug)]
pub(crate) struct Dense {
    weight: Tensor,
    bias: Tensor,
}

/// A [`Dense`] layer `in_dim → out_dim` with its parameters under `vb`.
pub(crate) fn dense(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Dense> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let init = candle_nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    Ok(Dense {
        weight: vb.get_with_hints((out_dim, in_dim), "weight", init)?,
        bias: vb.get_with_hints(out_dim, "bias", init)?,
    })
}

/// `x·m` over the last dimension of `x` (`m` is `[in, out]`).
/// A 2-D `x` is multiplied as it is: a reshape is a node of the graph
/// whose backward pass costs two passes over the gradient.
fn last_dim_matmul(x: &Tensor, m: &Tensor) -> Result<Tensor> {
    if x.rank() == 2 {
        return x.matmul(m);
    }
    let dims = x.dims().to_vec();
    let (last, lead) = dims
        .split_last()
        .ok_or_else(|| candle_core::Error::Msg("Dense on a scalar".into()))?;
    let rows: usize = lead.iter().product();
    let y = x.reshape((rows, *last))?.matmul(m)?;
    let mut shape = lead.to_vec();
    shape.push(m.dim(1)?);
    y.reshape(shape)
}

impl Dense {
    /// `x·Wᵀ` without the bias, for a consumer that is blind to a constant
    /// shift of its input (a softmax over the rows' outputs).
    pub(crate) fn forward_no_bias(&self, x: &Tensor) -> Result<Tensor> {
        last_dim_matmul(x, &self.weight.t()?)
    }

    /// `y = x·Wᵀ + b` for an input whose last column is all ones (`x` has
    /// `in + 1` columns): one matrix product with `[W | b]`, no addition
    /// over the whole output, forward or backward.
    pub(crate) fn forward_ones_column(&self, x: &Tensor) -> Result<Tensor> {
        let wb = Tensor::cat(&[&self.weight, &self.bias.unsqueeze(1)?], 1)?;
        last_dim_matmul(x, &wb.t()?)
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
        let ones = Tensor::ones((rows, 1), DType::F32, x.device())?;
        let bias = ones.matmul(&self.bias.unsqueeze(0)?)?;
        let y = last_dim_matmul(x, &self.weight.t()?)?;
        let shape = y.dims().to_vec();
        y + bias.reshape(shape)?
    }
}
