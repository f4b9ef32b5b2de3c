//! `virl experiment`: the ablations of the paper in miniature.

use super::train::ProgressSink;
use clap::{Args, Subcommand};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use virl_engine::config::SessionConfig;
use virl_engine::fsutil::atomic_write;
use virl_engine::metrics::IterationMetrics;
use virl_engine::reward::RewardMode;
use virl_engine::session::Session;
use virl_engine::trainer::Trainer;

/// The experiments `virl experiment` runs.
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// outcome vs fidelity vs virl on the same seeds (shortcut-biased ZoomBench by default).
    Ablation(ExpArgs),
    /// h0 ∈ {0.2, 0.3, 0.4, 0.5} in virl mode.
    H0(ExpArgs),
    /// Train on unfiltered vs filtered (three-stage filter) shortcut-biased ZoomBench.
    Filtering(ExpArgs),
}

/// Flags every experiment shares.
#[derive(Debug, Args)]
pub struct ExpArgs {
    /// Base config (default: the defaults with data.zoombench.shortcut_bias = 0.5).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Iterations per run.
    #[arg(long, default_value_t = 200)]
    iters: u64,
    /// Supervised warm-up iterations at the start of each run.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Output folder: one session per run, curves.csv and summary.md.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Greedy evaluation samples at the end of each run.
    #[arg(long, default_value_t = 128)]
    eval_n: usize,
    /// Seeds (weights, sampling, batch order) to run every arm with; the
    /// data and the held-out set stay the same. Runs are named `<arm>-s<seed>`
    /// and the summary gives each arm's mean ± standard deviation.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
}

/// The greedy evaluation of one run, for the summary.
struct Outcome {
    arm: String,
    seed: u64,
    eval: IterationMetrics,
    reward_tail: f64,
    zooms_tail: f64,
    /// The failure signatures of its RL iterations, `kind (from iteration N)`.
    failures: String,
}

/// `| arm | n | Acc_ans | Acc_rat | coverage | zooms |` rows, mean ± std over
/// each arm's seeds, then one row per seed.
fn summary(outcomes: &[Outcome]) -> String {
    use virl_engine::metrics::seeds::mean_std;
    let ms = |v: Vec<f64>| match mean_std(&v) {
        Some((m, s)) if v.len() > 1 => format!("{m:.3} ± {s:.3}"),
        Some((m, _)) => format!("{m:.3}"),
        None => "n/a".into(),
    };
    let mut arms: Vec<&str> = Vec::new();
    for o in outcomes {
        if !arms.contains(&o.arm.as_str()) {
            arms.push(&o.arm);
        }
    }
    let mut t = String::from(
        "Greedy held-out evaluation at the end of each run: mean ± standard deviation (n − 1) over seeds.\n\n\
         | arm | seeds | Acc_ans | Acc_rat | coverage | zooms/traj |\n|---|---|---|---|---|---|\n",
    );
    for arm in &arms {
        let of: Vec<&Outcome> = outcomes.iter().filter(|o| o.arm == *arm).collect();
        let col = |f: &dyn Fn(&IterationMetrics) -> Option<f64>| {
            ms(of.iter().filter_map(|o| f(&o.eval)).collect())
        };
        let _ = writeln!(
            t,
            "| {arm} | {} | {} | {} | {} | {} |",
            of.len(),
            col(&|m| Some(m.acc_ans)),
            col(&|m| m.acc_rat),
            col(&|m| m.coverage),
            col(&|m| Some(m.zooms)),
        );
    }
    t.push_str(
        "\nEvery run:\n\n| run | final Acc_ans (greedy) | Acc_rat | coverage | zooms/traj | last-10 mean train reward | last-10 train zooms | failure signatures (RL iterations) |\n|---|---|---|---|---|---|---|---|\n",
    );
    let o = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    for r in outcomes {
        let _ = writeln!(
            t,
            "| {}-s{} | {:.3} | {} | {} | {:.2} | {:.3} | {:.2} | {} |",
            r.arm,
            r.seed,
            r.eval.acc_ans,
            o(r.eval.acc_rat),
            o(r.eval.coverage),
            r.eval.zooms,
            r.reward_tail,
            r.zooms_tail,
            r.failures
        );
    }
    t
}

/// `virl experiment`: runs one experiment and writes its curves and table.
pub fn run(c: ExperimentCommand) -> anyhow::Result<()> {
    let (name, a) = match &c {
        ExperimentCommand::Ablation(a) => ("ablation", a),
        ExperimentCommand::H0(a) => ("h0", a),
        ExperimentCommand::Filtering(a) => return filtering(a),
    };
    let base = base_config(a)?;
    let runs: Vec<(String, SessionConfig)> = match c {
        ExperimentCommand::Ablation(_) => RewardMode::ALL
            .iter()
            .map(|&m| {
                let mut c = base.clone();
                c.reward.mode = m;
                (m.to_string(), c)
            })
            .collect(),
        ExperimentCommand::Filtering(_) => Vec::new(),
        ExperimentCommand::H0(_) => [0.2, 0.3, 0.4, 0.5]
            .iter()
            .map(|&h| {
                let mut c = base.clone();
                c.reward.mode = RewardMode::Virl;
                c.reward.h0 = h;
                (format!("h0={h}"), c)
            })
            .collect(),
    };
    let out = out_dir(a.out.clone(), name);
    std::fs::create_dir_all(&out)?;
    let mut csv = String::from(CSV_HEADER);
    let mut outcomes = Vec::new();
    let runs: Vec<(String, u64, SessionConfig)> = runs
        .into_iter()
        .flat_map(|(arm, cfg)| {
            a.seeds.iter().map(move |&seed| {
                let mut c = cfg.clone();
                c.seed = seed;
                (arm.replace('=', "-"), seed, c)
            })
        })
        .collect();
    for (arm, seed, cfg) in runs {
        let label = format!("{arm}-s{seed}");
        let dir = out.join(&label);
        eprintln!("{name}: run {label} → {}", dir.display());
        let mut t = start_or_resume(&dir, cfg)?;
        let mut sink = ProgressSink::new(a.iters, t.iteration(), false);
        t.run(&mut sink, &AtomicBool::new(false))
            .map_err(anyhow::Error::msg)?;
        let (e, _) = t
            .evaluate(a.eval_n, &mut virl_engine::events::NullSink)
            .map_err(anyhow::Error::msg)?;
        for m in t.history() {
            csv.push_str(&csv_row(&label, m));
        }
        let tail: Vec<&IterationMetrics> = t.history().iter().rev().take(10).collect();
        let mean = |f: &dyn Fn(&IterationMetrics) -> f64| {
            tail.iter().map(|m| f(m)).sum::<f64>() / tail.len().max(1) as f64
        };
        outcomes.push(Outcome {
            arm,
            seed,
            reward_tail: mean(&|m| m.reward_total),
            zooms_tail: mean(&|m| m.zooms),
            failures: failures(&t),
            eval: e,
        });
    }
    let table = summary(&outcomes);
    write(&out.join("curves.csv"), &csv)?;
    write(&out.join("summary.md"), &table)?;
    println!("{table}");
    eprintln!(
        "wrote {} and {}",
        out.join("curves.csv").display(),
        out.join("summary.md").display()
    );
    Ok(())
}

/// The failure signatures a run's metric series shows (warm-up iterations
/// passed over), as `kind (from iteration N)`, or "none".
fn failures(t: &Trainer) -> String {
    let found = virl_engine::metrics::detect(t.history(), &t.config().detectors);
    if found.is_empty() {
        return "none".into();
    }
    found
        .iter()
        .map(|f| format!("{} (from {})", f.kind.title(), f.began_at))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A new run in `dir`, or the run already there resumed from its newest
/// checkpoint (a finished run is only re-evaluated), so an experiment stopped
/// part-way goes on where it stopped when the same command is run again.
/// A run there with another config is refused rather than mixed in.
fn start_or_resume(dir: &Path, cfg: SessionConfig) -> anyhow::Result<Trainer> {
    if !dir.join("session.toml").exists() {
        let session = Session::create(dir, &cfg)?;
        return Trainer::new(cfg, Some(session)).map_err(anyhow::Error::msg);
    }
    let (_, existing) = Session::open(dir)?;
    if existing != cfg {
        anyhow::bail!(
            "{} holds a run with another config than this experiment's; move it away or choose another --out",
            dir.join("session.toml").display()
        );
    }
    let t = Trainer::resume(dir).map_err(anyhow::Error::msg)?;
    eprintln!(
        "  resuming {} at iteration {}",
        dir.display(),
        t.iteration()
    );
    Ok(t)
}

fn write(p: &Path, s: &str) -> anyhow::Result<()> {
    atomic_write(p, s.as_bytes()).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))
}

/// The base config of an experiment: `--config`, or the defaults with
/// `shortcut_bias = 0.5`; iterations from the flags.
fn base_config(a: &ExpArgs) -> anyhow::Result<SessionConfig> {
    let mut base = match &a.config {
        Some(p) => SessionConfig::load(p).map_err(anyhow::Error::msg)?,
        None => {
            let mut c = SessionConfig::default();
            c.data.zoombench.shortcut_bias = 0.5;
            c
        }
    };
    base.trainer.iterations = a.iters;
    base.trainer.warmup_iterations = a.warmup;
    Ok(base)
}

/// `virl experiment filtering`: the base config's ZoomBench training and
/// evaluation splits are written as dataset folders; a policy is trained on
/// the whole training split ("unfiltered"); that policy filters the split
/// (three stages, default knobs); a second policy is trained, same config
/// and seed, on the kept samples ("filtered"). Both are evaluated greedily on
/// the same evaluation folder.
fn filtering(a: &ExpArgs) -> anyhow::Result<()> {
    use virl_engine::dataset::Dataset;
    use virl_engine::dataset::zoombench::ZoomBench;
    use virl_engine::filter::{self, FilterConfig};
    let base = base_config(a)?;
    let out = out_dir(a.out.clone(), "filtering");
    std::fs::create_dir_all(&out)?;
    let zb = ZoomBench::new(base.data.zoombench.clone()).map_err(anyhow::Error::msg)?;
    let train_dir = out.join("data/train");
    let eval_dir = out.join("data/eval");
    // A folder written by an earlier, interrupted run of this experiment is
    // reused (the generator is deterministic, so it holds the same samples).
    let split = |dir: &Path, n: u64, seed: u64| -> anyhow::Result<Dataset> {
        Ok(if dir.join("manifest.jsonl").exists() {
            Dataset::load(dir)?
        } else {
            zb.write_dataset(dir, n, seed, |_| {})?
        })
    };
    let train = split(&train_dir, base.data.train_n, base.data.train_seed)?;
    split(&eval_dir, base.data.eval_n, base.data.eval_seed)?;
    let arm = |label: &str, data: &Path, seed: u64| -> anyhow::Result<Trainer> {
        let mut cfg = base.clone();
        cfg.seed = seed;
        cfg.data.dataset = Some(data.to_path_buf());
        cfg.data.eval_dataset = Some(eval_dir.clone());
        // Both arms imitate their own training samples: a fresh warm-up
        // would train the filtered arm on unfiltered data.
        cfg.trainer.warmup_data = virl_engine::config::WarmupData::Train;
        let dir = out.join(label);
        eprintln!(
            "filtering: run {label} on {} -> {}",
            data.display(),
            dir.display()
        );
        let mut t = start_or_resume(&dir, cfg)?;
        let mut sink = ProgressSink::new(a.iters, t.iteration(), false);
        t.run(&mut sink, &AtomicBool::new(false))
            .map_err(anyhow::Error::msg)?;
        Ok(t)
    };
    let mut csv = String::from(CSV_HEADER);
    let mut outcomes = Vec::new();
    let mut filters = String::new();
    for &seed in &a.seeds {
        let mut unfiltered = arm(&format!("unfiltered-s{seed}"), &train_dir, seed)?;
        let rep = filter::run(
            &train,
            virl_engine::env::ImageSource::Folder,
            &mut unfiltered,
            &FilterConfig::default(),
            |_, _, _| {},
        )
        .map_err(anyhow::Error::msg)?;
        let kept_dir = out.join(format!("data/filtered-s{seed}"));
        if kept_dir.join("manifest.jsonl").exists() {
            let ids: Vec<String> = Dataset::load(&kept_dir)?
                .samples()
                .iter()
                .map(|s| s.id.clone())
                .collect();
            if ids != rep.kept {
                anyhow::bail!(
                    "{} holds other samples than this run's filter keeps; move it away to filter again",
                    kept_dir.display()
                );
            }
        } else {
            filter::write(&rep, &train, &kept_dir)?;
        }
        println!("{}", super::filter::summary(&rep));
        let _ = writeln!(
            filters,
            "- seed {seed}: of the {} training samples the unfiltered policy kept {} (after stage 1 {}, stage 2 {}, stage 3 {}).",
            rep.input,
            rep.kept.len(),
            rep.after_stage[0],
            rep.after_stage[1],
            rep.after_stage[2]
        );
        let mut filtered = arm(&format!("filtered-s{seed}"), &kept_dir, seed)?;
        for (label, t) in [("unfiltered", &mut unfiltered), ("filtered", &mut filtered)] {
            let (e, _) = t
                .evaluate(a.eval_n, &mut virl_engine::events::NullSink)
                .map_err(anyhow::Error::msg)?;
            for m in t.history() {
                csv.push_str(&csv_row(&format!("{label}-s{seed}"), m));
            }
            let tail: Vec<&IterationMetrics> = t.history().iter().rev().take(10).collect();
            let mean = |f: &dyn Fn(&IterationMetrics) -> f64| {
                tail.iter().map(|m| f(m)).sum::<f64>() / tail.len().max(1) as f64
            };
            outcomes.push(Outcome {
                arm: label.into(),
                seed,
                reward_tail: mean(&|m| m.reward_total),
                zooms_tail: mean(&|m| m.zooms),
                failures: failures(t),
                eval: e,
            });
        }
    }
    let table = format!(
        "Filtering (three stages, default knobs):\n\n{filters}\n{}",
        summary(&outcomes)
    );
    write(&out.join("curves.csv"), &csv)?;
    write(&out.join("summary.md"), &table)?;
    println!("{table}");
    eprintln!(
        "wrote {} and {}",
        out.join("curves.csv").display(),
        out.join("summary.md").display()
    );
    Ok(())
}

/// The header of an experiment's `curves.csv`.
const CSV_HEADER: &str =
    "run,iteration,warmup,reward,acc_ans,acc_rat,coverage,zooms,max_rounds_frac,entropy\n";

/// One iteration of run `label` as a `curves.csv` row (see [`CSV_HEADER`]).
fn csv_row(label: &str, m: &virl_engine::metrics::IterationMetrics) -> String {
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.5}"));
    format!(
        "{label},{},{},{:.5},{:.5},{},{},{:.5},{:.5},{}\n",
        m.iteration,
        m.warmup,
        m.reward_total,
        m.acc_ans,
        o(m.acc_rat),
        o(m.coverage),
        m.zooms,
        m.max_rounds_frac,
        o(m.entropy)
    )
}

/// The experiment's folder: `--out`, or `sessions/<name>-<unix time>`.
fn out_dir(out: Option<PathBuf>, name: &str) -> PathBuf {
    out.unwrap_or_else(|| {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from("sessions").join(format!("{name}-{ts}"))
    })
}
