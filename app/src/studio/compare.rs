//! Compare: the curves of several sessions overlaid (the ablation view).
//! `virl experiment ablation` and `h0` write one session per arm into one
//! folder; opening that folder loads them all.

use super::run::Run;
use super::training::smoothed;
use crate::widgets::plot_grid;
use egui_plot::Line;
use std::path::{Path, PathBuf};
use virl_engine::metrics::IterationMetrics;
use virl_engine::session::Session;

/// A session's curves, read once.
pub struct CompareRun {
    /// The folder.
    pub dir: PathBuf,
    /// Display name.
    pub name: String,
    /// Its metrics, or why they could not be read.
    pub metrics: Result<Vec<IterationMetrics>, String>,
    /// Shown.
    pub visible: bool,
}

impl CompareRun {
    /// Reads a session's metrics (call off the UI thread).
    pub fn load(dir: &Path) -> Self {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let metrics = Session::open(dir)
            .map_err(|e| e.to_string())
            .and_then(|(s, _)| s.read_metrics().map_err(|e| e.to_string()));
        Self {
            dir: dir.to_path_buf(),
            name,
            metrics,
            visible: true,
        }
    }
}

/// The session folders directly inside `dir` (an experiment's output), sorted.
pub fn sessions_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("session.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The Compare tab.
pub fn ui(ui: &mut egui::Ui, current: Option<&Run>, runs: &mut Vec<CompareRun>, smoothing: f32) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Sessions:");
        if runs.is_empty() {
            ui.weak("File > Compare with session… (or open an experiment folder such as results/ablation-small-shortcut)");
        }
        let mut remove = None;
        for (i, r) in runs.iter_mut().enumerate() {
            ui.checkbox(&mut r.visible, &r.name);
            if let Err(e) = &r.metrics {
                ui.colored_label(egui::Color32::from_rgb(230, 80, 80), e);
            }
            if ui.small_button("x").on_hover_text("remove").clicked() {
                remove = Some(i);
            }
        }
        if let Some(i) = remove {
            runs.remove(i);
        }
    });
    let mut series: Vec<(&str, &[IterationMetrics])> = Vec::new();
    if let Some(c) = current {
        series.push((c.name.as_str(), c.metrics.as_slice()));
    }
    for r in runs.iter().filter(|r| r.visible) {
        if let Ok(m) = &r.metrics {
            series.push((r.name.as_str(), m.as_slice()));
        }
    }
    // One plot per metric (the first series of each group).
    let metrics: Vec<super::training::Series> = vec![
        ("Acc_ans", |m| Some(m.acc_ans)),
        ("Acc_rat", |m| m.acc_rat),
        ("zooms per trajectory", |m| Some(m.zooms)),
        ("R total", |m| Some(m.reward_total)),
        ("R_rat", |m| Some(m.reward_rat)),
        ("entropy", |m| m.entropy),
    ];
    let titles: Vec<&str> = metrics.iter().map(|m| m.0).collect();
    plot_grid(ui, "cmp", &titles, 3, 40.0, |i, p| {
        for (name, ms) in &series {
            p.line(Line::new(*name, smoothed(ms, metrics[i].1, smoothing)));
        }
    });
}
