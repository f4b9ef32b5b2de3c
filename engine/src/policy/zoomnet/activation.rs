//! ZoomNet's nonlinearities, with a one-pass backward on the CPU.
//!
//! candle builds the gradient of a ReLU in four passes over the tensor
//! (zeros, compare, cast, multiply) and that of a GELU in about fourteen,
//! two of them `powf`; on ZoomNet's per-pixel layer (16 global views of
//! 96 × 96 pixels × 32 units per minibatch) and the reader's windows, those
//! passes and `powf` led a profile of the update on the 2-core CPU
//! (BENCHMARKS.md, "Activations with a one-pass backward"). Here the forward value is
//! candle's own formula, element for element, and the backward pass is one
//! pass that multiplies the incoming gradient by the derivative, on candle's
//! worker threads. Other devices use candle's ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Error, Layout, Result, Shape, Tensor};
use serde::{Deserialize, Serialize};

/// A nonlinearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// GELU, tanh approximation (`torch.nn.functional.gelu(x, approximate="tanh")`).
    #[default]
    Gelu,
}

/// `x.act(f)` for `f.apply(&x)`, to chain after a layer.
pub(crate) trait Activate {
    /// The activation `f` of this tensor.
    fn act(&self, f: Activation) -> Result<Tensor>;
}

impl Activate for Tensor {
    fn act(&self, f: Activation) -> Result<Tensor> {
        f.apply(self)
    }
}

/// √(2/π), the literal candle rounds to f32.
#[allow(clippy::excessive_precision)]
const SQRT_TWO_OVER_PI: f32 = 0.797_884_560_802_865_355_879_892_119_868_763_73;
/// GELU's cubic coefficient.
const CUBIC: f32 = 0.044715;
/// Elements per task on candle's workers: below this a split costs more than it saves.
const MIN_LEN: usize = 1 << 14;

impl Activation {
    /// The activation of `x`, differentiable.
    pub(crate) fn apply(self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
            return match self {
                Self::Relu => x.relu(),
                Self::Gelu => x.gelu(),
            };
        }
        x.contiguous()?.apply_op1(Forward(self))
    }

    /// f(x), element for element as candle's CPU kernel computes it.
    #[inline]
    fn value(self, x: f32) -> f32 {
        match self {
            Self::Relu => x.max(0.0),
            Self::Gelu => 0.5 * x * (1.0 + f32::tanh(SQRT_TWO_OVER_PI * x * (1.0 + CUBIC * x * x))),
        }
    }

    /// f′(x), with candle's convention for ReLU at 0 (slope 1).
    #[inline]
    fn slope(self, x: f32) -> f32 {
        match self {
            Self::Relu => f32::from(u8::from(x >= 0.0)),
            Self::Gelu => {
                let x2 = x * x;
                let t = f32::tanh(SQRT_TWO_OVER_PI * x * (1.0 + CUBIC * x2));
                0.5 * (1.0 + t)
                    + 0.5 * x * (1.0 - t * t) * SQRT_TWO_OVER_PI * (1.0 + 3.0 * CUBIC * x2)
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Gelu => "gelu",
        }
    }
}

/// Runs `f(offset, chunk)` over `MIN_LEN`-element chunks of `y`, on
/// candle's own worker threads (rayon's would compete with candle's
/// spinning workers for the same cores).
fn each_chunk(y: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    let parts: Vec<std::sync::Mutex<&mut [f32]>> =
        y.chunks_mut(MIN_LEN).map(std::sync::Mutex::new).collect();
    candle_core::utils::barrier_pool().execute_chunked(parts.len(), |range| {
        for i in range {
            // Each chunk is visited once: the lock is never contended.
            if let Ok(mut out) = parts[i].lock() {
                f(i * MIN_LEN, &mut out);
            }
        }
    });
}

/// The contiguous f32 values of a CPU tensor.
fn values<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let v = s.as_slice::<f32>()?;
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| Error::Msg(format!("{op}: the input must be contiguous")))?;
    Ok(&v[a..b])
}

/// The forward op: f(x), whose backward is [`Backward`].
struct Forward(Activation);

impl CustomOp1 for Forward {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let f = self.0;
        let x = values(s, l, f.name())?;
        let mut y = vec![0f32; x.len()];
        each_chunk(&mut y, |off, out| {
            for (o, &x) in out.iter_mut().zip(&x[off..]) {
                *o = f.value(x);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = arg.apply_op2_no_bwd(&grad.contiguous()?, &Backward(self.0))?;
        Ok(Some(g))
    }
}

/// `grad · f′(x)` in one pass: (x, grad) → the gradient of x.
struct Backward(Activation);

impl CustomOp2 for Backward {
    fn name(&self) -> &'static str {
        match self.0 {
            Activation::Relu => "relu-backward",
            Activation::Gelu => "gelu-backward",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let f = self.0;
        let (x, g) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        if x.len() != g.len() {
            return Err(Error::Msg(format!(
                "{}: {} inputs against {} gradients",
                self.name(),
                x.len(),
                g.len()
            )));
        }
        let mut y = vec![0f32; x.len()];
        each_chunk(&mut y, |off, out| {
            for ((o, &x), &g) in out.iter_mut().zip(&x[off..]).zip(&g[off..]) {
                *o = g * f.slope(x);
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Values around both kinks and far out, with exact zeros.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (-400..=400).map(|i| i as f32 / 50.0).collect();
        v.extend([0.0, -0.0, 1e-7, -1e-7, 30.0, -30.0]);
        v
    }

    #[test]
    fn forward_values_are_candles_bit_for_bit() -> Result<()> {
        let x = Tensor::new(inputs(), &Device::Cpu)?;
        for (act, reference) in [(Activation::Relu, x.relu()?), (Activation::Gelu, x.gelu()?)] {
            let ours = act.apply(&x)?.to_vec1::<f32>()?;
            let theirs = reference.to_vec1::<f32>()?;
            for (a, b) in ours.iter().zip(&theirs) {
                assert_eq!(a.to_bits(), b.to_bits(), "{act:?}: {a} against {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn gradients_match_candles_and_finite_differences() -> Result<()> {
        let xs = inputs();
        let upstream: Vec<f32> = (0..xs.len())
            .map(|i| ((i % 7) as f32 - 3.0) / 2.0)
            .collect();
        for act in [Activation::Relu, Activation::Gelu] {
            let grad_of = |ours: bool| -> Result<Vec<f32>> {
                let x = Var::new(xs.clone(), &Device::Cpu)?;
                let y = if ours {
                    act.apply(x.as_tensor())?
                } else if act == Activation::Relu {
                    x.relu()?
                } else {
                    x.gelu()?
                };
                let loss = (y * Tensor::new(upstream.clone(), &Device::Cpu)?)?.sum_all()?;
                loss.backward()?
                    .get(x.as_tensor())
                    .expect("x has a gradient")
                    .to_vec1::<f32>()
            };
            let (ours, theirs) = (grad_of(true)?, grad_of(false)?);
            for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                // candle rounds its constants to six digits.
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{act:?} at {}: {a} against {b}",
                    xs[i]
                );
            }
            // Away from ReLU's kink, the slope is the difference quotient.
            for &x in &[-2.5f32, -0.7, 0.3, 1.9] {
                let h = 1e-3f32;
                let fd =
                    ((act.value(x + h) as f64 - act.value(x - h) as f64) / (2.0 * h as f64)) as f32;
                assert!(
                    (act.slope(x) - fd).abs() < 2e-3,
                    "{act:?} at {x}: {} against {fd}",
                    act.slope(x)
                );
            }
        }
        Ok(())
    }

    #[test]
    fn a_transposed_input_is_made_contiguous_first() -> Result<()> {
        let x = Tensor::new(&[[-1f32, 2.0, 3.0], [4.0, -5.0, 0.5]], &Device::Cpu)?.t()?;
        let y = Activation::Gelu.apply(&x)?;
        assert_eq!(y.to_vec2::<f32>()?, x.gelu()?.to_vec2::<f32>()?);
        Ok(())
    }
}
