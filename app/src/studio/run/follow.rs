//! Following a session on disk: the background reader that answers rollout
//! requests and polls the logs for lines another process appends.

use super::{IoReply, IoRequest, Waker};
use crossbeam_channel::{Receiver, Sender};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use virl_engine::session::Session;

/// The background reader of an opened session: answers rollout requests and
/// polls the logs for lines another process appends.
pub(super) fn watch(
    session: Session,
    requests: Receiver<IoRequest>,
    tx: Sender<IoReply>,
    wake: Waker,
    alive: Arc<std::sync::atomic::AtomicBool>,
) {
    let (mut seen_m, mut seen_e, mut seen_r) = (0usize, 0usize, Vec::new());
    // The newest rollout file and its size: a trace (verl) appends to it
    // line by line while the step runs.
    let mut newest: Option<(u64, u64)> = None;
    let mut first = true;
    while alive.load(std::sync::atomic::Ordering::Relaxed) {
        let m = session.read_metrics();
        let e = session.read_evals();
        let r = session.rollout_iterations();
        if let Some(&last) = r.last() {
            let len = std::fs::metadata(session.rollout_path(last)).map_or(0, |m| m.len());
            if newest.is_some_and(|(it, l)| it == last && l != len) {
                if tx.send(IoReply::Grew(last)).is_err() {
                    return;
                }
                wake();
            }
            newest = Some((last, len));
        }
        match (m, e) {
            (Ok(m), Ok(e)) => {
                // A rewrite after a resume can shorten the logs: start over.
                if m.len() < seen_m || e.len() < seen_e {
                    seen_m = 0;
                    seen_e = 0;
                }
                if first || m.len() > seen_m || e.len() > seen_e || r != seen_r {
                    let reply = IoReply::Logs {
                        metrics: m[seen_m..].to_vec(),
                        evals: e[seen_e..].to_vec(),
                        rollout_iterations: r.clone(),
                    };
                    seen_m = m.len();
                    seen_e = e.len();
                    seen_r = r;
                    if tx.send(reply).is_err() {
                        return;
                    }
                    wake();
                }
            }
            (Err(err), _) | (_, Err(err)) => {
                if first && tx.send(IoReply::Error(err.to_string())).is_err() {
                    return;
                }
            }
        }
        first = false;
        match requests.recv_timeout(Duration::from_millis(700)) {
            Ok(IoRequest::Rollouts(i)) => {
                let r = session
                    .read_rollouts(i)
                    .map(Arc::new)
                    .map_err(|e| e.to_string());
                if tx.send(IoReply::Rollouts(i, r)).is_err() {
                    return;
                }
                wake();
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The model folder of a session of VLM rollouts (its `policy.json`).
pub(super) fn vlm_model(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("policy.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    (v["policy"] == "qwen-vl").then(|| v["model"].as_str().unwrap_or("?").to_string())
}
