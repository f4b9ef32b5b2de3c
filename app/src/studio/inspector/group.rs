//! The inspector's group view: the sample's other trajectories of the same
//! iteration with their rewards and advantages, flagging a zero-spread group.

use super::super::run::Run;
use super::super::selection::BrowserState;
use crate::widgets::{correct_label, fidelity_color};
use egui::{Color32, Sense, Stroke, Vec2};
use virl_engine::trajectory::Trajectory;

/// The sample's GRPO group: its sibling trajectories side by side.
pub(super) fn group_view(
    ui: &mut egui::Ui,
    r: &Run,
    b: &mut BrowserState,
    t: &Trajectory,
    it: u64,
) {
    let Some(all) = r.rollouts.get(&it) else {
        return;
    };
    let sibs: Vec<(usize, &Trajectory)> = all
        .iter()
        .enumerate()
        .filter(|(_, x)| x.group == t.group)
        .collect();
    let rewards: Vec<f64> = sibs.iter().map(|(_, x)| x.rewards.total).collect();
    let spread = rewards.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - rewards.iter().cloned().fold(f64::INFINITY, f64::min);
    ui.horizontal(|ui| {
        ui.strong(format!("group {} · {} rollouts", t.group, sibs.len()));
        if spread.abs() < 1e-9 {
            ui.colored_label(
                Color32::from_rgb(240, 170, 80),
                "! zero reward spread: every advantage is 0, this group teaches nothing",
            );
        } else {
            ui.weak(format!("reward spread {spread:.3}"));
        }
    });
    egui::ScrollArea::horizontal()
        .id_salt("group")
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                for (k, x) in sibs {
                    let sel = b.selected == Some((it, k));
                    let ok = x.correct();
                    let frame = egui::Frame::group(ui.style()).stroke(Stroke::new(
                        if sel { 2.0 } else { 1.0 },
                        if sel {
                            Color32::WHITE
                        } else {
                            Color32::from_gray(70)
                        },
                    ));
                    let resp = frame
                        .show(ui, |ui| {
                            ui.set_width(118.0);
                            ui.vertical(|ui| {
                                ui.horizontal(|ui| {
                                    correct_label(ui, ok);
                                    ui.label(format!("#{k}"));
                                    ui.weak(format!("{} zooms", x.actions.len()));
                                });
                                ui.label(format!(
                                    "R {:+.2}  A {:+.2}",
                                    x.rewards.total, x.advantage
                                ));
                                ui.horizontal(|ui| {
                                    for a in &x.actions {
                                        let (r, _) = ui
                                            .allocate_exact_size(Vec2::splat(10.0), Sense::hover());
                                        ui.painter().rect_filled(
                                            r,
                                            2.0,
                                            fidelity_color(a.score.fidelity),
                                        );
                                    }
                                });
                            });
                        })
                        .response
                        .interact(Sense::click());
                    if resp.clicked() {
                        b.selected = Some((it, k));
                        b.action = 0;
                        b.follow = false;
                    }
                }
            });
        });
}
