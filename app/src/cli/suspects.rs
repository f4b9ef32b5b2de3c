//! `virl suspects`: rank a session's samples by how likely their ground-truth
//! boxes are wrong (engine `suspect`), from the policy's stored rollouts.

use anyhow::Context;
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use virl_engine::dataset::Sample;
use virl_engine::session::Session;
use virl_engine::suspect::{self, SuspectConfig};
use virl_engine::trainer::load_splits_for;

/// Flags of `virl suspects`.
#[derive(Debug, Args)]
pub struct SuspectArgs {
    /// The session whose rollouts are the evidence.
    #[arg(long)]
    session: PathBuf,
    /// Use the rollouts of the last N stored iterations (the current policy, not the untrained one).
    #[arg(long, default_value_t = 50)]
    last: usize,
    /// Rows to print.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Also write the whole ranking here as JSON Lines.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Weight floor w_min of a correct trajectory's zoom.
    #[arg(long, default_value_t = SuspectConfig::default().w_min)]
    w_min: f64,
    /// Correct trajectories n_0 for half the evidence.
    #[arg(long, default_value_t = SuspectConfig::default().n0)]
    n0: f64,
}

pub fn run(a: SuspectArgs) -> anyhow::Result<()> {
    let (session, cfg) = Session::open(&a.session)?;
    let (train, _, eval, _) =
        load_splits_for(&cfg, Some(&a.session)).map_err(anyhow::Error::msg)?;
    let by_id: HashMap<&str, &Sample> = train
        .samples()
        .iter()
        .chain(eval.samples())
        .map(|s| (s.id.as_str(), s))
        .collect();
    let iters = session.rollout_iterations();
    let used = &iters[iters.len().saturating_sub(a.last)..];
    anyhow::ensure!(
        !used.is_empty(),
        "{} has no stored rollouts yet: train it first",
        a.session.display()
    );
    let mut recs = Vec::new();
    for &it in used {
        recs.extend(session.read_rollouts(it)?);
    }
    let ranking = suspect::rank(
        &recs,
        |id| by_id.get(id).copied(),
        &SuspectConfig {
            w_min: a.w_min,
            n0: a.n0,
        },
    );
    println!(
        "{} samples ranked from {} trajectories of iterations {}..={}",
        ranking.len(),
        recs.len(),
        used[0],
        used[used.len() - 1]
    );
    let noisy = |id: &str| {
        by_id
            .get(id)
            .and_then(|s| suspect::zoombench_label_noise(s))
    };
    println!(
        "{:>4}  {:<16} {:>9} {:>9} {:>8} {:>9} {:>15}  shifted",
        "rank", "sample", "suspicion", "correct", "support", "gt cover", "right elsewhere"
    );
    for (i, s) in ranking.iter().take(a.top).enumerate() {
        println!(
            "{:>4}  {:<16} {:>9.3} {:>5}/{:<3} {:>8.2} {:>9.2} {:>15.2}  {}",
            i + 1,
            s.sample,
            s.score,
            s.correct,
            s.trajectories,
            s.support,
            s.gt_cover,
            s.right_elsewhere,
            noisy(&s.sample).map_or("?", |b| if b { "yes" } else { "no" })
        );
    }
    let shifted = ranking
        .iter()
        .filter(|s| noisy(&s.sample) == Some(true))
        .count();
    if ranking.iter().any(|s| noisy(&s.sample).is_some()) {
        let mut ks = vec![5, 10, 20];
        if shifted > 0 {
            ks.push(shifted);
        }
        let line: Vec<String> = ks
            .iter()
            .filter_map(|&k| {
                suspect::precision_at(&ranking, k, |id| noisy(id) == Some(true))
                    .map(|p| format!("precision@{k} {p:.3}"))
            })
            .collect();
        println!(
            "ZoomBench label_noise: {shifted} of {} ranked samples have shifted boxes; {}",
            ranking.len(),
            line.join(", ")
        );
    }
    if let Some(p) = &a.out {
        virl_engine::fsutil::atomic_write(p, virl_engine::fsutil::to_jsonl(&ranking).as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
        println!("ranking written to {}", p.display());
    }
    Ok(())
}
