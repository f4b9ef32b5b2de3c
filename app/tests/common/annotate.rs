//! What the annotation editor's flows share: a small ZoomBench dataset
//! folder, the studio opened on it, pointer gestures in image coordinates,
//! and the boxes as stored on disk.

use super::{harness, step_until};
use egui::Pos2;
use egui_kittest::Harness;
use std::path::{Path, PathBuf};
use virl_engine::config::SessionConfig;
use virl_engine::dataset::Dataset;
use virl_engine::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
use virl_engine::geometry::BBox;
use virl_studio::studio::{Studio, StudioOptions, Tab};

pub fn zb_config() -> ZoomBenchConfig {
    ZoomBenchConfig {
        canvas: 256,
        placards_min: 1,
        placards_max: 2,
        distractors: 8,
        global_view: 32,
        ..ZoomBenchConfig::default()
    }
}

pub fn tiny() -> SessionConfig {
    let mut c = SessionConfig {
        seed: 3,
        ..Default::default()
    };
    c.data.zoombench = zb_config();
    c.data.train_n = 16;
    c.data.eval_n = 8;
    c.env.view = 32;
    c.env.max_rounds = 3;
    c.policy.hidden = 32;
    c.trainer.iterations = 1;
    c.trainer.samples_per_iter = 4;
    c.trainer.group = 4;
    c.trainer.eval_every = 0;
    c
}

/// A ZoomBench dataset folder of `n` samples.
pub fn dataset(dir: &Path, n: u64) -> PathBuf {
    let d = dir.join("ds");
    ZoomBench::new(zb_config())
        .expect("zb")
        .write_dataset(&d, n, 0, |_| {})
        .expect("write");
    d
}

/// Opens the dataset folder in the studio's annotation tab, with the image
/// of the first sample on the canvas.
pub fn open_annotator<'a>(root: &Path, ds: &Path) -> Harness<'a, Studio> {
    let mut h = harness(StudioOptions {
        open: Some(ds.to_path_buf()),
        sessions_root: Some(root.join("sessions")),
        config: Some(tiny()),
        tab: Some(Tab::Annotate),
        ..Default::default()
    });
    step_until(&mut h, "the canvas with the first sample's image", |s| {
        s.annotate.canvas_xf.is_some() && s.annotate.sample.is_some()
    });
    h.run_steps(2);
    h
}

/// Screen position of image pixel (x, y).
pub fn at(h: &Harness<'_, Studio>, x: f64, y: f64) -> Pos2 {
    let (o, s) = h.state().annotate.canvas_xf.expect("canvas shown");
    o + egui::vec2(x as f32, y as f32) * s
}

/// A primary-button drag in image coordinates, in small steps.
pub fn drag(h: &mut Harness<'_, Studio>, from: (f64, f64), to: (f64, f64)) {
    let a = at(h, from.0, from.1);
    let b = at(h, to.0, to.1);
    h.hover_at(a);
    h.step();
    h.drag_at(a);
    h.step();
    for k in 1..=6 {
        h.hover_at(a + (b - a) * (k as f32 / 6.0));
        h.step();
    }
    h.drop_at(b);
    h.run_steps(2);
}

/// The first sample's boxes as stored (manifest with the journal replayed).
pub fn stored(ds: &Path, id: &str) -> Vec<BBox> {
    Dataset::load(ds)
        .expect("load")
        .get(id)
        .expect("sample")
        .gt_boxes()
}

pub fn near(a: &BBox, b: [f64; 4], tol: f64) -> bool {
    a.to_array()
        .iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= tol)
}
