//! Quitting with ground-truth corrections that are only in the journal:
//! the close is held and a dialog asks whether to compact them first.

use super::Studio;
use super::app::Request;

impl Studio {
    /// Closing the window with corrections that are only in the journal
    /// asks first (they are safe on disk, but not in the manifest).
    pub(super) fn quit_logic(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested())
            && !self.quit_allowed
            && self.annotate.uncompacted() > 0
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm_quit = true;
        }
    }

    /// Compacts the corrections, then closes (the dialog's "Save and quit").
    pub(super) fn save_and_quit(&mut self, ctx: &egui::Context) {
        self.annotate.save();
        for (m, e) in std::mem::take(&mut self.annotate.messages) {
            self.toast(m, e);
        }
        if self.annotate.uncompacted() == 0 {
            self.quit_allowed = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    /// The "save the corrections?" dialog; saving is a request.
    pub(super) fn quit_dialog(&mut self, ctx: &egui::Context) {
        if !self.confirm_quit {
            return;
        }
        let n = self.annotate.uncompacted();
        let mut choice = None;
        egui::Modal::new(egui::Id::unique("confirm-quit")).show(ctx, |ui| {
            ui.heading("Save the ground-truth corrections?");
            ui.label(format!(
                "{n} correction{} {} in annotations.jsonl but not in manifest.jsonl. The journal keeps {}: it is applied whenever the dataset is loaded.",
                if n == 1 { "" } else { "s" },
                if n == 1 { "is" } else { "are" },
                if n == 1 { "it" } else { "them" },
            ));
            ui.horizontal(|ui| {
                if ui.button("Save and quit").clicked() {
                    choice = Some(0);
                }
                if ui.button("Quit without compacting").clicked() {
                    choice = Some(1);
                }
                if ui.button("Cancel").clicked() {
                    choice = Some(2);
                }
            });
        });
        match choice {
            Some(0) => {
                self.confirm_quit = false;
                self.request(Request::SaveAndQuit);
            }
            Some(1) => {
                self.confirm_quit = false;
                self.quit_allowed = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Some(2) => self.confirm_quit = false,
            _ => {}
        }
    }
}
