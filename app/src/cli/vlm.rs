//! `virl vlm …`: tools for the Qwen3-VL policy: make a random checkpoint,
//! compare with transformers.

use anyhow::{Context, Result};
use std::path::PathBuf;
use virl_engine::policy::qwen_vl::{Precision, QwenVl, reference, tiny};
use virl_engine::policy::{DeviceKind, device};

/// The `vlm` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum VlmCommand {
    /// Write a random Qwen3-VL or Qwen2.5-VL checkpoint (real tensor names, config and a byte-level tokenizer) for tests, demos and benchmarks.
    Init(InitArgs),
    /// Compare our logits with the ones `bench/qwen3vl_reference.py` or `bench/qwen25vl_reference.py` saved from transformers.
    Compare(CompareArgs),
}

/// `virl vlm init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Qwen3-VL: `tiny` (under 1 MB) or `2b` (the shapes of Qwen3-VL-2B).
    /// Qwen2.5-VL: `qwen2.5-tiny`, `qwen2.5-3b` or `qwen2.5-7b` (the base of
    /// DeepEyes, Mini-o3, Chain-of-Focus and Pixel-Reasoner; 16.6 GB in bf16).
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Storage dtype of the weights (default: f32 for the tiny presets, bf16 for the real shapes as Qwen ships them).
    #[arg(long)]
    dtype: Option<Precision>,
}

/// `virl vlm compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The checkpoint folder the script saved.
    #[arg(long)]
    model: PathBuf,
    /// `reference.safetensors` (f32) or `reference-bf16.safetensors`.
    #[arg(long)]
    reference: PathBuf,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: Precision,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: DeviceKind,
}

/// Runs a `vlm` subcommand.
pub fn run(c: VlmCommand) -> Result<()> {
    match c {
        VlmCommand::Init(a) => {
            let spec = tiny::TinySpec::preset(&a.preset).map_err(anyhow::Error::msg)?;
            let dtype = a.dtype.unwrap_or(if spec.is_small() {
                Precision::F32
            } else {
                Precision::Bf16
            });
            tiny::write_model(&a.out, &spec, a.seed, dtype.dtype()).map_err(anyhow::Error::msg)?;
            println!(
                "wrote a random {} ({} preset, seed {}, {dtype}) to {}",
                spec.arch.name(),
                a.preset,
                a.seed,
                a.out.display()
            );
            Ok(())
        }
        VlmCommand::Compare(a) => {
            let dev = device(a.device).map_err(anyhow::Error::msg)?;
            let model = QwenVl::load(&a.model, a.dtype, &dev)?;
            let r = reference::compare(&model, &a.reference)
                .with_context(|| format!("comparing with {}", a.reference.display()))?;
            println!(
                "{} tokens, {} on {}, reference from transformers {}",
                r.tokens, a.dtype, a.device, r.transformers
            );
            println!("pixel values        max |diff| {:.3e}", r.pixel_max_abs);
            println!(
                "logits, one pass    max |diff| {:.3e}   max |diff| / max |ref| {:.3e}",
                r.max_abs, r.max_rel
            );
            println!(
                "logits, KV cache    max |diff| / max |ref| {:.3e}",
                r.max_rel_cached
            );
            println!("arg-max agreement   {:.1} %", 100.0 * r.argmax_agree);
            Ok(())
        }
    }
}
