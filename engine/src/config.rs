//! The whole configuration of a training run, as written to `session.toml`.
//!
//! ```toml
//! seed = 0
//! device = "cpu"
//!
//! [data]        # where samples come from
//! [env]         # episode rules (max_rounds, view, min_zoom_side)
//! [policy]      # ZoomNet's shape
//! [reward]      # every constant of DESIGN §4–5 and the mode
//! [trainer]     # GRPO/PPO knobs
//! [detectors]   # failure-signature thresholds
//! ```
//!
//! Every section and key has a default; unknown keys are refused with the
//! key's name, so a typo never silently falls back to a default.

use crate::dataset::zoombench::ZoomBenchConfig;
use crate::env::EnvConfig;
use crate::metrics::DetectorConfig;
use crate::policy::DeviceKind;
use crate::policy::zoomnet::ZoomNetConfig;
use crate::reward::RewardConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where training and evaluation samples come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// A dataset folder to train on; when absent, ZoomBench is generated in memory.
    pub dataset: Option<PathBuf>,
    /// A dataset folder to evaluate on (default: the ZoomBench eval split, or the training folder).
    pub eval_dataset: Option<PathBuf>,
    /// ZoomBench training samples. Default 512.
    pub train_n: u64,
    /// ZoomBench evaluation samples (a different seed). Default 128.
    pub eval_n: u64,
    /// Seed of the ZoomBench training split. Default 0.
    pub train_seed: u64,
    /// Seed of the ZoomBench evaluation split. Default 1 000 001.
    pub eval_seed: u64,
    /// ZoomBench knobs.
    pub zoombench: ZoomBenchConfig,
    /// Decoded full-resolution images kept in memory per split (a 768 px
    /// image takes 1.7 MiB). Default 600, enough for the default ZoomBench
    /// training split, so each image is rendered or decoded once. Whatever
    /// the count, a split keeps at most 2 GiB of decoded pixels
    /// ([`crate::env::CACHE_BYTES`]; an 8K image takes 192 MiB).
    pub image_cache: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: None,
            eval_dataset: None,
            train_n: 512,
            eval_n: 128,
            train_seed: 0,
            eval_seed: 1_000_001,
            zoombench: ZoomBenchConfig::default(),
            image_cache: 600,
        }
    }
}

/// GRPO/PPO knobs (DESIGN §7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    /// Iterations to run (warm-up included). Default 300.
    pub iterations: u64,
    /// Supervised warm-up ("cold start") iterations before RL: the policy
    /// imitates ground-truth trajectories (zoom on each rationale box, then
    /// answer), as the ViRL paper's policy starts from a model that can
    /// already ground. 0 trains with RL from scratch. Default 0.
    pub warmup_iterations: u64,
    /// Imitation: the expert zoom that is *executed* (so the crop the answer
    /// step reads) is the ground-truth box moved by up to this fraction of
    /// its side in x and y and scaled by up to `1 ± this`, drawn anew each
    /// time; the zoom *label* stays the ground-truth box. Without it the
    /// reader sees one exact crop per sample and memorises it instead of
    /// learning to read the policy's own, inexact crops. Default 0.25; 0 off.
    pub imitation_jitter: f64,
    /// Where the warm-up's expert episodes come from (see [`WarmupData`]).
    /// Default `"train"`.
    pub warmup_data: WarmupData,
    /// Imitation learning rate at the last warm-up iteration: the rate falls
    /// from `lr` to this along a half cosine over the warm-up, so the fine
    /// zoom heads settle instead of jittering at the full rate. Default:
    /// none (constant `lr`).
    pub warmup_lr_final: Option<f64>,
    /// Passes over each warm-up iteration's expert episodes. Fresh samples
    /// are new every iteration, so one pass spends the time a second would
    /// take on new samples instead. Default: `epochs`.
    pub warmup_epochs: Option<usize>,
    /// Samples per iteration. Default 16.
    pub samples_per_iter: usize,
    /// Rollouts per sample (the GRPO group size G). Default 8.
    pub group: usize,
    /// PPO epochs over each iteration's actions. Default 2.
    pub epochs: usize,
    /// Actions per minibatch. Default 256.
    pub minibatch: usize,
    /// AdamW learning rate. Default 3e-3.
    pub lr: f64,
    /// Learning rate of the RL phase (after the warm-up), if it differs from
    /// `lr`: RL on top of an imitation-trained policy can undo what imitation
    /// taught at the imitation rate (RESULTS.md §1c). Default: `lr`.
    pub rl_lr: Option<f64>,
    /// AdamW weight decay. Default 0.
    pub weight_decay: f64,
    /// Global gradient-norm clip. Default 1.0.
    pub max_grad_norm: f64,
    /// PPO ratio clip ε. Default 0.2.
    pub clip: f64,
    /// Entropy bonus coefficient. Default 0.01.
    pub entropy_coef: f64,
    /// Evaluate (greedy, on the eval split) every this many iterations (0: never). Default 10.
    pub eval_every: u64,
    /// Evaluation samples (at most the eval split). Default 128.
    pub eval_n: usize,
    /// Write a checkpoint every this many iterations. Default 1 (so a crash loses at most one iteration).
    pub checkpoint_every: u64,
    /// Checkpoints kept (the newest). Default 3.
    pub keep_checkpoints: usize,
    /// Also keep the checkpoint whose iteration scored highest on this
    /// field of `metrics.jsonl` (`acc_ans`, `reward_total`, …), recorded in
    /// `checkpoints/best.json`; `virl eval --checkpoint best` loads it.
    /// Default none (the newest only).
    pub keep_best: Option<String>,
    /// Fraction of each iteration's trajectories stored in `rollouts/` (0–1). Default 1.
    pub save_rollouts: f64,
}

/// The samples the imitation warm-up imitates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmupData {
    /// The training split.
    #[default]
    Train,
    /// Newly generated ZoomBench samples, a new batch every iteration, from a
    /// generator seed of their own ([`fresh_seed`]): never a training or
    /// evaluation sample. The reader then learns to read rather than
    /// memorise the training split, as a real policy arrives with the
    /// perception of a base model pretrained on other data. Needs generated
    /// ZoomBench data (no `data.dataset`).
    Fresh,
}

/// The ZoomBench seed of the fresh warm-up samples of a run whose training
/// split has seed `train_seed`.
pub fn fresh_seed(train_seed: u64) -> u64 {
    train_seed ^ 0x5752_4D55_5046_5245
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            iterations: 300,
            warmup_iterations: 0,
            imitation_jitter: 0.25,
            warmup_data: WarmupData::Train,
            warmup_lr_final: None,
            warmup_epochs: None,
            samples_per_iter: 16,
            group: 8,
            epochs: 2,
            minibatch: 256,
            lr: 3e-3,
            rl_lr: None,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            clip: 0.2,
            entropy_coef: 0.01,
            eval_every: 10,
            eval_n: 128,
            checkpoint_every: 1,
            keep_checkpoints: 3,
            keep_best: None,
            save_rollouts: 1.0,
        }
    }
}

impl TrainerConfig {
    /// The learning rate of iteration `it`: the warm-up's (constant `lr`, or
    /// a half cosine from `lr` down to `warmup_lr_final` at its last
    /// iteration), then `rl_lr` (or `lr`).
    pub fn lr_at(&self, it: u64) -> f64 {
        if it >= self.warmup_iterations {
            return self.rl_lr.unwrap_or(self.lr);
        }
        match self.warmup_lr_final {
            None => self.lr,
            Some(end) => {
                let t = it as f64 / (self.warmup_iterations.max(2) - 1) as f64;
                end + (self.lr - end) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    /// Checks every knob.
    pub fn validate(&self) -> Result<(), String> {
        let pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("trainer.{name} must be a positive number, got {v}"))
            }
        };
        pos("lr", self.lr)?;
        if let Some(r) = self.rl_lr {
            pos("rl_lr", r)?;
        }
        if let Some(r) = self.warmup_lr_final {
            pos("warmup_lr_final", r)?;
        }
        if self.warmup_epochs == Some(0) {
            return Err("trainer.warmup_epochs must be at least 1".into());
        }

        pos("clip", self.clip)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "trainer.weight_decay must be ≥ 0, got {}",
                self.weight_decay
            ));
        }
        if !(self.entropy_coef.is_finite() && self.entropy_coef >= 0.0) {
            return Err(format!(
                "trainer.entropy_coef must be ≥ 0, got {}",
                self.entropy_coef
            ));
        }
        if !(self.imitation_jitter.is_finite() && (0.0..1.0).contains(&self.imitation_jitter)) {
            return Err(format!(
                "trainer.imitation_jitter is a fraction in [0, 1), got {}",
                self.imitation_jitter
            ));
        }
        if !self.max_grad_norm.is_finite() {
            return Err("trainer.max_grad_norm must be finite (≤ 0 turns clipping off)".into());
        }
        for (name, v) in [
            ("samples_per_iter", self.samples_per_iter),
            ("group", self.group),
            ("epochs", self.epochs),
            ("minibatch", self.minibatch),
            ("keep_checkpoints", self.keep_checkpoints),
        ] {
            if v == 0 {
                return Err(format!("trainer.{name} must be at least 1"));
            }
        }
        if let Some(m) = &self.keep_best {
            let fields = crate::metrics::IterationMetrics::numeric_fields();
            if !fields.contains(m) {
                return Err(format!(
                    "trainer.keep_best = {m:?} is not a metric (one of {})",
                    fields.join(", ")
                ));
            }
        }
        if self.checkpoint_every == 0 {
            return Err("trainer.checkpoint_every must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.save_rollouts) {
            return Err(format!(
                "trainer.save_rollouts is a fraction in [0, 1], got {}",
                self.save_rollouts
            ));
        }
        Ok(())
    }
}

/// Everything that defines a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Seed of weights, sampling and batch order.
    pub seed: u64,
    /// Device.
    pub device: DeviceKind,
    /// Data.
    pub data: DataConfig,
    /// Episode rules.
    pub env: EnvConfig,
    /// ZoomNet's shape.
    pub policy: ZoomNetConfig,
    /// Rewards and credit.
    pub reward: RewardConfig,
    /// GRPO/PPO.
    pub trainer: TrainerConfig,
    /// Failure-signature thresholds.
    pub detectors: DetectorConfig,
    /// Set for a run trained elsewhere (verl) and traced into this folder
    /// (`crate::trace`); the policy, env and trainer sections then do not apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRun>,
}

/// A run trained by another program whose trajectories are traced into a
/// session folder (DESIGN §8).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalRun {
    /// The trainer, e.g. `verl`.
    pub trainer: String,
    /// verl's `file` logger JSONL (`$VERL_FILE_LOGGER_PATH`), whose entropy,
    /// clip fraction, KL and loss join the curves; when absent the curves
    /// come from the trace alone.
    pub metrics: Option<PathBuf>,
}

impl SessionConfig {
    /// Parses and checks TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, String> {
        let mut cfg: Self = toml::from_str(text)
            .map_err(|e| format!("{} in {}", e.to_string().trim_end(), origin.display()))?;
        // `env.global_view` left out means the crops' side: a config that
        // sets `view = 32` gets a 32 px global view, as before the key
        // existed, not the default's 64.
        let table: toml::Table = toml::from_str(text).unwrap_or_default();
        if table
            .get("env")
            .is_none_or(|e| e.get("global_view").is_none())
        {
            cfg.env.global_view = cfg.env.view;
        }
        cfg.validate()
            .map_err(|e| format!("{e}, in {}", origin.display()))?;
        Ok(cfg)
    }

    /// Reads and checks a TOML file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_toml(&text, path)
    }

    /// Reads a session folder's `session.toml`, which lists every key of
    /// the version that wrote it: a key added since then takes the value
    /// that reproduces that version's behaviour, not today's default, so a
    /// session resumes (and its checkpoints evaluate) as it was trained.
    /// - `policy.reader_activation` absent: `relu`.
    ///
    /// (`env.global_view` absent is the crops' side in any config file.)
    pub fn load_session(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut cfg = Self::from_toml(&text, path)?;
        let table: toml::Table = toml::from_str(&text).unwrap_or_default();
        if table
            .get("policy")
            .is_some_and(|p| p.get("reader_activation").is_none())
        {
            cfg.policy.reader_activation = crate::policy::zoomnet::Activation::Relu;
        }
        Ok(cfg)
    }

    /// The TOML text (every key, defaults included, so the file documents the run).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<(), String> {
        self.reward
            .validate()
            .map_err(|e| format!("[reward] {e}"))?;
        self.env.validate().map_err(|e| format!("[env] {e}"))?;
        self.trainer.validate()?;
        if self.data.dataset.is_none() {
            self.data
                .zoombench
                .validate()
                .map_err(|e| format!("[data.zoombench] {e}"))?;
            if self.data.train_n == 0 {
                return Err("data.train_n must be at least 1".into());
            }
            if self.trainer.warmup_data == WarmupData::Fresh
                && fresh_seed(self.data.train_seed) == self.data.eval_seed
            {
                return Err(format!(
                    "data.eval_seed {} is the seed of the fresh warm-up samples \
                     (trainer.warmup_data = \"fresh\"): the warm-up would train on the \
                     evaluation samples; choose another eval_seed",
                    self.data.eval_seed
                ));
            }
        } else if self.trainer.warmup_data == WarmupData::Fresh {
            return Err(format!(
                "trainer.warmup_data = \"fresh\" generates ZoomBench samples, but the run \
                 reads the dataset folder {}; use warmup_data = \"train\"",
                self.data
                    .dataset
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            ));
        }
        if self.detectors.window == 0 {
            return Err("detectors.window must be at least 1".into());
        }
        if !(self.env.view as usize).is_multiple_of(self.policy.crop_patch.max(1)) {
            return Err(format!(
                "policy.crop_patch ({}) must divide env.view ({})",
                self.policy.crop_patch, self.env.view
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(toml: &str) -> String {
        SessionConfig::from_toml(toml, Path::new("session.toml")).unwrap_err()
    }

    #[test]
    fn defaults_round_trip() {
        let c = SessionConfig::default();
        let back = SessionConfig::from_toml(&c.to_toml(), Path::new("x")).expect("parse");
        assert_eq!(c, back);
        assert!(c.to_toml().contains("[reward]") && c.to_toml().contains("h0 = 0.3"));
    }

    #[test]
    fn bad_values_are_refused_with_their_names() {
        assert!(
            err("[trainer]\nlr = -0.1").contains("trainer.lr must be a positive number, got -0.1")
        );
        assert!(
            err("[reward]\nh_good = 0.1\nh_bad = 0.2")
                .contains("h_good (0.1) must be greater than h_bad (0.2)")
        );
        assert!(err("[env]\nmax_rounds = 0").contains("max_rounds must be at least 1"));
        let e = err("[trainer]\nlearning_rate = 0.1");
        assert!(e.contains("unknown field `learning_rate`"), "{e}");
        assert!(e.contains("session.toml"), "{e}");
        assert!(err("sede = 1").contains("unknown field `sede`"));
        assert!(err("device = \"tpu\"").contains("unknown variant"));
        assert!(err("[reward]\nmode = \"vrl\"").contains("unknown variant"));
        assert!(err("[trainer]\nwarmup_lr_final = 0").contains("warmup_lr_final"));
        assert!(err("[trainer]\nwarmup_epochs = 0").contains("warmup_epochs"));
    }

    #[test]
    fn the_imitation_rate_falls_along_a_half_cosine_then_rl_takes_over() {
        let mut t = TrainerConfig {
            warmup_iterations: 101,
            lr: 1e-2,
            rl_lr: Some(1e-4),
            ..TrainerConfig::default()
        };
        assert_eq!(t.lr_at(0), 1e-2);
        assert_eq!(t.lr_at(100), 1e-2);
        assert_eq!(t.lr_at(101), 1e-4);
        t.warmup_lr_final = Some(1e-3);
        assert!((t.lr_at(0) - 1e-2).abs() < 1e-12);
        assert!((t.lr_at(50) - 5.5e-3).abs() < 1e-12);
        assert!((t.lr_at(100) - 1e-3).abs() < 1e-12);
        assert_eq!(t.lr_at(101), 1e-4);
    }

    #[test]
    fn a_session_written_before_the_reader_activation_existed_keeps_relu() {
        use crate::policy::zoomnet::Activation;
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("session.toml");
        let mut old = SessionConfig::default().to_toml();
        old = old.replace("reader_activation = \"gelu\"\n", "");
        assert!(!old.contains("reader_activation"));
        std::fs::write(&p, &old).expect("write");
        let c = SessionConfig::load_session(&p).expect("load");
        assert_eq!(c.policy.reader_activation, Activation::Relu);
        // As a config to start from, the missing key takes today's default.
        assert_eq!(
            SessionConfig::load(&p)
                .expect("load")
                .policy
                .reader_activation,
            Activation::Gelu
        );
        // A session that names it keeps what it names.
        std::fs::write(&p, SessionConfig::default().to_toml()).expect("write");
        let c = SessionConfig::load_session(&p).expect("load");
        assert_eq!(c.policy.reader_activation, Activation::Gelu);
    }

    #[test]
    fn a_session_written_before_the_global_view_existed_keeps_the_crops_side() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("session.toml");
        let mut cfg = SessionConfig::default();
        cfg.env.view = 32;
        let mut old: toml::Table = toml::from_str(&cfg.to_toml()).expect("toml");
        let env = old
            .get_mut("env")
            .and_then(|e| e.as_table_mut())
            .expect("env");
        assert!(env.remove("global_view").is_some());
        let old = toml::to_string(&old).expect("toml");
        std::fs::write(&p, &old).expect("write");
        assert_eq!(
            SessionConfig::load_session(&p)
                .expect("load")
                .env
                .global_view,
            32
        );
        // A config to start from reads it the same way.
        assert_eq!(SessionConfig::load(&p).expect("load").env.global_view, 32);
        cfg.env.global_view = 96;
        std::fs::write(&p, cfg.to_toml()).expect("write");
        assert_eq!(
            SessionConfig::load_session(&p)
                .expect("load")
                .env
                .global_view,
            96
        );
    }
}
