//! ZoomNet: the built-in candle policy (DESIGN §7), built from matmuls only.
//!
//! - **Global encoder**, once per episode: every global-view pixel with its
//!   3×3 neighbourhood (27 values, unfolded by padding and slicing) goes
//!   through a two-layer per-pixel MLP → keys `[N = view², P]`.
//! - **Crop encoder**: 8×8 patches by reshape/permute, a shared linear
//!   patch embedding, then a linear layer over all patches → `[H]`; the same
//!   weights encode the previous crop (the memory for two-region questions).
//! - **Reader** (for the answer head only): a patch embedding of its own,
//!   then windows of 2×2 embedded patches at every patch offset through a
//!   shared two-layer MLP, max- and mean-pooled over
//!   the crop's top and bottom halves, so a glyph is read wherever the zoom
//!   put it in the crop; current and previous crop.
//! - **Trunk**: question (hashed bag of words), current and previous crop,
//!   step one-hot and flags → two layers → `[H]`.
//! - **Heads**: action kind (zoom / answer); answer (a class per answer in
//!   the training set); zoom **cell** over the grid of global-view pixels
//!   (`env.global_view`², finer than the crop if set so) by attention of a
//!   trunk query on the keys; then, given the chosen cell's key, a 3×3
//!   sub-cell **offset** and a **size** among geometric sides from 1/64 to
//!   1/2 of the image's short side (ratio ≈ 1.19 between neighbours, so a
//!   square placard of any size is matched within IoU ≈ 0.84 by size alone).
//!
//! A zoom's log-probability is `log p(kind) + log p(cell) + log p(offset |
//! cell) + log p(size | cell)`; an answer's `log p(kind) + log p(answer)`.
//! Sampling is Gumbel-max on the device with noise drawn from a seeded host
//! RNG, so runs on the CPU are deterministic and only indices and log-probs
//! come back from the device.

use super::{DeviceKind, Policy, device};
use crate::env::{Action, EpisodeBatch};
use crate::geometry::BBox;
use crate::rng::SplitMix64;
use activation::Activate;
pub use activation::Activation;
use candle_core::{D, DType, Device, Result, Tensor, Var};
use candle_nn::{Module, VarBuilder, VarMap};
use dense::{Dense, dense};
use inputs::crop_patches;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// ZoomNet's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoomNetConfig {
    /// Trunk width. Default 64.
    pub hidden: usize,
    /// Per-pixel key width of the global encoder. Default 32.
    pub pixel_dim: usize,
    /// Crop patch side in pixels (must divide the view). Default 8.
    pub crop_patch: usize,
    /// Patch embedding width. Default 16.
    pub crop_dim: usize,
    /// Question encoding size. Default 128.
    pub question_dim: usize,
    /// Number of zoom sizes. Default 21.
    pub sizes: usize,
    /// Nonlinearity of the reader path (patch embedding, window MLP and the
    /// answer's reader layer). Default `gelu`: with ReLU the whole path can
    /// die early in imitation (every unit's input below zero, no gradient
    /// ever again), and the policy then never reads (RESULTS §1i). Session
    /// folders written before this key existed keep `relu`
    /// ([`crate::config::SessionConfig::load_session`]).
    pub reader_activation: Activation,
}

impl Default for ZoomNetConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            pixel_dim: 32,
            crop_patch: 8,
            crop_dim: 16,
            question_dim: 128,
            sizes: 21,
            reader_activation: Activation::Gelu,
        }
    }
}

/// The trunk's outputs for one batch of rows.
struct State {
    t: Tensor,
    reader: Tensor,
    query: Tensor,
}

/// One discrete decision of ZoomNet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// 0 = zoom, 1 = answer.
    pub kind: u32,
    /// Answer class (meaningful when answering).
    pub answer: u32,
    /// Zoom cell, `row · global + col` on the global view's pixel grid
    /// (meaningful when zooming).
    pub cell: u32,
    /// Sub-cell offset, `3 · dy + dx` with `dx, dy ∈ {0, 1, 2}` ↦ `{−⅓, 0, +⅓}` cell.
    pub offset: u32,
    /// Size class.
    pub size: u32,
}

/// Number of sub-cell offsets.
const OFFSETS: usize = 9;

/// Feature width of the reader's crop encoder.
const READ_DIM: usize = 48;

/// Width of the reader's per-patch embedding.
const READ_PATCH: usize = 32;

/// Raw values of a global-view pixel's 3×3 neighbourhood, appended to its key.
const RAW: usize = 27;

/// What the update needs of one action.
#[derive(Clone, Debug)]
pub struct StepObs<'a> {
    /// Index of the episode's global view in the `globals` of [`ZoomNet::evaluate`].
    pub episode: usize,
    /// Step index within the episode.
    pub step: usize,
    /// Question encoding.
    pub question: &'a [f32],
    /// The crop shown at this step (`view² · 3` bytes).
    pub crop: &'a [u8],
    /// The crop before it.
    pub prev_crop: &'a [u8],
    /// The action taken.
    pub choice: Choice,
}

/// The built-in policy.
pub struct ZoomNet {
    cfg: ZoomNetConfig,
    view: usize,
    global: usize,
    max_rounds: usize,
    answers: Vec<String>,
    answer_index: HashMap<String, usize>,
    device: Device,
    varmap: VarMap,
    q_embed: Dense,
    pix1: Dense,
    pix2: Dense,
    crop_embed: Dense,
    crop_fc: Dense,
    trunk1: Dense,
    trunk2: Dense,
    kind: Dense,
    answer: Dense,
    reader: Dense,
    read_patch: Dense,
    read1: Dense,
    read2: Dense,
    loc_q: Dense,
    loc_qq: Dense,
    fine: Dense,
    offset: Dense,
    size: Dense,
}

impl ZoomNet {
    /// A new ZoomNet for crops of side `view` and global views of side
    /// `global` (its zoom cells), with weights drawn from `seed`
    /// (deterministic on every device): uniform `±1/√fan_in` weights, zero
    /// biases. The weights do not depend on `global`.
    pub fn new(
        cfg: ZoomNetConfig,
        view: usize,
        global: usize,
        max_rounds: usize,
        answers: Vec<String>,
        dev: DeviceKind,
        seed: u64,
    ) -> std::result::Result<Self, String> {
        if cfg.crop_patch == 0 || !view.is_multiple_of(cfg.crop_patch) {
            return Err(format!(
                "crop_patch {} must divide the view {}",
                cfg.crop_patch, view
            ));
        }
        if global < 3 {
            return Err(format!(
                "the global view ({global} px) must be at least 3 pixels"
            ));
        }
        if answers.is_empty() {
            return Err("ZoomNet needs at least one answer class".into());
        }
        if [
            cfg.hidden,
            cfg.pixel_dim,
            cfg.crop_dim,
            cfg.question_dim,
            cfg.sizes,
        ]
        .contains(&0)
        {
            return Err("ZoomNet sizes must be positive".into());
        }
        let device = device(dev)?;
        let net = Self::build(cfg, view, global, max_rounds, answers, device)
            .map_err(|e| format!("building ZoomNet: {e}"))?;
        net.init_weights(seed)
            .map_err(|e| format!("initialising ZoomNet: {e}"))?;
        Ok(net)
    }

    fn build(
        cfg: ZoomNetConfig,
        view: usize,
        global: usize,
        max_rounds: usize,
        answers: Vec<String>,
        device: Device,
    ) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let (h, p) = (cfg.hidden, cfg.pixel_dim);
        let patches = (view / cfg.crop_patch).pow(2);
        let patch_in = cfg.crop_patch * cfg.crop_patch * 6;
        let trunk_in = h + 2 * h + (max_rounds + 1) + 2;
        let answer_index = answers
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), i))
            .collect();
        Ok(Self {
            q_embed: dense(cfg.question_dim, h, vb.pp("question"))?,
            pix1: dense(27, p, vb.pp("global.pix1"))?,
            pix2: dense(p, p, vb.pp("global.pix2"))?,
            crop_embed: dense(patch_in, cfg.crop_dim, vb.pp("crop.patch"))?,
            crop_fc: dense(patches * cfg.crop_dim, h, vb.pp("crop.fc"))?,
            trunk1: dense(trunk_in, h, vb.pp("trunk.l1"))?,
            trunk2: dense(h, h, vb.pp("trunk.l2"))?,
            kind: dense(h, 2, vb.pp("head.kind"))?,
            answer: dense(h, answers.len(), vb.pp("head.answer"))?,
            reader: dense(h + 8 * READ_DIM, h, vb.pp("head.reader"))?,
            read_patch: dense(
                cfg.crop_patch * cfg.crop_patch * 6,
                READ_PATCH,
                vb.pp("reader.patch"),
            )?,
            read1: dense(4 * READ_PATCH, READ_DIM, vb.pp("reader.l1"))?,
            read2: dense(READ_DIM, READ_DIM, vb.pp("reader.l2"))?,
            loc_q: dense(h, p, vb.pp("head.loc_query"))?,
            loc_qq: dense(h, p, vb.pp("head.loc_query_q"))?,
            fine: dense(p + RAW + h, h, vb.pp("head.fine"))?,
            offset: dense(h, OFFSETS, vb.pp("head.offset"))?,
            size: dense(h, cfg.sizes, vb.pp("head.size"))?,
            cfg,
            view,
            global,
            max_rounds,
            answers,
            answer_index,
            device,
            varmap,
        })
    }

    fn init_weights(&self, seed: u64) -> Result<()> {
        let mut rng = SplitMix64::new(seed);
        for (name, var) in self.named_vars() {
            let dims = var.dims().to_vec();
            let n: usize = dims.iter().product();
            let values: Vec<f32> = if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let bound = 1.0 / (dims[dims.len() - 1] as f64).sqrt();
                (0..n)
                    .map(|_| ((rng.f64() * 2.0 - 1.0) * bound) as f32)
                    .collect()
            };
            var.set(&Tensor::from_vec(values, dims, &self.device)?)?;
        }
        Ok(())
    }

    /// The shape config.
    pub fn config(&self) -> &ZoomNetConfig {
        &self.cfg
    }

    /// Encodes crops given as their patches `[n, g, g, ps²·6]`
    /// ([`crop_patches`]) → `[n, H]`.
    fn encode_crops(&self, patches: &Tensor) -> Result<Tensor> {
        let (n, g) = (patches.dim(0)?, patches.dim(1)?);
        let e = self
            .crop_embed
            .forward(&patches.reshape((n, g * g, ()))?)?
            .act(Activation::Relu)?;
        self.crop_fc
            .forward(&e.reshape((n, g * g * self.cfg.crop_dim))?)?
            .act(Activation::Relu)
    }

    /// The reader's crop features `[n, 4·R]` from crop patches, tolerant to where the glyph
    /// sits in the crop: patches get an embedding of their own, windows of
    /// 2×2 embedded patches (stride one patch) go through a two-layer MLP
    /// shared by all positions, then are max- and mean-pooled
    /// over the crop's top and bottom halves.
    fn read_crops(&self, p: &Tensor) -> Result<Tensor> {
        let (n, g) = (p.dim(0)?, p.dim(1)?);
        // Embed each patch once; windows then combine four embeddings.
        let act = self.cfg.reader_activation;
        let p = act.apply(&self.read_patch.forward(&p.reshape((n, g * g, ()))?)?)?;
        let w = g - 1;
        // The 2×2 windows gathered in one `index_select` (row order: sample,
        // window row, window column, then the patches (0,0) (0,1) (1,0) (1,1)):
        // one node whose backward is one scatter-add, where strided narrows
        // and a concatenation cost a zero-padded copy per narrow.
        let win = p
            .reshape((n * g * g, READ_PATCH))?
            .index_select(&window_index(n, g, &self.device)?, 0)?
            .reshape((n, w * w, 4 * READ_PATCH))?;
        let f = act.apply(&self.read1.forward(&win)?)?;
        let f = act
            .apply(&self.read2.forward(&f)?)?
            .reshape((n, w, w, READ_DIM))?;
        let half = w / 2 + 1;
        let top = f.narrow(1, 0, half)?.reshape((n, half * w, READ_DIM))?;
        let bottom = f
            .narrow(1, w - half, half)?
            .reshape((n, half * w, READ_DIM))?;
        Tensor::cat(
            &[
                &top.max(1)?,
                &bottom.max(1)?,
                &top.mean(1)?,
                &bottom.mean(1)?,
            ],
            1,
        )
    }

    /// The trunk state: `t` `[n, H]` for the kind and box heads, `reader`
    /// `[n, H]` for the answer head, `query` `[n, P]` for the cell head.
    fn trunk(
        &self,
        questions: &[f32],
        crops: &[u8],
        prevs: &[u8],
        steps: &[usize],
    ) -> Result<State> {
        let n = steps.len();
        let v = self.view;
        let q = Tensor::from_slice(questions, (n, self.cfg.question_dim), &self.device)?;
        let q = self.q_embed.forward(&q)?.act(Activation::Relu)?;
        let (ps, g) = (self.cfg.crop_patch, v / self.cfg.crop_patch);
        // Current and previous crops' patches in one tensor `[2n, g, g, ps²·6]`.
        let mut both = crop_patches(crops, n, v, ps);
        both.extend(crop_patches(prevs, n, v, ps));
        let both = Tensor::from_vec(both, (2 * n, g, g, ps * ps * 6), &self.device)?;
        let cp = self.encode_crops(&both)?;
        let (c, p) = (cp.narrow(0, 0, n)?, cp.narrow(0, n, n)?);
        let r = self.max_rounds + 1;
        let mut extra = vec![0f32; n * (r + 2)];
        for (i, &s) in steps.iter().enumerate() {
            extra[i * (r + 2) + s.min(self.max_rounds)] = 1.0;
            extra[i * (r + 2) + r] = f32::from(u8::from(s >= 1));
            extra[i * (r + 2) + r + 1] = f32::from(u8::from(s >= 2));
        }
        let extra = Tensor::from_vec(extra, (n, r + 2), &self.device)?;
        let x = Tensor::cat(&[&q, &c, &p, &extra], 1)?;
        let h = self.trunk1.forward(&x)?.act(Activation::Relu)?;
        let t = (self.trunk2.forward(&h)?.act(Activation::Relu)? + h)?.contiguous()?;
        // The answer reads the crops and the question on a path of its own,
        // so that learning where to look does not disturb learning to read.
        // Current and previous crop through the reader in one batch.
        let rcp = self.read_crops(&both)?;
        let (rc, rp) = (rcp.narrow(0, 0, n)?, rcp.narrow(0, n, n)?);
        let reader = self
            .cfg
            .reader_activation
            .apply(&self.reader.forward(&Tensor::cat(&[&q, &rc, &rp], 1)?)?)?;
        // The cell query sees the question directly as well as the trunk.
        let query = (self.loc_q.forward(&t)? + self.loc_qq.forward(&q)?)?;
        Ok(State { t, reader, query })
    }

    /// The zoom box of a choice on a `w × h` image.
    pub fn zoom_box(&self, c: &Choice, w: f64, h: f64) -> BBox {
        let v = self.global as f64;
        let (row, col) = (
            (c.cell as usize / self.global) as f64,
            (c.cell as usize % self.global) as f64,
        );
        let (dx, dy) = ((c.offset % 3) as f64 - 1.0, (c.offset / 3) as f64 - 1.0);
        let cx = (col + 0.5 + dx / 3.0) * w / v;
        let cy = (row + 0.5 + dy / 3.0) * h / v;
        let side = self.size_side(c.size as usize, w, h);
        BBox::new(
            cx - side / 2.0,
            cy - side / 2.0,
            cx + side / 2.0,
            cy + side / 2.0,
        )
    }

    /// Side of size class `k` on a `w × h` image: geometric from 1/64 to 1/2
    /// of the short side.
    pub fn size_side(&self, k: usize, w: f64, h: f64) -> f64 {
        let s = w.min(h);
        let n = self.cfg.sizes.max(2) - 1;
        let (lo, hi) = (s / 64.0, s / 2.0);
        lo * (hi / lo).powf(k.min(n) as f64 / n as f64)
    }

    #[allow(clippy::too_many_arguments)]
    fn joint_logp(
        &self,
        kind_l: &Tensor,
        ans_l: &Tensor,
        loc_l: &Tensor,
        off_l: &Tensor,
        size_l: &Tensor,
        kind: &Tensor,
        ans: &Tensor,
        cell: &Tensor,
        off: &Tensor,
        size: &Tensor,
    ) -> Result<Tensor> {
        let g = |l: &Tensor, i: &Tensor| -> Result<Tensor> {
            candle_nn::ops::log_softmax(l, D::Minus1)?
                .gather(&i.unsqueeze(1)?, 1)?
                .squeeze(1)
        };
        let is_ans = kind.to_dtype(DType::F32)?;
        let is_zoom = is_ans.affine(-1.0, 1.0)?;
        let zoom = ((g(loc_l, cell)? + g(off_l, off)?)? + g(size_l, size)?)?;
        g(kind_l, kind)? + (is_ans * g(ans_l, ans)?)? + (is_zoom * zoom)?
    }
}

/// Rows of the `[n·g·g, R]` patch embeddings that make up the reader's
/// `n·(g−1)²` windows of 2×2 patches, four per window in the order (0,0)
/// (0,1) (1,0) (1,1) (see [`ZoomNet::read_crops`]).
fn window_index(n: usize, g: usize, device: &Device) -> Result<Tensor> {
    let w = g - 1;
    let mut idx = Vec::with_capacity(n * w * w * 4);
    for i in 0..n {
        for y in 0..w {
            for x in 0..w {
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    idx.push((i * g * g + (y + dy) * g + x + dx) as u32);
                }
            }
        }
    }
    Tensor::from_vec(idx, n * w * w * 4, device)
}

mod activation;
mod cells;
mod dense;
mod inputs;
mod policy;

#[cfg(test)]
mod tests;
