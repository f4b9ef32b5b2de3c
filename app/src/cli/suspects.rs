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
    /// Probe the session's latest policy: K rollouts per sample with the zoom forced onto the
    /// consensus box and onto the ground truth, to sharpen the ranking (0: rollouts only).
    #[arg(long, default_value_t = 8)]
    probe: usize,
}

/// `virl suspects`: ranks a session's samples by how likely their boxes are wrong.
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
    let mut ranking = suspect::rank(
        &recs,
        |id| by_id.get(id).copied(),
        &SuspectConfig {
            w_min: a.w_min,
            n0: a.n0,
        },
    );
    let noisy_of = |id: &str| {
        by_id
            .get(id)
            .and_then(|s| suspect::zoombench_label_noise(s))
    };
    let report_precision = |ranking: &[suspect::Suspect], what: &str| {
        let shifted = ranking
            .iter()
            .filter(|s| noisy_of(&s.sample) == Some(true))
            .count();
        if shifted == 0 {
            return;
        }
        let line: Vec<String> = [5, 10, 20, shifted]
            .iter()
            .filter_map(|&k| {
                suspect::precision_at(ranking, k, |id| noisy_of(id) == Some(true))
                    .map(|p| format!("precision@{k} {p:.3}"))
            })
            .collect();
        println!("{what}: {}", line.join(", "));
    };
    if a.probe > 0 {
        report_precision(&ranking, "rollouts only");
        probe(&a, &session, &cfg, &train, &mut ranking)?;
        ranking.sort_by(|x, y| {
            y.score
                .total_cmp(&x.score)
                .then_with(|| x.sample.cmp(&y.sample))
        });
    }
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
        "{:>4}  {:<16} {:>9} {:>9} {:>8} {:>9} {:>15} {:>11}  shifted",
        "rank",
        "sample",
        "suspicion",
        "correct",
        "support",
        "gt cover",
        "right elsewhere",
        "p_c / p_gt"
    );
    for (i, s) in ranking.iter().take(a.top).enumerate() {
        println!(
            "{:>4}  {:<16} {:>9.3} {:>5}/{:<3} {:>8.2} {:>9.2} {:>15.2} {:>11}  {}",
            i + 1,
            s.sample,
            s.score,
            s.correct,
            s.trajectories,
            s.support,
            s.gt_cover,
            s.right_elsewhere,
            s.probe
                .map_or("-".to_string(), |(c, g)| format!("{c:.2} / {g:.2}")),
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

/// Sharpens the ranking with the session's latest policy ([`suspect::with_probe`]).
fn probe(
    a: &SuspectArgs,
    session: &Session,
    cfg: &virl_engine::config::SessionConfig,
    train: &virl_engine::dataset::Dataset,
    ranking: &mut [suspect::Suspect],
) -> anyhow::Result<()> {
    use virl_engine::dataset::{Dataset, Rationale};
    use virl_engine::filter::Probe;
    use virl_engine::trainer::{Trainer, load_splits_for};
    let mut t = Trainer::new(cfg.clone(), None).map_err(anyhow::Error::msg)?;
    let (tensors, state) = session
        .checkpoints()
        .latest(t.policy().device())?
        .with_context(|| {
            format!(
                "{} has no checkpoint to probe with (use --probe 0)",
                a.session.display()
            )
        })?;
    t.load(&tensors, state).map_err(anyhow::Error::msg)?;
    let (_, source, _, _) = load_splits_for(cfg, Some(&a.session)).map_err(anyhow::Error::msg)?;
    // The training-split samples with a consensus box.
    let idx: Vec<usize> = ranking
        .iter()
        .enumerate()
        .filter(|(_, s)| s.consensus.is_some() && train.get(&s.sample).is_some())
        .map(|(i, _)| i)
        .collect();
    // The probe at the ground truth uses the consensus box's size, centred on
    // each ground-truth box: location is tested, not the crop's scale (a
    // tight box can read worse than the policy's usual, looser zoom).
    let gt: Vec<Sample> = idx
        .iter()
        .filter_map(|&i| {
            let s = train.get(&ranking[i].sample)?;
            let c = ranking[i].consensus?;
            let (w, h) = (s.width as f64, s.height as f64);
            let rationales = s
                .rationales
                .iter()
                .map(|r| {
                    let (gx, gy) = r.bbox.center();
                    let (cx, cy) = c.center();
                    let m = c.translate(gx - cx, gy - cy);
                    let m = m.translate(
                        (-m.x1).max(0.0) - (m.x2 - w).max(0.0),
                        (-m.y1).max(0.0) - (m.y2 - h).max(0.0),
                    );
                    Rationale {
                        bbox: m.clip(w, h).unwrap_or(r.bbox),
                        label: r.label.clone(),
                    }
                })
                .collect();
            Some(Sample {
                rationales,
                ..s.clone()
            })
        })
        .collect();
    let at_c: Vec<Sample> = idx
        .iter()
        .zip(&gt)
        .map(|(&i, s)| Sample {
            rationales: vec![Rationale {
                bbox: ranking[i]
                    .consensus
                    .unwrap_or(virl_engine::geometry::BBox::new(0.0, 0.0, 1.0, 1.0)),
                label: String::new(),
            }],
            ..s.clone()
        })
        .collect();
    let p_gt = t
        .probe(
            Dataset::new(train.root(), gt),
            source.clone(),
            a.probe,
            &|s| Probe::GroundTruthZoom.zooms(s),
            |_, _| {},
        )
        .map_err(anyhow::Error::msg)?;
    let p_c = t
        .probe(
            Dataset::new(train.root(), at_c),
            source,
            a.probe,
            &|s| Probe::GroundTruthZoom.zooms(s),
            |_, _| {},
        )
        .map_err(anyhow::Error::msg)?;
    for ((&i, c), g) in idx.iter().zip(p_c).zip(p_gt) {
        suspect::with_probe(&mut ranking[i], c, g);
    }
    Ok(())
}
