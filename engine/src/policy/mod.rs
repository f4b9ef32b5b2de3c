//! Policies: the [`Policy`] trait, the built-in [`zoomnet::ZoomNet`], and the
//! device helper.

pub mod zoomnet;

use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

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
    let fnv = |bytes: &[u8], salt: u64| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        h
    };
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
}
