//! The Qwen2.5-VL vision tower, after transformers'
//! `Qwen2_5_VisionTransformerPretrainedModel` (5.10.4):
//! - a bias-free Conv3d patch embedding (14 px, 2 frames), done as one
//!   matrix product over the 1 176-value patch rows; no absolute position
//!   embedding, only the 2-D rotary one;
//! - blocks of RMSNorm, attention with biased `qkv`/`proj`, RMSNorm and a
//!   SwiGLU MLP with biases;
//! - windowed attention: patches are permuted into `window_size`-pixel
//!   windows at 2 × 2-merge granularity (`get_vision_window_index`); the
//!   blocks in `fullatt_block_indexes` attend to each whole image instead;
//!   the merger's output is put back in image order;
//! - the merger: RMSNorm → 2 × 2 concatenation → Linear → exact GELU →
//!   Linear.
//!
//! Windows of equal size are attended as one batch (`[heads · windows,
//! len, len]` scores), never through one dense N × N mask, so memory stays
//! linear in the number of patches.

use super::config::VisionConfig;
use super::image::PreparedImage;
use super::vision::{
    VisionTower, activation, attend_spans, patch_rows, rotary_tables, rotated_qkv,
};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, RmsNorm, VarBuilder};

struct Block {
    norm1: RmsNorm,
    norm2: RmsNorm,
    qkv: Linear,
    proj: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// The Qwen2.5-VL vision tower.
pub struct Vision25 {
    cfg: VisionConfig,
    patch_w: Tensor,
    blocks: Vec<Block>,
    ln_q: RmsNorm,
    mlp0: Linear,
    mlp2: Linear,
    device: Device,
    dtype: DType,
}

/// How one batch of images is laid out for the blocks.
#[derive(Debug, PartialEq)]
pub struct WindowPlan {
    /// Merged unit `window_index[j]` (image order) sits at place `j`
    /// (window order), as `get_vision_window_index` returns it.
    pub window_index: Vec<usize>,
    /// `(start, len)` of each window, in patches of the window order.
    pub windows: Vec<(usize, usize)>,
    /// `(start, len)` of each image frame (the full-attention spans).
    pub frames: Vec<(usize, usize)>,
}

/// transformers' `get_vision_window_index` and `get_vision_cu_seqlens`:
/// windows of `window_size / merge / patch` merged units per side, tiled
/// over each frame row by row, clipped at the grid's edge (empty windows
/// dropped).
pub fn window_plan(grids: &[[usize; 3]], merge: usize, window_units: usize) -> WindowPlan {
    let unit = merge * merge;
    let vm = window_units.max(1);
    let mut window_index = Vec::new();
    let mut windows = Vec::new();
    let mut frames = Vec::new();
    let (mut base, mut at) = (0, 0);
    for &[t, h, w] in grids {
        let (lh, lw) = (h / merge, w / merge);
        for ti in 0..t {
            frames.push((at + ti * h * w, h * w));
            for wy in 0..lh.div_ceil(vm) {
                for wx in 0..lw.div_ceil(vm) {
                    let before = window_index.len();
                    for y in wy * vm..((wy + 1) * vm).min(lh) {
                        for x in wx * vm..((wx + 1) * vm).min(lw) {
                            window_index.push(base + ti * lh * lw + y * lw + x);
                        }
                    }
                    let len = (window_index.len() - before) * unit;
                    if len > 0 {
                        windows.push((before * unit, len));
                    }
                }
            }
        }
        base += t * lh * lw;
        at += t * h * w;
    }
    WindowPlan {
        window_index,
        windows,
        frames,
    }
}

impl Vision25 {
    /// Builds the tower from `visual.*` (or `model.visual.*`): `vb` is that
    /// prefix.
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let (c, t, p) = (cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size);
        let patch_w = vb
            .pp("patch_embed")
            .pp("proj")
            .get((d, c, t, p, p), "weight")?
            .reshape((d, c * t * p * p))?;
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let b = vb.pp("blocks").pp(i);
            let (a, m) = (b.pp("attn"), b.pp("mlp"));
            let inter = cfg.intermediate_size;
            blocks.push(Block {
                norm1: candle_nn::rms_norm(d, 1e-6, b.pp("norm1"))?,
                norm2: candle_nn::rms_norm(d, 1e-6, b.pp("norm2"))?,
                qkv: candle_nn::linear(d, 3 * d, a.pp("qkv"))?,
                proj: candle_nn::linear(d, d, a.pp("proj"))?,
                gate: candle_nn::linear(d, inter, m.pp("gate_proj"))?,
                up: candle_nn::linear(d, inter, m.pp("up_proj"))?,
                down: candle_nn::linear(inter, d, m.pp("down_proj"))?,
            });
        }
        let unit = cfg.spatial_merge_size * cfg.spatial_merge_size;
        let mg = vb.pp("merger");
        Ok(Self {
            cfg: cfg.clone(),
            patch_w,
            blocks,
            ln_q: candle_nn::rms_norm(d, 1e-6, mg.pp("ln_q"))?,
            mlp0: candle_nn::linear(d * unit, d * unit, mg.pp("mlp").pp("0"))?,
            mlp2: candle_nn::linear(d * unit, cfg.out_hidden_size, mg.pp("mlp").pp("2"))?,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    fn block(
        &self,
        b: &Block,
        x: &Tensor,
        spans: &[(usize, usize)],
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let heads = self.cfg.num_heads;
        let hd = self.cfg.hidden_size / heads;
        let n = x.dim(0)?;
        let (q, k, v) = rotated_qkv(&b.qkv.forward(&b.norm1.forward(x)?)?, heads, cos, sin)?;
        let o = attend_spans(&q, &k, &v, spans, (hd as f64).powf(-0.5))?
            .transpose(0, 1)?
            .reshape((n, heads * hd))?
            .to_dtype(self.dtype)?;
        let x = (x + b.proj.forward(&o)?)?;
        let h = b.norm2.forward(&x)?;
        let act = activation(&self.cfg.hidden_act, &b.gate.forward(&h)?)?;
        x + b.down.forward(&(act * b.up.forward(&h)?)?)?
    }

    /// Encodes images: the merged tokens `[tokens, out_hidden]`.
    pub fn forward(&self, images: &[&PreparedImage]) -> Result<Tensor> {
        let grids: Vec<[usize; 3]> = images.iter().map(|i| i.grid_thw).collect();
        let m = self.cfg.spatial_merge_size;
        let unit = m * m;
        let plan = window_plan(&grids, m, self.cfg.window_size / (m * self.cfg.patch_size));
        let px = patch_rows(images, self.patch_w.dim(1)?, &self.device, self.dtype)?;
        let n = px.dim(0)?;
        // Patch rows into window order, whole merge units at a time.
        let perm: Vec<u32> = plan
            .window_index
            .iter()
            .flat_map(|&u| (u * unit..(u + 1) * unit).map(|r| r as u32))
            .collect();
        if perm.len() != n {
            candle_core::bail!("{} patch rows for {} window places", n, perm.len());
        }
        let perm_t = Tensor::new(perm.as_slice(), &self.device)?;
        let mut x = px.matmul(&self.patch_w.t()?)?.index_select(&perm_t, 0)?;
        let hd = self.cfg.hidden_size / self.cfg.num_heads;
        let (cos, sin, w) = rotary_tables(&grids, hd, m);
        let permute = |t: Vec<f32>| -> Vec<f32> {
            perm.iter()
                .flat_map(|&r| t[r as usize * w..(r as usize + 1) * w].iter().copied())
                .collect()
        };
        let cos = Tensor::from_vec(permute(cos), (n, w), &self.device)?;
        let sin = Tensor::from_vec(permute(sin), (n, w), &self.device)?;
        for (i, b) in self.blocks.iter().enumerate() {
            let spans = if self.cfg.fullatt_block_indexes.contains(&i) {
                &plan.frames
            } else {
                &plan.windows
            };
            x = self.block(b, &x, spans, &cos, &sin)?;
        }
        let merged = self
            .ln_q
            .forward(&x)?
            .reshape((n / unit, self.cfg.hidden_size * unit))?;
        let merged = self
            .mlp2
            .forward(&self.mlp0.forward(&merged)?.gelu_erf()?)?;
        let mut back = vec![0u32; plan.window_index.len()];
        for (place, &u) in plan.window_index.iter().enumerate() {
            back[u] = place as u32;
        }
        merged.index_select(&Tensor::new(back.as_slice(), &self.device)?, 0)
    }
}

impl VisionTower for Vision25 {
    fn encode(&self, images: &[&PreparedImage]) -> Result<(Tensor, Vec<Tensor>)> {
        Ok((self.forward(images)?, Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn windows_tile_each_frame_and_clip_at_the_edge() {
        // One 6x10-patch image (3x5 merged units) in 2x2-unit windows:
        // windows of 2x2, 2x2, 2x1 units on the first window row, 1x2,
        // 1x2, 1x1 on the second.
        let p = window_plan(&[[1, 6, 10]], 2, 2);
        assert_eq!(
            p.window_index,
            vec![0, 1, 5, 6, 2, 3, 7, 8, 4, 9, 10, 11, 12, 13, 14]
        );
        let lens: Vec<usize> = p.windows.iter().map(|w| w.1).collect();
        assert_eq!(lens, vec![16, 16, 8, 8, 8, 4]);
        assert_eq!(p.frames, vec![(0, 60)]);
        // A second image continues the unit and patch counts.
        let p = window_plan(&[[1, 4, 4], [1, 2, 2]], 2, 2);
        assert_eq!(p.window_index, vec![0, 1, 2, 3, 4]);
        assert_eq!(p.windows, vec![(0, 16), (16, 4)]);
        assert_eq!(p.frames, vec![(0, 16), (16, 4)]);
    }

    #[test]
    fn batched_windows_equal_one_window_at_a_time() {
        let d = Device::Cpu;
        let (h, n, hd) = (2, 13, 4);
        let r = |s| Tensor::randn(0f32, 1.0, (h, n, hd), &d).and_then(|t| t * s);
        let (q, k, v) = (r(1.0).unwrap(), r(1.0).unwrap(), r(1.0).unwrap());
        let spans = [(0, 4), (4, 4), (8, 2), (10, 3)];
        let fast = attend_spans(&q, &k, &v, &spans, 0.5).unwrap();
        let mut parts = Vec::new();
        for &(s, len) in &spans {
            let (q, k, v) = (
                q.narrow(1, s, len).unwrap(),
                k.narrow(1, s, len).unwrap(),
                v.narrow(1, s, len).unwrap(),
            );
            let a = candle_nn::ops::softmax_last_dim(
                &(q.matmul(&k.t().unwrap()).unwrap() * 0.5).unwrap(),
            )
            .unwrap();
            parts.push(a.matmul(&v).unwrap());
        }
        let slow = Tensor::cat(&parts, 1).unwrap();
        let err = (fast - slow)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(err < 1e-6, "{err}");
    }
}
