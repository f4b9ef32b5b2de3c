//! Small coloured labels and the fidelity colour scale.

use egui::Color32;

/// The diverging colour of a fidelity score: red at −1, grey at 0, blue at +1.
pub fn fidelity_color(f: f64) -> Color32 {
    let t = f.clamp(-1.0, 1.0) as f32;
    let grey = [200.0, 200.0, 200.0];
    let end = if t < 0.0 {
        [230.0, 60.0, 60.0]
    } else {
        [60.0, 150.0, 250.0]
    };
    let a = t.abs();
    let c = |i: usize| (grey[i] + (end[i] - grey[i]) * a) as u8;
    Color32::from_rgb(c(0), c(1), c(2))
}

/// "yes" in green or "no" in red: whether an answer was correct.
pub fn correct_label(ui: &mut egui::Ui, ok: bool) {
    ui.colored_label(
        if ok {
            Color32::from_rgb(90, 200, 120)
        } else {
            Color32::from_rgb(230, 90, 90)
        },
        if ok { "yes" } else { "no" },
    );
}
