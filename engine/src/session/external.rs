//! The curves of a run traced from outside (verl): per-step metrics
//! summarised from the trace's trajectories, joined by the entropy, clip
//! fraction, KL and loss of verl's `file` logger when its JSONL is known.
//!
//! A step's metrics appear once the next step has begun (its trajectories
//! are still arriving until then), and the last step's when the run has
//! been quiet for [`QUIET_SECS`].

use super::Session;
use crate::config::ExternalRun;
use crate::metrics::{IterationMetrics, summarize};
use crate::reward::RewardConfig;
use crate::trajectory::RAT_IOU;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long the newest step's file must be unchanged to count as complete.
pub const QUIET_SECS: u64 = 60;

/// Per-iteration summaries, cached by the rollout file's size.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    by_iteration: BTreeMap<u64, (u64, IterationMetrics)>,
}

/// What a [`Session`] of an external run knows (cloned onto reader threads).
#[derive(Clone, Debug)]
pub(crate) struct External {
    /// The trainer and its metrics file.
    pub(crate) run: ExternalRun,
    /// The reward config of the run (its credit is assigned with it).
    pub(crate) reward: RewardConfig,
    /// Per-iteration summaries.
    pub(crate) cache: Arc<Mutex<Cache>>,
}

/// verl's `file` logger: `{"step": N, "data": {"actor/entropy": …, …}}`
/// lines; a torn or foreign line is skipped.
fn verl_logger(path: &Path) -> HashMap<u64, serde_json::Map<String, serde_json::Value>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(step), Some(serde_json::Value::Object(data))) =
            (v.get("step").and_then(|s| s.as_u64()), v.get("data"))
        {
            out.insert(step, data.clone());
        }
    }
    out
}

/// The metrics of every complete step of an external run.
pub(crate) fn metrics(
    session: &Session,
    x: &External,
) -> Result<Vec<IterationMetrics>, super::SessionError> {
    let iters = session.rollout_iterations();
    let mut out = Vec::new();
    let logger = x
        .run
        .metrics
        .as_deref()
        .map(verl_logger)
        .unwrap_or_default();
    let mut cache = x.cache.lock().unwrap_or_else(|p| p.into_inner());
    for (k, &it) in iters.iter().enumerate() {
        let path = session.rollout_path(it);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let quiet = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|d| d >= Duration::from_secs(QUIET_SECS));
        if k + 1 == iters.len() && !quiet {
            break;
        }
        let m = match cache.by_iteration.get(&it) {
            Some((len, m)) if *len == meta.len() => m.clone(),
            _ => {
                let trajs = session.read_rollouts(it)?;
                let m = summarize(it, &trajs, RAT_IOU);
                cache.by_iteration.insert(it, (meta.len(), m.clone()));
                m
            }
        };
        out.push(m);
    }
    for m in &mut out {
        if let Some(d) = logger.get(&m.iteration) {
            let get = |k: &str| d.get(k).and_then(|v| v.as_f64());
            m.entropy = get("actor/entropy").or(m.entropy);
            m.clip_frac = get("actor/pg_clipfrac").or(m.clip_frac);
            m.approx_kl = get("actor/ppo_kl").or(m.approx_kl);
            m.loss = get("actor/pg_loss").or(m.loss);
        }
    }
    Ok(out)
}
