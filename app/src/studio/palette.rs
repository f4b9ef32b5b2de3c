//! The command palette (Ctrl+K): type to filter the command table, Enter
//! runs the first match.

use super::Studio;
use super::app::Request;
use super::commands::Cmd;

impl Studio {
    /// Draws the palette while it is open; the chosen command is a request.
    pub(super) fn palette_window(&mut self, ctx: &egui::Context) {
        if let Some(q) = &mut self.palette {
            let mut fire = None;
            let mut close = false;
            egui::Window::new("Command palette")
                .collapsible(false)
                .title_bar(false)
                .anchor(egui::Align2::CENTER_TOP, [0.0, 60.0])
                .show(ctx, |ui| {
                    let r = ui.text_edit_singleline(q);
                    r.request_focus();
                    let ql = q.to_lowercase();
                    let hits: Vec<Cmd> = Cmd::ALL
                        .into_iter()
                        .filter(|c| c.title().to_lowercase().contains(&ql))
                        .collect();
                    for c in &hits {
                        ui.horizontal(|ui| {
                            if ui.button(c.title()).clicked() {
                                fire = Some(*c);
                            }
                            ui.weak(c.shortcut_text(ctx));
                        });
                    }
                    if ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                        fire = hits.first().copied();
                    }
                    if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                        close = true;
                    }
                });
            if let Some(c) = fire {
                self.palette = None;
                self.request(Request::Cmd(c));
            } else if close {
                self.palette = None;
            }
        }
    }
}
