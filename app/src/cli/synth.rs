//! `virl synth`: write a ZoomBench split as a dataset folder.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;
use virl_engine::dataset::zoombench::{QuestionMix, ZoomBench, ZoomBenchConfig};

/// Flags of `virl synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Folder to create (must not already hold a manifest.jsonl).
    #[arg(long)]
    out: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 100)]
    n: u64,
    /// Seed: the same seed gives the same images and samples on every machine.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Canvas side in pixels.
    #[arg(long, default_value_t = 768, help_heading = "ZoomBench knobs")]
    canvas: u32,
    /// Smallest placard side in pixels.
    #[arg(long, default_value_t = 14, help_heading = "ZoomBench knobs")]
    placard_min: u32,
    /// Largest placard side in pixels.
    #[arg(long, default_value_t = 28, help_heading = "ZoomBench knobs")]
    placard_max: u32,
    /// Fewest placards per image.
    #[arg(long, default_value_t = 3, help_heading = "ZoomBench knobs")]
    placards_min: u32,
    /// Most placards per image (≤ 10).
    #[arg(long, default_value_t = 7, help_heading = "ZoomBench knobs")]
    placards_max: u32,
    /// Clutter shapes per image.
    #[arg(long, default_value_t = 40, help_heading = "ZoomBench knobs")]
    distractors: u32,
    /// Question mix, e.g. `digit=2,compare=1,sum=1` or `digit`.
    #[arg(long, default_value = "digit", help_heading = "ZoomBench knobs")]
    mix: QuestionMix,
    /// Probability that a placard shows its colour's fixed digit (a text-prior shortcut).
    #[arg(long, default_value_t = 0.0, help_heading = "ZoomBench knobs")]
    shortcut_bias: f64,
    /// Probability that a placard is large enough to read in the global view.
    #[arg(long, default_value_t = 0.0, help_heading = "ZoomBench knobs")]
    large_fraction: f64,
    /// Side of a large placard as a fraction of the canvas side (0: sized by the global view).
    #[arg(long, default_value_t = 0.0, help_heading = "ZoomBench knobs")]
    large_side: f64,
    /// Fraction of samples whose ground-truth boxes are shifted off their placard.
    #[arg(long, default_value_t = 0.0, help_heading = "ZoomBench knobs")]
    label_noise: f64,
    /// Side of the policy's global view (sizes the large placards).
    #[arg(long, default_value_t = 64, help_heading = "ZoomBench knobs")]
    global_view: u32,
}

/// `virl synth`: writes a ZoomBench split as a dataset folder.
pub fn run(a: SynthArgs) -> anyhow::Result<()> {
    let cfg = ZoomBenchConfig {
        canvas: a.canvas,
        placard_min: a.placard_min,
        placard_max: a.placard_max,
        placards_min: a.placards_min,
        placards_max: a.placards_max,
        distractors: a.distractors,
        question_mix: a.mix,
        shortcut_bias: a.shortcut_bias,
        large_fraction: a.large_fraction,
        large_side: a.large_side,
        label_noise: a.label_noise,
        global_view: a.global_view,
    };
    let zb = ZoomBench::new(cfg).map_err(|e| anyhow::anyhow!("invalid ZoomBench knobs: {e}"))?;
    if a.n == 0 {
        anyhow::bail!("--n must be at least 1");
    }
    let start = Instant::now();
    let pb = super::progress_bar(a.n, "synth");
    let ds = zb
        .write_dataset(&a.out, a.n, a.seed, |i| pb.set_position(i))
        .with_context(|| format!("writing ZoomBench to {}", a.out.display()))?;
    pb.finish_and_clear();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    let mut noisy = 0;
    for s in ds.samples() {
        if let Some(m) = &s.meta {
            *kinds
                .entry(m["kind"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
            noisy += usize::from(m["label_noise"].as_bool().unwrap_or(false));
        }
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    eprintln!(
        "wrote {} samples ({}; {} with shifted ground truth) to {} in {:.1} s",
        ds.len(),
        kinds.join(", "),
        noisy,
        ds.manifest_path().display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
