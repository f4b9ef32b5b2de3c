//! A VLM trajectory's conversation in the inspector: the turn behind the
//! selected action, and the whole transcript.

use super::fmt_box;
use egui::{Color32, RichText};
use virl_engine::trajectory::Trajectory;

/// Model text made safe to draw: control characters and undecodable bytes
/// become `?`; very long turns are shortened.
pub(crate) fn printable(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max_chars)
        .map(|c| {
            if (c.is_control() && c != '\n' && c != '\t') || c == '\u{fffd}' {
                '?'
            } else {
                c
            }
        })
        .collect();
    if text.chars().count() > max_chars {
        out.push_str(" ...");
    }
    out
}

/// The index in `t.transcript` of the assistant turn that made action
/// `action` (as the record says; the answer is the last assistant turn).
pub(crate) fn turn_of_action(t: &Trajectory, action: usize) -> Option<usize> {
    match t.actions.get(action) {
        Some(a) => a.turn,
        None => t.transcript.iter().rposition(|x| x.role == "assistant"),
    }
}

/// The VLM's turn behind the selected action: its text, box and error.
pub(super) fn current_turn(ui: &mut egui::Ui, t: &Trajectory, action: usize) {
    if let Some(i) = turn_of_action(t, action) {
        let turn = &t.transcript[i];
        ui.strong("the model's turn for this action");
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.add(egui::Label::new(RichText::new(printable(&turn.text, 1500)).monospace()).wrap());
            if let Some(z) = &turn.zoom {
                ui.weak(format!("zoom, original pixels: {}", fmt_box(z)));
            }
            if let Some(e) = &turn.error {
                ui.colored_label(
                    Color32::from_rgb(240, 170, 80),
                    format!("format error: {e}"),
                );
            }
        });
    }
}

/// A VLM trajectory's whole conversation, the selected action's turn
/// highlighted.
pub(super) fn conversation(ui: &mut egui::Ui, t: &Trajectory, action: usize) {
    let current = turn_of_action(t, action);
    egui::CollapsingHeader::new(format!("conversation ({} turns)", t.transcript.len()))
        .id_salt("conversation")
        .show(ui, |ui| {
            for (i, turn) in t.transcript.iter().enumerate() {
                let role = RichText::new(&turn.role).strong();
                ui.label(if Some(i) == current {
                    role.color(Color32::from_rgb(120, 190, 255))
                } else {
                    role
                });
                let max = if turn.role == "system" { 300 } else { 1500 };
                ui.add(
                    egui::Label::new(
                        RichText::new(printable(&turn.text, max))
                            .monospace()
                            .small(),
                    )
                    .wrap(),
                );
            }
        });
}
