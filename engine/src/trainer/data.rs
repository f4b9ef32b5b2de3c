//! The data a trainer runs on: the train and eval splits of a config
//! (a dataset folder, or ZoomBench generated in memory), their images and
//! environments, question encodings, and where ground-truth corrections of
//! generated data live.

use super::TrainError;
use crate::config::SessionConfig;
use crate::dataset::annotations::JOURNAL;
use crate::dataset::zoombench::ZoomBench;
use crate::dataset::{Dataset, Sample};
use crate::env::{ImageSource, ImageStore, ZoomEnv};
use crate::policy::encode_question;
use std::path::PathBuf;
use std::sync::Arc;

/// A split: dataset, images, environment, question encodings, image sizes.
pub(crate) struct Split {
    pub(crate) env: ZoomEnv,
    pub(crate) questions: Vec<Vec<f32>>,
    pub(crate) sizes: Vec<(f64, f64)>,
}

impl Split {
    pub(crate) fn new(
        ds: Dataset,
        source: ImageSource,
        cfg: &SessionConfig,
        qdim: usize,
    ) -> Result<Self, TrainError> {
        let questions = ds
            .samples()
            .iter()
            .map(|s| encode_question(&s.question, qdim))
            .collect();
        let sizes = ds
            .samples()
            .iter()
            .map(|s| (s.width as f64, s.height as f64))
            .collect();
        let store = Arc::new(ImageStore::new(
            Arc::new(ds),
            source,
            cfg.env.global_view,
            cfg.data.image_cache,
        ));
        Ok(Self {
            env: ZoomEnv::new(cfg.env.clone(), store)?,
            questions,
            sizes,
        })
    }

    /// `n` ZoomBench samples never seen before, for the fresh warm-up:
    /// iteration `iteration` takes indices `i·n .. (i+1)·n` of the fresh
    /// seed, so a resumed run draws the same; their images are rendered.
    pub(crate) fn fresh(cfg: &SessionConfig, iteration: u64, n: usize) -> Result<Self, TrainError> {
        let g = ZoomBench::new(cfg.data.zoombench.clone())
            .map_err(|e| format!("[data.zoombench] {e}"))?;
        let seed = crate::config::fresh_seed(cfg.data.train_seed);
        let base = iteration * n as u64;
        let samples = (0..n as u64).map(|i| g.sample(seed, base + i)).collect();
        let ds = Dataset::new(format!("zoombench:seed={seed}"), samples);
        let split = Self::new(ds, ImageSource::ZoomBench(g), cfg, cfg.policy.question_dim)?;
        // Rendering new canvases is a quarter of a fresh warm-up iteration:
        // render them on every core before the episodes start.
        let store = split.env.store();
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let all: Vec<usize> = (0..n).collect();
        std::thread::scope(|s| {
            let jobs: Vec<_> = all
                .chunks(n.div_ceil(threads).max(1))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .try_for_each(|&i| store.global_view(i).map(drop))
                    })
                })
                .collect();
            jobs.into_iter().try_for_each(|j| match j.join() {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("a thread rendering fresh warm-up samples panicked".to_string()),
            })
        })?;
        Ok(split)
    }

    pub(crate) fn samples(&self) -> &[Sample] {
        self.env.store().dataset().samples()
    }
}

/// The train and eval datasets of a config, with where their images come
/// from (ZoomBench samples are generated, not read), and the ground-truth
/// corrections of the session folder `session` applied to generated data
/// (a dataset folder's own corrections are applied when it loads; see
/// [`journal_path`]).
pub fn load_splits_for(
    cfg: &SessionConfig,
    session: Option<&std::path::Path>,
) -> Result<(Dataset, ImageSource, Dataset, ImageSource), TrainError> {
    let (mut train, ts, mut eval, es) = load_splits(cfg)?;
    if let Some(dir) = session {
        let j = dir.join(JOURNAL);
        for (ds, src) in [(&mut train, &ts), (&mut eval, &es)] {
            if matches!(src, ImageSource::ZoomBench(_)) {
                ds.apply_journal(&j).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok((train, ts, eval, es))
}

/// Where corrections of a sample of `ds` go: beside the manifest for a
/// dataset folder, in the session folder `session` for generated ZoomBench
/// data (which has no folder).
pub fn journal_path(ds: &Dataset, generated: bool, session: &std::path::Path) -> PathBuf {
    if generated {
        session.join(JOURNAL)
    } else {
        ds.journal_path()
    }
}

/// The train and eval datasets of a config, with where their images come
/// from (ZoomBench samples are generated, not read). No session journal is
/// applied ([`load_splits_for`] does).
pub fn load_splits(
    cfg: &SessionConfig,
) -> Result<(Dataset, ImageSource, Dataset, ImageSource), TrainError> {
    let zb =
        || ZoomBench::new(cfg.data.zoombench.clone()).map_err(|e| format!("[data.zoombench] {e}"));
    let zoombench = |seed: u64, n: u64| -> Result<(Dataset, ImageSource), TrainError> {
        let g = zb()?;
        let samples = (0..n).map(|i| g.sample(seed, i)).collect();
        Ok((
            Dataset::new(format!("zoombench:seed={seed}"), samples),
            ImageSource::ZoomBench(g),
        ))
    };
    let (train, ts) = match &cfg.data.dataset {
        Some(p) => (
            Dataset::load(p).map_err(|e| e.to_string())?,
            ImageSource::Folder,
        ),
        None => zoombench(cfg.data.train_seed, cfg.data.train_n)?,
    };
    let (eval, es) = match (&cfg.data.eval_dataset, &cfg.data.dataset) {
        (Some(p), _) => (
            Dataset::load(p).map_err(|e| e.to_string())?,
            ImageSource::Folder,
        ),
        (None, Some(_)) => (train.clone(), ImageSource::Folder),
        (None, None) => zoombench(cfg.data.eval_seed, cfg.data.eval_n.max(1))?,
    };
    Ok((train, ts, eval, es))
}

/// Why `ds` cannot be trained or evaluated on, if some of its images are
/// too large to decode: the list of them. Training and evaluation refuse to
/// start with it (rather than abort at the first batch that draws one); the
/// dataset still opens, so the studio can show the error on those samples.
pub(crate) fn undecodable(ds: &Dataset) -> Option<String> {
    let big = ds.over_decode_limit();
    if big.is_empty() {
        return None;
    }
    let list: Vec<String> = big
        .iter()
        .take(20)
        .map(|s| {
            format!(
                "  {} ({}: {}×{})",
                s.id,
                ds.image_path(s).display(),
                s.width,
                s.height
            )
        })
        .collect();
    Some(format!(
        "{}: {} sample(s) have images over the decoder's limit of {} MiB of pixels, so they cannot be trained or evaluated on:\n{}{}\nremove them from the manifest (or downscale the images and their boxes)",
        ds.manifest_path().display(),
        big.len(),
        crate::dataset::MAX_DECODE_BYTES >> 20,
        list.join("\n"),
        if big.len() > 20 { "\n  …" } else { "" }
    ))
}

/// The answer classes: every answer of both splits, numbers first in numeric order.
pub(crate) fn answer_classes(a: &Dataset, b: &Dataset) -> Vec<String> {
    let mut v: Vec<String> = a
        .samples()
        .iter()
        .chain(b.samples())
        .map(|s| s.answer.clone())
        .collect();
    v.sort_by(|x, y| match (x.parse::<f64>(), y.parse::<f64>()) {
        (Ok(p), Ok(q)) => p.total_cmp(&q),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => x.cmp(y),
    });
    v.dedup();
    v
}
