//! `virl bench vlm`: Qwen3-VL prefill and decode tokens per second (the
//! peer of `bench/qwen3vl_speed.py`).

use clap::Args;
use std::time::Instant;

/// Options of `virl bench vlm`.
#[derive(Debug, Args)]
pub struct VlmBench {
    /// The checkpoint folder (`virl vlm init --preset tiny|2b`).
    #[arg(long)]
    model: std::path::PathBuf,
    /// Side of the square image (a multiple of 32: no resize).
    #[arg(long, default_value_t = 512)]
    image_side: u32,
    /// Text tokens around the image.
    #[arg(long, default_value_t = 64)]
    text_tokens: usize,
    /// Tokens decoded after the prefill.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Side of the crop of the second turn (0: one turn only).
    #[arg(long, default_value_t = 256)]
    crop_side: u32,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Rollouts decoded together after the shared prefill (a GRPO group);
    /// decode tokens/s counts all of them. Only with --crop-side 0.
    #[arg(long, default_value_t = 1)]
    group: usize,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: virl_engine::policy::qwen_vl::Precision,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: virl_engine::policy::DeviceKind,
}

/// The benchmark's image: a deterministic gradient with a checkerboard.
pub(super) fn bench_image(side: u32) -> image::RgbImage {
    image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([
            (x * 255 / side.max(1)) as u8,
            (y * 255 / side.max(1)) as u8,
            if (x / 32 + y / 32) % 2 == 0 { 200 } else { 40 },
        ])
    })
}

/// Runs the VLM benchmark.
pub(super) fn vlm(b: VlmBench) -> anyhow::Result<()> {
    use virl_engine::policy::qwen_vl::image::prepare;
    use virl_engine::policy::qwen_vl::{KvCache, LogitsOf, Piece, QwenVl};
    let dev = virl_engine::policy::device(b.device).map_err(anyhow::Error::msg)?;
    let t0 = Instant::now();
    let m = QwenVl::load(&b.model, b.dtype, &dev)?;
    let load_s = t0.elapsed().as_secs_f64();
    let tok = &m.tokenizer;
    let img =
        prepare(&bench_image(b.image_side), &m.image_config, None).map_err(anyhow::Error::msg)?;
    let crop = (b.crop_side > 0)
        .then(|| prepare(&bench_image(b.crop_side), &m.image_config, None))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    // The same ids as bench/qwen3vl_speed.py: byte tokens of 'a' (97)
    // around the image, half before, half after.
    let half = b.text_tokens / 2;
    let before: Vec<u32> = std::iter::once(tok.im_start)
        .chain(std::iter::repeat_n(97, half))
        .chain(std::iter::once(tok.vision_start))
        .collect();
    let after: Vec<u32> = std::iter::once(tok.vision_end)
        .chain(std::iter::repeat_n(97, b.text_tokens - half))
        .collect();
    let argmax = |l: &candle_core::Tensor| -> anyhow::Result<u32> {
        Ok(l.squeeze(0)?.argmax(0)?.to_scalar::<u32>()?)
    };
    let sync = |d: &candle_core::Device| d.synchronize();
    let mut rows = Vec::new();
    for rep in 0..=b.reps {
        let mut cache = KvCache::default();
        let t = Instant::now();
        let l = m.extend(
            &mut cache,
            &[
                Piece::Text(&before),
                Piece::Image(&img),
                Piece::Text(&after),
            ],
            LogitsOf::Last,
        )?;
        let mut next = argmax(&l)?;
        sync(&dev)?;
        let mut prefill_s = t.elapsed().as_secs_f64();
        let mut prefill_tokens = cache.len();
        let mut decode_s = 0.0;
        let mut decoded = 0;
        let turns: Vec<Option<&virl_engine::policy::qwen_vl::PreparedImage>> =
            std::iter::once(None)
                .chain(crop.as_ref().map(Some))
                .collect();
        for (k, turn) in turns.iter().enumerate() {
            if let Some(c) = turn {
                // The second turn: the crop as a tool response.
                let lead = [next, tok.im_end, tok.im_start, tok.vision_start];
                let tail = [tok.vision_end, tok.im_end, tok.im_start];
                let n0 = cache.len();
                let t = Instant::now();
                let l = m.extend(
                    &mut cache,
                    &[Piece::Text(&lead), Piece::Image(c), Piece::Text(&tail)],
                    LogitsOf::Last,
                )?;
                next = argmax(&l)?;
                sync(&dev)?;
                prefill_s += t.elapsed().as_secs_f64();
                prefill_tokens += cache.len() - n0;
            }
            let n = if k == 0 {
                b.new_tokens
            } else {
                b.new_tokens / 2
            };
            if b.group > 1 {
                // G forks of the conversation, decoded in batched steps.
                let mut forks: Vec<KvCache> = (0..b.group)
                    .map(|_| cache.fork())
                    .collect::<candle_core::Result<_>>()?;
                let mut ids = vec![next; b.group];
                let t = Instant::now();
                for _ in 0..n {
                    let mut refs: Vec<&mut KvCache> = forks.iter_mut().collect();
                    let rows = m.decode_batch(&mut refs, &ids)?;
                    for (id, r) in ids.iter_mut().zip(&rows) {
                        *id = r
                            .iter()
                            .enumerate()
                            .fold(
                                (0, f32::NEG_INFINITY),
                                |a, (i, &v)| {
                                    if v > a.1 { (i, v) } else { a }
                                },
                            )
                            .0 as u32;
                    }
                }
                sync(&dev)?;
                decode_s += t.elapsed().as_secs_f64();
                decoded += n * b.group;
                break;
            }
            let t = Instant::now();
            for _ in 0..n {
                let l = m.extend(&mut cache, &[Piece::Text(&[next])], LogitsOf::Last)?;
                next = argmax(&l)?;
            }
            sync(&dev)?;
            decode_s += t.elapsed().as_secs_f64();
            decoded += n;
        }
        if rep > 0 {
            rows.push((prefill_tokens, prefill_s, decoded, decode_s));
        }
    }
    // (prefill tokens, prefill s, decoded tokens, decode s) per repetition.
    type Row = (usize, f64, usize, f64);
    let med = |f: &dyn Fn(&Row) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let out = serde_json::json!({
        "impl": "virl (candle)",
        "model": b.model,
        "device": b.device.to_string(),
        "dtype": b.dtype.to_string(),
        "image_side": b.image_side,
        "crop_side": b.crop_side,
        "image_tokens": img.tokens(),
        "prefill_tokens": rows[0].0,
        "decode_tokens": rows[0].2,
        "load_s": load_s,
        "prefill_tokens_per_s": med(&|r| r.0 as f64 / r.1),
        "decode_tokens_per_s": med(&|r| r.2 as f64 / r.3),
        "reps": b.reps,
        "group": b.group,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
