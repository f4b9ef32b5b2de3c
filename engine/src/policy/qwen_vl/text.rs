//! The Qwen-VL text decoder with multimodal RoPE (M-RoPE: each position
//! has a (t, h, w) triple):
//! - Qwen3-VL: Qwen3 layers (RMSNorm on q and k per head, grouped-query
//!   attention, SwiGLU), interleaved M-RoPE, DeepStack visual features
//!   added to the first layers' hidden states at image positions
//!   (transformers' `Qwen3VLTextModel`);
//! - Qwen2.5-VL: Qwen2 layers (q/k/v biases, no q/k norm), M-RoPE in
//!   contiguous sections (`Qwen2_5_VLTextModel`).

use super::config::TextConfig;
use super::linear::Lin;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, RmsNorm, VarBuilder};

struct Layer {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    gate: Lin,
    up: Lin,
    down: Lin,
    ln1: RmsNorm,
    ln2: RmsNorm,
}

fn norm_heads(n: &Option<RmsNorm>, x: Tensor) -> Result<Tensor> {
    match n {
        Some(n) => n.forward(&x),
        None => Ok(x),
    }
}

impl Layer {
    /// The MLP block after attention: `x + down(silu(gate(h)) · up(h))`,
    /// `h = post_attention_layernorm(x)`.
    fn ffn(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.ln2.forward(x)?;
        let mlp = self
            .down
            .forward(&(self.gate.forward(&h)?.silu()? * self.up.forward(&h)?)?)?;
        x + mlp
    }
}

/// One layer's cached keys and values, `[1, kv_heads, capacity, head_dim]`,
/// of which the first `len` positions are filled.
#[derive(Clone)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

/// The key/value cache of one sequence, and the next M-RoPE position.
#[derive(Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    len: usize,
    /// The position the next token gets (`max position so far + 1`).
    pub next_pos: u32,
}

impl KvCache {
    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An independent copy (the buffers are written in place, so a fork
    /// must not share them).
    pub fn fork(&self) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref()
                    .map(|l| -> Result<LayerKv> {
                        Ok(LayerKv {
                            k: l.k.copy()?,
                            v: l.v.copy()?,
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            len: self.len,
            next_pos: self.next_pos,
        })
    }

    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        if self.layers.len() <= layer {
            self.layers.resize(layer + 1, None);
        }
        let n = k.dim(2)?;
        let need = self.len + n;
        let slot = &mut self.layers[layer];
        let grow = |old: Option<&Tensor>, new: &Tensor| -> Result<Tensor> {
            let (b, h, _, d) = new.dims4()?;
            let cap = need.next_power_of_two().max(256);
            let buf = Tensor::zeros((b, h, cap, d), new.dtype(), new.device())?;
            if let Some(old) = old {
                buf.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            }
            Ok(buf)
        };
        match slot {
            Some(kv) if kv.k.dim(2)? >= need => {}
            _ => {
                let k2 = grow(slot.as_ref().map(|s| &s.k), k)?;
                let v2 = grow(slot.as_ref().map(|s| &s.v), v)?;
                *slot = Some(LayerKv { k: k2, v: v2 });
            }
        }
        let kv = slot
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("cache".into()))?;
        kv.k.slice_set(&k.contiguous()?, 2, self.len)?;
        kv.v.slice_set(&v.contiguous()?, 2, self.len)?;
        Ok((kv.k.narrow(2, 0, need)?, kv.v.narrow(2, 0, need)?))
    }
}

/// The decoder.
pub struct TextModel {
    cfg: TextConfig,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Lin,
    inv_freq: Vec<f32>,
    device: Device,
    dtype: DType,
}

fn lin(i: usize, o: usize, bias: bool, vb: VarBuilder) -> Result<Lin> {
    Ok(Lin::new(if bias {
        candle_nn::linear(i, o, vb)?
    } else {
        candle_nn::linear_no_bias(i, o, vb)?
    }))
}

impl TextModel {
    /// Builds the decoder from `model.language_model.*` (or the legacy
    /// `model.*` names Qwen2.5-VL is saved with) and `lm_head` (`vb` is the
    /// checkpoint's root).
    pub fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let m = if vb.contains_tensor("model.language_model.embed_tokens.weight") {
            vb.pp("model").pp("language_model")
        } else {
            vb.pp("model")
        };
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let eps = cfg.rms_norm_eps;
        let embed = candle_nn::embedding(cfg.vocab_size, h, m.pp("embed_tokens"))?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = m.pp("layers").pp(i);
            let a = l.pp("self_attn");
            let b = cfg.qkv_bias;
            let qk_norm = |name: &str| -> Result<Option<RmsNorm>> {
                cfg.qk_norm
                    .then(|| candle_nn::rms_norm(hd, eps, a.pp(name)))
                    .transpose()
            };
            layers.push(Layer {
                q: lin(h, nh * hd, b, a.pp("q_proj"))?,
                k: lin(h, nkv * hd, b, a.pp("k_proj"))?,
                v: lin(h, nkv * hd, b, a.pp("v_proj"))?,
                o: lin(nh * hd, h, cfg.o_bias, a.pp("o_proj"))?,
                q_norm: qk_norm("q_norm")?,
                k_norm: qk_norm("k_norm")?,
                gate: lin(h, cfg.intermediate_size, false, l.pp("mlp").pp("gate_proj"))?,
                up: lin(h, cfg.intermediate_size, false, l.pp("mlp").pp("up_proj"))?,
                down: lin(cfg.intermediate_size, h, false, l.pp("mlp").pp("down_proj"))?,
                ln1: candle_nn::rms_norm(h, eps, l.pp("input_layernorm"))?,
                ln2: candle_nn::rms_norm(h, eps, l.pp("post_attention_layernorm"))?,
            });
        }
        let norm = candle_nn::rms_norm(h, eps, m.pp("norm"))?;
        let lm_head = Lin::new(
            if cfg.tie_word_embeddings && !vb.contains_tensor("lm_head.weight") {
                Linear::new(embed.embeddings().clone(), None)
            } else {
                candle_nn::linear_no_bias(h, cfg.vocab_size, vb.pp("lm_head"))?
            },
        );
        let inv_freq = (0..hd)
            .step_by(2)
            .map(|i| (1.0 / cfg.rope_theta.powf(i as f64 / hd as f64)) as f32)
            .collect();
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head,
            inv_freq,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    /// Token embeddings `[n, hidden]`.
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        let t = Tensor::new(ids, &self.device)?;
        self.embed.forward(&t)
    }

    /// Which of (t, h, w) frequency `j` reads (`apply_interleaved_mrope`,
    /// or the chunked layout of Qwen2-VL when not interleaved).
    fn axis_of(&self, j: usize) -> usize {
        let s = self.cfg.mrope_section;
        if self.cfg.mrope_interleaved {
            if j % 3 == 1 && j < 3 * s[1] {
                1
            } else if j % 3 == 2 && j < 3 * s[2] {
                2
            } else {
                0
            }
        } else if j < s[0] {
            0
        } else if j < s[0] + s[1] {
            1
        } else {
            2
        }
    }

    /// cos/sin `[n, head_dim / 2]` for positions `[n][t, h, w]` (f32, then
    /// the model's dtype, as transformers).
    fn rope_tables(&self, pos: &[[u32; 3]]) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(pos.len() * half);
        let mut sin = Vec::with_capacity(pos.len() * half);
        for p in pos {
            for (j, &f) in self.inv_freq.iter().enumerate() {
                let a = p[self.axis_of(j)] as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let n = pos.len();
        Ok((
            Tensor::from_vec(cos, (n, half), &self.device)?.to_dtype(self.dtype)?,
            Tensor::from_vec(sin, (n, half), &self.device)?.to_dtype(self.dtype)?,
        ))
    }

    /// Runs `x` (`[n, hidden]` embeddings at positions `pos`) through the
    /// decoder after what `cache` holds, appending to it. `deepstack` gives
    /// the row indices of image tokens in `x` and one feature tensor per
    /// DeepStack layer. Returns the final-norm hidden states `[n, hidden]`.
    pub fn forward(
        &self,
        x: Tensor,
        pos: &[[u32; 3]],
        cache: &mut KvCache,
        deepstack: Option<(&Tensor, &[Tensor])>,
    ) -> Result<Tensor> {
        let n = x.dim(0)?;
        let (nh, nkv, hd) = (
            self.cfg.num_attention_heads,
            self.cfg.num_key_value_heads,
            self.cfg.head_dim,
        );
        let (cos, sin) = self.rope_tables(pos)?;
        let past = cache.len;
        let mask = if n > 1 {
            let m: Vec<f32> = (0..n)
                .flat_map(|i| {
                    (0..past + n).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            Some(Tensor::from_vec(m, (n, past + n), &self.device)?)
        } else {
            None
        };
        let mut x = x;
        for (li, l) in self.layers.iter().enumerate() {
            let h = l.ln1.forward(&x)?;
            let q = l.q.forward(&h)?.reshape((n, nh, hd))?;
            let k = l.k.forward(&h)?.reshape((n, nkv, hd))?;
            let v = l.v.forward(&h)?.reshape((n, nkv, hd))?;
            let q = norm_heads(&l.q_norm, q)?
                .transpose(0, 1)?
                .unsqueeze(0)?
                .contiguous()?;
            let k = norm_heads(&l.k_norm, k)?
                .transpose(0, 1)?
                .unsqueeze(0)?
                .contiguous()?;
            let v = v.transpose(0, 1)?.unsqueeze(0)?.contiguous()?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
            let (k, v) = cache.append(li, &k, &v)?;
            let o = self.attend(&q, &k, &v, n, mask.as_ref())?;
            x = l.ffn(&(&x + l.o.forward(&o)?)?)?;
            if let Some((rows, feats)) = deepstack
                && li < feats.len()
            {
                x = x.index_add(rows, &feats[li].to_dtype(self.dtype)?, 0)?;
            }
        }
        cache.len += n;
        self.norm.forward(&x)
    }

    /// One decode step for `B` sequences at once: `x` holds one token's
    /// embedding per sequence (`[B, hidden]`), `pos` their positions and
    /// `caches` their own KV caches (of any lengths). The projections and
    /// MLPs run as one `B`-row product (every weight is read once for all
    /// rows); attention runs per row against its own cache. Returns the
    /// final-norm hidden states `[B, hidden]`.
    pub fn forward_decode(
        &self,
        x: Tensor,
        pos: &[[u32; 3]],
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let b = x.dim(0)?;
        if b != caches.len() || b != pos.len() {
            candle_core::bail!("{b} tokens for {} caches", caches.len());
        }
        let (nh, nkv, hd) = (
            self.cfg.num_attention_heads,
            self.cfg.num_key_value_heads,
            self.cfg.head_dim,
        );
        let (cos, sin) = self.rope_tables(pos)?;
        let (cos, sin) = (cos.unsqueeze(1)?, sin.unsqueeze(1)?);
        let mut x = x;
        for (li, l) in self.layers.iter().enumerate() {
            let h = l.ln1.forward(&x)?;
            let q = norm_heads(&l.q_norm, l.q.forward(&h)?.reshape((b, nh, hd))?)?;
            let k = norm_heads(&l.k_norm, l.k.forward(&h)?.reshape((b, nkv, hd))?)?;
            let v = l.v.forward(&h)?.reshape((b, nkv, 1, hd))?;
            let q = candle_nn::rotary_emb::rope(&q.unsqueeze(2)?.contiguous()?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k.unsqueeze(2)?.contiguous()?, &cos, &sin)?;
            let mut outs = Vec::with_capacity(b);
            for (r, cache) in caches.iter_mut().enumerate() {
                let (kr, vr) = cache.append(li, &k.narrow(0, r, 1)?, &v.narrow(0, r, 1)?)?;
                outs.push(self.attend(&q.narrow(0, r, 1)?, &kr, &vr, 1, None)?);
            }
            let o = Tensor::cat(&outs, 0)?;
            x = l.ffn(&(&x + l.o.forward(&o)?)?)?;
        }
        for c in caches.iter_mut() {
            c.len += 1;
        }
        self.norm.forward(&x)
    }

    /// Grouped-query attention of `n` queries `q` (`[1, heads, n, head_dim]`,
    /// rotated) against a sequence's cached keys and values (`[1, kv_heads,
    /// total, head_dim]`): each kv head serves `heads / kv_heads` query
    /// heads; scores and softmax in f32 as transformers' eager attention.
    /// Returns `[n, heads · head_dim]`.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        n: usize,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (nh, nkv, hd) = (
            self.cfg.num_attention_heads,
            self.cfg.num_key_value_heads,
            self.cfg.head_dim,
        );
        let rep = nh / nkv;
        let total = k.dim(2)?;
        let q = q.reshape((nkv, rep * n, hd))?;
        let k = k.squeeze(0)?.contiguous()?;
        let v = v.squeeze(0)?.contiguous()?;
        let att = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?
            .to_dtype(DType::F32)?
            .reshape((nkv, rep, n, total))?;
        let att = match mask {
            Some(m) => att.broadcast_add(m)?,
            None => att,
        };
        candle_nn::ops::softmax_last_dim(&att)?
            .to_dtype(self.dtype)?
            .reshape((nkv, rep * n, total))?
            .matmul(&v)?
            .reshape((nh, n, hd))?
            .transpose(0, 1)?
            .reshape((n, nh * hd))
    }

    /// Logits `[n, vocab]` (f32) of final hidden states.
    pub fn logits(&self, h: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(h)?.to_dtype(DType::F32)
    }

    /// The vocabulary size.
    pub fn vocab(&self) -> usize {
        self.cfg.vocab_size
    }
}
