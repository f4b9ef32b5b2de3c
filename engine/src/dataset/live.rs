//! A dataset kept current while another program corrects it.
//!
//! A training run outside the studio (verl) scores against the ground truth
//! of a dataset folder; a person corrects boxes in the studio, which appends
//! to the folder's `annotations.jsonl` journal (or compacts it into the
//! manifest). [`LiveDataset::refresh`] notices either change by the files'
//! size and modification time and reloads, so the next trajectory scored
//! uses the corrected boxes. [`gt_version`] fingerprints the boxes a score
//! used.

use super::{Dataset, DatasetError, Sample};
use crate::rng::{FNV_OFFSET, fnv1a};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What identifies a version of a file cheaply: its size and modification time.
type Stamp = Option<(u64, SystemTime)>;

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// A dataset folder, reloaded when its manifest or correction journal changes.
#[derive(Debug)]
pub struct LiveDataset {
    root: PathBuf,
    dataset: Dataset,
    stamps: [Stamp; 2],
}

impl LiveDataset {
    /// Loads `root` (a dataset folder) with its journal replayed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, DatasetError> {
        let root = root.into();
        let dataset = Dataset::load(&root)?;
        let stamps = Self::stamps_of(&dataset);
        Ok(Self {
            root,
            dataset,
            stamps,
        })
    }

    fn stamps_of(d: &Dataset) -> [Stamp; 2] {
        [stamp(&d.manifest_path()), stamp(&d.journal_path())]
    }

    /// Reloads when the manifest or the journal changed since the last
    /// load; returns whether it did. A reload that fails (a manifest being
    /// replaced, a torn journal line) keeps the previous version and
    /// returns the error.
    pub fn refresh(&mut self) -> Result<bool, DatasetError> {
        if Self::stamps_of(&self.dataset) == self.stamps {
            return Ok(false);
        }
        let d = Dataset::load(&self.root)?;
        self.stamps = Self::stamps_of(&d);
        self.dataset = d;
        Ok(true)
    }

    /// The dataset as last loaded.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A fingerprint of a sample's ground-truth boxes (FNV-1a over their
/// coordinates' bits, in order): equal fingerprints mean the same boxes, so
/// a score records which version of the boxes it used.
pub fn gt_version(sample: &Sample) -> u64 {
    let mut h = FNV_OFFSET;
    for r in &sample.rationales {
        for c in [r.bbox.x1, r.bbox.y1, r.bbox.x2, r.bbox.y2] {
            h = fnv1a(h, &c.to_bits().to_le_bytes());
        }
    }
    // Stays within 2^53 so that JSON readers with f64 numbers keep it exact.
    h >> 11
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::annotations::{Edit, Journal};
    use crate::dataset::zoombench::{ZoomBench, ZoomBenchConfig};

    #[test]
    fn a_journal_append_is_seen_and_changes_the_version() {
        let dir = tempfile::tempdir().expect("tmp");
        let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
        let samples = zb
            .write_dataset(dir.path(), 2, 0, |_| {})
            .expect("write")
            .samples()
            .to_vec();
        let mut live = LiveDataset::open(dir.path()).expect("open");
        assert!(!live.refresh().expect("refresh"));
        let s0 = live.dataset().get(&samples[0].id).expect("s0").clone();
        let v0 = gt_version(&s0);
        let mut moved = s0.rationales.clone();
        moved[0].bbox = moved[0].bbox.translate(5.0, 0.0);
        let mut j = Journal::new(live.dataset().journal_path());
        j.append(&Edit::now(
            &s0.id,
            "move",
            s0.rationales.clone(),
            moved.clone(),
        ))
        .expect("append");
        assert!(live.refresh().expect("refresh"));
        let s1 = live.dataset().get(&s0.id).expect("s0");
        assert_eq!(s1.rationales, moved);
        assert_ne!(gt_version(s1), v0);
        assert!(gt_version(s1) < 1 << 53);
    }
}
