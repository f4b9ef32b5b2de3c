//! `virl._core`: the ViRL Studio engine for Python.
//!
//! Everything here calls `virl-engine`; nothing re-implements a formula.
//! Records cross the boundary as JSON text in the engine's own layouts (a
//! [`Trajectory`] line, a manifest sample line, a `[reward]` table), so the
//! Python side and the files on disk never disagree about a field. The
//! token tensors of the `virl` estimator cross as NumPy arrays.
//!
//! The Python-facing API (with docs) is in `virl/__init__.py` and `virl/verl/`.

use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use virl_engine::config::ExternalRun;
use virl_engine::credit::{
    CreditRow, MaskValue, TurnZoom, token_advantages as engine_token_advantages,
};
use virl_engine::dataset::Sample;
use virl_engine::dataset::live::{LiveDataset, gt_version};
use virl_engine::dataset::manifest::sample_from_json;
use virl_engine::env::execute_box as engine_execute_box;
use virl_engine::geometry::BBox;
use virl_engine::reward::RewardConfig;
use virl_engine::score::{
    assign_credit as engine_assign_credit, parse_model_output as engine_parse, score_trajectory,
};
use virl_engine::trace::Trace as EngineTrace;
use virl_engine::trajectory::{self, Trajectory};

fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A reward config from a JSON object of overrides (`{}` or `None`: the defaults).
fn config_from(json: Option<&str>) -> PyResult<RewardConfig> {
    let cfg: RewardConfig = match json {
        None | Some("") => RewardConfig::default(),
        Some(t) => serde_json::from_str(t).map_err(|e| value_err(format!("reward config: {e}")))?,
    };
    cfg.validate()
        .map_err(|e| value_err(format!("reward config: {e}")))?;
    Ok(cfg)
}

fn trajectory_from(json: &str) -> PyResult<Trajectory> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| value_err(format!("trajectory: not valid JSON ({e})")))?;
    trajectory::read(v).map_err(|e| value_err(format!("trajectory: {e}")))
}

fn sample_from(json: &str) -> PyResult<Sample> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| value_err(format!("ground truth: not valid JSON ({e})")))?;
    sample_from_json(v, Path::new("<ground truth>")).map_err(value_err)
}

fn to_json<T: serde::Serialize>(x: &T) -> PyResult<String> {
    serde_json::to_string(x).map_err(value_err)
}

/// The validated reward config (every constant of DESIGN §4–5) as JSON,
/// from a JSON object of overrides.
#[pyfunction]
#[pyo3(signature = (overrides=None))]
fn reward_config(overrides: Option<&str>) -> PyResult<String> {
    to_json(&config_from(overrides)?)
}

/// Scores one trajectory against one sample (DESIGN §4): returns the
/// scored record as JSON. Its advantage and credit stay neutral until
/// `assign_credit` sees its group.
#[pyfunction]
#[pyo3(signature = (trajectory, sample, config=None))]
fn score(trajectory: &str, sample: &str, config: Option<&str>) -> PyResult<String> {
    score_against(trajectory, &sample_from(sample)?, &config_from(config)?)
}

/// Scores a trajectory (JSON) against `s`, recording which boxes it used.
fn score_against(trajectory: &str, s: &Sample, cfg: &RewardConfig) -> PyResult<String> {
    to_json(&scored(trajectory, s, cfg)?)
}

/// The trajectory (JSON) scored against `s`, with the boxes' `gt_version`.
fn scored(trajectory: &str, s: &Sample, cfg: &RewardConfig) -> PyResult<Trajectory> {
    let mut t = trajectory_from(trajectory)?;
    if t.truth.is_empty() {
        t.truth = s.answer.clone();
    }
    score_trajectory(&mut t, s, cfg);
    t.gt_version = Some(gt_version(s));
    Ok(t)
}

/// Assigns credit (DESIGN §5) to scored trajectories (a JSON array),
/// grouped by their `group`; returns the array with `A_i`, `q_k`, `m_k`, `Â_k`.
#[pyfunction]
#[pyo3(signature = (trajectories, config=None))]
fn assign_credit(trajectories: &str, config: Option<&str>) -> PyResult<String> {
    let cfg = config_from(config)?;
    let vs: Vec<serde_json::Value> = serde_json::from_str(trajectories)
        .map_err(|e| value_err(format!("trajectories: expected a JSON array ({e})")))?;
    let mut ts = vs
        .into_iter()
        .enumerate()
        .map(|(i, v)| trajectory::read(v).map_err(|e| value_err(format!("trajectory {i}: {e}"))))
        .collect::<PyResult<Vec<_>>>()?;
    engine_assign_credit(&mut ts, &cfg);
    to_json(&ts)
}

/// Checks a sample (a manifest line's JSON) as the engine loads one: a
/// ValueError names the field that is wrong.
#[pyfunction]
fn check_sample(sample: &str) -> PyResult<()> {
    sample_from(sample).map(|_| ())
}

/// The line `virl score` writes for a scored trajectory (JSON).
#[pyfunction]
fn score_line(trajectory: &str) -> PyResult<String> {
    to_json(&trajectory_from(trajectory)?.score_line())
}

/// Zooms, answer and format problems of a model's text, as DeepEyes-style
/// `<tool_call>` / `<answer>` tags (`virl score --format deepeyes`):
/// `(boxes, answer or None, errors)`.
#[pyfunction]
fn parse_model_output(text: &str) -> (Vec<[f64; 4]>, Option<String>, Vec<String>) {
    let p = engine_parse(text);
    (
        p.zooms.into_iter().map(<[f64; 4]>::from).collect(),
        p.answer,
        p.errors,
    )
}

/// The box a zoom executes on a `width × height` image: clipped, grown to
/// `min_side` (`env::execute_box`). Non-finite input is an error.
#[pyfunction]
fn execute_box(bbox: [f64; 4], width: f64, height: f64, min_side: f64) -> PyResult<[f64; 4]> {
    if !bbox
        .iter()
        .chain([&width, &height, &min_side])
        .all(|x| x.is_finite())
    {
        return Err(value_err(format!(
            "box {bbox:?} on a {width}×{height} image: not finite"
        )));
    }
    if width <= 0.0 || height <= 0.0 {
        return Err(value_err(format!(
            "image size {width}×{height} must be positive"
        )));
    }
    Ok(engine_execute_box(&BBox::from(bbox), min_side, width, height).into())
}

/// Maps a box from the frame the model was shown (`shown = (w, h)`) to
/// original-image pixels (`size = (W, H)`): `BBox::shown_to_original`,
/// always finite and well formed. A box that is not four finite numbers
/// with `x2 > x1, y2 > y1`, or a size that is not positive, is a ValueError
/// saying which.
/// The engine's box validation (`trajectory::parse::parse_box`): a
/// sequence of four finite numbers with x2 > x1 and y2 > y1, or
/// `ValueError` saying what is wrong.
#[pyfunction]
fn check_box(bbox: &Bound<'_, PyAny>) -> PyResult<[f64; 4]> {
    let value = if bbox.is_instance_of::<pyo3::types::PyString>()
        || bbox.is_instance_of::<pyo3::types::PyDict>()
    {
        serde_json::Value::String(bbox.str()?.to_string())
    } else {
        match bbox.try_iter() {
            Err(_) => serde_json::Value::String(bbox.str()?.to_string()),
            Ok(items) => serde_json::Value::Array(
                items
                    .map(|x| -> PyResult<serde_json::Value> {
                        let x = x?;
                        Ok(match x.extract::<f64>() {
                            Ok(f) => serde_json::Number::from_f64(f).map_or(
                                serde_json::Value::String(f.to_string()),
                                serde_json::Value::Number,
                            ),
                            Err(_) => serde_json::Value::String(x.str()?.to_string()),
                        })
                    })
                    .collect::<PyResult<_>>()?,
            ),
        }
    };
    trajectory::parse_box(&value)
        .map(|b| b.to_array())
        .map_err(|e| PyValueError::new_err(format!("bbox_2d: {e}")))
}

/// One prompt per dialect (the engine's `dialect::prompts::prompt`): a dict
/// with `instruction` (the system turn before any tools block),
/// `tool_schema` (JSON the chat template renders, or None), `system` (the
/// whole system turn as the studio writes it) and `user` (the question's
/// turn after the image).
#[pyfunction]
#[pyo3(signature = (dialect, question, options=Vec::new()))]
fn dialect_prompt(
    dialect: &str,
    question: &str,
    options: Vec<String>,
) -> PyResult<HashMap<String, Option<String>>> {
    let d: virl_engine::dialect::Dialect = dialect.parse().map_err(PyValueError::new_err)?;
    let p = virl_engine::dialect::prompts::prompt(d, question, &options);
    Ok(HashMap::from([
        ("system".to_string(), Some(p.system())),
        ("instruction".to_string(), Some(p.instruction)),
        ("tool_schema".to_string(), p.tool_schema),
        ("user".to_string(), Some(p.user)),
    ]))
}

#[pyfunction]
fn to_original(bbox: [f64; 4], shown: (f64, f64), size: (f64, f64)) -> PyResult<[f64; 4]> {
    let b = BBox::from(bbox);
    if !b.is_well_formed() {
        return Err(value_err(format!(
            "box {bbox:?} is not four finite numbers with x2 > x1 and y2 > y1"
        )));
    }
    b.shown_to_original(shown, size)
        .map(<[f64; 4]>::from)
        .ok_or_else(|| {
            value_err(format!(
                "cannot map from a {}×{} frame to a {}×{} image: sizes must be positive",
                shown.0, shown.1, size.0, size.1
            ))
        })
}

/// A response mask as a trainer holds it: float32, int64 (verl's) or bool,
/// read where it lies (no converted copy when it is contiguous).
#[derive(FromPyObject)]
enum Mask<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    I64(PyReadonlyArray2<'py, i64>),
    Bool(PyReadonlyArray2<'py, bool>),
}

/// A mask's elements, row-major.
enum MaskSlice<'a> {
    F32(Cow<'a, [f32]>),
    I64(Cow<'a, [i64]>),
    Bool(Cow<'a, [bool]>),
}

fn row_major<M: MaskValue>(a: numpy::ndarray::ArrayView2<'_, M>) -> Cow<'_, [M]> {
    match a.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

impl Mask<'_> {
    /// `(elements, rows, width)`.
    fn slice(&self) -> (MaskSlice<'_>, usize, usize) {
        let (n, w) = match self {
            Mask::F32(m) => m.as_array().dim(),
            Mask::I64(m) => m.as_array().dim(),
            Mask::Bool(m) => m.as_array().dim(),
        };
        let s = match self {
            Mask::F32(m) => MaskSlice::F32(row_major(m.as_array())),
            Mask::I64(m) => MaskSlice::I64(row_major(m.as_array())),
            Mask::Bool(m) => MaskSlice::Bool(row_major(m.as_array())),
        };
        (s, n, w)
    }
}

/// The size Qwen-VL's preprocessing shows a `width × height` image at
/// (`smart_resize`: both sides multiples of `factor`, the area within
/// `[min_pixels, max_pixels]`, the aspect kept), as `(width, height)`; the
/// engine's `qwen_vl::image::smart_resize`, which the studio's VLM uses.
/// ValueError for an empty image or an aspect ratio over 200.
#[pyfunction]
#[pyo3(signature = (width, height, factor=28, min_pixels=3136, max_pixels=12845056))]
fn smart_resize(
    width: usize,
    height: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> PyResult<(usize, usize)> {
    if factor == 0 {
        return Err(value_err("smart_resize: factor must be positive"));
    }
    virl_engine::policy::qwen_vl::image::smart_resize(height, width, factor, min_pixels, max_pixels)
        .map(|(h, w)| (w, h))
        .map_err(value_err)
}

/// Token-level ViRL advantages (`credit::tokens`): `rows` is one
/// `(R_i, group, [(turn, iou or None, redundant), …])` per batch row,
/// `mask` the `(rows, width)` response mask (float32, int64 or bool).
/// Returns `(advantages, A_i per row, zooms that fell past the row's last
/// turn)`.
#[pyfunction]
#[pyo3(signature = (rows, mask, config=None))]
#[allow(clippy::type_complexity)]
fn token_advantages<'py>(
    py: Python<'py>,
    rows: Vec<(f64, String, Vec<(usize, Option<f64>, bool)>)>,
    mask: Mask<'py>,
    config: Option<&str>,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Vec<f64>, usize)> {
    let cfg = config_from(config)?;
    let (m, n, width) = mask.slice();
    if n != rows.len() {
        return Err(value_err(format!(
            "mask has {n} rows, but {} rows of credit were given",
            rows.len()
        )));
    }
    let rows: Vec<CreditRow> = rows
        .into_iter()
        .map(|(reward, group, zooms)| CreditRow {
            reward,
            group,
            zooms: zooms
                .into_iter()
                .map(|(turn, iou, redundant)| TurnZoom {
                    turn,
                    iou,
                    redundant,
                })
                .collect(),
        })
        .collect();
    let tc = py.detach(|| match &m {
        MaskSlice::F32(s) => engine_token_advantages(&rows, s, width, &cfg),
        MaskSlice::I64(s) => engine_token_advantages(&rows, s, width, &cfg),
        MaskSlice::Bool(s) => engine_token_advantages(&rows, s, width, &cfg),
    });
    let arr =
        numpy::ndarray::Array2::from_shape_vec((n, width), tc.advantages).map_err(value_err)?;
    Ok((arr.into_pyarray(py), tc.row_advantage, tc.unplaced_zooms))
}

/// Loads a dataset folder (its manifest, checked, with the studio's
/// correction journal replayed): `(folder, [sample JSON, …])`, each sample a
/// manifest line with its image path made absolute.
#[pyfunction]
fn load_dataset(py: Python<'_>, dir: &str) -> PyResult<(String, Vec<String>)> {
    let ds = py
        .detach(|| virl_engine::dataset::Dataset::load(dir))
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    let root = std::fs::canonicalize(ds.root()).unwrap_or_else(|_| ds.root().to_path_buf());
    let lines = ds
        .samples()
        .iter()
        .map(|s| {
            let abs = Sample {
                image: root.join(&s.image).to_string_lossy().into_owned(),
                ..s.clone()
            };
            to_json(&abs)
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((root.to_string_lossy().into_owned(), lines))
}

/// Writes ZoomBench samples `0..n` of stream `seed` as a dataset folder
/// (PNG images and `manifest.jsonl`), as `virl synth` does.
#[pyfunction]
fn write_zoombench(py: Python<'_>, dir: &str, n: u64, seed: u64) -> PyResult<()> {
    use virl_engine::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
    let zb = ZoomBench::new(ZoomBenchConfig::default()).map_err(value_err)?;
    py.detach(|| zb.write_dataset(Path::new(dir), n, seed, |_| {}))
        .map(|_| ())
        .map_err(|e| PyOSError::new_err(e.to_string()))
}

/// The lengths of each row's runs of non-zero mask tokens (one per
/// assistant turn), for a `(rows, width)` mask (float32, int64 or bool).
#[pyfunction]
fn mask_runs(mask: Mask<'_>) -> Vec<Vec<usize>> {
    use virl_engine::credit::mask_runs as runs;
    let (m, n, w) = mask.slice();
    (0..n)
        .map(|i| match &m {
            MaskSlice::F32(s) => runs(&s[i * w..(i + 1) * w]),
            MaskSlice::I64(s) => runs(&s[i * w..(i + 1) * w]),
            MaskSlice::Bool(s) => runs(&s[i * w..(i + 1) * w]),
        })
        .collect()
}

/// Scores trajectories against a dataset folder kept current: corrections
/// saved in the studio (the folder's `annotations.jsonl`) are used from the
/// next call on.
#[pyclass(frozen)]
struct Scorer {
    datasets: Mutex<HashMap<PathBuf, Result<LiveDataset, String>>>,
    config: RewardConfig,
}

#[pymethods]
impl Scorer {
    #[new]
    #[pyo3(signature = (config=None))]
    fn new(config: Option<&str>) -> PyResult<Self> {
        Ok(Self {
            datasets: Mutex::new(HashMap::new()),
            config: config_from(config)?,
        })
    }

    /// Scores one trajectory (JSON) against `sample` (a manifest line's
    /// JSON), or, when `dataset` names a dataset folder that holds it, that
    /// folder's current (corrected) version; returns the scored record
    /// (JSON), `gt_version` set.
    #[pyo3(signature = (trajectory, sample, dataset=None))]
    fn score(
        &self,
        py: Python<'_>,
        trajectory: &str,
        sample: &str,
        dataset: Option<&str>,
    ) -> PyResult<String> {
        score_against(trajectory, &self.sample(py, sample, dataset)?, &self.config)
    }

    /// Scores one trajectory as [`Scorer::score`] does, appends it to
    /// `trace` when given, and returns what `compute_score` reports, as
    /// JSON: `rewards`, `coverage`, `gt_version`, `format_errors`,
    /// `acc_rat` (the engine's per-trajectory Acc_rat, `null` without
    /// zooms), `actions` (a `virl score` line's), and `trace_error` (why
    /// the trace could not be written, or `null`: a trace never stops a
    /// run). The scored record is not sent back and forth as JSON.
    #[pyo3(signature = (trajectory, sample, dataset=None, trace=None))]
    fn score_report(
        &self,
        py: Python<'_>,
        trajectory: &str,
        sample: &str,
        dataset: Option<&str>,
        trace: Option<&Trace>,
    ) -> PyResult<String> {
        let t = scored(trajectory, &self.sample(py, sample, dataset)?, &self.config)?;
        let trace_error = trace.and_then(|tr| {
            py.detach(|| tr.inner.append(&t))
                .err()
                .map(|e| e.to_string())
        });
        let line = t.score_line();
        to_json(&serde_json::json!({
            "rewards": line.rewards,
            "coverage": line.coverage,
            "gt_version": t.gt_version,
            "format_errors": t.format_errors,
            "acc_rat": t.rat_accuracy(),
            "actions": line.actions,
            "trace_error": trace_error,
        }))
    }

    /// The reward config in use (JSON).
    fn config(&self) -> PyResult<String> {
        to_json(&self.config)
    }
}

impl Scorer {
    /// `sample` (JSON), or its current version in the dataset folder `dataset`.
    fn sample(&self, py: Python<'_>, sample: &str, dataset: Option<&str>) -> PyResult<Sample> {
        let s = sample_from(sample)?;
        match dataset {
            None => Ok(s),
            Some(root) => py.detach(|| self.current(Path::new(root), s)),
        }
    }

    fn current(&self, root: &Path, fallback: Sample) -> PyResult<Sample> {
        let mut map = self.datasets.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(root.to_path_buf())
            .or_insert_with(|| LiveDataset::open(root).map_err(|e| e.to_string()));
        match entry {
            Ok(live) => {
                // A failed reload keeps the previous version (a manifest being
                // replaced); the next call tries again.
                let _ = live.refresh();
                Ok(live
                    .dataset()
                    .get(&fallback.id)
                    .cloned()
                    .unwrap_or(fallback))
            }
            Err(e) => Err(PyOSError::new_err(format!(
                "dataset {}: {e}",
                root.display()
            ))),
        }
    }
}

/// A trace folder (`virl_engine::trace`): scored trajectories appended,
/// one line each, for the studio to follow.
#[pyclass(frozen)]
struct Trace {
    inner: EngineTrace,
}

#[pymethods]
impl Trace {
    /// Opens or creates the trace folder `dir` for a run on the dataset
    /// folder `dataset`; `metrics` is verl's `file` logger JSONL, if known;
    /// `config` the run's reward config (JSON overrides).
    #[new]
    #[pyo3(signature = (dir, dataset, trainer="verl", metrics=None, config=None))]
    fn new(
        dir: &str,
        dataset: &str,
        trainer: &str,
        metrics: Option<&str>,
        config: Option<&str>,
    ) -> PyResult<Self> {
        let run = ExternalRun {
            trainer: trainer.into(),
            metrics: metrics.map(PathBuf::from),
        };
        let reward = config_from(config)?;
        EngineTrace::open(Path::new(dir), Path::new(dataset), run, &reward)
            .map(|inner| Self { inner })
            .map_err(|e| PyOSError::new_err(e.to_string()))
    }

    /// Appends one trajectory (JSON) to its iteration's file.
    fn append(&self, py: Python<'_>, trajectory: &str) -> PyResult<()> {
        let t = trajectory_from(trajectory)?;
        py.detach(|| self.inner.append(&t))
            .map_err(|e| PyOSError::new_err(e.to_string()))
    }

    /// The folder.
    #[getter]
    fn dir(&self) -> String {
        self.inner.dir().display().to_string()
    }
}

/// The module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(reward_config, m)?)?;
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(assign_credit, m)?)?;
    m.add_function(wrap_pyfunction!(score_line, m)?)?;
    m.add_function(wrap_pyfunction!(check_sample, m)?)?;
    m.add_function(wrap_pyfunction!(parse_model_output, m)?)?;
    m.add_function(wrap_pyfunction!(execute_box, m)?)?;
    m.add_function(wrap_pyfunction!(to_original, m)?)?;
    m.add_function(wrap_pyfunction!(check_box, m)?)?;
    m.add_function(wrap_pyfunction!(dialect_prompt, m)?)?;
    m.add_function(wrap_pyfunction!(smart_resize, m)?)?;
    m.add_function(wrap_pyfunction!(token_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(mask_runs, m)?)?;
    m.add_function(wrap_pyfunction!(load_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(write_zoombench, m)?)?;
    m.add_class::<Scorer>()?;
    m.add_class::<Trace>()?;
    Ok(())
}
