//! The menu bar: File, Train, Inspect, Annotate, Help (their items read the
//! one command table), the tab strip and the status line.

use super::app::Request;
use super::commands::Cmd;
use super::{Studio, Tab, interchange, training, unix_secs, vlm};

impl Studio {
    /// The menu bar and the tab strip; menu items become requests.
    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        let mut fire = None;
        egui::MenuBar::new().ui(ui, |ui| {
            let item = |ui: &mut egui::Ui, c: Cmd, fire: &mut Option<Cmd>| {
                let b = egui::Button::new(c.title()).shortcut_text(c.shortcut_text(ui.ctx()));
                if ui.add(b).clicked() {
                    *fire = Some(c);
                }
            };
            ui.menu_button("File", |ui| {
                for c in [Cmd::NewSession, Cmd::Open, Cmd::AddComparison] {
                    item(ui, c, &mut fire);
                }
                ui.separator();
                let dataset = self.run.as_ref().and_then(|r| r.cfg.data.dataset.clone());
                for (m, label) in [
                    (interchange::Mode::ImportVstar, "Import V* Bench folder…"),
                    (interchange::Mode::ImportCoco, "Import COCO detection file…"),
                    (interchange::Mode::ImportViscot, "Import Visual-CoT file…"),
                ] {
                    if ui.button(label).clicked() {
                        self.interchange = Some(interchange::Window::new(m, None));
                    }
                }
                for (m, label) in [
                    (interchange::Mode::ExportCoco, "Export dataset as COCO…"),
                    (interchange::Mode::ExportJsonl, "Export dataset as JSONL…"),
                ] {
                    let b = ui.add_enabled(dataset.is_some(), egui::Button::new(label));
                    let b = if dataset.is_none() {
                        b.on_disabled_hover_text("the session's data is generated ZoomBench: write it as a dataset folder with `virl synth` and open that")
                    } else {
                        b
                    };
                    if b.clicked() {
                        self.interchange = Some(interchange::Window::new(m, dataset.as_deref()));
                    }
                }
                ui.separator();
                ui.label("Recent");
                for p in self.prefs.recent.clone() {
                    if ui.button(p.display().to_string()).clicked() {
                        self.request(Request::Open(p));
                    }
                }
            });
            ui.menu_button("Train", |ui| {
                for c in [
                    Cmd::TrainPause,
                    Cmd::StepIteration,
                    Cmd::Stop,
                    Cmd::SaveCheckpoint,
                ] {
                    item(ui, c, &mut fire);
                }
                ui.separator();
                if ui
                    .button("Run VLM rollouts…")
                    .on_hover_text("a local Qwen3-VL checkpoint as the policy: multi-turn zoom rollouts, scored and shown in the inspector")
                    .clicked()
                {
                    let dataset = self.run.as_ref().and_then(|r| r.cfg.data.dataset.clone());
                    let device = self.run.as_ref().map(|r| r.cfg.device).unwrap_or_default();
                    self.vlm = Some(vlm::Window::new(
                        &self.sessions_root,
                        dataset.as_deref(),
                        device,
                        format!("vlm-{}", unix_secs()),
                    ));
                }
            });
            ui.menu_button("Inspect", |ui| {
                for c in [
                    Cmd::PrevTrajectory,
                    Cmd::NextTrajectory,
                    Cmd::PrevAction,
                    Cmd::NextAction,
                    Cmd::ToggleFollow,
                ] {
                    item(ui, c, &mut fire);
                }
                ui.separator();
                ui.horizontal(|ui| {
                    ui.label("Full-resolution tile cache");
                    ui.add(
                        egui::DragValue::new(&mut self.prefs.tile_cache_mib)
                            .range(16..=16_384)
                            .suffix(" MiB"),
                    )
                    .on_hover_text(
                        "GPU memory for the full-resolution tiles of large images when zoomed in; \
                         the least recently shown tiles are dropped beyond it",
                    );
                });
            });
            ui.menu_button("Annotate", |ui| {
                item(ui, Cmd::EditGroundTruth, &mut fire);
                ui.separator();
                for c in Cmd::ANNOTATE {
                    item(ui, c, &mut fire);
                }
            });
            ui.menu_button("Help", |ui| {
                for c in [Cmd::Help, Cmd::Palette] {
                    item(ui, c, &mut fire);
                }
            });
            ui.separator();
            for (t, name) in [
                (Tab::Training, "Training"),
                (Tab::Rollouts, "Rollouts"),
                (Tab::Compare, "Compare"),
                (Tab::Annotate, "Annotate"),
            ] {
                let dirty = t == Tab::Annotate && self.annotate.uncompacted() > 0;
                let name = if dirty {
                    format!("{name} *")
                } else {
                    name.to_string()
                };
                ui.selectable_value(&mut self.tab, t, name);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if let Some(r) = &self.run {
                    training::status_line(ui, r);
                }
            });
        });
        if let Some(c) = fire {
            self.request(Request::Cmd(c));
        }
    }
}
