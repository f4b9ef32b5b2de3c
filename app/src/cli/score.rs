//! `virl score`: score rollouts produced elsewhere.

use super::RewardArgs;
use anyhow::Context;
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use virl_engine::dataset::Dataset;
use virl_engine::fsutil::atomic_write;
use virl_engine::metrics::{RAT_IOU, summarize};
use virl_engine::score::{RolloutFormat, score_rollouts};

/// Flags of `virl score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Dataset folder (with manifest.jsonl) holding the samples and ground-truth boxes.
    #[arg(long)]
    dataset: PathBuf,
    /// Rollouts, one JSON object per line.
    #[arg(long)]
    rollouts: PathBuf,
    /// Input format: virl (our records: {"sample", "group"?, "zooms", "answer"}), verl (rollout dumps), or a dialect of model text {"sample", "output", "shown"?: [w, h]}: deepeyes, chain-of-focus, mini-o3, pixel-reasoner, qwen3-vl, virl-text. Boxes are mapped from the dialect's frame to original pixels.
    #[arg(long, default_value = "virl")]
    format: RolloutFormat,
    /// Key holding the sample id (dotted paths like `extra_info.index` allowed). Required for verl; default `sample`.
    #[arg(long)]
    id_key: Option<String>,
    /// Where to write the scores (JSONL, one line per trajectory in input order); `-` for stdout.
    #[arg(long)]
    out: PathBuf,
    /// How many format problems and skipped lines to list on stderr.
    #[arg(long, default_value_t = 10)]
    show: usize,
    #[command(flatten)]
    reward: RewardArgs,
}

/// `virl score`: scores a rollout file against a dataset and writes one line per trajectory.
pub fn run(a: ScoreArgs) -> anyhow::Result<()> {
    let cfg = a.reward.to_config()?;
    let ds = Dataset::load(&a.dataset)?;
    let bytes = std::fs::read(&a.rollouts)
        .with_context(|| format!("cannot read rollouts {}", a.rollouts.display()))?;
    let report = score_rollouts(&bytes, a.format, a.id_key.as_deref(), &ds, &cfg);
    let out = virl_engine::fsutil::to_jsonl(report.trajectories.iter().map(|t| t.score_line()));
    if a.out.as_os_str() == "-" {
        print!("{out}");
    } else {
        atomic_write(&a.out, out.as_bytes())
            .with_context(|| format!("cannot write {}", a.out.display()))?;
    }
    eprint!("{}", summary(&a, &report));
    if report.trajectories.is_empty() {
        anyhow::bail!(
            "no line of {} could be scored (see the skipped lines above)",
            a.rollouts.display()
        );
    }
    Ok(())
}

fn summary(a: &ScoreArgs, r: &virl_engine::score::ScoreReport) -> String {
    let m = summarize(0, &r.trajectories, RAT_IOU);
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scored {} trajectories in {} groups from {} (format {}, mode {})",
        r.trajectories.len(),
        r.groups,
        a.rollouts.display(),
        a.format,
        a.reward.mode
    );
    let _ = writeln!(
        s,
        "  Acc_ans {:.3}  Acc_rat {}  coverage {}  mean zooms {:.2}  mean reward {:.3} (ans {:.3}, rat {:.3}, fmt {:.3})",
        m.acc_ans,
        opt(m.acc_rat),
        opt(m.coverage),
        m.zooms,
        m.reward_total,
        m.reward_ans,
        m.reward_rat,
        m.reward_fmt
    );
    let list = |s: &mut String, title: String, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(s, "  {title}:");
        for it in items.iter().take(a.show) {
            let _ = writeln!(s, "    {it}");
        }
        if items.len() > a.show {
            let _ = writeln!(s, "    … and {} more", items.len() - a.show);
        }
    };
    list(
        &mut s,
        format!("R_fmt = -1 on {} lines", r.format_errors.len()),
        r.format_errors
            .iter()
            .map(|(l, es)| format!("line {l}: {}", es.join("; ")))
            .collect(),
    );
    list(
        &mut s,
        format!("skipped {} lines", r.skipped.len()),
        r.skipped
            .iter()
            .map(|k| format!("line {}: {}", k.line, k.reason))
            .collect(),
    );
    if r.skipped.is_empty() {
        let _ = writeln!(s, "  skipped 0 lines");
    }
    if a.out.as_os_str() != "-" {
        let _ = writeln!(s, "wrote {}", a.out.display());
    }
    s
}
