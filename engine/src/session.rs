//! The on-disk session store (DESIGN §8).
//!
//! ```text
//! sessions/<name>/
//!   session.toml        full config (written once, atomically)
//!   metrics.jsonl       one line per iteration, appended and flushed as it ends
//!   evals.jsonl         one line per evaluation
//!   rollouts/           iter-000012.jsonl: that iteration's trajectories (atomic)
//!   checkpoints/        ckpt-000012.safetensors (policy + optimizer) and .json (trainer state),
//!                       latest.json pointing at the newest complete one
//!   events.jsonl        failure signatures, warnings, errors
//! ```
//!
//! Crash safety: logs are append-and-flush (a reader ignores a torn last
//! line); everything else is written to a temporary file and renamed. The
//! checkpoint's tensors and state are renamed into place before `latest.json`
//! points at them, so `latest.json` always names a complete checkpoint. A
//! session can be read while another process writes it.

use crate::config::SessionConfig;
use crate::fsutil::{atomic_write, to_jsonl};
use crate::geometry::BBox;
use crate::metrics::IterationMetrics;
use crate::reward::RewardConfig;
use crate::score::ScoredTrajectory;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One trajectory as stored in `rollouts/` and shown in the studio.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryRecord {
    /// Iteration it was sampled in (evaluations use the iteration they followed).
    pub iteration: u64,
    /// The correct answer.
    pub truth: String,
    /// The answer given, if any.
    pub answer: Option<String>,
    /// Zoom boxes as proposed by the policy (what the rewards score).
    pub proposed: Vec<BBox>,
    /// Zoom boxes as executed (clipped, grown to the minimum side).
    pub executed: Vec<BBox>,
    /// Whether the episode hit `max_rounds`.
    pub hit_max_rounds: bool,
    /// Log-probability of each action at rollout time (zooms, then the answer).
    pub logp: Vec<f32>,
    /// For a VLM policy: the conversation, turn by turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<crate::policy::qwen_vl::rollout::Turn>,
    /// Rewards, advantages and per-action scores.
    #[serde(flatten)]
    pub scored: ScoredTrajectory,
}

/// The trainer's state saved with each checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Iterations completed.
    pub iteration: u64,
    /// The sampling RNG's state.
    pub rng: u64,
    /// The reward config in force (it may have been changed during the run).
    pub reward: RewardConfig,
    /// The trainer config in force.
    pub trainer: crate::config::TrainerConfig,
}

/// A loaded checkpoint: its tensors (policy and optimizer) and trainer state.
pub type Checkpoint = (HashMap<String, Tensor>, TrainState);

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

/// An error of the session store, naming the file.
#[derive(Debug, thiserror::Error)]
pub struct SessionError {
    /// The file or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for SessionError {
    /// `message: path`, the path last (STYLE.md) — unless the message (a
    /// config error, say) already names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.path.display().to_string();
        if self.message.contains(&p) {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {p}", self.message)
        }
    }
}

fn err(path: &Path, message: impl Into<String>) -> SessionError {
    SessionError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A session folder.
#[derive(Clone, Debug)]
pub struct Session {
    dir: PathBuf,
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
        })
    }

    /// Opens an existing session (read-only use is fine while another
    /// process trains it).
    pub fn open(dir: &Path) -> Result<(Self, SessionConfig), SessionError> {
        let p = dir.join(CONFIG);
        if !p.exists() {
            return Err(err(dir, "not a session folder (no session.toml)"));
        }
        let cfg = SessionConfig::load(&p).map_err(|e| err(&p, e))?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
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
        let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
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

    /// All iteration metrics so far.
    pub fn read_metrics(&self) -> Result<Vec<IterationMetrics>, SessionError> {
        self.read_jsonl("metrics.jsonl")
    }

    /// All evaluations so far.
    pub fn read_evals(&self) -> Result<Vec<IterationMetrics>, SessionError> {
        self.read_jsonl("evals.jsonl")
    }

    /// All events so far.
    pub fn read_events(&self) -> Result<Vec<SessionEvent>, SessionError> {
        self.read_jsonl("events.jsonl")
    }

    fn rollout_path(&self, iteration: u64) -> PathBuf {
        self.dir
            .join("rollouts")
            .join(format!("iter-{iteration:06}.jsonl"))
    }

    /// Writes an iteration's trajectories (atomically).
    pub fn write_rollouts(
        &self,
        iteration: u64,
        trajs: &[TrajectoryRecord],
    ) -> Result<(), SessionError> {
        let p = self.rollout_path(iteration);
        atomic_write(&p, to_jsonl(trajs).as_bytes())
            .map_err(|e| err(&p, format!("cannot write ({e})")))
    }

    /// Reads an iteration's trajectories.
    pub fn read_rollouts(&self, iteration: u64) -> Result<Vec<TrajectoryRecord>, SessionError> {
        self.read_jsonl(&format!("rollouts/iter-{iteration:06}.jsonl"))
    }

    /// Iterations whose rollouts are stored, ascending.
    pub fn rollout_iterations(&self) -> Vec<u64> {
        let mut v: Vec<u64> = fs::read_dir(self.dir.join("rollouts"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name().to_str().and_then(|n| {
                            n.strip_prefix("iter-")?
                                .strip_suffix(".jsonl")?
                                .parse()
                                .ok()
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Writes a checkpoint: tensors (policy + optimizer) as safetensors, the
    /// trainer state as JSON, then `latest.json`; keeps the newest `keep`.
    pub fn write_checkpoint(
        &self,
        state: &TrainState,
        tensors: &HashMap<String, Tensor>,
        keep: usize,
    ) -> Result<PathBuf, SessionError> {
        let dir = self.dir.join("checkpoints");
        let name = format!("ckpt-{:06}", state.iteration);
        let st = dir.join(format!("{name}.safetensors"));
        let tmp = dir.join(format!(".{name}.safetensors.tmp-{}", std::process::id()));
        candle_core::safetensors::save(tensors, &tmp)
            .map_err(|e| err(&tmp, format!("cannot write checkpoint ({e})")))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| err(&tmp, format!("cannot sync ({e})")))?;
        fs::rename(&tmp, &st)
            .map_err(|e| err(&st, format!("cannot rename checkpoint into place ({e})")))?;
        let js = dir.join(format!("{name}.json"));
        atomic_write(
            &js,
            serde_json::to_string_pretty(state)
                .unwrap_or_default()
                .as_bytes(),
        )
        .map_err(|e| err(&js, format!("cannot write ({e})")))?;
        let latest = dir.join("latest.json");
        atomic_write(
            &latest,
            serde_json::json!({"checkpoint": name, "iteration": state.iteration})
                .to_string()
                .as_bytes(),
        )
        .map_err(|e| err(&latest, format!("cannot write ({e})")))?;
        // Prune: keep the newest `keep` complete checkpoints.
        let mut all: Vec<u64> = fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name().to_str().and_then(|n| {
                            n.strip_prefix("ckpt-")?
                                .strip_suffix(".safetensors")?
                                .parse()
                                .ok()
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        all.sort_unstable();
        let n = all.len();
        for it in all.into_iter().take(n.saturating_sub(keep.max(1))) {
            let _ = fs::remove_file(dir.join(format!("ckpt-{it:06}.safetensors")));
            let _ = fs::remove_file(dir.join(format!("ckpt-{it:06}.json")));
        }
        Ok(st)
    }

    /// The newest complete checkpoint: its tensors and trainer state.
    pub fn latest_checkpoint(&self, device: &Device) -> Result<Option<Checkpoint>, SessionError> {
        let latest = self.dir.join("checkpoints").join("latest.json");
        if !latest.exists() {
            return Ok(None);
        }
        let text =
            fs::read_to_string(&latest).map_err(|e| err(&latest, format!("cannot read ({e})")))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| err(&latest, format!("not valid JSON ({e})")))?;
        let name = v["checkpoint"]
            .as_str()
            .ok_or_else(|| err(&latest, "no \"checkpoint\" entry"))?;
        self.load_checkpoint(name, device).map(Some)
    }

    /// Loads a checkpoint by name (`ckpt-000012`) or path.
    pub fn load_checkpoint(
        &self,
        name: &str,
        device: &Device,
    ) -> Result<(HashMap<String, Tensor>, TrainState), SessionError> {
        let dir = self.dir.join("checkpoints");
        let stem = Path::new(name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(name)
            .to_string();
        let st = dir.join(format!("{stem}.safetensors"));
        let js = dir.join(format!("{stem}.json"));
        let tensors = candle_core::safetensors::load(&st, device)
            .map_err(|e| err(&st, format!("cannot load checkpoint ({e})")))?;
        let text = fs::read_to_string(&js).map_err(|e| err(&js, format!("cannot read ({e})")))?;
        let state = serde_json::from_str(&text)
            .map_err(|e| err(&js, format!("not a valid trainer state ({e})")))?;
        Ok((tensors, state))
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
/// trajectory's rewards and per-action `f_k` from its proposed boxes and
/// answer, then `A_i`, `q_k`, `m_k`, `Â_k` within its GRPO group (the
/// sample's trajectories of the same iteration). `reward_at(iteration)` gives
/// the reward config in force at that iteration. Returns, for each record of
/// `sample` (its index in `records`), the new scoring; records of other
/// samples are not touched.
pub fn rescore(
    records: &[TrajectoryRecord],
    sample: &crate::dataset::Sample,
    reward_at: impl Fn(u64) -> RewardConfig,
) -> Vec<(usize, ScoredTrajectory)> {
    use crate::score::{TrajectoryInput, assign_credit, score_trajectory};
    let mut by_iter: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for (i, r) in records.iter().enumerate() {
        if r.scored.sample == sample.id {
            by_iter.entry(r.iteration).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (it, idx) in by_iter {
        let cfg = reward_at(it);
        let mut scored: Vec<ScoredTrajectory> = idx
            .iter()
            .map(|&i| {
                let r = &records[i];
                score_trajectory(
                    &TrajectoryInput {
                        sample,
                        group: &r.scored.group,
                        zooms: &r.proposed,
                        answer: r.answer.as_deref(),
                        format_ok: r.scored.rewards.fmt == 0.0,
                        hit_max_rounds: r.hit_max_rounds,
                    },
                    &cfg,
                )
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
    use crate::score::{TrajectoryInput, assign_credit, score_trajectory};

    #[test]
    fn a_corrected_box_rescores_every_trajectory_of_its_group() {
        let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
        let s = zb.sample(0, 1);
        let gt = s.rationales[0].bbox;
        // Two trajectories zoom 60 px to the right of the stored box, one on it.
        let off = gt.translate(60.0, 0.0);
        let cfg = RewardConfig::default();
        let zooms = [vec![off], vec![off], vec![gt]];
        let mut scored: Vec<ScoredTrajectory> = zooms
            .iter()
            .map(|z| {
                score_trajectory(
                    &TrajectoryInput {
                        sample: &s,
                        group: &s.id,
                        zooms: z,
                        answer: Some(&s.answer),
                        format_ok: true,
                        hit_max_rounds: false,
                    },
                    &cfg,
                )
            })
            .collect();
        assign_credit(&mut scored, &cfg);
        let recs: Vec<TrajectoryRecord> = zooms
            .iter()
            .zip(scored)
            .map(|(z, sc)| TrajectoryRecord {
                iteration: 4,
                truth: s.answer.clone(),
                answer: Some(s.answer.clone()),
                proposed: z.clone(),
                executed: z.clone(),
                hit_max_rounds: false,
                logp: vec![-1.0, -0.1],
                turns: Vec::new(),
                scored: sc,
            })
            .collect();
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
        let (old0, new0) = (&recs[0].scored, &new[0].1);
        assert!(new0.actions[0].score.fidelity > old0.actions[0].score.fidelity);
        assert!(new0.rewards.rat > old0.rewards.rat);
        assert_eq!(new0.actions[0].score.iou, Some(1.0));
        // The one that looked at the old box now scores lower, and the group's
        // advantages are recomputed: the off-box trajectories now lead.
        assert!(new[2].1.rewards.rat < recs[2].scored.rewards.rat);
        assert!(new0.advantage > 0.0 && new[2].1.advantage < 0.0);
        // Re-scoring against the unchanged ground truth reproduces the stored scores.
        let same = rescore(&recs, &s, |_| cfg.clone());
        for (i, sc) in same {
            assert_eq!(sc, recs[i].scored);
        }
    }
}
