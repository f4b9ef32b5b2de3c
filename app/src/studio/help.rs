//! The keyboard help (F1): every command of the one command table, by scope.

use super::Studio;
use super::commands::{self, Cmd};

impl Studio {
    /// Draws the help window while it is open.
    pub(super) fn help_window(&mut self, ctx: &egui::Context) {
        if self.help {
            let mut open = true;
            egui::Window::new("Keyboard")
                .open(&mut open)
                .collapsible(false)
                .show(ctx, |ui| {
                    egui::ScrollArea::vertical().max_height(620.0).show(ui, |ui| {
                        for (scope, heading) in [
                            (commands::Scope::Global, "Everywhere"),
                            (commands::Scope::NotAnnotate, "Training, rollouts and the inspector"),
                            (commands::Scope::Annotate, "Annotation editor (keys as in CVAT)"),
                        ] {
                            ui.strong(heading);
                            egui::Grid::new(("help", heading)).striped(true).show(ui, |ui| {
                                for c in Cmd::ALL.into_iter().filter(|c| c.scope() == scope) {
                                    ui.label(c.title());
                                    ui.monospace(c.shortcut_text(ctx));
                                    ui.end_row();
                                }
                            });
                            ui.add_space(6.0);
                        }
                        ui.weak("Annotation mouse: drag a box to move it, its handles to resize; right-drag pans, the wheel zooms.");
                    });
                });
            self.help = open;
        }
    }
}
