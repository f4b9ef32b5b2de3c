//! The Qwen3-VL vision tower: patch embedding, interpolated learned position
//! embeddings, 2-D rotary attention per image, the 2×2 patch merger and the
//! DeepStack mergers. Follows transformers' `Qwen3VLVisionModel` line by line.

use super::config::VisionConfig;
use super::image::PreparedImage;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use std::collections::BTreeMap;

pub(super) fn activation(name: &str, x: &Tensor) -> Result<Tensor> {
    match name {
        "gelu_pytorch_tanh" => x.gelu(),
        "gelu" => x.gelu_erf(),
        "silu" => x.silu(),
        _ => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?, // quick_gelu
    }
}

fn linear(i: usize, o: usize, vb: VarBuilder) -> Result<Linear> {
    candle_nn::linear(i, o, vb)
}

fn layer_norm(d: usize, vb: VarBuilder) -> Result<LayerNorm> {
    candle_nn::layer_norm(
        d,
        candle_nn::LayerNormConfig {
            eps: 1e-6,
            ..Default::default()
        },
        vb,
    )
}

struct Block {
    norm1: LayerNorm,
    norm2: LayerNorm,
    qkv: Linear,
    proj: Linear,
    fc1: Linear,
    fc2: Linear,
}

struct Merger {
    norm: LayerNorm,
    postshuffle: bool,
    fc1: Linear,
    fc2: Linear,
    merged: usize,
}

impl Merger {
    fn new(cfg: &VisionConfig, postshuffle: bool, vb: VarBuilder) -> Result<Self> {
        let merged = cfg.hidden_size * cfg.spatial_merge_size * cfg.spatial_merge_size;
        Ok(Self {
            norm: layer_norm(
                if postshuffle { merged } else { cfg.hidden_size },
                vb.pp("norm"),
            )?,
            postshuffle,
            fc1: linear(merged, merged, vb.pp("linear_fc1"))?,
            fc2: linear(merged, cfg.out_hidden_size, vb.pp("linear_fc2"))?,
            merged,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if self.postshuffle {
            self.norm.forward(&x.reshape(((), self.merged))?)?
        } else {
            self.norm.forward(x)?.reshape(((), self.merged))?
        };
        // nn.GELU(): the exact (erf) form, unlike the blocks' tanh form.
        self.fc2.forward(&self.fc1.forward(&x)?.gelu_erf()?)
    }
}

/// The vision tower.
pub struct VisionModel {
    cfg: VisionConfig,
    patch_w: Tensor,
    patch_b: Tensor,
    pos_embed: Embedding,
    blocks: Vec<Block>,
    merger: Merger,
    deepstack: Vec<Merger>,
    grid_side: usize,
    device: Device,
    dtype: DType,
}

impl VisionModel {
    /// Builds the tower from `model.visual.*`.
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let (c, t, p) = (cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size);
        let pe = vb.pp("patch_embed").pp("proj");
        // A Conv3d whose kernel equals its stride is a matrix product over
        // the flattened (c, t, y, x) patch.
        let patch_w = pe
            .get((d, c, t, p, p), "weight")?
            .reshape((d, c * t * p * p))?;
        let patch_b = pe.get(d, "bias")?;
        let pos_embed = candle_nn::embedding(cfg.num_position_embeddings, d, vb.pp("pos_embed"))?;
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let b = vb.pp("blocks").pp(i);
            blocks.push(Block {
                norm1: layer_norm(d, b.pp("norm1"))?,
                norm2: layer_norm(d, b.pp("norm2"))?,
                qkv: linear(d, 3 * d, b.pp("attn").pp("qkv"))?,
                proj: linear(d, d, b.pp("attn").pp("proj"))?,
                fc1: linear(d, cfg.intermediate_size, b.pp("mlp").pp("linear_fc1"))?,
                fc2: linear(cfg.intermediate_size, d, b.pp("mlp").pp("linear_fc2"))?,
            });
        }
        let merger = Merger::new(cfg, false, vb.pp("merger"))?;
        let deepstack = (0..cfg.deepstack_visual_indexes.len())
            .map(|i| Merger::new(cfg, true, vb.pp("deepstack_merger_list").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            patch_w,
            patch_b,
            pos_embed,
            blocks,
            merger,
            deepstack,
            grid_side: (cfg.num_position_embeddings as f64).sqrt().round() as usize,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    /// Bilinear interpolation of the learned position grid to each image's
    /// patch grid, in merge order (`fast_pos_embed_interpolate`).
    fn pos_embeds(&self, grids: &[[usize; 3]]) -> Result<Tensor> {
        let n = self.grid_side;
        let m = self.cfg.spatial_merge_size;
        let mut idx: [Vec<u32>; 4] = Default::default();
        let mut wts: [Vec<f32>; 4] = Default::default();
        let linspace = |k: usize| -> Vec<f32> {
            // torch.linspace(0, n - 1, k) in float32.
            if k == 1 {
                return vec![0.0];
            }
            let step = (n - 1) as f32 / (k - 1) as f32;
            (0..k)
                .map(|i| {
                    if i < k / 2 {
                        i as f32 * step
                    } else {
                        (n - 1) as f32 - (k - 1 - i) as f32 * step
                    }
                })
                .collect()
        };
        for &[t, h, w] in grids {
            let (hs, ws) = (linspace(h), linspace(w));
            // Rows in merge order: (block row, block col, row in block, col in block).
            let mut one: [Vec<u32>; 4] = Default::default();
            let mut onew: [Vec<f32>; 4] = Default::default();
            for bh in 0..h / m {
                for bw in 0..w / m {
                    for mh in 0..m {
                        for mw in 0..m {
                            let (hv, wv) = (hs[bh * m + mh], ws[bw * m + mw]);
                            let (hf, wf) = (hv as usize, wv as usize);
                            let (hc, wc) = ((hf + 1).min(n - 1), (wf + 1).min(n - 1));
                            let (dh, dw) = (hv - hf as f32, wv - wf as f32);
                            let cells = [(hf, wf), (hf, wc), (hc, wf), (hc, wc)];
                            let ws4 = [
                                (1.0 - dh) * (1.0 - dw),
                                (1.0 - dh) * dw,
                                dh * (1.0 - dw),
                                dh * dw,
                            ];
                            for k in 0..4 {
                                one[k].push((cells[k].0 * n + cells[k].1) as u32);
                                onew[k].push(ws4[k]);
                            }
                        }
                    }
                }
            }
            for k in 0..4 {
                for _ in 0..t {
                    idx[k].extend_from_slice(&one[k]);
                    wts[k].extend_from_slice(&onew[k]);
                }
            }
        }
        let mut sum: Option<Tensor> = None;
        for k in 0..4 {
            let len = idx[k].len();
            let i = Tensor::from_vec(std::mem::take(&mut idx[k]), len, &self.device)?;
            let w = Tensor::from_vec(std::mem::take(&mut wts[k]), (len, 1), &self.device)?
                .to_dtype(self.dtype)?;
            let e = self.pos_embed.forward(&i)?.broadcast_mul(&w)?;
            sum = Some(match sum {
                None => e,
                Some(s) => (s + e)?,
            });
        }
        sum.ok_or_else(|| candle_core::Error::Msg("no image".into()))
    }

    /// 2-D rotary cos/sin, `[patches, head_dim / 2]` each, f32.
    fn rotary(&self, grids: &[[usize; 3]]) -> Result<(Tensor, Tensor)> {
        let hd = self.cfg.hidden_size / self.cfg.num_heads;
        let (cos, sin, w) = rotary_tables(grids, hd, self.cfg.spatial_merge_size);
        let n = cos.len() / w;
        Ok((
            Tensor::from_vec(cos, (n, w), &self.device)?,
            Tensor::from_vec(sin, (n, w), &self.device)?,
        ))
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
        let h = b.norm1.forward(x)?;
        let (q, k, v) = rotated_qkv(&b.qkv.forward(&h)?, heads, cos, sin)?;
        let o = attend_spans(&q, &k, &v, spans, (hd as f64).powf(-0.5))?
            .transpose(0, 1)?
            .reshape((n, heads * hd))?
            .to_dtype(self.dtype)?;
        let x = (x + b.proj.forward(&o)?)?;
        let h = b.norm2.forward(&x)?;
        let h = b
            .fc2
            .forward(&activation(&self.cfg.hidden_act, &b.fc1.forward(&h)?)?)?;
        x + h
    }

    /// Encodes images: the merged tokens `[tokens, out_hidden]` and one
    /// DeepStack feature tensor of the same shape per DeepStack layer.
    pub fn forward(&self, images: &[&PreparedImage]) -> Result<(Tensor, Vec<Tensor>)> {
        let grids: Vec<[usize; 3]> = images.iter().map(|i| i.grid_thw).collect();
        let px = patch_rows(images, self.patch_w.dim(1)?, &self.device, self.dtype)?;
        let mut x = px
            .matmul(&self.patch_w.t()?)?
            .broadcast_add(&self.patch_b)?;
        x = (x + self.pos_embeds(&grids)?)?;
        let (cos, sin) = self.rotary(&grids)?;
        let mut spans = Vec::new();
        let mut s = 0;
        for &[t, h, w] in &grids {
            for _ in 0..t {
                spans.push((s, h * w));
                s += h * w;
            }
        }
        // In block order, as transformers collects them: decoder layer `i`
        // receives the `i`-th feature.
        let mut deep = Vec::with_capacity(self.deepstack.len());
        for (i, b) in self.blocks.iter().enumerate() {
            x = self.block(b, &x, &spans, &cos, &sin)?;
            if let Some(k) = self
                .cfg
                .deepstack_visual_indexes
                .iter()
                .position(|&l| l == i)
            {
                deep.push(self.deepstack[k].forward(&x)?);
            }
        }
        let merged = self.merger.forward(&x)?;
        Ok((merged, deep))
    }
}

/// The vision towers' 2-D rotary tables (`VisionRotaryEmbedding(head_dim
/// / 2)`, θ 10 000, row then column frequencies) for every patch in merge
/// order, f32: `(cos, sin, width)` with `width = head_dim / 2` values per
/// patch.
pub(super) fn rotary_tables(
    grids: &[[usize; 3]],
    head_dim: usize,
    m: usize,
) -> (Vec<f32>, Vec<f32>, usize) {
    let dim = head_dim / 2;
    let inv: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / 10000f32.powf(i as f32 / dim as f32))
        .collect();
    let mut cos = Vec::new();
    let mut sin = Vec::new();
    for &[t, h, w] in grids {
        for _ in 0..t {
            for bh in 0..h / m {
                for bw in 0..w / m {
                    for mh in 0..m {
                        for mw in 0..m {
                            let (r, c) = ((bh * m + mh) as f32, (bw * m + mw) as f32);
                            for a in inv.iter().map(|f| r * f).chain(inv.iter().map(|f| c * f)) {
                                cos.push(a.cos());
                                sin.push(a.sin());
                            }
                        }
                    }
                }
            }
        }
    }
    (cos, sin, 2 * inv.len())
}

/// What the text model needs of a vision tower.
pub trait VisionTower: Send + Sync {
    /// Encodes images: the merged tokens `[tokens, out_hidden]` in the
    /// images' order, and one feature tensor per DeepStack layer (none for
    /// towers without DeepStack).
    fn encode(&self, images: &[&PreparedImage]) -> Result<(Tensor, Vec<Tensor>)>;
}

impl VisionTower for VisionModel {
    fn encode(&self, images: &[&PreparedImage]) -> Result<(Tensor, Vec<Tensor>)> {
        self.forward(images)
    }
}

/// The patches of `images` as one `[rows, patch_dim]` tensor.
pub(super) fn patch_rows(
    images: &[&PreparedImage],
    dim: usize,
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    let rows: usize = images.iter().map(|i| i.patches()).sum();
    let mut px = Vec::with_capacity(rows * dim);
    for i in images {
        if i.patch_dim() != dim {
            candle_core::bail!(
                "image patches have {} values, the vision tower expects {dim}",
                i.patch_dim()
            );
        }
        px.extend_from_slice(&i.pixel_values);
    }
    Tensor::from_vec(px, (rows, dim), device)?.to_dtype(dtype)
}

/// Splits a vision block's `qkv` output (`[n, 3 · width]`) into q, k and v
/// (`[heads, n, head_dim]`, f32) and rotates q and k (rotate-half form, in
/// f32 as transformers' `apply_rotary_pos_emb_vision`).
pub(super) fn rotated_qkv(
    qkv: &Tensor,
    heads: usize,
    cos: &Tensor,
    sin: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (n, w3) = qkv.dims2()?;
    let hd = w3 / 3 / heads;
    let qkv = qkv.reshape((n, 3, heads, hd))?.to_dtype(DType::F32)?;
    let part = |i: usize| -> Result<Tensor> {
        qkv.narrow(1, i, 1)?
            .squeeze(1)?
            .transpose(0, 1)?
            .unsqueeze(0)?
            .contiguous()
    };
    Ok((
        candle_nn::rotary_emb::rope(&part(0)?, cos, sin)?.squeeze(0)?,
        candle_nn::rotary_emb::rope(&part(1)?, cos, sin)?.squeeze(0)?,
        part(2)?.squeeze(0)?,
    ))
}

/// Non-causal attention of `q`, `k`, `v` (`[heads, n, head_dim]`) within
/// each span: spans of equal length are gathered and attended as one
/// batch, and the outputs put back in place. Returns `[heads, n, head_dim]`.
pub(super) fn attend_spans(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spans: &[(usize, usize)],
    scale: f64,
) -> Result<Tensor> {
    let (heads, n, hd) = q.dims3()?;
    let attend = |q: &Tensor, k: &Tensor, v: &Tensor| -> Result<Tensor> {
        let att = (q.matmul(&k.t()?)? * scale)?;
        candle_nn::ops::softmax_last_dim(&att)?.matmul(v)
    };
    if let [(0, len)] = spans
        && *len == n
    {
        return attend(q, k, v);
    }
    let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(s, len) in spans {
        by_len.entry(len).or_default().push(s);
    }
    let dev = q.device();
    let mut order: Vec<u32> = Vec::with_capacity(n);
    let mut outs = Vec::with_capacity(by_len.len());
    for (len, starts) in by_len {
        let w = starts.len();
        let idx: Vec<u32> = starts
            .iter()
            .flat_map(|&s| (s..s + len).map(|i| i as u32))
            .collect();
        let idx_t = Tensor::new(idx.as_slice(), dev)?;
        let take = |x: &Tensor| -> Result<Tensor> {
            x.index_select(&idx_t, 1)?
                .reshape((heads * w, len, hd))?
                .contiguous()
        };
        let o = attend(&take(q)?, &take(k)?, &take(v)?)?;
        outs.push(o.reshape((heads, w * len, hd))?);
        order.extend(idx);
    }
    if order.len() != n {
        candle_core::bail!("attention spans cover {} of {n} patches", order.len());
    }
    let mut back = vec![0u32; n];
    for (place, &row) in order.iter().enumerate() {
        back[row as usize] = place as u32;
    }
    Tensor::cat(&outs, 1)?.index_select(&Tensor::new(back.as_slice(), dev)?, 1)
}
