//! Comparing this implementation with transformers on the files
//! `bench/qwen3vl_reference.py` writes (`virl vlm compare`).

use super::QwenError;
use super::image::{PreparedImage, prepare};
use super::model::{LogitsOf, Piece, QwenVl};
use super::text::KvCache;
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// How far our outputs are from the reference's.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Tokens in the sequence.
    pub tokens: usize,
    /// Largest `|ours − reference|` over all logits, whole sequence in one pass.
    pub max_abs: f64,
    /// `max_abs / max |reference|`.
    pub max_rel: f64,
    /// The same, with the sequence fed in two chunks through the KV cache.
    pub max_rel_cached: f64,
    /// Fraction of positions whose arg-max token agrees.
    pub argmax_agree: f64,
    /// Largest `|ours − reference|` of the preprocessed pixel values.
    pub pixel_max_abs: f64,
    /// The reference's transformers version, from its metadata.
    pub transformers: String,
}

fn read_err(file: &Path, problem: impl std::fmt::Display) -> QwenError {
    QwenError::Config {
        file: file.to_path_buf(),
        problem: problem.to_string(),
    }
}

/// Runs `model` on the reference's images and token ids and compares.
pub fn compare(model: &QwenVl, reference: &Path) -> Result<Comparison, QwenError> {
    let bytes = std::fs::read(reference).map_err(|e| QwenError::Io {
        file: reference.to_path_buf(),
        source: e,
    })?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| read_err(reference, e))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let t = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| read_err(reference, e))?;
    let get = |k: &str| {
        t.get(k)
            .cloned()
            .ok_or_else(|| read_err(reference, format!("no tensor `{k}`")))
    };
    let ids: Vec<u32> = get("input_ids")?
        .to_dtype(DType::U32)?
        .to_vec1()
        .map_err(|e| read_err(reference, e))?;
    let ref_logits = get("logits")?.to_dtype(DType::F32)?;
    let ref_px = get("pixel_values")?.to_dtype(DType::F32)?;
    let images: Vec<String> = meta
        .get("images")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| read_err(reference, "metadata has no `images` list"))?;
    let split: usize = meta
        .get("split")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| read_err(reference, "metadata has no `split`"))?;
    let base = reference.parent().unwrap_or(Path::new("."));
    let mut prepared: Vec<PreparedImage> = Vec::new();
    for p in &images {
        let name = Path::new(p).file_name().map(|n| base.join(n));
        let file = name
            .filter(|f| f.is_file())
            .unwrap_or_else(|| Path::new(p).to_path_buf());
        let img = ::image::open(&file)
            .map_err(|e| read_err(&file, format!("cannot read the image: {e}")))?
            .to_rgb8();
        prepared.push(prepare(&img, &model.image_config, None).map_err(|e| read_err(&file, e))?);
    }
    let ours_px: Vec<f32> = prepared
        .iter()
        .flat_map(|p| p.pixel_values.iter().copied())
        .collect();
    let ref_px: Vec<f32> = ref_px.flatten_all()?.to_vec1()?;
    if ours_px.len() != ref_px.len() {
        return Err(read_err(
            reference,
            format!(
                "pixel_values: ours has {} values, the reference {}",
                ours_px.len(),
                ref_px.len()
            ),
        ));
    }
    let pixel_max_abs = ours_px
        .iter()
        .zip(&ref_px)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max);
    // Pieces: runs of text, and each run of <|image_pad|> is one image.
    let pad = model.tokenizer.image_pad;
    let pieces_of = |ids: &[u32], mut next_img: usize| -> (Vec<(bool, Vec<u32>, usize)>, usize) {
        let mut out: Vec<(bool, Vec<u32>, usize)> = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let is_pad = ids[i] == pad;
            let mut j = i;
            while j < ids.len() && (ids[j] == pad) == is_pad {
                j += 1;
            }
            if is_pad {
                out.push((true, Vec::new(), next_img));
                next_img += 1;
            } else {
                out.push((false, ids[i..j].to_vec(), 0));
            }
            i = j;
        }
        (out, next_img)
    };
    let run = |chunks: &[&[u32]]| -> Result<Tensor, QwenError> {
        let mut cache = KvCache::default();
        let mut outs = Vec::new();
        let mut img = 0;
        for c in chunks {
            let (ps, next) = pieces_of(c, img);
            img = next;
            let pieces: Vec<Piece> = ps
                .iter()
                .map(|(is_img, ids, k)| {
                    if *is_img {
                        Piece::Image(&prepared[*k])
                    } else {
                        Piece::Text(ids)
                    }
                })
                .collect();
            outs.push(model.extend(&mut cache, &pieces, LogitsOf::All)?);
        }
        Ok(Tensor::cat(&outs, 0)?.to_device(&Device::Cpu)?)
    };
    let whole = run(&[&ids])?;
    let split = split.min(ids.len());
    let cached = run(&[&ids[..split], &ids[split..]])?;
    let ref_max = ref_logits.abs()?.max_all()?.to_scalar::<f32>()? as f64;
    let diff = |a: &Tensor| -> Result<f64, QwenError> {
        Ok((a - &ref_logits)?.abs()?.max_all()?.to_scalar::<f32>()? as f64)
    };
    let max_abs = diff(&whole)?;
    let max_rel_cached = diff(&cached)? / ref_max.max(1e-12);
    let a: Vec<u32> = whole.argmax(1)?.to_vec1()?;
    let b: Vec<u32> = ref_logits.argmax(1)?.to_vec1()?;
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64;
    Ok(Comparison {
        tokens: ids.len(),
        max_abs,
        max_rel: max_abs / ref_max.max(1e-12),
        max_rel_cached,
        argmax_agree: agree,
        pixel_max_abs,
        transformers: meta
            .get("transformers")
            .map(|s| s.trim_matches('"').to_string())
            .unwrap_or_default(),
    })
}
