//! Policies: the [`Policy`] trait, the built-in [`zoomnet::ZoomNet`], and the
//! device helper.

pub mod qwen_vl;
pub mod zoomnet;

pub use zoomnet::{Choice, StepObs};

use crate::env::{Action, EpisodeBatch};
use crate::geometry::BBox;
use crate::rng::{FNV_OFFSET, SplitMix64, fnv1a};
use candle_core::{Device, Result as TResult, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::str::FromStr;

/// A trainable zoom policy: what the trainer, the evaluator and the studio
/// need of one. [`zoomnet::ZoomNet`] is the built-in implementation.
///
/// An action is expressed as a [`Choice`] (the policy's discrete decision)
/// and decoded into an environment [`Action`]; log-probabilities are of the
/// whole choice.
pub trait Policy: Send {
    /// Every trainable parameter with its name, sorted by name.
    fn named_vars(&self) -> Vec<(String, Var)>;
    /// The parameters as named tensors (for checkpoints).
    fn tensors(&self) -> TResult<HashMap<String, Tensor>>;
    /// Loads parameters written by [`Policy::tensors`]; every parameter must
    /// be present with its shape.
    fn load_tensors(&self, t: &HashMap<String, Tensor>) -> TResult<()>;
    /// The answer classes.
    fn answers(&self) -> &[String];
    /// The answer class of a text, if it is one.
    fn answer_class(&self, a: &str) -> Option<usize>;
    /// The device the parameters live on.
    fn device(&self) -> &Device;
    /// Per-rollout context from the global views (`n · view² · 3` bytes):
    /// computed once per distinct sample, shared by its episodes and steps.
    fn encode_globals(&self, globals: &[u8], n: usize) -> TResult<Tensor>;
    /// Chooses one action for each `active` episode of `batch`. `context`
    /// comes from [`Policy::encode_globals`], `of_episode` maps each episode
    /// to its row there, `questions` are the question encodings of all
    /// episodes and `sizes` the image sizes by sample. With `rng` the actions
    /// are sampled; without, the most likely action is taken. Returns the
    /// actions, the choices and their log-probabilities.
    #[allow(clippy::too_many_arguments)]
    fn act(
        &self,
        batch: &EpisodeBatch,
        context: &Tensor,
        of_episode: &[usize],
        questions: &[Vec<f32>],
        sizes: &[(f64, f64)],
        active: &[usize],
        rng: Option<&mut SplitMix64>,
    ) -> TResult<Vec<(Action, Choice, f32)>>;
    /// Log-probabilities `[S]` and entropies `[S]` of the given actions, with
    /// gradients. `globals` holds the global views of the episodes the steps
    /// refer to (`episodes · view² · 3` bytes).
    fn evaluate(
        &self,
        globals: &[u8],
        episodes: usize,
        steps: &[StepObs],
    ) -> TResult<(Tensor, Tensor)>;
    /// The environment action of a choice on a `w × h` image.
    fn decode(&self, c: &Choice, w: f64, h: f64) -> Action;
    /// The choice whose zoom comes closest to box `b` (the expert action of
    /// the imitation warm-up).
    fn encode_box(&self, b: &BBox, w: f64, h: f64) -> Choice;
}

/// Where tensors live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU (default).
    #[default]
    Cpu,
    /// The first NVIDIA GPU (needs the `cuda` cargo feature).
    Cuda,
}

impl FromStr for DeviceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            o => Err(format!("unknown device `{o}` (expected cpu or cuda)")),
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        })
    }
}

/// The one place that picks a device: CUDA when built with the `cuda`
/// feature and asked for, else the CPU. No other code branches on the device.
pub fn device(kind: DeviceKind) -> Result<Device, String> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Device::new_cuda(0).map_err(|e| format!("cannot open CUDA device 0: {e}")),
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda => Err("this `virl` was built without the `cuda` feature; rebuild with `cargo build --release --features cuda` (see shared/GPU.md)".into()),
    }
}

/// Hashed bag-of-words question encoding of `dim` values: half the buckets
/// count words, half count (word, position) pairs, so that word order
/// ("red … blue" vs "blue … red") is visible. FNV-1a, fixed on every platform.
pub fn encode_question(q: &str, dim: usize) -> Vec<f32> {
    let half = (dim / 2).max(1);
    let mut v = vec![0f32; dim.max(2)];
    let fnv = |bytes: &[u8], salt: u64| fnv1a(FNV_OFFSET ^ salt, bytes);
    for (pos, w) in q
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        v[(fnv(w.as_bytes(), 0) % half as u64) as usize] += 1.0;
        v[half + (fnv(w.as_bytes(), 1 + pos.min(31) as u64) % half as u64) as usize] += 1.0;
    }
    v
}

/// The per-step statistics of a policy update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UpdateStats {
    /// Mean policy loss.
    pub loss: f64,
    /// Mean entropy of the action distribution.
    pub entropy: f64,
    /// Fraction of actions whose ratio was clipped.
    pub clip_frac: f64,
    /// Approximate KL(old ‖ new), `mean((r − 1) − log r)`.
    pub approx_kl: f64,
    /// Gradient norm before clipping (last minibatch).
    pub grad_norm: f64,
    /// Imitation only: mean negative log-likelihood of the answer actions.
    pub answer_nll: Option<f64>,
    /// Imitation only: mean negative log-likelihood of the zoom actions.
    pub zoom_nll: Option<f64>,
}
