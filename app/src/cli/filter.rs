//! `virl filter`: the three-stage reasoning-centric filter (engine
//! `dataset::filter`).

use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use virl_engine::dataset::Dataset;
use virl_engine::env::ImageSource;
use virl_engine::filter::{self, FilterConfig};

/// Flags of `virl filter`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// The dataset folder to filter (its correction journal is applied).
    #[arg(long)]
    dataset: PathBuf,
    /// The policy: a session folder (its latest checkpoint), a checkpoint file in a session's checkpoints/, or `qwen-vl` (with --model).
    #[arg(long)]
    policy: PathBuf,
    /// With --policy qwen-vl: the Qwen3-VL checkpoint folder.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// With --policy qwen-vl: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: virl_engine::policy::qwen_vl::Precision,
    /// With --policy qwen-vl: cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: virl_engine::policy::DeviceKind,
    /// With --policy qwen-vl: most tokens per assistant turn.
    #[arg(long, default_value_t = 512)]
    max_turn_tokens: usize,
    /// With --policy qwen-vl: pixel budget of the full image.
    #[arg(long, default_value_t = 512 * 512)]
    max_pixels: usize,
    /// The dataset folder to write: the kept samples, filter-report.json and dropped.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// Stage 1: drop samples whose rationale area ratio exceeds this.
    #[arg(long, default_value_t = FilterConfig::default().max_area_ratio)]
    max_area_ratio: f64,
    /// Stages 2 and 3: rollouts per sample.
    #[arg(long, default_value_t = FilterConfig::default().k)]
    k: usize,
    /// Stage 2: drop samples solved without zooming at least this often.
    #[arg(long, default_value_t = FilterConfig::default().no_zoom_pass)]
    no_zoom_pass: f64,
}

/// The session folder and checkpoint name a `--policy` path names.
fn policy_location(p: &Path) -> anyhow::Result<(PathBuf, Option<String>)> {
    if p.join("session.toml").is_file() {
        return Ok((p.to_path_buf(), None));
    }
    let dir = p
        .parent()
        .and_then(Path::parent)
        .filter(|d| d.join("session.toml").is_file())
        .with_context(|| {
            format!(
                "{} is neither a session folder nor a checkpoint inside one (<session>/checkpoints/<name>.safetensors)",
                p.display()
            )
        })?;
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((dir.to_path_buf(), Some(name)))
}

/// `virl filter`: runs the three-stage filter and writes the kept samples.
pub fn run(a: FilterArgs) -> anyhow::Result<()> {
    let cfg = FilterConfig {
        max_area_ratio: a.max_area_ratio,
        k: a.k,
        no_zoom_pass: a.no_zoom_pass,
    };
    cfg.validate().map_err(anyhow::Error::msg)?;
    let ds = Dataset::load(&a.dataset)?;
    for w in ds.journal_warnings() {
        eprintln!("warning: {w}");
    }
    let vlm_model;
    let mut vlm_prober;
    let mut trainer;
    let policy: &mut dyn filter::Prober = if a.policy.as_os_str() == "qwen-vl" {
        let dir = a
            .model
            .as_ref()
            .context("--policy qwen-vl needs --model DIR (a Qwen3-VL checkpoint folder)")?;
        let dev = virl_engine::policy::device(a.device).map_err(anyhow::Error::msg)?;
        vlm_model = virl_engine::policy::qwen_vl::QwenVl::load(dir, a.dtype, &dev)?;
        vlm_prober = virl_engine::vlm::VlmProber {
            model: &vlm_model,
            rollout: virl_engine::policy::qwen_vl::protocol::RolloutConfig {
                max_turn_tokens: a.max_turn_tokens,
                max_pixels: a.max_pixels,
                crop_max_pixels: a.max_pixels,
                ..Default::default()
            },
            seed: 0,
        };
        eprintln!(
            "filtering {} samples of {} with the Qwen3-VL checkpoint {}",
            ds.len(),
            a.dataset.display(),
            dir.display()
        );
        &mut vlm_prober
    } else {
        let (dir, ckpt) = policy_location(&a.policy)?;
        let (t, it) = super::train::trainer_at(&dir, ckpt.as_deref())?;
        eprintln!(
            "filtering {} samples of {} with the policy of {} after {it} iterations",
            ds.len(),
            a.dataset.display(),
            dir.display()
        );
        trainer = t;
        &mut trainer
    };
    let mut bar: Option<(u8, indicatif::ProgressBar)> = None;
    let rep = filter::run(
        &ds,
        ImageSource::Folder,
        policy,
        &cfg,
        |stage, done, total| {
            if bar.as_ref().is_none_or(|(s, _)| *s != stage) {
                if let Some((_, b)) = bar.take() {
                    b.finish_and_clear();
                }
                let what = if stage == 2 {
                    "stage 2 (no zoom)"
                } else {
                    "stage 3 (ground-truth zoom)"
                };
                bar = Some((stage, super::progress_bar(total as u64, what)));
            }
            if let Some((_, b)) = &bar {
                b.set_position(done as u64);
            }
        },
    )
    .map_err(anyhow::Error::msg)?;
    if let Some((_, b)) = bar {
        b.finish_and_clear();
    }
    filter::write(&rep, &ds, &a.out)?;
    println!("{}", summary(&rep));
    println!(
        "kept samples in {}; every dropped sample with its reason in {}",
        a.out.join("manifest.jsonl").display(),
        a.out.join(filter::DROPPED).display()
    );
    Ok(())
}

/// The report as a small table.
pub(crate) fn summary(rep: &filter::FilterReport) -> String {
    let c = rep.config.unwrap_or_default();
    let dropped = |st: u8| rep.dropped.iter().filter(|d| d.stage == st).count();
    format!(
        "stage                                              dropped    left\n\
         input                                                       {:>6}\n\
         1  rationale area ratio > {:<10}                {:>6}  {:>6}\n\
         2  solved without zoom in ≥ {:>3.0} % of {} rollouts      {:>6}  {:>6}\n\
         3  never solved with the ground-truth zoom ({} rollouts) {:>4}  {:>6}",
        rep.input,
        c.max_area_ratio,
        dropped(1),
        rep.after_stage[0],
        100.0 * c.no_zoom_pass,
        c.k,
        dropped(2),
        rep.after_stage[1],
        c.k,
        dropped(3),
        rep.after_stage[2],
    )
}
