//! AdamW with its state in the open, so that checkpoints hold the optimizer
//! too and a resumed run continues bit-exactly (candle-nn's `AdamW` keeps its
//! moments private).
//!
//! `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `θ ← θ·(1 − lr·wd) − lr·(m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)`
//! (decoupled weight decay, as `torch.optim.AdamW`), after clipping the
//! global gradient norm to `max_grad_norm`.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use std::collections::HashMap;

/// Hyper-parameters of [`AdamW`].
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWParams {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clip (≤ 0: off).
    pub max_grad_norm: f64,
}

/// AdamW over named variables.
pub struct AdamW {
    vars: Vec<(String, Var, Var, Var)>,
    step: u64,
    /// Hyper-parameters (may change between steps).
    pub params: AdamWParams,
}

impl AdamW {
    /// An optimizer over `vars` (name, variable), sorted by name.
    pub fn new(mut named: Vec<(String, Var)>, params: AdamWParams) -> Result<Self> {
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let vars = named
            .into_iter()
            .map(|(n, v)| {
                let m = Var::zeros(v.shape(), v.dtype(), v.device())?;
                let s = Var::zeros(v.shape(), v.dtype(), v.device())?;
                Ok((n, v, m, s))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            vars,
            step: 0,
            params,
        })
    }

    /// Steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Backpropagates `loss` and takes one step; returns the gradient norm
    /// before clipping.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<f64> {
        let grads = loss.backward()?;
        self.step_with(&grads)
    }

    fn step_with(&mut self, grads: &GradStore) -> Result<f64> {
        let p = self.params.clone();
        let mut sq = 0.0f64;
        for (_, v, _, _) in &self.vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        let norm = sq.sqrt();
        let scale = if p.max_grad_norm > 0.0 && norm > p.max_grad_norm {
            p.max_grad_norm / (norm + 1e-12)
        } else {
            1.0
        };
        self.step += 1;
        let bc1 = 1.0 - p.beta1.powi(self.step as i32);
        let bc2 = 1.0 - p.beta2.powi(self.step as i32);
        for (_, v, m, s) in &self.vars {
            let Some(g) = grads.get(v.as_tensor()) else {
                continue;
            };
            let g = g.affine(scale, 0.0)?;
            let m_new = (m.as_tensor().affine(p.beta1, 0.0)? + g.affine(1.0 - p.beta1, 0.0)?)?;
            let s_new =
                (s.as_tensor().affine(p.beta2, 0.0)? + g.sqr()?.affine(1.0 - p.beta2, 0.0)?)?;
            let mhat = m_new.affine(1.0 / bc1, 0.0)?;
            let denom = s_new.affine(1.0 / bc2, 0.0)?.sqrt()?.affine(1.0, p.eps)?;
            let theta = v.as_tensor().affine(1.0 - p.lr * p.weight_decay, 0.0)?;
            let update = (mhat / denom)?.affine(p.lr, 0.0)?;
            v.set(&(theta - update)?)?;
            m.set(&m_new)?;
            s.set(&s_new)?;
        }
        Ok(norm)
    }

    /// The state as named tensors: `adam.m.<var>`, `adam.v.<var>` and `adam.step`.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (n, _, m, s) in &self.vars {
            out.insert(format!("adam.m.{n}"), m.as_tensor().copy()?);
            out.insert(format!("adam.v.{n}"), s.as_tensor().copy()?);
        }
        let dev = self
            .vars
            .first()
            .map(|v| v.1.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        // The step count as two u32 halves (safetensors has no u64 in candle's f32/u32 set).
        let step = Tensor::from_slice(&[(self.step >> 32) as u32, self.step as u32], 2, &dev)?;
        out.insert("adam.step".into(), step);
        Ok(out)
    }

    /// Restores the state written by [`AdamW::state`]. Missing entries are an error.
    pub fn load_state(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        for (n, _, m, s) in &self.vars {
            let get = |k: String| {
                t.get(&k).cloned().ok_or_else(|| {
                    candle_core::Error::Msg(format!("checkpoint lacks optimizer tensor {k}"))
                })
            };
            m.set(&get(format!("adam.m.{n}"))?)?;
            s.set(&get(format!("adam.v.{n}"))?)?;
        }
        let st = t
            .get("adam.step")
            .ok_or_else(|| candle_core::Error::Msg("checkpoint lacks adam.step".into()))?
            .to_vec1::<u32>()?;
        if st.len() != 2 {
            return Err(candle_core::Error::Msg(
                "adam.step must hold 2 values".into(),
            ));
        }
        self.step = ((st[0] as u64) << 32) | st[1] as u64;
        Ok(())
    }
}
