//! The ground-truth correction journal, `annotations.jsonl` (DESIGN §2).
//!
//! Every committed edit of a sample's rationale boxes is appended as one line
//! and flushed to disk at once, so a crash right after an edit keeps it:
//!
//! ```json
//! {"time": 1795651200.5, "sample": "zb-s0-000003", "op": "move",
//!  "before": [{"bbox": [10, 10, 30, 30], "label": "red placard"}],
//!  "after":  [{"bbox": [14, 10, 34, 30], "label": "red placard"}]}
//! ```
//!
//! `time` is seconds since the Unix epoch; `op` names the edit (`add`,
//! `move`, `resize`, `nudge`, `label`, `delete`, `undo`, `redo`, …; it is for
//! people and is not interpreted); `before` and `after` are the sample's whole
//! rationale list, so replaying the journal is "set the rationales to
//! `after`", line by line. Replaying is idempotent, which makes compaction
//! crash safe: [`Dataset::compact`] writes the manifest with the edits applied
//! (atomic rename) and only then removes the journal; a crash in between
//! leaves both, and replaying the journal onto the new manifest changes
//! nothing.
//!
//! For a dataset folder the journal lies beside the manifest. ZoomBench data
//! generated in memory has no folder; a session keeps its corrections in
//! its own folder instead (see [`crate::session::Session::journal_path`]).

use super::manifest::{Line, describe, parse_rationales};
use super::{Dataset, DatasetError, Rationale};
use serde::Serialize;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal's file name.
pub const JOURNAL: &str = "annotations.jsonl";

/// One committed edit of one sample's rationale boxes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edit {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// The sample id.
    pub sample: String,
    /// What was done, in a word (`add`, `move`, `resize`, `delete`, …).
    pub op: String,
    /// The rationales before the edit.
    pub before: Vec<Rationale>,
    /// The rationales after it.
    pub after: Vec<Rationale>,
}

impl Edit {
    /// An edit made now.
    pub fn now(
        sample: impl Into<String>,
        op: impl Into<String>,
        before: Vec<Rationale>,
        after: Vec<Rationale>,
    ) -> Self {
        Self {
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            sample: sample.into(),
            op: op.into(),
            before,
            after,
        }
    }
}

/// What replaying a journal did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    /// Edits read and applied.
    pub applied: usize,
    /// Ids of the samples whose rationales the journal changed, in first-edit order.
    pub samples: Vec<String>,
    /// Things a person should know (a torn last line, an unknown sample,
    /// an edit whose `before` does not match), each naming the journal and line.
    pub warnings: Vec<String>,
}

/// Reads a journal and checks every line against `dataset` (the sample must
/// exist; every box of `after` must be a finite, non-degenerate box inside
/// its image). A last line cut short — a crash in the middle of an append —
/// is reported as a warning and skipped; any other bad line is an error
/// naming the file, line and field. A missing journal is an empty one.
pub fn read(path: &Path, dataset: &Dataset) -> Result<(Vec<Edit>, Vec<String>), DatasetError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(source) => {
            return Err(DatasetError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut edits = Vec::new();
    let mut warnings = Vec::new();
    let lines: Vec<&[u8]> = crate::fsutil::strip_bom(&bytes)
        .split(|&b| b == b'\n')
        .collect();
    let n = lines.len();
    for (i, raw) in lines.into_iter().enumerate() {
        let cx = Line { path, line: i + 1 };
        let is_last = i + 1 == n;
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(cx.err(None, "not valid UTF-8"));
        };
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) if e.is_eof() && is_last => {
                warnings.push(format!(
                    "line {}: the last edit was cut short (the program stopped while writing it) and is ignored, in {}",
                    i + 1,
                    path.display()
                ));
                continue;
            }
            Err(e) => return Err(cx.err(None, format!("not valid JSON ({e})"))),
        };
        let Value::Object(obj) = &v else {
            return Err(cx.err(
                None,
                format!("expected a JSON object, found {}", describe(&v)),
            ));
        };
        let get_str = |k: &str| -> Result<String, DatasetError> {
            match obj.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(cx.err(
                    Some(k),
                    format!("expected a string, found {}", describe(other)),
                )),
                None => Err(cx.err(Some(k), "missing")),
            }
        };
        let sample = get_str("sample")?;
        let op = get_str("op")?;
        let time = obj.get("time").and_then(Value::as_f64).unwrap_or(0.0);
        let Some(s) = dataset.get(&sample) else {
            warnings.push(format!(
                "line {}: sample {sample:?} is not in the dataset; its edit is ignored, in {}",
                i + 1,
                path.display()
            ));
            continue;
        };
        let (w, h) = (s.width, s.height);
        let rat = |k: &str| -> Result<Vec<Rationale>, DatasetError> {
            match obj.get(k) {
                Some(v) => parse_rationales(v, k, w, h, &cx),
                None => Err(cx.err(Some(k), "missing")),
            }
        };
        let after = rat("after")?;
        // `before` is informational: a box of it may lie outside the image if
        // the manifest held one; keep what parses.
        let before = rat("before").unwrap_or_default();
        edits.push(Edit {
            time,
            sample,
            op,
            before,
            after,
        });
    }
    Ok((edits, warnings))
}

/// Replays `edits` onto `dataset`, in order. An edit whose `before` differs
/// from the sample's current rationales (the manifest was changed by another
/// program after the edit) still applies — the journal is the newer record —
/// but is reported; an edit already in the manifest (`after` equal to the
/// current rationales, as after a compaction interrupted before the journal
/// was removed) changes nothing.
pub fn replay(dataset: &mut Dataset, edits: &[Edit], journal: &Path) -> Replay {
    let mut out = Replay::default();
    for (k, e) in edits.iter().enumerate() {
        let Some(cur) = dataset.get(&e.sample).map(|s| s.rationales.clone()) else {
            continue;
        };
        if cur != e.before && cur != e.after {
            out.warnings.push(format!(
                "edit {} of sample {:?}: the manifest's boxes differ from what the edit started from; the journal's boxes are used, in {}",
                k + 1,
                e.sample,
                journal.display()
            ));
        }
        if cur != e.after {
            dataset.set_rationales(&e.sample, e.after.clone());
        }
        out.applied += 1;
        if !out.samples.contains(&e.sample) {
            out.samples.push(e.sample.clone());
        }
    }
    out
}

/// Reads `path` and replays it onto `dataset` ([`read`], then [`replay`]).
pub fn apply(dataset: &mut Dataset, path: &Path) -> Result<Replay, DatasetError> {
    let (edits, mut warnings) = read(path, dataset)?;
    let mut r = replay(dataset, &edits, path);
    warnings.append(&mut r.warnings);
    r.warnings = warnings;
    Ok(r)
}

/// An open journal that edits are appended to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    /// Edits appended since it was opened or last cleared.
    written: usize,
}

impl Journal {
    /// A journal at `path`; the file is created at the first append.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: None,
            written: 0,
        }
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Edits appended through this handle since it was opened or cleared.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Appends one edit as a line and syncs it to disk before returning, so
    /// that a crash after this call keeps the edit. A journal whose last line
    /// was torn by an earlier crash gets a newline first, so the torn line
    /// stays a line of its own.
    pub fn append(&mut self, e: &Edit) -> Result<(), DatasetError> {
        let io = |source| DatasetError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        };
        if self.file.is_none() {
            let torn = std::fs::read(&self.path)
                .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
                .unwrap_or(false);
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(io)?;
            if torn {
                f.write_all(b"\n").map_err(io)?;
            }
            self.file = Some(f);
        }
        let mut line = serde_json::to_string(e).unwrap_or_default();
        line.push('\n');
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io(std::io::Error::other("journal file not open")))?;
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        self.written += 1;
        Ok(())
    }

    /// Removes the journal file (after its edits reached the manifest).
    pub fn clear(&mut self) -> Result<(), DatasetError> {
        self.file = None;
        self.written = 0;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(DatasetError::Io {
                action: "remove",
                path: self.path.clone(),
                source,
            }),
        }
    }
}

impl Dataset {
    /// Replaces a sample's rationale boxes (in memory). Returns false if
    /// there is no sample with this id.
    pub fn set_rationales(&mut self, id: &str, rationales: Vec<Rationale>) -> bool {
        match self.index.get(id) {
            Some(&i) => {
                self.samples[i].rationales = rationales;
                true
            }
            None => false,
        }
    }

    /// The journal beside this dataset's manifest.
    pub fn journal_path(&self) -> PathBuf {
        self.root.join(JOURNAL)
    }

    /// Compacts the journal into the manifest: writes the manifest with the
    /// current (corrected) samples atomically, then removes `journal`. A
    /// crash between the two steps leaves a journal whose replay changes
    /// nothing.
    pub fn compact(&self, journal: &mut Journal) -> Result<(), DatasetError> {
        self.save()?;
        journal.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Sample;
    use crate::geometry::BBox;

    fn ds(dir: &Path) -> Dataset {
        let img = image::RgbImage::new(100, 80);
        std::fs::create_dir_all(dir.join("images")).expect("mkdir");
        img.save(dir.join("images/a.png")).expect("png");
        let s = Sample {
            id: "a".into(),
            image: "images/a.png".into(),
            width: 100,
            height: 80,
            question: "q".into(),
            answer: "1".into(),
            options: vec![],
            rationales: vec![Rationale {
                bbox: BBox::from([10.0, 10.0, 30.0, 30.0]),
                label: "red".into(),
            }],
            meta: None,
            extra: Default::default(),
        };
        let d = Dataset::new(dir, vec![s]);
        d.save().expect("save");
        d
    }

    fn moved() -> Vec<Rationale> {
        vec![Rationale {
            bbox: BBox::from([20.0, 10.0, 40.0, 30.0]),
            label: "red".into(),
        }]
    }

    #[test]
    fn edits_survive_reload_and_compaction() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = ds(dir.path());
        let mut j = Journal::new(d.journal_path());
        let before = d.samples()[0].rationales.clone();
        j.append(&Edit::now("a", "move", before.clone(), moved()))
            .expect("append");
        // A fresh load applies the journal; the manifest itself is unchanged.
        let d2 = Dataset::load(dir.path()).expect("load");
        assert_eq!(d2.samples()[0].rationales, moved());
        assert_eq!(d2.pending_edits(), 1);
        let raw = std::fs::read_to_string(d.manifest_path()).expect("read");
        assert!(raw.contains("[10.0,10.0,30.0,30.0]"), "{raw}");
        // Compaction writes the manifest and removes the journal.
        let mut j2 = Journal::new(d2.journal_path());
        d2.compact(&mut j2).expect("compact");
        assert!(!d2.journal_path().exists());
        let d3 = Dataset::load(dir.path()).expect("load");
        assert_eq!(d3.samples()[0].rationales, moved());
        assert_eq!(d3.pending_edits(), 0);
    }

    #[test]
    fn interrupted_compaction_replays_to_the_same_boxes() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut d = ds(dir.path());
        let mut j = Journal::new(d.journal_path());
        let before = d.samples()[0].rationales.clone();
        j.append(&Edit::now("a", "move", before, moved()))
            .expect("append");
        d.set_rationales("a", moved());
        d.save().expect("save"); // the manifest is written, the journal not yet removed
        let d2 = Dataset::load(dir.path()).expect("load");
        assert_eq!(d2.samples()[0].rationales, moved());
        assert!(
            d2.journal_warnings().is_empty(),
            "{:?}",
            d2.journal_warnings()
        );
    }

    #[test]
    fn torn_last_line_is_skipped_with_a_warning_and_later_appends_stay_readable() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = ds(dir.path());
        let before = d.samples()[0].rationales.clone();
        let mut j = Journal::new(d.journal_path());
        j.append(&Edit::now("a", "move", before.clone(), moved()))
            .expect("append");
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.journal_path())
            .expect("open");
        f.write_all(br#"{"time": 1, "sample": "a", "op": "del"#)
            .expect("write");
        drop(f);
        let d2 = Dataset::load(dir.path()).expect("a torn last line must not stop the load");
        assert_eq!(d2.samples()[0].rationales, moved());
        assert!(d2.journal_warnings()[0].contains("cut short"));
        assert!(d2.journal_warnings()[0].contains(JOURNAL));
        // The next append starts on a new line.
        let mut j = Journal::new(d2.journal_path());
        j.append(&Edit::now("a", "delete", moved(), vec![]))
            .expect("append");
        let err = Dataset::load(dir.path()).expect_err("the torn line is now in the middle");
        let msg = err.to_string();
        assert!(msg.contains("line 2") && msg.contains(JOURNAL), "{msg}");
    }

    #[test]
    fn a_box_outside_the_image_in_the_journal_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = ds(dir.path());
        std::fs::write(
            d.journal_path(),
            "{\"time\":1,\"sample\":\"a\",\"op\":\"move\",\"before\":[],\"after\":[{\"bbox\":[90,10,130,30]}]}\n",
        )
        .expect("write");
        let msg = Dataset::load(dir.path()).expect_err("outside").to_string();
        assert!(
            msg.contains("after[0].bbox") && msg.contains("outside"),
            "{msg}"
        );
        assert!(msg.contains(JOURNAL) && msg.contains("line 1"), "{msg}");
    }
}
