//! The rollout browser: a virtualised, sortable, filterable table of
//! trajectories, the iteration timeline, and the inspector beside it. What
//! is selected lives in [`super::selection`], which the inspector reads too.

use super::commands::Cmd;
use super::images::ImageCache;
use super::inspector;
use super::rows::{Column, RowFilter, SortBy, Tri};
use super::run::Run;
use super::selection::{BrowserState, Scope};
use egui::{Color32, RichText};
use egui_extras::{Column as TCol, TableBuilder};
use virl_engine::trajectory::FailureClass;

/// The Rollouts tab; returns a command to run (from buttons).
pub fn rollouts_view(
    ui: &mut egui::Ui,
    r: &mut Run,
    b: &mut BrowserState,
    images: &mut ImageCache,
) -> Option<Cmd> {
    let mut fire = None;
    timeline(ui, r, b);
    egui::Panel::left("browser")
        .resizable(true)
        .default_size(520.0)
        .show(ui, |ui| {
            filters(ui, b);
            table(ui, r, b);
        });
    egui::CentralPanel::default().show(ui, |ui| {
        if let Some(c) = inspector::ui(ui, r, b, images) {
            fire = Some(c);
        }
    });
    fire
}

fn timeline(ui: &mut egui::Ui, r: &mut Run, b: &mut BrowserState) {
    ui.horizontal(|ui| {
        let stored: Vec<u64> = {
            let mut v: Vec<u64> = r.stored.clone();
            v.extend(r.rollouts.keys());
            v.sort_unstable();
            v.dedup();
            v
        };
        ui.label("iteration");
        match (stored.first(), stored.last()) {
            (Some(&lo), Some(&hi)) => {
                let mut it = b.iteration.unwrap_or(hi);
                let resp = ui
                    .add(egui::Slider::new(&mut it, lo..=hi).clamping(egui::SliderClamping::Always))
                    .on_hover_text("iteration shown");
                if resp.changed() {
                    // Snap to an iteration that has stored trajectories.
                    let snap = stored.iter().min_by_key(|&&s| s.abs_diff(it)).copied();
                    b.iteration = snap;
                    b.follow = false;
                }
                if ui.button("first").clicked() {
                    b.iteration = Some(lo);
                    b.follow = false;
                }
                if ui.button("newest").clicked() {
                    b.iteration = Some(hi);
                }
            }
            _ => {
                ui.weak("no trajectories yet");
            }
        }
        let follow_text = format!("follow newest ({})", Cmd::ToggleFollow.shortcut_text(ui.ctx()));
        ui.toggle_value(&mut b.follow, follow_text)
            .on_hover_text("On: the browser and inspector jump to each new iteration. Off: the selection stays pinned.");
        ui.separator();
        ui.selectable_value(&mut b.scope, Scope::Iteration, "this iteration");
        ui.selectable_value(&mut b.scope, Scope::All, "all loaded")
            .on_hover_text("every iteration loaded in memory (live ones, and past ones you visited)");
        if !r.loading.is_empty() {
            ui.spinner();
            ui.weak("loading trajectories…");
        }
    });
}

fn filters(ui: &mut egui::Ui, b: &mut BrowserState) {
    ui.horizontal_wrapped(|ui| {
        egui::ComboBox::new("f-correct", "correct")
            .selected_text(format!("{:?}", b.filter.correct).to_lowercase())
            .width(60.0)
            .show_ui(ui, |ui| {
                for t in [Tri::Any, Tri::Yes, Tri::No] {
                    ui.selectable_value(&mut b.filter.correct, t, format!("{t:?}").to_lowercase());
                }
            });
        egui::ComboBox::new("f-class", "class")
            .selected_text(b.filter.class.map(|c| c.name()).unwrap_or("any"))
            .width(90.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut b.filter.class, None, "any");
                for c in FailureClass::ALL {
                    ui.selectable_value(&mut b.filter.class, Some(c), c.name());
                }
            });
        ui.label("zooms ≥");
        ui.add(egui::DragValue::new(&mut b.filter.min_zooms).range(0..=64))
            .on_hover_text("minimum zooms");
        ui.add(
            egui::TextEdit::singleline(&mut b.filter.sample)
                .hint_text("sample id")
                .desired_width(90.0),
        );
        if ui.button("clear").clicked() {
            b.filter = RowFilter::default();
        }
    });
    ui.weak(format!("{} trajectories", b.rows.len()));
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "–".into())
}

fn table(ui: &mut egui::Ui, r: &Run, b: &mut BrowserState) {
    let row_h = 18.0;
    let mut tb = TableBuilder::new(ui)
        .striped(true)
        .resizable(false)
        .sense(egui::Sense::click())
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(TCol::exact(44.0))
        .column(TCol::initial(104.0).clip(true))
        .column(TCol::exact(62.0))
        .columns(TCol::exact(50.0), 2)
        .column(TCol::exact(64.0))
        .column(TCol::exact(54.0))
        .column(TCol::exact(50.0))
        .column(TCol::remainder());
    if b.scroll_to_selected
        && let Some(pos) = b.selected.and_then(|s| b.rows.iter().position(|&r| r == s))
    {
        tb = tb.scroll_to_row(pos, Some(egui::Align::Center));
        b.scroll_to_selected = false;
    }
    let mut clicked = None;
    let mut resort = None;
    tb.header(20.0, |mut h| {
        for c in Column::ALL {
            h.col(|ui| {
                let arrow = if b.sort.column == c {
                    if b.sort.descending { " v" } else { " ^" }
                } else {
                    ""
                };
                if ui
                    .button(RichText::new(format!("{}{arrow}", c.title())).strong())
                    .clicked()
                {
                    resort = Some(c);
                }
            });
        }
    })
    .body(|body| {
        body.rows(row_h, b.rows.len(), |mut row| {
            let rr = b.rows[row.index()];
            let Some(t) = r.rollouts.get(&rr.0).and_then(|v| v.get(rr.1)) else {
                return;
            };
            row.set_selected(b.selected == Some(rr));
            let ok = t.correct();
            let class = t.failure();
            row.col(|ui| {
                ui.label(rr.0.to_string());
            });
            row.col(|ui| {
                ui.label(&t.sample);
            });
            row.col(|ui| {
                crate::widgets::correct_label(ui, ok);
            });
            row.col(|ui| {
                ui.label(format!("{:+.2}", t.rewards.total));
            });
            row.col(|ui| {
                ui.label(format!("{:+.2}", t.rewards.rat));
            });
            row.col(|ui| {
                ui.label(fmt_opt(t.rat_accuracy()));
            });
            row.col(|ui| {
                ui.label(t.actions.len().to_string());
            });
            row.col(|ui| {
                ui.label(format!("{:+.2}", t.advantage));
            });
            row.col(|ui| {
                if class == FailureClass::Ok {
                    ui.weak("ok");
                } else {
                    ui.colored_label(Color32::from_rgb(240, 170, 80), class.name());
                }
            });
            if row.response().clicked() {
                clicked = Some(rr);
            }
        });
    });
    if let Some(c) = resort {
        if b.sort.column == c {
            b.sort.descending = !b.sort.descending;
        } else {
            b.sort = SortBy {
                column: c,
                descending: true,
            };
        }
    }
    if let Some(rr) = clicked {
        b.selected = Some(rr);
        b.action = 0;
        b.follow = false;
    }
}
