//! Painter helpers: dashed rectangles, and the message an image view shows
//! while its image is not ready (loading, or failed).

use egui::{Color32, Rect, Stroke};

/// A rectangle outlined with dashes of `dash` points (gaps of 4).
pub fn dashed_rect(painter: &egui::Painter, r: Rect, stroke: Stroke, dash: f32) {
    let pts = [
        r.left_top(),
        r.right_top(),
        r.right_bottom(),
        r.left_bottom(),
        r.left_top(),
    ];
    for s in pts.windows(2) {
        painter.extend(egui::Shape::dashed_line(&[s[0], s[1]], stroke, dash, 4.0));
    }
}

/// A top-down child `Ui` filling `rect` (a panel of a hand-laid-out tab).
pub fn child_ui(ui: &mut egui::Ui, rect: Rect, salt: &str) -> egui::Ui {
    ui.new_child(
        egui::UiBuilder::new()
            .max_rect(rect)
            .id_salt(salt)
            .layout(egui::Layout::top_down(egui::Align::Min)),
    )
}

/// The grey message centred in an image view whose image is not there yet
/// ("loading the image…") or cannot be shown (the error).
pub fn placeholder(painter: &egui::Painter, rect: Rect, msg: impl ToString) {
    // Wrapped to the rect: an error naming a long path must stay readable.
    let galley = painter.layout(
        msg.to_string(),
        egui::FontId::proportional(14.0),
        Color32::GRAY,
        (rect.width() - 24.0).max(40.0),
    );
    let pos = rect.center() - galley.size() / 2.0;
    painter.galley(pos, galley, Color32::GRAY);
}
