//! The trace of a run trained elsewhere (verl): scored trajectories appended
//! to a session folder that the studio opens like its own sessions
//! (DESIGN §8).
//!
//! ```text
//! <trace>/
//!   session.toml            [external] trainer = "verl"; [data] dataset = the dataset folder
//!   rollouts/iter-NNNNNN.jsonl  one Trajectory per line, iteration = verl's global step,
//!                           group = verl's uid
//! ```
//!
//! Many reward workers append at once, from several processes and hosts:
//! each line is one `write` of the whole line to a file opened in append
//! mode, under an exclusive advisory lock ([`std::fs::File::lock`]), so no
//! line is interleaved with another. Lines go to the kernel at once (a
//! killed worker loses nothing it wrote); they are not `fsync`ed one by one,
//! which would cost milliseconds a trajectory. Nothing is ever truncated or
//! rewritten: a restarted or resumed run appends to what is there.

use crate::config::{DataConfig, ExternalRun, SessionConfig};
use crate::reward::RewardConfig;
use crate::session::{Session, SessionError};
use crate::trajectory::Trajectory;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A session folder that trajectories are appended to.
#[derive(Clone, Debug)]
pub struct Trace {
    dir: PathBuf,
}

fn err(path: &Path, message: impl Into<String>) -> SessionError {
    crate::session::error::err(path, message)
}

impl Trace {
    /// Opens the trace folder `dir`, creating the session layout when it is
    /// new. `dataset` is the dataset folder the ground truth comes from (the
    /// studio shows its images and boxes); `reward` is the run's reward
    /// config (the studio assigns credit with it). An existing trace is
    /// kept as it is; a folder that holds a session of another kind is
    /// refused.
    pub fn open(
        dir: &Path,
        dataset: &Path,
        run: ExternalRun,
        reward: &RewardConfig,
    ) -> Result<Self, SessionError> {
        let toml = dir.join("session.toml");
        if !toml.exists() {
            let cfg = SessionConfig {
                data: DataConfig {
                    dataset: Some(dataset.to_path_buf()),
                    ..DataConfig::default()
                },
                external: Some(run),
                reward: reward.clone(),
                ..SessionConfig::default()
            };
            // Several workers may get here at once: the loser of the race
            // finds the winner's session.
            if let Err(e) = Session::create(dir, &cfg)
                && !toml.exists()
            {
                return Err(e);
            }
        }
        let (_, cfg) = Session::open(dir)?;
        if cfg.external.is_none() {
            return Err(err(
                &toml,
                "this folder holds a session trained by the studio, not a trace; choose another trace folder",
            ));
        }
        std::fs::create_dir_all(dir.join("rollouts"))
            .map_err(|e| err(&dir.join("rollouts"), format!("cannot create folder ({e})")))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of one iteration's trajectories.
    pub fn rollout_path(&self, iteration: u64) -> PathBuf {
        self.dir
            .join("rollouts")
            .join(format!("iter-{iteration:06}.jsonl"))
    }

    /// Appends one trajectory to its iteration's file as one line.
    pub fn append(&self, t: &Trajectory) -> Result<(), SessionError> {
        let mut line = serde_json::to_string(t)
            .map_err(|e| err(&self.dir, format!("cannot encode a trajectory ({e})")))?;
        line.push('\n');
        let p = self.rollout_path(t.iteration);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| err(&p, format!("cannot open for appending ({e})")))?;
        f.lock()
            .map_err(|e| err(&p, format!("cannot lock for appending ({e})")))?;
        f.write_all(line.as_bytes())
            .map_err(|e| err(&p, format!("cannot append ({e})")))
        // The lock is released when `f` closes.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_survive_reopening_and_refuse_a_studio_session() {
        let dir = tempfile::tempdir().expect("tmp");
        let run = ExternalRun {
            trainer: "verl".into(),
            metrics: None,
        };
        let rc = RewardConfig::default();
        let tr = Trace::open(dir.path(), Path::new("/data/ds"), run.clone(), &rc).expect("open");
        let mut t = Trajectory::new("s1", "uid-1", 3, "7");
        t.answer = Some("7".into());
        tr.append(&t).expect("append");
        // A restarted run opens the same folder and keeps what was there.
        let tr2 = Trace::open(dir.path(), Path::new("/data/ds"), run.clone(), &rc).expect("reopen");
        tr2.append(&t).expect("append");
        let (s, cfg) = Session::open(dir.path()).expect("session");
        assert_eq!(s.read_rollouts(3).expect("read").len(), 2);
        assert_eq!(cfg.external.expect("external").trainer, "verl");
        assert_eq!(cfg.data.dataset.as_deref(), Some(Path::new("/data/ds")));

        let other = tempfile::tempdir().expect("tmp");
        Session::create(other.path(), &SessionConfig::default()).expect("create");
        let e = Trace::open(other.path(), Path::new("/d"), run, &rc).unwrap_err();
        assert!(e.to_string().contains("not a trace"), "{e}");
    }
}
