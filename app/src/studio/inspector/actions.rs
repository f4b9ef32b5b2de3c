//! The inspector's action table: each zoom's IoU, σ, β, redundancy, f_k,
//! q_k, m_k and Â_k (with the re-scored values after a correction), and Â_k
//! as a signed bar against A_i.

use super::super::selection::BrowserState;
use crate::widgets::fidelity_color;
use egui::{Color32, Pos2, Rect, Sense, Stroke, Vec2};
use virl_engine::trajectory::Trajectory;

/// Every action's scores and credit, the selected one in full.
pub(super) fn actions_table(
    ui: &mut egui::Ui,
    t: &Trajectory,
    rescored: Option<&Trajectory>,
    b: &mut BrowserState,
) {
    let ai = t.advantage;
    let max_abs = t
        .actions
        .iter()
        .map(|a| a.credit.advantage.abs())
        .fold(ai.abs(), f64::max)
        .max(1e-9);
    let o = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into());
    // The selected action, every number.
    if let Some(a) = t.actions.get(b.action) {
        egui::Grid::new("action-detail")
            .num_columns(2)
            .striped(true)
            .show(ui, |ui| {
                let mut kv = |k: &str, v: String| {
                    ui.label(k);
                    ui.monospace(v);
                    ui.end_row();
                };
                kv("IoU", o(a.score.iou));
                kv(
                    "best GT",
                    a.score
                        .gt
                        .map(|g| format!("#{}", g + 1))
                        .unwrap_or("–".into()),
                );
                kv(
                    "σ",
                    a.score
                        .sigma
                        .map(|s| format!("{s:+}"))
                        .unwrap_or("–".into()),
                );
                kv("β", o(a.score.beta));
                kv(
                    "redundant",
                    if a.score.redundant {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                );
                kv("f_k", format!("{:+.3}", a.score.fidelity));
                kv("q_k", format!("{:+.3}", a.credit.quality));
                kv("m_k", format!("{:.3}", a.credit.modulator));
                kv("Â_k", format!("{:+.3}", a.credit.advantage));
                kv("A_i", format!("{ai:+.3}"));
                if let Some(n) = rescored.and_then(|n| n.actions.get(b.action)) {
                    kv("IoU (corrected GT)", o(n.score.iou));
                    kv(
                        "f_k (corrected GT)",
                        format!("{:+.3} -> {:+.3}", a.score.fidelity, n.score.fidelity),
                    );
                    kv(
                        "Â_k (corrected GT)",
                        format!("{:+.3} -> {:+.3}", a.credit.advantage, n.credit.advantage),
                    );
                }
            });
        ui.separator();
    }
    // Every action: IoU, f_k and Â_k against A_i.
    egui::Grid::new("actions")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for h in ["k", "IoU", "f_k", "Â_k", "Â_k vs A_i"] {
                ui.strong(h);
            }
            ui.end_row();
            for (k, a) in t.actions.iter().enumerate() {
                if ui
                    .selectable_label(k == b.action, format!("{}", k + 1))
                    .clicked()
                {
                    b.action = k;
                }
                ui.label(o(a.score.iou));
                ui.colored_label(
                    fidelity_color(a.score.fidelity),
                    format!("{:+.2}", a.score.fidelity),
                );
                ui.label(format!("{:+.2}", a.credit.advantage));
                signed_bar(ui, a.credit.advantage, ai, max_abs);
                ui.end_row();
            }
            if ui
                .selectable_label(b.action == t.actions.len(), "ans")
                .clicked()
            {
                b.action = t.actions.len();
            }
            ui.label("");
            ui.label("");
            ui.label(format!("{ai:+.2}"));
            signed_bar(ui, ai, ai, max_abs);
            ui.end_row();
        });
}

/// A bar from the centre: the action's advantage (filled) and the
/// trajectory's `A_i` (a tick) on one scale.
fn signed_bar(ui: &mut egui::Ui, v: f64, a_i: f64, max_abs: f64) {
    let (rect, resp) = ui.allocate_exact_size(Vec2::new(80.0, 12.0), Sense::hover());
    let p = ui.painter();
    p.rect_filled(rect, 2.0, Color32::from_gray(40));
    let cx = rect.center().x;
    let x = |v: f64| cx + (v / max_abs) as f32 * rect.width() / 2.0;
    let col = if v >= 0.0 {
        Color32::from_rgb(80, 170, 250)
    } else {
        Color32::from_rgb(230, 80, 80)
    };
    p.rect_filled(
        Rect::from_min_max(
            Pos2::new(cx.min(x(v)), rect.top() + 2.0),
            Pos2::new(cx.max(x(v)), rect.bottom() - 2.0),
        ),
        0.0,
        col,
    );
    p.line_segment(
        [
            Pos2::new(x(a_i), rect.top()),
            Pos2::new(x(a_i), rect.bottom()),
        ],
        Stroke::new(2.0, Color32::WHITE),
    );
    p.line_segment(
        [Pos2::new(cx, rect.top()), Pos2::new(cx, rect.bottom())],
        Stroke::new(1.0, Color32::GRAY),
    );
    resp.on_hover_text(format!(
        "Â_k {v:+.3} (bar) against A_i {a_i:+.3} (white tick)"
    ));
}
