//! Checkpoints: the strategy (keep the newest N, and keep the best by a
//! chosen metric) and their I/O in a session's `checkpoints/` folder.
//!
//! ```text
//! checkpoints/
//!   ckpt-000012.safetensors   policy parameters + optimizer state
//!   ckpt-000012.json          trainer state (TrainState)
//!   latest.json               {"checkpoint": "ckpt-000012", "iteration": 12}, written last
//!   best.json                 {"checkpoint", "iteration", "metric", "value"} (with keep_best)
//! ```
//!
//! Crash safety: the tensors and the state are renamed into place before
//! `latest.json` points at them, so `latest.json` always names a complete
//! checkpoint.

use crate::config::TrainerConfig;
use crate::fsutil::{atomic_write, numbered_files};
use crate::metrics::IterationMetrics;
use crate::reward::RewardConfig;
use crate::session::error::{SessionError, err};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

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
    pub trainer: TrainerConfig,
}

/// A loaded checkpoint: its tensors (policy and optimizer) and trainer state.
pub type Checkpoint = (HashMap<String, Tensor>, TrainState);

/// Which checkpoints are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Strategy {
    /// The newest this many are kept (at least 1).
    pub keep_last: usize,
    /// Also keep the one whose iteration scored highest on this field of
    /// `metrics.jsonl` (`acc_ans`, `reward_total`, …); `None`: newest only.
    pub keep_best: Option<String>,
}

impl Strategy {
    /// The strategy of a trainer config (`keep_checkpoints`, `keep_best`).
    pub fn of(t: &TrainerConfig) -> Self {
        Self {
            keep_last: t.keep_checkpoints,
            keep_best: t.keep_best.clone(),
        }
    }

    /// The checkpoints (by iteration) to delete among `existing`, given the
    /// best one so far.
    pub fn to_delete(&self, existing: &[u64], best: Option<u64>) -> Vec<u64> {
        let mut all = existing.to_vec();
        all.sort_unstable();
        let n = all.len();
        all.into_iter()
            .take(n.saturating_sub(self.keep_last.max(1)))
            .filter(|&it| Some(it) != best)
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
struct Best {
    checkpoint: String,
    iteration: u64,
    metric: String,
    value: f64,
}

/// A session's `checkpoints/` folder.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// The store in `dir` (a session's `checkpoints/`).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn iterations(&self) -> Vec<u64> {
        numbered_files(&self.dir, "ckpt-", ".safetensors")
    }

    fn best(&self) -> Option<Best> {
        let text = fs::read_to_string(self.dir.join("best.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes a checkpoint: tensors (policy + optimizer) as safetensors, the
    /// trainer state as JSON, then `latest.json` (and `best.json` when
    /// `metrics` beat the best so far on the strategy's metric); then deletes
    /// what `strategy` does not keep.
    pub fn write(
        &self,
        state: &TrainState,
        tensors: &HashMap<String, Tensor>,
        strategy: &Strategy,
        metrics: Option<&IterationMetrics>,
    ) -> Result<PathBuf, SessionError> {
        let dir = &self.dir;
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
        let state_json = serde_json::to_string_pretty(state).unwrap_or_default();
        atomic_write(&js, state_json.as_bytes())
            .map_err(|e| err(&js, format!("cannot write ({e})")))?;
        let latest = dir.join("latest.json");
        let pointer = serde_json::json!({"checkpoint": name, "iteration": state.iteration});
        atomic_write(&latest, pointer.to_string().as_bytes())
            .map_err(|e| err(&latest, format!("cannot write ({e})")))?;
        let previous = self.best();
        let mut best = previous.as_ref().map(|b| b.iteration);
        if let (Some(metric), Some(m)) = (&strategy.keep_best, metrics)
            && let Some(value) = m.value(metric).filter(|v| v.is_finite())
            && previous
                .as_ref()
                .is_none_or(|b| b.metric != *metric || value > b.value)
        {
            let b = Best {
                checkpoint: name.clone(),
                iteration: state.iteration,
                metric: metric.clone(),
                value,
            };
            let p = dir.join("best.json");
            let text = serde_json::to_string(&b).unwrap_or_default();
            atomic_write(&p, text.as_bytes())
                .map_err(|e| err(&p, format!("cannot write ({e})")))?;
            best = Some(state.iteration);
        }
        if strategy.keep_best.is_none() {
            best = None;
        }
        for it in strategy.to_delete(&self.iterations(), best) {
            let _ = fs::remove_file(dir.join(format!("ckpt-{it:06}.safetensors")));
            let _ = fs::remove_file(dir.join(format!("ckpt-{it:06}.json")));
        }
        Ok(st)
    }

    /// The newest complete checkpoint: its tensors and trainer state.
    pub fn latest(&self, device: &Device) -> Result<Option<Checkpoint>, SessionError> {
        let latest = self.dir.join("latest.json");
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
        self.load(name, device).map(Some)
    }

    /// The checkpoint kept as the best, if [`Strategy::keep_best`] is set.
    pub fn best_name(&self) -> Option<String> {
        self.best().map(|b| b.checkpoint)
    }

    /// Loads a checkpoint by name (`ckpt-000012`, `best`) or path.
    pub fn load(&self, name: &str, device: &Device) -> Result<Checkpoint, SessionError> {
        let name = match name {
            "best" => self
                .best_name()
                .ok_or_else(|| err(&self.dir.join("best.json"), "no best checkpoint recorded"))?,
            n => n.to_string(),
        };
        let stem = Path::new(&name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&name)
            .to_string();
        let st = self.dir.join(format!("{stem}.safetensors"));
        let js = self.dir.join(format!("{stem}.json"));
        let tensors = candle_core::safetensors::load(&st, device)
            .map_err(|e| err(&st, format!("cannot load checkpoint ({e})")))?;
        let text = fs::read_to_string(&js).map_err(|e| err(&js, format!("cannot read ({e})")))?;
        let state = serde_json::from_str(&text)
            .map_err(|e| err(&js, format!("not a valid trainer state ({e})")))?;
        Ok((tensors, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_the_best() {
        let s = Strategy {
            keep_last: 2,
            keep_best: Some("acc_ans".into()),
        };
        assert_eq!(s.to_delete(&[5, 1, 3, 4, 2], Some(2)), vec![1, 3]);
        assert_eq!(s.to_delete(&[1, 2], Some(1)), Vec::<u64>::new());
        assert_eq!(s.to_delete(&[1, 2, 3], None), vec![1]);
        assert!(IterationMetrics::numeric_fields().contains(&"acc_ans".to_string()));
        assert!(!IterationMetrics::numeric_fields().contains(&"iteration".to_string()));
    }

    #[test]
    fn the_best_survives_pruning_and_loads_by_name() {
        let d = tempfile::tempdir().expect("tmp");
        let store = CheckpointStore::new(d.path().to_path_buf());
        let strategy = Strategy {
            keep_last: 1,
            keep_best: Some("acc_ans".into()),
        };
        let t: HashMap<String, Tensor> = [(
            "w".to_string(),
            Tensor::new(&[1f32, 2.0], &Device::Cpu).expect("t"),
        )]
        .into();
        for (it, acc) in [(1u64, 0.2), (2, 0.9), (3, 0.5), (4, 0.1)] {
            let state = TrainState {
                iteration: it,
                rng: it,
                reward: RewardConfig::default(),
                trainer: TrainerConfig::default(),
            };
            let m = IterationMetrics {
                acc_ans: acc,
                ..Default::default()
            };
            store.write(&state, &t, &strategy, Some(&m)).expect("write");
        }
        let mut left = store.iterations();
        left.sort_unstable();
        assert_eq!(left, vec![2, 4]);
        assert_eq!(store.best_name().as_deref(), Some("ckpt-000002"));
        let (_, best) = store.load("best", &Device::Cpu).expect("best");
        assert_eq!(best.iteration, 2);
        let (_, latest) = store.latest(&Device::Cpu).expect("ok").expect("some");
        assert_eq!(latest.iteration, 4);
    }
}
