//! The editor's side panel: the shown sample, its boxes with their labels,
//! the edit buttons, what re-scoring changed, and a filter report.

use super::{AnnotateState, SELECTED};
use crate::studio::commands::Cmd;
use crate::studio::run::Run;
use egui::{Color32, RichText};

/// The side panel: the sample, its boxes and labels, the edit buttons,
/// re-scoring and the filter report; returns a command from its buttons.
pub(super) fn side_panel(ui: &mut egui::Ui, r: &mut Run, st: &mut AnnotateState) -> Option<Cmd> {
    let mut fire = None;
    let doc = st.doc()?;
    let Some(s) = st
        .sample
        .as_ref()
        .and_then(|id| doc.dataset.get(id))
        .cloned()
    else {
        ui.weak("No sample selected.");
        return None;
    };
    let dirty = st.uncompacted();
    let journal = doc.journal.path().display().to_string();
    let generated = doc.generated;
    let (n_undo, n_redo) = doc.history();
    let width = ui.available_width();
    egui::ScrollArea::vertical().id_salt("annot-side-scroll").show(ui, |ui| {
        ui.set_max_width(width - 8.0);
        ui.strong(&s.id);
        ui.label(RichText::new(&s.question).italics());
        ui.label(format!("answer {}   ·   {}×{} px", s.answer, s.width, s.height));
        ui.separator();
        if dirty > 0 {
            ui.colored_label(
                Color32::from_rgb(240, 170, 80),
                format!("Unsaved: {dirty} correction{} not in manifest.jsonl yet (kept in the journal; Ctrl+S writes them)", if dirty == 1 { "" } else { "s" }),
            );
        } else if generated {
            ui.weak("Generated data: corrections are saved in the session's journal.");
        } else {
            ui.weak("All corrections are in manifest.jsonl.");
        }
        ui.add(egui::Label::new(RichText::new(format!("journal: {journal}")).weak()).truncate())
            .on_hover_text(&journal);
        ui.horizontal_wrapped(|ui| {
            let b = |ui: &mut egui::Ui, c: Cmd, enabled: bool, fire: &mut Option<Cmd>| {
                if ui
                    .add_enabled(enabled, egui::Button::new(c.title()))
                    .on_hover_text(c.shortcut_text(ui.ctx()))
                    .clicked()
                {
                    *fire = Some(c);
                }
            };
            b(ui, Cmd::DrawBox, true, &mut fire);
            b(ui, Cmd::Undo, n_undo > 0, &mut fire);
            b(ui, Cmd::Redo, n_redo > 0, &mut fire);
            b(ui, Cmd::SaveAnnotations, !generated, &mut fire);
        });
        if st.drawing {
            ui.colored_label(SELECTED, "Drawing: drag on the image (Esc cancels).");
        }
        ui.separator();
        ui.strong(format!("Ground-truth boxes ({})", s.rationales.len()));
        let mut select = None;
        let mut relabel = None;
        let mut delete = None;
        let mut toggle_hide = None;
        for (i, rat) in s.rationales.iter().enumerate() {
            let sel = st.selected == Some(i);
            let hidden = st.hidden.contains(&(s.id.clone(), i));
            ui.horizontal(|ui| {
                let text = format!(
                    "{}  {}",
                    i + 1,
                    if rat.label.is_empty() {
                        "(no label)"
                    } else {
                        &rat.label
                    }
                );
                let t = if hidden {
                    RichText::new(text).weak()
                } else {
                    RichText::new(text)
                };
                if ui.selectable_label(sel, t).clicked() {
                    select = Some(i);
                }
                if ui.small_button(if hidden { "show" } else { "hide" }).clicked() {
                    toggle_hide = Some(i);
                }
                if ui.small_button("delete").clicked() {
                    delete = Some(i);
                }
            });
            let b = rat.bbox;
            ui.weak(format!("    [{:.0}, {:.0}, {:.0}, {:.0}]", b.x1, b.y1, b.x2, b.y2));
            if sel {
                let draft = match &mut st.label_draft {
                    Some((k, d)) if *k == i => d,
                    _ => {
                        st.label_draft = Some((i, rat.label.clone()));
                        &mut st.label_draft.as_mut().expect("just set").1
                    }
                };
                ui.horizontal(|ui| {
                    ui.label("label");
                    let resp = ui.add(egui::TextEdit::singleline(draft).desired_width(150.0));
                    if resp.lost_focus() && *draft != rat.label {
                        relabel = Some((i, draft.clone()));
                    }
                });
            }
        }
        if s.rationales.is_empty() {
            ui.weak("No boxes: press N and drag on the image to draw one.");
        }
        if let Some(i) = select {
            st.selected = Some(i);
        }
        if let Some(i) = toggle_hide {
            st.selected = Some(i);
            fire = Some(Cmd::HideBox);
        }
        if let Some(i) = delete {
            st.selected = Some(i);
            fire = Some(Cmd::DeleteBox);
        }
        if let Some((i, l)) = relabel {
            let mut rs = s.rationales.clone();
            if let Some(x) = rs.get_mut(i) {
                x.label = l;
            }
            st.propose("label", rs);
        }
        ui.separator();
        rescore_summary(ui, r, &s.id);
        if let Some(rep) = st.doc().and_then(|d| d.filter_report.clone()) {
            ui.separator();
            filter_report(ui, &rep, &s.id);
        }
    });
    fire
}

/// The `virl filter` report of this dataset: samples per stage, and why
/// samples were dropped.
fn filter_report(
    ui: &mut egui::Ui,
    rep: &Result<virl_engine::filter::FilterReport, String>,
    _id: &str,
) {
    egui::CollapsingHeader::new("Filter report")
        .default_open(true)
        .show(ui, |ui| {
            let rep = match rep {
                Ok(r) => r,
                Err(e) => {
                    ui.colored_label(Color32::from_rgb(230, 90, 90), format!("cannot read it: {e}"));
                    return;
                }
            };
            let c = rep.config.unwrap_or_default();
            let dropped = |st: u8| rep.dropped.iter().filter(|d| d.stage == st).count();
            egui::Grid::new("filter-report").striped(true).show(ui, |ui| {
                ui.weak("stage");
                ui.weak("dropped");
                ui.weak("left");
                ui.end_row();
                ui.label("input");
                ui.label("");
                ui.label(rep.input.to_string());
                ui.end_row();
                let rows = [
                    format!("1 area ratio > {}", c.max_area_ratio),
                    format!("2 no-zoom pass >= {:.0} %", 100.0 * c.no_zoom_pass),
                    format!("3 never solved with GT zoom (k = {})", c.k),
                ];
                for (k, name) in rows.iter().enumerate() {
                    ui.label(name);
                    ui.label(dropped(k as u8 + 1).to_string());
                    ui.label(rep.after_stage[k].to_string());
                    ui.end_row();
                }
            });
            ui.weak(format!("this folder holds the {} kept samples; dropped.jsonl lists the others with their reasons", rep.kept.len()));
        });
}

/// The effect of the sample's correction on its stored trajectories.
fn rescore_summary(ui: &mut egui::Ui, r: &Run, id: &str) {
    let mut rows: Vec<(u64, usize)> = r
        .rescored
        .keys()
        .filter(|(it, row)| {
            r.rollouts
                .get(it)
                .and_then(|v| v.get(*row))
                .is_some_and(|t| t.sample == id)
        })
        .copied()
        .collect();
    rows.sort_unstable();
    if rows.is_empty() {
        ui.weak(if r.rollouts.is_empty() {
            "No trajectories loaded: the re-scores of this sample's rollouts appear here once they are."
        } else {
            "No loaded trajectory of this sample was re-scored (it has not been corrected, or none is loaded)."
        });
        return;
    }
    ui.strong(format!("Re-scored trajectories ({})", rows.len()));
    ui.weak("stored -> against the corrected boxes");
    egui::Grid::new("rescored").striped(true).show(ui, |ui| {
        ui.weak("iter");
        ui.weak("R_rat");
        ui.weak("A_i");
        ui.end_row();
        for (it, row) in rows.iter().take(40) {
            let (Some(old), Some(new)) = (
                r.rollouts.get(it).and_then(|v| v.get(*row)),
                r.rescored.get(&(*it, *row)),
            ) else {
                continue;
            };
            ui.label(it.to_string());
            ui.label(format!(
                "{:+.2} -> {:+.2}",
                old.rewards.rat, new.rewards.rat
            ));
            ui.label(format!("{:+.2} -> {:+.2}", old.advantage, new.advantage));
            ui.end_row();
        }
    });
}
