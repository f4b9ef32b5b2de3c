//! The sample list: search, split choice, suspicion order and thumbnails.

use super::{AnnotateState, Thumb};
use crate::studio::run::Run;
use egui::Vec2;

/// The searchable sample list with thumbnails, most suspect first.
pub(super) fn sample_list(ui: &mut egui::Ui, r: &mut Run, st: &mut AnnotateState) {
    ui.horizontal(|ui| {
        let names = if st.docs[1].is_some() {
            vec!["training split", "evaluation split"]
        } else {
            vec!["training and evaluation (one folder)"]
        };
        st.split = st.split.min(names.len() - 1);
        let before = st.split;
        egui::ComboBox::new("annot-split", "samples")
            .selected_text(names[st.split])
            .show_ui(ui, |ui| {
                for (k, n) in names.iter().enumerate() {
                    ui.selectable_value(&mut st.split, k, *n);
                }
            });
        if st.split != before {
            st.sample = None;
            st.selected = None;
        }
    });
    ui.add(
        egui::TextEdit::singleline(&mut st.search)
            .hint_text("search id, question, answer, label")
            .desired_width(f32::INFINITY),
    );
    ui.horizontal_wrapped(|ui| {
        st.by_suspicion = !st.suspicion_off;
        let mut on = st.by_suspicion;
        let resp = ui.checkbox(&mut on, "most suspect first");
        st.suspicion_off = !on;
        st.by_suspicion = on;
        resp
            .on_hover_text("Samples where the policy answers right while its confident zooms agree on a place away from the ground truth come first: likely wrong boxes.");
        let auto = st.by_suspicion && !st.auto_loaded && r.rollouts.is_empty() && !r.stored.is_empty();
        if auto
            || (st.by_suspicion
                && r.stored.len() > r.rollouts.len()
                && ui.small_button("load the last 50 iterations").clicked())
        {
            st.auto_loaded = true;
            st.load_requested = r.stored.iter().rev().take(50).copied().collect();
        }
    });
    st.update_suspicion(r);
    if st.by_suspicion {
        ui.weak(format!(
            "from {} trajectories in {} loaded iterations",
            st.suspicion_evidence,
            r.rollouts.len()
        ));
    }
    let ids = st.filtered_ids();
    let Some(doc) = st.docs[st.split].as_ref() else {
        return;
    };
    let store = doc.store.clone();
    let split = st.split;
    ui.weak(format!("{} of {} samples", ids.len(), doc.dataset.len()));
    let row_h = 44.0;
    let scroll_to = if st.scroll_to_selected {
        st.scroll_to_selected = false;
        st.sample
            .as_ref()
            .and_then(|s| ids.iter().position(|x| x == s))
    } else {
        None
    };
    let mut area = egui::ScrollArea::vertical()
        .id_salt("annot-list-scroll")
        .auto_shrink([false, false]);
    if let Some(i) = scroll_to {
        area = area.vertical_scroll_offset(
            (i as f32 * (row_h + ui.spacing().item_spacing.y) - 80.0).max(0.0),
        );
    }
    let mut clicked = None;
    area.show_rows(ui, row_h, ids.len(), |ui, range| {
        for i in range {
            let id = &ids[i];
            let Some(s) = doc.dataset.get(id) else {
                continue;
            };
            let idx = store.dataset().samples().iter().position(|x| x.id == *id);
            let sel = st.sample.as_deref() == Some(id.as_str());
            ui.horizontal(|ui| {
                ui.set_height(row_h);
                let side = [row_h - 4.0, row_h - 4.0];
                match idx.map(|k| st.thumbs.get(ui.ctx(), split, k, &store)) {
                    Some(Thumb::Ready(t)) => {
                        ui.add(egui::Image::new((t, Vec2::splat(row_h - 4.0))));
                    }
                    Some(Thumb::Pending) => {
                        ui.add_sized(side, egui::Spinner::new());
                    }
                    Some(Thumb::Failed(e)) => {
                        ui.add_sized(
                            side,
                            egui::Label::new(
                                egui::RichText::new("⚠")
                                    .color(egui::Color32::from_rgb(230, 80, 80)),
                            ),
                        )
                        .on_hover_text(format!("cannot show this image: {e}"));
                    }
                    None => {
                        ui.add_sized(side, egui::Label::new("?"));
                    }
                }
                let mut text = format!(
                    "{}\n{} · {} box{}",
                    s.id,
                    s.answer,
                    s.rationales.len(),
                    if s.rationales.len() == 1 { "" } else { "es" }
                );
                if st.by_suspicion
                    && let Some(x) = st.suspicion.get(id)
                {
                    text.push_str(&format!(" · suspicion {:.2}", x.score));
                }
                if ui
                    .selectable_label(sel, text)
                    .on_hover_text(&s.question)
                    .clicked()
                {
                    clicked = Some(id.clone());
                }
            });
        }
    });
    if let Some(c) = clicked {
        st.user_chose = true;
        st.select_sample(Some(c));
    }
}
