//! The trajectory inspector: the image with ground truth and numbered zoom
//! boxes coloured by fidelity, the crop the policy saw at each step, every
//! action's scores and credit, and the sample's GRPO group side by side.

mod actions;
mod group;
mod turns;

use actions::actions_table;
use group::group_view;
use turns::{conversation, current_turn};

use super::commands::Cmd;
use super::images::{ImageCache, ImageJob};
use super::run::Run;
use super::selection::BrowserState;
use super::tiles::Tiled;
use crate::widgets::{ViewXf, child_ui, dashed_rect, fidelity_color, placeholder};
use egui::{Color32, Pos2, Rect, RichText, Sense, Stroke, StrokeKind, Vec2};
use virl_engine::geometry::BBox;
use virl_engine::trajectory::{FailureClass, Trajectory};

const GT: Color32 = Color32::from_rgb(250, 220, 40);

/// Draws the inspector; returns a command from its buttons.
pub fn ui(
    ui: &mut egui::Ui,
    r: &Run,
    b: &mut BrowserState,
    images: &mut ImageCache,
) -> Option<Cmd> {
    let Some(t) = b.record(r) else {
        ui.centered_and_justified(|ui| {
            ui.weak(if r.rollouts.is_empty() {
                "No trajectories yet: train (Space) or open a session with rollouts."
            } else {
                "Select a trajectory in the table (F / D step through them)."
            });
        });
        return None;
    };
    let mut fire = None;
    let (it, _) = b.selected.unwrap_or_default();
    let sample = r.index.as_ref().and_then(|ix| ix.get(&t.sample));
    // Header.
    ui.horizontal_wrapped(|ui| {
        ui.strong(&t.sample);
        ui.weak(format!("iteration {it}"));
        if let Some((s, _, _)) = &sample {
            ui.label(RichText::new(&s.question).italics());
        }
    });
    ui.horizontal_wrapped(|ui| {
        let ok = t.correct();
        ui.label("answer");
        ui.colored_label(
            if ok {
                Color32::from_rgb(90, 200, 120)
            } else {
                Color32::from_rgb(230, 90, 90)
            },
            RichText::new(t.answer.as_deref().unwrap_or("(none)")).strong(),
        );
        ui.label(format!("truth {}", t.truth));
        ui.separator();
        let rw = &t.rewards;
        ui.label(format!(
            "R {:+.3} = R_ans {:.0} + R_rat {:+.3} + R_fmt {:+.0}",
            rw.total, rw.ans, rw.rat, rw.fmt
        ));
        ui.label(format!(
            "C {}",
            t.coverage.map(|c| format!("{c:.2}")).unwrap_or("–".into())
        ));
        ui.label(format!("A_i {:+.3}", t.advantage));
        let class = t.failure();
        if class != FailureClass::Ok {
            ui.colored_label(Color32::from_rgb(240, 170, 80), class.name());
        }
        if ui
            .button("Edit ground truth")
            .on_hover_text(format!(
                "open this sample in the annotation editor ({})",
                Cmd::EditGroundTruth.shortcut_text(ui.ctx())
            ))
            .clicked()
        {
            fire = Some(Cmd::EditGroundTruth);
        }
    });
    // A traced run records which version of the boxes its reward used.
    if let (Some(v), Some((s, _, _))) = (t.gt_version, &sample) {
        let now = r.corrected.get(&t.sample).unwrap_or(s);
        if virl_engine::dataset::live::gt_version(now) != v {
            ui.weak(format!(
                "the run scored this against an earlier version of the ground-truth boxes \
                 (version {v}), not the current ones"
            ));
        }
    }
    let rescored = b.selected.and_then(|k| r.rescored.get(&k));
    if let Some(n) = rescored {
        ui.horizontal_wrapped(|ui| {
            ui.colored_label(GT, "ground truth corrected, re-scored:");
            ui.monospace(format!(
                "R_rat {:+.3} -> {:+.3}   R {:+.3} -> {:+.3}   A_i {:+.3} -> {:+.3}",
                t.rewards.rat,
                n.rewards.rat,
                t.rewards.total,
                n.rewards.total,
                t.advantage,
                n.advantage
            ));
        });
    }
    ui.separator();
    let n_actions = t.actions.len();
    b.action = b.action.min(n_actions);
    let tex = match (&sample, &r.index) {
        (Some((_, store, idx)), Some(_)) => images.get(
            ui.ctx(),
            ImageJob {
                key: t.sample.clone(),
                store: (*store).clone(),
                index: *idx,
                max_side: ui.ctx().input(|i| i.max_texture_side).min(4096),
                crops: t.executed().collect(),
                view: r.cfg.env.view,
            },
        ),
        _ => None,
    };
    let gts: Vec<BBox> = r.gt_boxes(&t.sample).unwrap_or_default();
    let side_w = 330.0_f32.min(ui.available_width() * 0.5);
    // Explicit rects: image on the left, the action on the right, the group below.
    let full = ui.available_rect_before_wrap();
    let group_h = 112.0;
    let group_rect = Rect::from_min_max(
        Pos2::new(full.left(), full.bottom() - group_h),
        full.right_bottom(),
    );
    let side_rect = Rect::from_min_max(
        Pos2::new(full.right() - side_w, full.top()),
        Pos2::new(full.right(), group_rect.top() - 6.0),
    );
    let img_rect = Rect::from_min_max(
        full.left_top(),
        Pos2::new(side_rect.left() - 8.0, group_rect.top() - 6.0),
    );
    ui.allocate_rect(full, Sense::hover());
    let mut child = |rect: Rect, salt: &str| child_ui(ui, rect, salt);
    group_view(&mut child(group_rect, "group"), r, b, t, it);
    let side_ui = &mut child(side_rect, "side");
    let img_ui = &mut child(img_rect, "image");
    {
        let ui = side_ui;
        egui::ScrollArea::vertical()
            .id_salt("action-side-scroll")
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    if ui
                        .button("<")
                        .on_hover_text(format!(
                            "previous action ({})",
                            Cmd::PrevAction.shortcut_text(ui.ctx())
                        ))
                        .clicked()
                    {
                        fire = Some(Cmd::PrevAction);
                    }
                    ui.strong(if b.action < n_actions {
                        format!("zoom {} of {n_actions}", b.action + 1)
                    } else {
                        "answer".to_string()
                    });
                    if ui
                        .button(">")
                        .on_hover_text(format!(
                            "next action ({})",
                            Cmd::NextAction.shortcut_text(ui.ctx())
                        ))
                        .clicked()
                    {
                        fire = Some(Cmd::NextAction);
                    }
                });
                let crop_side = (side_w - 16.0).min(200.0);
                if b.action < n_actions {
                    let exec = t.actions.get(b.action).map(|a| a.executed);
                    let crop =
                        exec.and_then(|e| tex.and_then(|x| x.crops.iter().find(|(c, _)| *c == e)));
                    match crop {
                        Some((_, h)) => {
                            ui.add(egui::Image::new((h.id(), Vec2::splat(crop_side))));
                        }
                        None if r.index_error.is_some()
                            || tex.is_some_and(|x| x.error.is_some()) =>
                        {
                            ui.add_sized([crop_side, crop_side], egui::Label::new("no image"));
                        }
                        None => {
                            ui.add_sized([crop_side, crop_side], egui::Spinner::new());
                        }
                    }
                    if t.transcript.is_empty() && r.vlm_model.is_none() {
                        ui.weak(format!("the {0}×{0} crop the policy saw", r.cfg.env.view));
                    } else {
                        ui.weak("the executed region (the VLM saw it at its own resolution)");
                    }
                    if let (Some(p), Some(e)) = (t.actions.get(b.action).map(|a| a.proposed), exec)
                        && p != e
                    {
                        ui.weak(format!(
                            "proposed {}\nexecuted {}",
                            fmt_box(&p),
                            fmt_box(&e)
                        ));
                    }
                } else {
                    ui.label(format!(
                        "answered {} (truth {}) after {n_actions} zoom{}",
                        t.answer.as_deref().unwrap_or("nothing"),
                        t.truth,
                        if n_actions == 1 { "" } else { "s" }
                    ));
                    if t.truncated {
                        ui.colored_label(Color32::from_rgb(240, 170, 80), "cut off at max_rounds");
                    }
                }
                if !t.transcript.is_empty() {
                    current_turn(ui, t, b.action);
                }
                ui.separator();
                actions_table(ui, t, rescored, b);
                if !t.transcript.is_empty() {
                    ui.separator();
                    conversation(ui, t, b.action);
                }
            });
    }
    {
        let ui = img_ui;
        let canvas = Vec2::new(
            ui.available_width().max(120.0),
            (ui.available_height() - 64.0).max(120.0),
        );
        let shown: Option<(Option<egui::TextureHandle>, [u32; 2], Option<String>)> =
            match (&r.index_error, tex) {
                (Some(e), None) => Some((None, [0, 0], Some(e.clone()))),
                (_, t) => t.map(|x| (x.overview.clone(), x.size, x.error.clone())),
            };
        let tiles = sample.map(|(_, store, idx)| Tiled {
            cache: &mut images.tiles,
            store,
            index: idx,
        });
        let image = match shown {
            Some((Some(o), size, _)) => Ok((o, size)),
            Some((_, _, Some(e))) => Err(format!("cannot show the image: {e}")),
            _ if sample.is_none() && r.index.is_some() => Err(format!(
                "sample {} is not in this session's datasets",
                t.sample
            )),
            _ => Err("loading the image…".into()),
        };
        image_view(ui, canvas, t, &gts, b.action, image, tiles);
        legend(ui);
    }
    fire
}

/// Where `--zoom-to` leaves its request for the inspector's image view
/// (taken by the first image shown).
pub(super) fn focus_id() -> egui::Id {
    egui::Id::unique("virl-inspector-focus")
}

fn fmt_box(b: &BBox) -> String {
    format!("[{:.0}, {:.0}, {:.0}, {:.0}]", b.x1, b.y1, b.x2, b.y2)
}

fn legend(ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        let (rect, _) = ui.allocate_exact_size(Vec2::new(120.0, 10.0), Sense::hover());
        let n = 24;
        for i in 0..n {
            let f = -1.0 + 2.0 * i as f64 / (n - 1) as f64;
            let x0 = rect.left() + rect.width() * i as f32 / n as f32;
            let r = Rect::from_min_max(
                Pos2::new(x0, rect.top()),
                Pos2::new(x0 + rect.width() / n as f32 + 0.5, rect.bottom()),
            );
            ui.painter().rect_filled(r, 0.0, fidelity_color(f));
        }
        ui.weak("fidelity f_k: −1 … +1");
        ui.colored_label(GT, "[ ] ground truth");
        ui.weak("dashed: proposed box where clipping changed it");
        ui.weak("wheel: zoom · drag: pan · double-click: fit");
    });
}

fn image_view(
    ui: &mut egui::Ui,
    size: Vec2,
    t: &Trajectory,
    gts: &[BBox],
    action: usize,
    image: Result<(egui::TextureHandle, [u32; 2]), String>,
    tiles: Option<Tiled<'_>>,
) {
    let (rect, resp) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::from_gray(20));
    let (tex, [w, h]) = match image {
        Ok(x) => x,
        Err(msg) => {
            placeholder(&painter, rect, msg);
            return;
        }
    };
    let tex = &tex;
    let id = ui.scope_id().with("xf");
    let mut xf: ViewXf = ui.data(|d| d.get_temp(id)).unwrap_or_default();
    if resp.double_clicked() {
        xf = ViewXf::default();
    }
    if resp.dragged() {
        xf.pan += resp.drag_delta();
    }
    if let Some((zoom, [x, y])) = ui.data_mut(|d| d.remove_temp::<(f32, [f64; 2])>(focus_id())) {
        xf.focus(rect, w as f64, h as f64, zoom, x, y);
    }
    xf.wheel(ui, &resp, rect);
    ui.data_mut(|d| d.insert_temp(id, xf));
    let placed = xf.paint(&painter, rect, tex.id(), w as f64, h as f64);
    if let Some(tl) = tiles {
        tl.cache.paint(
            &painter,
            rect,
            placed,
            tex,
            &t.sample,
            tl.store,
            tl.index,
            [w, h],
        );
    }
    let to_screen = |b: &BBox| placed.to_screen(b);
    for g in gts {
        painter.rect_stroke(to_screen(g), 0.0, Stroke::new(2.0, GT), StrokeKind::Outside);
    }
    for (k, a) in t.actions.iter().enumerate() {
        let col = fidelity_color(a.score.fidelity);
        let sel = k == action;
        let (p, e) = (a.proposed, a.executed);
        {
            let r = to_screen(&e);
            painter.rect_stroke(
                r,
                0.0,
                Stroke::new(if sel { 3.5 } else { 1.5 }, col),
                StrokeKind::Inside,
            );
            let label = format!("{}", k + 1);
            let pos = r.left_top() + Vec2::new(2.0, 1.0);
            let galley = painter.layout_no_wrap(
                label,
                egui::FontId::monospace(if sel { 15.0 } else { 12.0 }),
                Color32::BLACK,
            );
            painter.rect_filled(
                Rect::from_min_size(pos, galley.size() + Vec2::new(4.0, 0.0)),
                2.0,
                col,
            );
            painter.galley(pos + Vec2::new(2.0, 0.0), galley, Color32::BLACK);
        }
        if p != e {
            dashed_rect(&painter, to_screen(&p), Stroke::new(1.0, col), 5.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_scale() {
        assert_eq!(fidelity_color(0.0), Color32::from_rgb(200, 200, 200));
        assert_eq!(fidelity_color(-1.0), Color32::from_rgb(230, 60, 60));
        assert_eq!(fidelity_color(1.0), Color32::from_rgb(60, 150, 250));
        assert_eq!(fidelity_color(5.0), fidelity_color(1.0));
    }
}
