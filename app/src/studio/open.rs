//! The Open window (Ctrl+O): a typed path, the native folder dialog and the
//! recent list.

use super::app::Request;
use super::{Studio, Tab};
use std::path::PathBuf;

impl Studio {
    /// Draws the Open window while it is open; opening is a request.
    pub(super) fn open_window(&mut self, ctx: &egui::Context) {
        if let Some(path) = &mut self.open_window {
            let mut go = None;
            let mut browse = false;
            let mut open = true;
            egui::Window::new("Open").open(&mut open).collapsible(false).show(ctx, |ui| {
                ui.label("A session folder (followed live), a dataset folder (manifest.jsonl) or an experiment folder (its sessions are compared).");
                ui.horizontal(|ui| {
                    let r = ui.add(egui::TextEdit::singleline(path).hint_text("path/to/folder").desired_width(360.0));
                    if ui.button("Open").clicked() || (r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))) {
                        go = Some(PathBuf::from(path.trim()));
                    }
                    if ui.button("Browse…").clicked() {
                        browse = true;
                    }
                });
                if !self.prefs.recent.is_empty() {
                    ui.separator();
                    ui.label("Recent");
                    for p in &self.prefs.recent {
                        if ui.link(p.display().to_string()).clicked() {
                            go = Some(p.clone());
                        }
                    }
                }
            });
            if !open {
                self.open_window = None;
            }
            if browse {
                self.request(Request::Browse { compare: false });
            }
            if let Some(p) = go {
                self.open_window = None;
                self.request(Request::Open(p));
            }
        }
    }

    /// Draws the import / export and VLM windows while they are open.
    pub(super) fn tool_windows(&mut self, ctx: &egui::Context) {
        if let Some(w) = &mut self.interchange {
            let (open, msg, opened) = w.ui(ctx);
            if !open {
                self.interchange = None;
            }
            if let Some((m, e)) = msg {
                self.toast(m, e);
            }
            if let Some(p) = opened {
                self.interchange = None;
                self.request(Request::OpenAt(p, Tab::Annotate));
            }
        }
        if let Some(w) = &mut self.vlm {
            let (open, msg, opened) = w.ui(ctx);
            if !open {
                self.vlm = None;
            }
            if let Some((m, e)) = msg {
                self.toast(m, e);
            }
            if let Some(p) = opened {
                self.vlm = None;
                self.request(Request::OpenAt(p, Tab::Rollouts));
            }
        }
    }
}
