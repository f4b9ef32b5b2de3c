//! The annotation canvas: the sample's image at any zoom, its ground-truth
//! boxes with handles, the policy's consensus box, and the pointer's
//! gestures turned into proposed edits.

use super::editing::{Drag, HANDLE, Handle, MIN_SIDE, clamp_move, hit, tidy};
use super::{AnnotateState, GT, SELECTED};
use crate::studio::images::{ImageCache, ImageJob};
use crate::studio::run::Run;
use crate::widgets::{ViewXf, placeholder};
use egui::{Color32, Pos2, Rect, Sense, Stroke, StrokeKind, Vec2};
use virl_engine::dataset::Rationale;
use virl_engine::geometry::BBox;

/// The canvas: the image with its boxes (pan, zoom, draw, select, move,
/// resize). Edits are proposed to the editor, which commits them in its
/// `logic()`.
pub(super) fn canvas(
    ui: &mut egui::Ui,
    r: &mut Run,
    st: &mut AnnotateState,
    images: &mut ImageCache,
) {
    let Some(doc) = st.doc() else { return };
    let Some(id) = st.sample.clone() else { return };
    let Some(s) = doc.dataset.get(&id).cloned() else {
        return;
    };
    let store = doc.store.clone();
    let Some(idx) = store.dataset().samples().iter().position(|x| x.id == id) else {
        return;
    };
    let size = Vec2::new(
        ui.available_width().max(120.0),
        (ui.available_height() - 24.0).max(120.0),
    );
    let (rect, resp) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::from_gray(20));
    let tile_store = store.clone();
    let tex = images.get(
        ui.ctx(),
        ImageJob {
            key: id.clone(),
            store,
            index: idx,
            max_side: ui.ctx().input(|i| i.max_texture_side).min(4096),
            crops: Vec::new(),
            view: r.cfg.env.view,
        },
    );
    let err = tex.and_then(|t| t.error.clone());
    let Some(tex) = tex.and_then(|t| t.overview.as_ref().map(|o| (o.clone(), t.size))) else {
        let msg = match err {
            Some(e) => format!("cannot show the image: {e}"),
            None => "loading the image…".into(),
        };
        placeholder(&painter, rect, msg);
        return;
    };
    let (w, h) = (s.width as f64, s.height as f64);
    // Pan (secondary or middle drag) and zoom (wheel, about the pointer).
    let xf = &mut st.xf;
    if resp.double_clicked_by(egui::PointerButton::Secondary) {
        *xf = ViewXf::default();
    }
    if resp.dragged_by(egui::PointerButton::Secondary)
        || resp.dragged_by(egui::PointerButton::Middle)
    {
        xf.pan += resp.drag_delta();
    }
    if let Some((zoom, [x, y])) = st.focus.take() {
        xf.focus(rect, w, h, zoom, x, y);
    }
    xf.wheel(ui, &resp, rect);
    let placed = xf.paint(&painter, rect, tex.0.id(), w, h);
    images.tiles.paint(
        &painter,
        rect,
        placed,
        &tex.0,
        &id,
        &tile_store,
        idx,
        [s.width, s.height],
    );
    let (origin, scale) = (placed.origin, placed.scale);
    st.canvas_xf = Some((origin, scale));
    let to_screen = |b: &BBox| placed.to_screen(b);
    let to_image = |p: Pos2| {
        let v = (p - origin) / scale;
        ((v.x as f64).clamp(0.0, w), (v.y as f64).clamp(0.0, h))
    };
    let rats = s.rationales.clone();
    // Pointer: start, continue and end drags.
    let primary = egui::PointerButton::Primary;
    // Where the button went down (a drag is recognised only after the
    // pointer has moved a few points, so the current position is already off).
    if resp.drag_started_by(primary)
        && let Some(p) = ui
            .input(|i| i.pointer.press_origin())
            .or(resp.interact_pointer_pos())
    {
        let ip = to_image(p);
        if st.drawing {
            st.drag = Some(Drag::Draw { start: ip });
        } else {
            let on_handle = st.selected.and_then(|i| {
                let rr = to_screen(&rats.get(i)?.bbox);
                Handle::ALL
                    .into_iter()
                    .find(|hd| hd.pos(rr).distance(p) <= HANDLE + 3.0)
                    .map(|hd| (i, hd))
            });
            if let Some((i, hd)) = on_handle {
                st.drag = Some(Drag::Resize {
                    idx: i,
                    orig: rats[i].bbox,
                    handle: hd,
                });
            } else if let Some(i) = hit(&rats, &st.hidden, &id, ip) {
                st.selected = Some(i);
                st.drag = Some(Drag::Move {
                    idx: i,
                    orig: rats[i].bbox,
                    grab: ip,
                });
            } else {
                st.selected = None;
            }
        }
    }
    if let (Some(d), Some(p)) = (st.drag, resp.interact_pointer_pos().or(resp.hover_pos())) {
        let ip = to_image(p);
        st.preview = match d {
            Drag::Draw { start } => Some(BBox::new(
                start.0.min(ip.0),
                start.1.min(ip.1),
                start.0.max(ip.0),
                start.1.max(ip.1),
            )),
            Drag::Move { orig, grab, .. } => Some(clamp_move(
                orig.translate(ip.0 - grab.0, ip.1 - grab.1),
                w,
                h,
            )),
            Drag::Resize { orig, handle, .. } => Some(handle.drag(orig, ip)),
        };
    }
    if resp.drag_stopped_by(primary)
        && let Some(d) = st.drag.take()
    {
        let pv = st.preview.take().and_then(|b| tidy(b, w, h));
        match (d, pv) {
            (Drag::Draw { .. }, Some(b)) => {
                let mut rs = rats.clone();
                rs.push(Rationale {
                    bbox: b,
                    label: rats.first().map(|x| x.label.clone()).unwrap_or_default(),
                });
                let n = rs.len();
                st.propose("add", rs);
                st.selected = Some(n - 1);
                st.drawing = false;
            }
            (Drag::Draw { .. }, None) => {
                st.messages.push((
                    format!("box too small: draw at least {MIN_SIDE} px on each side"),
                    false,
                ));
            }
            (Drag::Move { idx, orig, .. }, Some(b)) | (Drag::Resize { idx, orig, .. }, Some(b))
                if b != orig =>
            {
                let op = if matches!(d, Drag::Move { .. }) {
                    "move"
                } else {
                    "resize"
                };
                let mut rs = rats.clone();
                if let Some(x) = rs.get_mut(idx) {
                    x.bbox = b;
                }
                st.propose(op, rs);
            }
            _ => {}
        }
    }
    if !resp.dragged() && st.drag.is_some() && !ui.input(|i| i.pointer.any_down()) {
        st.drag = None;
        st.preview = None;
    }
    // Draw the boxes (the dragged one at its preview).
    let dragged = match st.drag {
        Some(Drag::Move { idx, .. } | Drag::Resize { idx, .. }) => Some(idx),
        _ => None,
    };
    for (i, rat) in rats.iter().enumerate() {
        if st.hidden.contains(&(id.clone(), i)) {
            continue;
        }
        let b = if dragged == Some(i) {
            st.preview.unwrap_or(rat.bbox)
        } else {
            rat.bbox
        };
        let rr = to_screen(&b);
        let sel = st.selected == Some(i);
        let col = if sel { SELECTED } else { GT };
        painter.rect_stroke(
            rr,
            0.0,
            Stroke::new(if sel { 2.5 } else { 2.0 }, col),
            StrokeKind::Outside,
        );
        let label = format!("{} {}", i + 1, rat.label);
        let galley =
            painter.layout_no_wrap(label, egui::FontId::proportional(12.0), Color32::BLACK);
        let pos = rr.left_top() - Vec2::new(0.0, galley.size().y + 2.0);
        painter.rect_filled(
            Rect::from_min_size(pos, galley.size() + Vec2::new(4.0, 0.0)),
            2.0,
            col,
        );
        painter.galley(pos + Vec2::new(2.0, 0.0), galley, Color32::BLACK);
        if sel {
            for hd in Handle::ALL {
                painter.rect_filled(
                    Rect::from_center_size(hd.pos(rr), Vec2::splat(2.0 * HANDLE)),
                    1.0,
                    SELECTED,
                );
            }
        }
    }
    // Where the policy's confident, correct zooms agree (the suspect ranking's
    // consensus box), when it differs from the ground truth.
    if st.by_suspicion
        && let Some(x) = st.suspicion.get(&id)
        && let Some(c) = x.consensus
        && x.score > 0.0
    {
        let rr = to_screen(&c);
        let col = Color32::from_rgb(255, 150, 60);
        crate::widgets::dashed_rect(&painter, rr, Stroke::new(1.5, col), 6.0);
        painter.text(
            rr.right_top() + Vec2::new(4.0, 0.0),
            egui::Align2::LEFT_TOP,
            format!(
                "policy looks here ({} of {} right)",
                x.correct, x.trajectories
            ),
            egui::FontId::proportional(12.0),
            col,
        );
    }
    if let (Some(Drag::Draw { .. }), Some(b)) = (st.drag, st.preview) {
        painter.rect_stroke(
            to_screen(&b),
            0.0,
            Stroke::new(2.0, SELECTED),
            StrokeKind::Outside,
        );
    }
    if st.drawing
        && let Some(p) = resp.hover_pos()
    {
        painter.line_segment(
            [Pos2::new(rect.left(), p.y), Pos2::new(rect.right(), p.y)],
            Stroke::new(0.5, Color32::from_white_alpha(90)),
        );
        painter.line_segment(
            [Pos2::new(p.x, rect.top()), Pos2::new(p.x, rect.bottom())],
            Stroke::new(0.5, Color32::from_white_alpha(90)),
        );
    }
    if let Some(p) = resp.hover_pos() {
        let (x, y) = to_image(p);
        ui.weak(format!(
            "x {x:.0}, y {y:.0}   ·   N: draw · drag a box: move · handles: resize · arrows: nudge · right-drag: pan · wheel: zoom"
        ));
    } else {
        ui.weak("N: draw · drag a box: move · handles: resize · arrows: nudge · right-drag: pan · wheel: zoom");
    }
}
