//! The on-disk session store (DESIGN §8).
//!
//! ```text
//! sessions/<name>/
//!   session.toml        full config (written once, atomically)
//!   metrics.jsonl       one line per iteration, appended and flushed as it ends
//!   evals.jsonl         one line per evaluation
//!   rollouts/           iter-000012.jsonl: that iteration's trajectories (atomic)
//!   checkpoints/        policy + optimizer state and trainer state (crate::checkpoint)
//!   events.jsonl        failure signatures, warnings, errors
//! ```
//!
//! Crash safety: logs are append-and-flush (a reader ignores a torn last
//! line); everything else is written to a temporary file and renamed. A
//! session can be read while another process writes it. Each trajectory of
//! `rollouts/` is one [`Trajectory`] record.

pub mod error;
mod external;

pub use error::SessionError;

use crate::checkpoint::CheckpointStore;
use crate::config::SessionConfig;
use crate::fsutil::{atomic_write, numbered_files, to_jsonl};
use crate::metrics::IterationMetrics;
use crate::reward::RewardConfig;
use crate::trajectory::Trajectory;
use error::err;
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A line of `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// Iteration it belongs to.
    pub iteration: u64,
    /// "failure", "warning", "error", "config".
    pub kind: String,
    /// Details.
    pub message: String,
}

/// A session folder.
#[derive(Clone, Debug)]
pub struct Session {
    dir: PathBuf,
    /// For a run traced from outside: where its curves come from, and the
    /// reward config its credit is assigned with.
    external: Option<external::External>,
}

const CONFIG: &str = "session.toml";

impl Session {
    /// Creates a session folder with its config. Refuses a folder that
    /// already holds a session.
    pub fn create(dir: &Path, cfg: &SessionConfig) -> Result<Self, SessionError> {
        if dir.join(CONFIG).exists() {
            return Err(err(
                &dir.join(CONFIG),
                "a session already exists here (use --resume to continue it, or choose another --session)",
            ));
        }
        for sub in ["rollouts", "checkpoints"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| err(&dir.join(sub), format!("cannot create folder ({e})")))?;
        }
        atomic_write(&dir.join(CONFIG), cfg.to_toml().as_bytes())
            .map_err(|e| err(&dir.join(CONFIG), format!("cannot write ({e})")))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            external: None,
        })
    }

    /// Opens an existing session (read-only use is fine while another
    /// process trains it).
    pub fn open(dir: &Path) -> Result<(Self, SessionConfig), SessionError> {
        let p = dir.join(CONFIG);
        if !p.exists() {
            return Err(err(dir, "not a session folder (no session.toml)"));
        }
        let cfg = SessionConfig::load_session(&p).map_err(|e| err(&p, e))?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                external: cfg.external.clone().map(|run| external::External {
                    run,
                    reward: cfg.reward.clone(),
                    cache: Default::default(),
                }),
            },
            cfg,
        ))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn append(&self, name: &str, line: &str) -> Result<(), SessionError> {
        let p = self.dir.join(name);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| err(&p, format!("cannot open for appending ({e})")))?;
        f.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| err(&p, format!("cannot append ({e})")))
    }

    /// Appends one iteration's metrics and flushes it to disk.
    pub fn append_metrics(&self, m: &IterationMetrics) -> Result<(), SessionError> {
        self.append(
            "metrics.jsonl",
            &serde_json::to_string(m).unwrap_or_default(),
        )
    }

    /// Appends one evaluation's metrics.
    pub fn append_eval(&self, m: &IterationMetrics) -> Result<(), SessionError> {
        self.append("evals.jsonl", &serde_json::to_string(m).unwrap_or_default())
    }

    /// Appends an event.
    pub fn append_event(&self, e: &SessionEvent) -> Result<(), SessionError> {
        self.append(
            "events.jsonl",
            &serde_json::to_string(e).unwrap_or_default(),
        )
    }

    fn read_jsonl<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Vec<T>, SessionError> {
        let p = self.dir.join(name);
        let text = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(&p, format!("cannot read ({e})"))),
        };
        let mut out = Vec::new();
        let lines: Vec<&[u8]> = crate::fsutil::strip_bom(&text)
            .split(|&b| b == b'\n')
            .collect();
        for (i, l) in lines.iter().enumerate() {
            if l.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice(l) {
                Ok(v) => out.push(v),
                // A torn last line (a write cut by a crash, or being written right now).
                Err(_) if i + 1 == lines.len() => {}
                Err(e) => {
                    return Err(err(
                        &p,
                        format!("line {} is not a valid record ({e})", i + 1),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// All iteration metrics so far. For a run traced from outside (verl),
    /// summarised from its trajectories, one line per complete step, with
    /// verl's own entropy, clip fraction, KL and loss when its `file` logger
    /// is known ([`ExternalRun::metrics`]).
    pub fn read_metrics(&self) -> Result<Vec<IterationMetrics>, SessionError> {
        match &self.external {
            Some(x) => external::metrics(self, x),
            None => self.read_jsonl("metrics.jsonl"),
        }
    }

    /// All evaluations so far.
    pub fn read_evals(&self) -> Result<Vec<IterationMetrics>, SessionError> {
        self.read_jsonl("evals.jsonl")
    }

    /// All events so far.
    pub fn read_events(&self) -> Result<Vec<SessionEvent>, SessionError> {
        self.read_jsonl("events.jsonl")
    }

    /// The file of one iteration's trajectories.
    pub fn rollout_path(&self, iteration: u64) -> PathBuf {
        self.dir
            .join("rollouts")
            .join(format!("iter-{iteration:06}.jsonl"))
    }

    /// Writes an iteration's trajectories (atomically).
    pub fn write_rollouts(&self, iteration: u64, trajs: &[Trajectory]) -> Result<(), SessionError> {
        let p = self.rollout_path(iteration);
        atomic_write(&p, to_jsonl(trajs).as_bytes())
            .map_err(|e| err(&p, format!("cannot write ({e})")))
    }

    /// Reads an iteration's trajectories. A run traced from outside writes
    /// each trajectory as soon as it is scored, before its group is
    /// complete; its advantages and per-action credit are assigned here,
    /// by group, with the run's reward config.
    pub fn read_rollouts(&self, iteration: u64) -> Result<Vec<Trajectory>, SessionError> {
        let mut v = self.read_jsonl(&format!("rollouts/iter-{iteration:06}.jsonl"))?;
        if let Some(x) = &self.external {
            crate::score::assign_credit(&mut v, &x.reward);
        }
        Ok(v)
    }

    /// Iterations whose rollouts are stored, ascending.
    pub fn rollout_iterations(&self) -> Vec<u64> {
        let mut v = numbered_files(&self.dir.join("rollouts"), "iter-", ".jsonl");
        v.sort_unstable();
        v
    }

    /// The session's checkpoints.
    pub fn checkpoints(&self) -> CheckpointStore {
        CheckpointStore::new(self.dir.join("checkpoints"))
    }

    /// Forgets what the checkpoint being resumed did not see: the metrics
    /// and evaluation lines and the rollout files of iterations `completed`
    /// and later. Used when resuming.
    pub fn truncate_after(&self, completed: u64) -> Result<(), SessionError> {
        for (name, kept) in [
            ("metrics.jsonl", self.read_metrics()?),
            ("evals.jsonl", self.read_evals()?),
        ] {
            let p = self.dir.join(name);
            let text = to_jsonl(kept.iter().filter(|m| m.iteration < completed));
            atomic_write(&p, text.as_bytes())
                .map_err(|e| err(&p, format!("cannot rewrite ({e})")))?;
        }
        for it in self.rollout_iterations() {
            if it >= completed {
                let _ = fs::remove_file(self.rollout_path(it));
            }
        }
        Ok(())
    }
}

/// Re-scores the stored trajectories of one sample against its (corrected)
/// ground truth with the same [`score_trajectory`](crate::score::score_trajectory)
/// and [`assign_credit`](crate::score::assign_credit) as training: each
/// trajectory's rewards and per-action `f_k` from its proposed boxes, answer
/// and format errors, then `A_i`, `q_k`, `m_k`, `Â_k` within its GRPO group
/// (the records of the same group and iteration). `reward_at(iteration)`
/// gives the reward config in force at that iteration. Returns, for each
/// record of `sample` (its index in `records`), the re-scored copy; records
/// of other samples are not touched.
pub fn rescore(
    records: &[Trajectory],
    sample: &crate::dataset::Sample,
    reward_at: impl Fn(u64) -> RewardConfig,
) -> Vec<(usize, Trajectory)> {
    use crate::score::{assign_credit, score_trajectory};
    let mut by_iter: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for (i, r) in records.iter().enumerate() {
        if r.sample == sample.id {
            by_iter.entry(r.iteration).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (it, idx) in by_iter {
        let cfg = reward_at(it);
        let mut scored: Vec<Trajectory> = idx
            .iter()
            .map(|&i| {
                let mut t = records[i].clone();
                score_trajectory(&mut t, sample, &cfg);
                t
            })
            .collect();
        assign_credit(&mut scored, &cfg);
        out.extend(idx.into_iter().zip(scored));
    }
    out
}

#[cfg(test)]
mod rescore_tests {
    use super::*;
    use crate::dataset::Rationale;
    use crate::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
    use crate::score::{assign_credit, score_trajectory};
    use crate::trajectory::ZoomAction;

    #[test]
    fn a_corrected_box_rescores_every_trajectory_of_its_group() {
        let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
        let s = zb.sample(0, 1);
        let gt = s.rationales[0].bbox;
        // Two trajectories zoom 60 px to the right of the stored box, one on it.
        let off = gt.translate(60.0, 0.0);
        let cfg = RewardConfig::default();
        let mut recs: Vec<Trajectory> = [off, off, gt]
            .iter()
            .map(|&z| {
                let mut t = Trajectory::new(&s.id, &s.id, 4, &s.answer);
                t.answer = Some(s.answer.clone());
                t.actions = vec![ZoomAction::new(z, z, Some(-1.0), None)];
                t.answer_logp = Some(-0.1);
                score_trajectory(&mut t, &s, &cfg);
                t
            })
            .collect();
        assign_credit(&mut recs, &cfg);
        // The person moves the ground truth onto where the policy looked.
        let fixed = crate::dataset::Sample {
            rationales: vec![Rationale {
                bbox: off,
                label: "moved".into(),
            }],
            ..s.clone()
        };
        let new = rescore(&recs, &fixed, |_| cfg.clone());
        assert_eq!(new.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2]);
        let (old0, new0) = (&recs[0], &new[0].1);
        assert!(new0.actions[0].score.fidelity > old0.actions[0].score.fidelity);
        assert!(new0.rewards.rat > old0.rewards.rat);
        assert_eq!(new0.actions[0].score.iou, Some(1.0));
        // The one that looked at the old box now scores lower, and the group's
        // advantages are recomputed: the off-box trajectories now lead.
        assert!(new[2].1.rewards.rat < recs[2].rewards.rat);
        assert!(new0.advantage > 0.0 && new[2].1.advantage < 0.0);
        // Re-scoring against the unchanged ground truth reproduces the stored scores.
        let same = rescore(&recs, &s, |_| cfg.clone());
        for (i, sc) in same {
            assert_eq!(sc, recs[i]);
        }
    }

    #[test]
    fn rescoring_keeps_a_format_error() {
        let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
        let s = zb.sample(0, 1);
        let cfg = RewardConfig::default();
        let mut t = Trajectory::new(&s.id, &s.id, 0, &s.answer);
        t.answer = Some(s.answer.clone());
        t.format_errors = vec!["turn 1: neither a tool call nor an <answer>".into()];
        score_trajectory(&mut t, &s, &cfg);
        assert_eq!(t.rewards.fmt, -1.0);
        let new = rescore(std::slice::from_ref(&t), &s, |_| cfg.clone());
        assert_eq!(new[0].1.rewards.fmt, -1.0);
    }
}
