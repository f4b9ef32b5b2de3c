//! The training view: status, the phase progress line, failure banners and
//! the live curves.

use super::run::{Run, RunStatus};
use crate::widgets::plot_grid;
use egui::{Color32, RichText};
use egui_plot::{Line, PlotPoints, Points};
use virl_engine::metrics::{FailureKind, IterationMetrics};

/// Exponential moving average of `ys` with weight `alpha` on the past
/// (0 = raw). NaN entries are skipped and keep the average.
pub fn smooth(ys: &[f64], alpha: f64) -> Vec<f64> {
    let a = alpha.clamp(0.0, 0.999);
    let mut out = Vec::with_capacity(ys.len());
    let mut acc: Option<f64> = None;
    for &y in ys {
        if y.is_finite() {
            acc = Some(match acc {
                Some(p) => a * p + (1.0 - a) * y,
                None => y,
            });
        }
        out.push(acc.unwrap_or(f64::NAN));
    }
    out
}

/// The EMA-smoothed curve of one metric over iterations (iterations where
/// it is undefined are left out).
pub fn smoothed(
    ms: &[IterationMetrics],
    f: fn(&IterationMetrics) -> Option<f64>,
    smoothing: f32,
) -> PlotPoints<'static> {
    let ys: Vec<f64> = ms.iter().map(|m| f(m).unwrap_or(f64::NAN)).collect();
    ms.iter()
        .zip(smooth(&ys, smoothing as f64))
        .filter(|(_, y)| y.is_finite())
        .map(|(m, y)| [m.iteration as f64, y])
        .collect()
}

/// A curve: its name and how to read it from a metrics line.
pub type Series = (&'static str, fn(&IterationMetrics) -> Option<f64>);

/// The curve groups of the training view.
pub const GROUPS: [(&str, &[Series]); 6] = [
    (
        "Reward",
        &[
            ("R total", |m| Some(m.reward_total)),
            ("R_ans", |m| Some(m.reward_ans)),
            ("R_rat", |m| Some(m.reward_rat)),
            ("R_fmt", |m| Some(m.reward_fmt)),
        ],
    ),
    (
        "Accuracy",
        &[
            ("Acc_ans", |m| Some(m.acc_ans)),
            ("Acc_rat", |m| m.acc_rat),
            ("coverage", |m| m.coverage),
        ],
    ),
    ("Zooms per trajectory", &[("zooms", |m| Some(m.zooms))]),
    ("Entropy", &[("entropy", |m| m.entropy)]),
    ("Clip fraction", &[("clip", |m| m.clip_frac)]),
    (
        "KL / loss",
        &[("approx KL", |m| m.approx_kl), ("loss", |m| m.loss)],
    ),
];

/// Status on the right of the menu bar: device, state, iteration, speed.
pub fn status_line(ui: &mut egui::Ui, r: &Run) {
    if let Some(t) = r.throughput() {
        ui.label(format!("{t:.0} traj/s"));
    }
    match &r.cfg.external {
        Some(x) => {
            let step = r.stored.last().copied().unwrap_or(0);
            ui.label(format!("{} step {step}", x.trainer));
        }
        None => {
            let it = r.metrics.last().map(|m| m.iteration + 1).unwrap_or(0);
            ui.label(format!("iteration {it} / {}", r.cfg.trainer.iterations));
        }
    }
    let (text, color) = match &r.status {
        RunStatus::Starting => ("starting…", Color32::GRAY),
        RunStatus::Idle => ("ready", Color32::GRAY),
        RunStatus::Training => ("training", Color32::from_rgb(80, 200, 120)),
        RunStatus::Paused => ("paused", Color32::from_rgb(230, 180, 60)),
        RunStatus::Finished => ("finished", Color32::GRAY),
        RunStatus::Watching => ("read-only", Color32::from_rgb(120, 160, 230)),
        RunStatus::Failed(_) => ("failed", Color32::from_rgb(230, 80, 80)),
    };
    ui.label(RichText::new(text).color(color).strong());
    match &r.cfg.external {
        Some(x) => ui.label(format!("{} · {}", x.trainer, r.cfg.reward.mode)),
        None => ui.label(format!("{} · {}", r.cfg.device, r.cfg.reward.mode)),
    };
    ui.strong(&r.name);
}

/// The progress line and the failure banners; returns a failure whose
/// examples the user asked to see.
pub fn progress_and_banners(ui: &mut egui::Ui, r: &Run) -> Option<FailureKind> {
    let mut go = None;
    ui.horizontal(|ui| match (&r.status, r.progress) {
        (RunStatus::Starting, _) => {
            ui.spinner();
            ui.label("building the dataset and the policy…");
        }
        (RunStatus::Training, Some(p)) => {
            let warm = p.iteration < r.cfg.trainer.warmup_iterations;
            let frac = if p.total > 0 {
                p.done as f32 / p.total as f32
            } else {
                0.0
            };
            ui.label(format!(
                "iteration {}{} · {} {}/{}",
                p.iteration,
                if warm { " (imitation)" } else { "" },
                p.phase.as_str(),
                p.done,
                p.total
            ));
            ui.add(egui::ProgressBar::new(frac).desired_width(220.0));
            if let Some(s) = r.last_seconds {
                ui.weak(eta_line(&r.cfg.trainer, p.iteration, s));
            }
        }
        (RunStatus::Failed(e), _) => {
            ui.colored_label(
                Color32::from_rgb(230, 80, 80),
                format!("training stopped: {e}"),
            );
        }
        (RunStatus::Watching, _) => {
            ui.label(format!(
                "following {} (read-only): new iterations appear as they are written",
                r.dir.display()
            ));
        }
        _ => {
            let m = r.metrics.last();
            ui.label(match m {
                Some(m) => format!(
                    "last iteration {}: R {:+.3}  Acc_ans {:.2}  Acc_rat {}  zooms {:.2}",
                    m.iteration,
                    m.reward_total,
                    m.acc_ans,
                    m.acc_rat.map(|a| format!("{a:.2}")).unwrap_or("–".into()),
                    m.zooms
                ),
                None => "press Space (or Train menu) to train".into(),
            });
        }
    });
    // The newest signature of each kind.
    for kind in [
        FailureKind::Collapse,
        FailureKind::Superficial,
        FailureKind::Explosion,
    ] {
        if let Some(f) = r.failures.iter().rev().find(|f| f.kind == kind) {
            egui::Frame::new()
                .fill(Color32::from_rgb(90, 40, 20))
                .inner_margin(4.0)
                .corner_radius(4.0)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.colored_label(
                            Color32::from_rgb(255, 190, 120),
                            format!("! {}", kind.title()),
                        );
                        ui.colored_label(
                            Color32::WHITE,
                            format!(
                                "since iteration {} (detected at {}): {}",
                                f.began_at, f.detected_at, f.message
                            ),
                        );
                        if ui.button("Show examples").clicked() {
                            go = Some(kind);
                        }
                    });
                });
        }
    }
    go
}

/// The speed and time-left line. An imitation iteration costs more than an
/// RL one (RESULTS.md §1f: about 2.4 against 1.5 s on 2 cores), so during
/// the warm-up only the warm-up's end is foretold, not the run's.
fn eta_line(t: &virl_engine::config::TrainerConfig, iteration: u64, secs: f64) -> String {
    if iteration < t.warmup_iterations {
        let left = t.warmup_iterations - iteration;
        format!(
            "{secs:.1} s/iteration · imitation ends in {} · then {} RL iterations",
            eta(left as f64 * secs),
            t.iterations.saturating_sub(t.warmup_iterations)
        )
    } else {
        let left = t.iterations.saturating_sub(iteration);
        format!("{secs:.1} s/iteration · ETA {}", eta(left as f64 * secs))
    }
}

fn eta(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// The live curves, a grid of linked plots; greedy evaluations are drawn as
/// points on the accuracy plot.
pub fn curves(ui: &mut egui::Ui, r: &Run, smoothing: &mut f32) {
    ui.horizontal(|ui| {
        ui.label("smoothing");
        ui.add(egui::Slider::new(smoothing, 0.0..=0.98))
            .on_hover_text("EMA smoothing of the curves");
        let w = r.cfg.trainer.warmup_iterations;
        if w > 0 {
            ui.weak(format!(
                "iterations 0–{} are imitation warm-up (grey line: its end)",
                w - 1
            ));
        }
        if r.metrics.is_empty() {
            ui.weak("— no iterations yet");
        }
    });
    let titles: Vec<&str> = GROUPS.iter().map(|g| g.0).collect();
    plot_grid(ui, "curves", &titles, 3, 20.0, |i, p| {
        let (title, series) = &GROUPS[i];
        for (name, f) in series.iter() {
            p.line(Line::new(*name, smoothed(&r.metrics, *f, *smoothing)));
        }
        if *title == "Accuracy" && !r.evals.is_empty() {
            let ev = |f: fn(&IterationMetrics) -> Option<f64>| -> PlotPoints {
                r.evals
                    .iter()
                    .filter_map(|m| f(m).map(|y| [m.iteration as f64, y]))
                    .collect()
            };
            p.points(Points::new("eval Acc_ans", ev(|m| Some(m.acc_ans))).radius(4.0));
            p.points(Points::new("eval Acc_rat", ev(|m| m.acc_rat)).radius(4.0));
        }
        let w = r.cfg.trainer.warmup_iterations as f64;
        if w > 0.0 {
            p.vline(egui_plot::VLine::new("end of imitation", w).color(Color32::from_gray(120)));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing() {
        assert_eq!(smooth(&[1.0, 3.0], 0.0), vec![1.0, 3.0]);
        let s = smooth(&[1.0, 3.0, f64::NAN, 3.0], 0.5);
        assert_eq!(s[0], 1.0);
        assert_eq!(s[1], 2.0);
        assert_eq!(s[2], 2.0);
        assert_eq!(s[3], 2.5);
        assert!(smooth(&[f64::NAN], 0.5)[0].is_nan());
    }

    #[test]
    fn the_warm_up_foretells_its_own_end_not_the_run_s() {
        let t = virl_engine::config::TrainerConfig {
            warmup_iterations: 150,
            iterations: 300,
            ..Default::default()
        };
        assert_eq!(
            eta_line(&t, 100, 2.4),
            "2.4 s/iteration · imitation ends in 2m00s · then 150 RL iterations"
        );
        assert_eq!(eta_line(&t, 200, 1.5), "1.5 s/iteration · ETA 2m30s");
        assert_eq!(eta_line(&t, 300, 1.5), "1.5 s/iteration · ETA 0m00s");
    }
}
