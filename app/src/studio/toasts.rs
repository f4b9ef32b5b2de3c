//! Toasts: transient messages at the bottom right, errors in red (kept
//! longer).

use super::Studio;
use std::time::{Duration, Instant};

/// A transient message.
pub(super) struct Toast {
    /// The message.
    pub(super) text: String,
    /// Shown in red, for longer.
    pub(super) error: bool,
    /// When it was raised.
    pub(super) at: Instant,
}

impl Studio {
    /// Shows a message (`error`: in red, for longer).
    pub(super) fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.toasts.push(Toast {
            text: text.into(),
            error,
            at: Instant::now(),
        });
    }

    /// Drops the toasts that have been shown long enough.
    pub(super) fn expire_toasts(&mut self, ctx: &egui::Context) {
        self.toasts
            .retain(|t| t.at.elapsed() < Duration::from_secs(if t.error { 12 } else { 4 }));
        if !self.toasts.is_empty() {
            ctx.request_repaint_after(Duration::from_millis(500));
        }
    }

    /// Draws the toasts.
    pub(super) fn toasts_ui(&self, ctx: &egui::Context) {
        // Toasts, newest at the bottom right.
        if !self.toasts.is_empty() {
            egui::Area::new(egui::Id::unique("toasts"))
                .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -12.0])
                .show(ctx, |ui| {
                    for t in &self.toasts {
                        let fill = if t.error {
                            egui::Color32::from_rgb(110, 30, 30)
                        } else {
                            egui::Color32::from_rgb(30, 60, 90)
                        };
                        egui::Frame::popup(ui.style()).fill(fill).show(ui, |ui| {
                            ui.set_max_width(420.0);
                            ui.colored_label(egui::Color32::WHITE, &t.text);
                        });
                    }
                });
        }
    }
}
