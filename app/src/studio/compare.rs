//! Compare: the curves of several sessions overlaid (the ablation view).
//! `virl experiment ablation` and `h0` write one session per arm and seed
//! (`<arm>-s<seed>`) into one folder; opening that folder loads them all,
//! and the seeds of an arm are drawn as their mean with a ± one standard
//! deviation band (or one line each, with "group seeds" off).

use super::run::Run;
use super::training::smoothed;
use crate::widgets::plot_grid;
use egui::Color32;
use egui_plot::{Line, Polygon};
use std::path::{Path, PathBuf};
use virl_engine::metrics::IterationMetrics;
use virl_engine::metrics::seeds::{arm_of, band};
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

/// Colours of the arms, in order.
const ARM_COLORS: [Color32; 8] = [
    Color32::from_rgb(230, 100, 90),
    Color32::from_rgb(90, 150, 230),
    Color32::from_rgb(120, 200, 110),
    Color32::from_rgb(230, 180, 70),
    Color32::from_rgb(180, 120, 220),
    Color32::from_rgb(80, 200, 200),
    Color32::from_rgb(220, 120, 170),
    Color32::from_rgb(170, 170, 170),
];

/// The series to draw, with the visible runs of one arm together (each
/// arm's name and its runs' curves; an arm of one run is drawn as a line),
/// arms sorted by name so that each keeps its colour.
pub fn arms<'a>(
    series: &[(&'a str, &'a [IterationMetrics])],
) -> Vec<(String, Vec<&'a [IterationMetrics]>)> {
    let mut out: Vec<(String, Vec<&[IterationMetrics]>)> = Vec::new();
    for (name, ms) in series {
        let arm = arm_of(name).0;
        match out.iter_mut().find(|(a, _)| a == arm) {
            Some((_, v)) => v.push(ms),
            None => out.push((arm.to_string(), vec![ms])),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The Compare tab.
pub fn ui(
    ui: &mut egui::Ui,
    current: Option<&Run>,
    runs: &mut Vec<CompareRun>,
    smoothing: f32,
    group_seeds: &mut bool,
) {
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
        ui.separator();
        ui.checkbox(group_seeds, "group seeds")
            .on_hover_text("draw the runs <arm>-s<seed> of one arm as their mean ± one standard deviation");
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
    let grouped = if *group_seeds {
        arms(&series)
    } else {
        Vec::new()
    };
    plot_grid(ui, "cmp", &titles, 3, 40.0, |i, p| {
        if !*group_seeds {
            for (name, ms) in &series {
                p.line(Line::new(*name, smoothed(ms, metrics[i].1, smoothing)));
            }
            return;
        }
        for (k, (arm, rs)) in grouped.iter().enumerate() {
            let color = ARM_COLORS[k % ARM_COLORS.len()];
            if rs.len() == 1 {
                p.line(
                    Line::new(arm.as_str(), smoothed(rs[0], metrics[i].1, smoothing)).color(color),
                );
                continue;
            }
            let b = band(rs, metrics[i].1);
            let mean = super::training::smooth(
                &b.iter().map(|x| x[1]).collect::<Vec<_>>(),
                smoothing as f64,
            );
            let std = super::training::smooth(
                &b.iter().map(|x| x[2]).collect::<Vec<_>>(),
                smoothing as f64,
            );
            let name = format!("{arm} ({} seeds)", rs.len());
            let line: Vec<[f64; 2]> = b.iter().zip(&mean).map(|(x, m)| [x[0], *m]).collect();
            p.line(Line::new(name.clone(), line).color(color));
            // The band as one trapezoid per step: egui_plot fills a polygon
            // as if it were convex.
            let edge: Vec<(f64, f64, f64)> = b
                .iter()
                .zip(mean.iter().zip(&std))
                .map(|(x, (m, s))| (x[0], m - s, m + s))
                .collect();
            for w in edge.windows(2) {
                let ((x0, lo0, hi0), (x1, lo1, hi1)) = (w[0], w[1]);
                p.polygon(
                    Polygon::new(
                        name.clone(),
                        vec![[x0, lo0], [x1, lo1], [x1, hi1], [x0, hi0]],
                    )
                    .fill_color(color.gamma_multiply(0.18))
                    .stroke(egui::Stroke::new(0.0, color))
                    .allow_hover(false),
                );
            }
        }
    });
}
