//! `virl train` and `virl eval`: headless training and greedy evaluation.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use virl_engine::config::SessionConfig;
use virl_engine::events::{Event, EventSink};
use virl_engine::metrics::IterationMetrics;
use virl_engine::policy::DeviceKind;
use virl_engine::reward::RewardMode;
use virl_engine::session::Session;
use virl_engine::trainer::Trainer;

/// Flags of `virl train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A session.toml to start from (every key optional; defaults fill the rest).
    /// Without it: the studio's new-session config (ZoomBench defaults, a
    /// 96 px global view, 300 imitation iterations on freshly generated
    /// samples, then 100 of ViRL RL; a greedy evaluation every 25;
    /// RESULTS.md §1j).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Session folder to create (default: sessions/<mode>-<timestamp>).
    #[arg(long, conflicts_with = "resume")]
    session: Option<PathBuf>,
    /// Continue a session from its newest checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Iterations in all (overrides trainer.iterations).
    #[arg(long)]
    iters: Option<u64>,
    /// Device.
    #[arg(long)]
    device: Option<DeviceKind>,
    /// Reward mode (overrides reward.mode).
    #[arg(long)]
    mode: Option<RewardMode>,
    /// Seed (overrides seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one line per iteration instead of a progress bar.
    #[arg(long)]
    log: bool,
}

/// The headless sink: an indicatif progress line (or plain lines).
pub struct ProgressSink {
    bar: ProgressBar,
    log: bool,
    last: Option<IterationMetrics>,
    eval: Option<IterationMetrics>,
    start: Instant,
    first_iteration: u64,
    /// Set to stop the trainer (checked between iterations and between a
    /// rollout and its update).
    stop: Arc<AtomicBool>,
    /// Ctrl+C presses so far.
    interrupts: Arc<AtomicUsize>,
    /// The session folder, for the resume hint.
    session: Option<PathBuf>,
}

impl ProgressSink {
    /// A progress line for a run that ends at iteration `total`.
    pub fn new(total: u64, start_at: u64, log: bool) -> Self {
        let bar = if log {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} {bar:24} {pos}/{len} [{elapsed_precise} ETA {eta}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(start_at);
        Self {
            bar,
            log,
            last: None,
            eval: None,
            start: Instant::now(),
            first_iteration: start_at,
            stop: Arc::new(AtomicBool::new(false)),
            interrupts: Arc::new(AtomicUsize::new(0)),
            session: None,
        }
    }

    /// Stops on Ctrl+C: the first press lets the iteration in progress
    /// finish, then the trainer stops and writes a checkpoint; a second
    /// stops at the next safe point (between the rollout and the update,
    /// abandoning that iteration); a third exits at once. Returns the flag
    /// to pass to `Trainer::run`.
    pub fn stop_on_ctrl_c(&mut self, session: PathBuf) -> anyhow::Result<Arc<AtomicBool>> {
        self.session = Some(session);
        let (stop, presses) = (self.stop.clone(), self.interrupts.clone());
        ctrlc::set_handler(move || match presses.fetch_add(1, Ordering::SeqCst) {
            0 => eprintln!(
                "\nCtrl+C: stopping after the iteration in progress (Ctrl+C again to stop at once)"
            ),
            1 => {
                eprintln!("\nCtrl+C: stopping now; the iteration in progress is dropped");
                stop.store(true, Ordering::SeqCst);
            }
            _ => std::process::exit(130),
        })
        .context("cannot install the Ctrl+C handler")?;
        Ok(self.stop.clone())
    }

    fn say(&self, line: String) {
        if self.log {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn summary(m: &IterationMetrics) -> String {
        format!(
            "R {:+.3}  Acc_ans {:.2}  Acc_rat {}  zooms {:.2}",
            m.reward_total,
            m.acc_ans,
            m.acc_rat.map_or("  - ".into(), |v| format!("{v:.2}")),
            m.zooms
        )
    }
}

impl EventSink for ProgressSink {
    fn emit(&mut self, e: Event) {
        match e {
            Event::Progress {
                phase, done, total, ..
            } => {
                self.bar.set_prefix(phase.as_str());
                let _ = (done, total);
            }
            Event::IterationDone {
                metrics, seconds, ..
            } => {
                // A first Ctrl+C asked to stop once the iteration in progress is done.
                if self.interrupts.load(Ordering::SeqCst) > 0 {
                    self.stop.store(true, Ordering::SeqCst);
                }
                self.bar.set_position(metrics.iteration + 1);
                self.bar.set_message(Self::summary(&metrics));
                if self.log {
                    eprintln!(
                        "iter {:>5}{} {}  loss {:.3}  H {:.2}  clip {:.3}  kl {:.4}  {:.2}s",
                        metrics.iteration,
                        if metrics.warmup { "w" } else { " " },
                        Self::summary(&metrics),
                        metrics.loss.unwrap_or(f64::NAN),
                        metrics.entropy.unwrap_or(0.0),
                        metrics.clip_frac.unwrap_or(0.0),
                        metrics.approx_kl.unwrap_or(0.0),
                        seconds
                    );
                }
                self.last = Some(metrics);
            }
            Event::ConfigApplied { from_iteration, .. } => {
                self.bar
                    .println(format!("config changed from iteration {from_iteration} on"));
            }
            Event::EvalDone { metrics } => {
                let line = format!(
                    "eval after {} iterations: Acc_ans {:.3}  Acc_rat {}  coverage {}  zooms {:.2}",
                    // An evaluation's `iteration` is the number of iterations done.
                    metrics.iteration,
                    metrics.acc_ans,
                    metrics.acc_rat.map_or("n/a".into(), |v| format!("{v:.3}")),
                    metrics.coverage.map_or("n/a".into(), |v| format!("{v:.3}")),
                    metrics.zooms
                );
                self.say(line);
                self.eval = Some(metrics);
            }
            Event::Failure(f) => self.bar.println(format!(
                "warning: {} since iteration {}: {}",
                f.kind.title(),
                f.began_at,
                f.message
            )),
            Event::Error(e) => self.bar.println(format!("error: {e}")),
            Event::CheckpointSaved { .. } => {}
            Event::Finished {
                iterations,
                stopped,
            } => {
                self.bar.finish_and_clear();
                let secs = self.start.elapsed().as_secs_f64();
                eprintln!(
                    "{} {} iterations ({} in this run, {:.1} s)",
                    if stopped { "stopped after" } else { "finished" },
                    iterations,
                    iterations.saturating_sub(self.first_iteration),
                    secs
                );
                if stopped && let Some(dir) = &self.session {
                    eprintln!(
                        "  checkpoint of iteration {iterations} written; resume with: virl train --resume {}",
                        dir.display()
                    );
                }
                if let Some(m) = &self.last {
                    eprintln!("  last iteration: {}", Self::summary(m));
                }
            }
        }
    }
}

/// `virl train`: trains into a new session, or resumes one; stops cleanly on Ctrl+C.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let mut trainer = if let Some(dir) = &a.resume {
        let mut t = Trainer::resume(dir).map_err(anyhow::Error::msg)?;
        if let Some(n) = a.iters {
            let mut tc = t.config().trainer.clone();
            tc.iterations = n;
            t.set_trainer_config(tc).map_err(anyhow::Error::msg)?;
        }
        eprintln!("resuming {} at iteration {}", dir.display(), t.iteration());
        t
    } else {
        let mut cfg = match &a.config {
            Some(p) => SessionConfig::load(p).map_err(anyhow::Error::msg)?,
            // The studio's default: the same schedule whether a new user
            // presses Space or runs `virl train`.
            None => crate::studio::default_config(),
        };
        if let Some(n) = a.iters {
            cfg.trainer.iterations = n;
        }
        if let Some(d) = a.device {
            cfg.device = d;
        }
        if let Some(m) = a.mode {
            cfg.reward.mode = m;
        }
        if let Some(s) = a.seed {
            cfg.seed = s;
        }
        cfg.validate().map_err(anyhow::Error::msg)?;
        let dir = a.session.clone().unwrap_or_else(|| {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            PathBuf::from("sessions").join(format!("{}-{ts}", cfg.reward.mode))
        });
        let session = Session::create(&dir, &cfg)?;
        eprintln!(
            "training into {} ({} iterations, mode {}, device {})",
            dir.display(),
            cfg.trainer.iterations,
            cfg.reward.mode,
            cfg.device
        );
        Trainer::new(cfg, Some(session)).map_err(anyhow::Error::msg)?
    };
    let total = trainer.config().trainer.iterations;
    let mut sink = ProgressSink::new(total, trainer.iteration(), a.log);
    let dir = trainer
        .session()
        .map(|s| s.dir().to_path_buf())
        .unwrap_or_default();
    let stop = sink.stop_on_ctrl_c(dir)?;
    trainer.run(&mut sink, &stop).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Flags of `virl eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// zoomnet (a session's checkpoint) or qwen-vl (a checkpoint folder, --model).
    #[arg(long, value_enum, default_value = "zoomnet")]
    policy: super::rollout::PolicyKind,
    /// Session folder (ZoomNet).
    #[arg(long, required_if_eq("policy", "zoomnet"))]
    session: Option<PathBuf>,
    #[command(flatten)]
    vlm: super::rollout::VlmArgs,
    /// Checkpoint name (`ckpt-000120`; default: the newest).
    #[arg(long)]
    checkpoint: Option<String>,
}

/// `virl eval`: greedy evaluation of a session's checkpoint or a Qwen3-VL model.
pub fn eval(a: EvalArgs) -> anyhow::Result<()> {
    if a.policy == super::rollout::PolicyKind::QwenVl {
        return super::rollout::eval(&a.vlm);
    }
    let session_dir = a
        .session
        .clone()
        .context("--session DIR is needed for ZoomNet")?;
    let (mut t, it) = trainer_at(&session_dir, a.checkpoint.as_deref())?;
    if a.vlm.dataset != "zoombench" {
        t = on_dataset(t, &session_dir, a.checkpoint.as_deref(), &a.vlm.dataset)?;
    } else {
        apply_session_corrections(&mut t, &session_dir)?;
    }
    let (m, _) = t
        .evaluate(a.vlm.n.unwrap_or(128), &mut virl_engine::events::NullSink)
        .map_err(anyhow::Error::msg)?;
    println!(
        "eval of {} after {it} iterations on {} samples (greedy): Acc_ans {:.3}  Acc_rat {}  coverage {}  zooms {:.2}  max_rounds {:.2}",
        session_dir.display(),
        m.trajectories,
        m.acc_ans,
        m.acc_rat.map_or("n/a".into(), |v| format!("{v:.3}")),
        m.coverage.map_or("n/a".into(), |v| format!("{v:.3}")),
        m.zooms,
        m.max_rounds_frac
    );
    Ok(())
}

/// The trainer of [`trainer_at`] rebuilt to evaluate on the dataset folder
/// `dataset` instead of the session's evaluation split. ZoomNet's answer
/// head has one class per answer of its training data, so a dataset with
/// other answers (HR-Bench's, say) is refused with them named.
fn on_dataset(
    t: Trainer,
    session: &std::path::Path,
    checkpoint: Option<&str>,
    dataset: &str,
) -> anyhow::Result<Trainer> {
    let ds = virl_engine::dataset::Dataset::load(dataset)?;
    let mut unknown: Vec<&str> = ds
        .samples()
        .iter()
        .map(|s| s.answer.as_str())
        .filter(|a| t.policy().answer_class(a).is_none())
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        anyhow::bail!(
            "{dataset} has {} answer(s) ZoomNet was not trained to give ({}{}); its answer head knows only the answers of its training data. Evaluate a VLM on it instead: virl eval --policy qwen-vl --model DIR --dataset {dataset}",
            unknown.len(),
            unknown
                .iter()
                .take(5)
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            if unknown.len() > 5 { ", …" } else { "" }
        );
    }
    let (s, mut cfg) = Session::open(session)?;
    cfg.data.eval_dataset = Some(dataset.into());
    let mut t = Trainer::new(cfg, None).map_err(anyhow::Error::msg)?;
    let (tensors, state) = match checkpoint {
        Some(c) => s.checkpoints().load(c, t.policy().device())?,
        None => s
            .checkpoints()
            .latest(t.policy().device())?
            .with_context(|| format!("{} has no checkpoint yet", session.display()))?,
    };
    t.load(&tensors, state).map_err(|e| {
        anyhow::anyhow!("the checkpoint does not fit ZoomNet built for {dataset} ({e})")
    })?;
    Ok(t)
}

/// A trainer holding a session's checkpoint (`checkpoint`, or the newest),
/// and the iterations it had completed. Nothing is written to the session.
pub(crate) fn trainer_at(
    dir: &std::path::Path,
    checkpoint: Option<&str>,
) -> anyhow::Result<(Trainer, u64)> {
    let (session, cfg) = Session::open(dir)?;
    let mut t = Trainer::new(cfg, None).map_err(anyhow::Error::msg)?;
    let loaded = match checkpoint {
        Some(c) => Some(session.checkpoints().load(c, t.policy().device())?),
        None => session.checkpoints().latest(t.policy().device())?,
    };
    let (tensors, state) =
        loaded.with_context(|| format!("{} has no checkpoint yet", dir.display()))?;
    let it = state.iteration;
    t.load(&tensors, state).map_err(anyhow::Error::msg)?;
    Ok((t, it))
}

/// Ground-truth corrections of generated data live in the session's journal:
/// a trainer built without the session (so that evaluating writes nothing)
/// gets them here, so that Acc_rat is measured against the corrected boxes.
fn apply_session_corrections(t: &mut Trainer, session: &std::path::Path) -> anyhow::Result<()> {
    let journal = session.join(virl_engine::dataset::annotations::JOURNAL);
    if !journal.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&journal)
        .with_context(|| format!("cannot read {}", journal.display()))?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // Torn or foreign lines were reported when the session loaded; skip them here.
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(id), Some(after)) = (v["sample"].as_str(), v["after"].as_array()) else {
            continue;
        };
        let rats = after
            .iter()
            .filter_map(|r| {
                let b: Vec<f64> = serde_json::from_value(r["bbox"].clone()).ok()?;
                (b.len() == 4).then(|| virl_engine::dataset::Rationale {
                    bbox: virl_engine::geometry::BBox::new(b[0], b[1], b[2], b[3]),
                    label: r["label"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect();
        t.set_ground_truth(id, rats).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}
