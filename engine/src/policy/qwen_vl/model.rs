//! Loading a Qwen-VL checkpoint folder (Qwen3-VL or Qwen2.5-VL, picked by
//! `config.json`'s `model_type`: the one loader every call site uses) and
//! running it over a sequence of text and image pieces with a KV cache.

use super::QwenError;
use super::config::{Arch, QwenVlConfig};
use super::image::{ImageProcessorConfig, PreparedImage};
use super::text::{KvCache, TextModel};
use super::tokenizer::ChatTokenizer;
use super::vision::{VisionModel, VisionTower};
use super::vision25::Vision25;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The dtype weights are run in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit floats (the default on the CPU).
    #[default]
    F32,
    /// bfloat16 (what Qwen3-VL ships in).
    Bf16,
    /// float16.
    F16,
}

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" | "half" => Ok(Self::F16),
            o => Err(format!("unknown dtype `{o}` (expected f32, bf16 or f16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

/// A piece of the input sequence.
#[derive(Clone, Copy, Debug)]
pub enum Piece<'a> {
    /// Token ids.
    Text(&'a [u32]),
    /// An image: its `<|image_pad|>` tokens, filled with the vision tower's
    /// output. The caller writes `<|vision_start|>` / `<|vision_end|>`
    /// around it as text.
    Image(&'a PreparedImage),
}

/// Which logits [`QwenVl::extend`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsOf {
    /// Only the last position's, `[1, vocab]`.
    Last,
    /// Every new position's, `[n, vocab]`.
    All,
}

/// A loaded Qwen-VL model (either network) with its tokenizer and image
/// processor.
pub struct QwenVl {
    /// The checkpoint folder.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: QwenVlConfig,
    /// `preprocessor_config.json` (or the defaults).
    pub image_config: ImageProcessorConfig,
    /// `tokenizer.json` with the chat template's special tokens.
    pub tokenizer: ChatTokenizer,
    vision: Box<dyn VisionTower>,
    text: TextModel,
    device: Device,
    precision: Precision,
}

fn shard_files(dir: &Path) -> Result<Vec<PathBuf>, QwenError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| QwenError::Io {
            file: index.clone(),
            source: e,
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| QwenError::Config {
            file: index.clone(),
            problem: format!("not JSON: {e}"),
        })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| QwenError::Config {
                file: index.clone(),
                problem: "no `weight_map` object".into(),
            })?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        files.sort();
        files.dedup();
        let files: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(QwenError::Missing {
                file: missing.clone(),
                what: format!("a weight shard listed in {}", index.display()),
            });
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut any: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| QwenError::Io {
            file: dir.to_path_buf(),
            source: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    any.sort();
    if any.is_empty() {
        return Err(QwenError::Missing {
            file: single,
            what:
                "the weights (model.safetensors, or shards listed in model.safetensors.index.json)"
                    .into(),
        });
    }
    Ok(any)
}

impl QwenVl {
    /// Loads `dir`: `config.json`, the safetensors weights (one file or
    /// shards through the index), `tokenizer.json` and, if present,
    /// `preprocessor_config.json`. Nothing is downloaded.
    pub fn load(dir: &Path, precision: Precision, device: &Device) -> Result<Self, QwenError> {
        if !dir.is_dir() {
            return Err(QwenError::Missing {
                file: dir.to_path_buf(),
                what: "the model folder".into(),
            });
        }
        let need = |name: &str, what: &str| -> Result<PathBuf, QwenError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(QwenError::Missing {
                    file: p,
                    what: what.into(),
                })
            }
        };
        let config = QwenVlConfig::from_file(&need("config.json", "the model configuration")?)?;
        let pre = dir.join("preprocessor_config.json");
        let image_config = if pre.is_file() {
            ImageProcessorConfig::from_file_for(&pre, config.arch)?
        } else {
            ImageProcessorConfig {
                patch_size: config.vision.patch_size,
                temporal_patch_size: config.vision.temporal_patch_size,
                merge_size: config.vision.spatial_merge_size,
                ..ImageProcessorConfig::for_arch(config.arch)
            }
        };
        let v = &config.vision;
        if (
            image_config.patch_size,
            image_config.temporal_patch_size,
            image_config.merge_size,
        ) != (v.patch_size, v.temporal_patch_size, v.spatial_merge_size)
        {
            return Err(QwenError::Config {
                file: pre,
                problem: format!(
                    "patch_size / temporal_patch_size / merge_size {:?} differ from config.json's vision_config {:?}",
                    (
                        image_config.patch_size,
                        image_config.temporal_patch_size,
                        image_config.merge_size
                    ),
                    (v.patch_size, v.temporal_patch_size, v.spatial_merge_size)
                ),
            });
        }
        let tok_file = need("tokenizer.json", "the tokenizer")?;
        let tokenizer = ChatTokenizer::from_file(&tok_file)?;
        tokenizer.check_ids(&config, &tok_file)?;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for f in shard_files(dir)? {
            let t = candle_core::safetensors::load(&f, &Device::Cpu).map_err(|e| {
                QwenError::Weights {
                    file: f.clone(),
                    problem: e.to_string(),
                }
            })?;
            tensors.extend(t);
        }
        let weights_file = dir.join("model.safetensors");
        let vb = VarBuilder::from_tensors(tensors, precision.dtype(), device);
        let wrap = |e: candle_core::Error| QwenError::Weights {
            file: weights_file.clone(),
            problem: e.to_string(),
        };
        // `model.visual.*` as transformers holds it in memory (Qwen3-VL
        // saves it so), or `visual.*` as Qwen2.5-VL is saved on the Hub.
        let vis_vb = if vb.contains_tensor("model.visual.patch_embed.proj.weight") {
            vb.pp("model").pp("visual")
        } else {
            vb.pp("visual")
        };
        let vision: Box<dyn VisionTower> = match config.arch {
            Arch::Qwen3Vl => Box::new(VisionModel::new(&config.vision, vis_vb).map_err(wrap)?),
            Arch::Qwen25Vl => Box::new(Vision25::new(&config.vision, vis_vb).map_err(wrap)?),
        };
        let text = TextModel::new(&config.text, vb.clone()).map_err(wrap)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            image_config,
            tokenizer,
            vision,
            text,
            device: device.clone(),
            precision,
        })
    }

    /// Which network this is.
    pub fn arch(&self) -> Arch {
        self.config.arch
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype the weights run in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The vocabulary size.
    pub fn vocab(&self) -> usize {
        self.text.vocab()
    }

    /// One decode step for several sequences at once: token `ids[i]` is
    /// appended to `caches[i]`; returns each sequence's next-token logits.
    pub fn decode_batch(
        &self,
        caches: &mut [&mut KvCache],
        ids: &[u32],
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let x = self.text.embed(ids)?;
        let pos: Vec<[u32; 3]> = caches.iter().map(|c| [c.next_pos; 3]).collect();
        let h = self.text.forward_decode(x, &pos, caches)?;
        for c in caches.iter_mut() {
            c.next_pos += 1;
        }
        self.text.logits(&h)?.to_device(&Device::Cpu)?.to_vec2()
    }

    /// Runs `pieces` after what `cache` holds and appends them to it.
    /// Positions follow transformers' `get_rope_index`: text tokens count up
    /// from `cache.next_pos` on all three axes; an image's tokens get
    /// `(next_pos, next_pos + row, next_pos + col)` on its merged grid, and
    /// the text after it continues from the largest position used plus one.
    pub fn extend(
        &self,
        cache: &mut KvCache,
        pieces: &[Piece],
        which: LogitsOf,
    ) -> candle_core::Result<Tensor> {
        let images: Vec<&PreparedImage> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Image(i) => Some(*i),
                Piece::Text(_) => None,
            })
            .collect();
        let (vis, deep) = if images.is_empty() {
            (None, Vec::new())
        } else {
            let (v, d) = self.vision.encode(&images)?;
            (Some(v), d)
        };
        let mut parts = Vec::with_capacity(pieces.len());
        let mut pos: Vec<[u32; 3]> = Vec::new();
        let mut rows: Vec<u32> = Vec::new();
        let mut next = cache.next_pos;
        let mut img_off = 0;
        for p in pieces {
            match p {
                Piece::Text(ids) => {
                    if ids.is_empty() {
                        continue;
                    }
                    parts.push(self.text.embed(ids)?);
                    for _ in 0..ids.len() {
                        pos.push([next; 3]);
                        next += 1;
                    }
                }
                Piece::Image(img) => {
                    let n = img.tokens();
                    let v = vis
                        .as_ref()
                        .ok_or_else(|| candle_core::Error::Msg("no vision output".into()))?;
                    parts.push(v.narrow(0, img_off, n)?.to_dtype(self.precision.dtype())?);
                    let m = img.merge_size;
                    let [t, h, w] = img.grid_thw;
                    let (lh, lw) = (h / m, w / m);
                    let start = pos.len();
                    for ti in 0..t {
                        for r in 0..lh {
                            for c in 0..lw {
                                pos.push([next + ti as u32, next + r as u32, next + c as u32]);
                            }
                        }
                    }
                    rows.extend((start..start + n).map(|r| r as u32));
                    let max = pos[start..].iter().flat_map(|p| p.iter()).copied().max();
                    next = max.map_or(next, |m| m + 1);
                    img_off += n;
                }
            }
        }
        if parts.is_empty() {
            candle_core::bail!("nothing to run: every piece is empty");
        }
        let x = Tensor::cat(&parts, 0)?;
        let n = x.dim(0)?;
        let rows_t;
        let deepstack = if deep.is_empty() || rows.is_empty() {
            None
        } else {
            rows_t = Tensor::new(rows.as_slice(), &self.device)?;
            Some((&rows_t, deep.as_slice()))
        };
        let h = self.text.forward(x, &pos, cache, deepstack)?;
        cache.next_pos = next;
        match which {
            LogitsOf::Last => self.text.logits(&h.narrow(0, n - 1, 1)?),
            LogitsOf::All => self.text.logits(&h),
        }
    }
}
