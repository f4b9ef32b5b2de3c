//! A grid of linked plots: the training view's curves and the Compare tab
//! share it.

use egui_plot::{Legend, Plot, PlotUi};

/// Lays out one plot per title in a grid of `cols` columns filling the
/// available space (leaving `reserve` points below), with linked x axes;
/// `draw(i, plot)` fills plot `i`.
pub fn plot_grid(
    ui: &mut egui::Ui,
    id: &str,
    titles: &[&str],
    cols: usize,
    reserve: f32,
    mut draw: impl FnMut(usize, &mut PlotUi<'_>),
) {
    let cols = cols.max(1);
    let w = (ui.available_width() - 12.0) / cols as f32;
    let h = ((ui.available_height() - reserve) / 2.0).max(120.0);
    let link = ui.scope_id().with((id, "x"));
    egui::Grid::new(id).num_columns(cols).show(ui, |ui| {
        for (i, title) in titles.iter().enumerate() {
            ui.vertical(|ui| {
                ui.strong(*title);
                Plot::new((id, i))
                    .width(w)
                    .height(h - 20.0)
                    .legend(Legend::default())
                    .link_axis(link, [true, false])
                    .show(ui, |p| draw(i, p));
            });
            if i % cols == cols - 1 {
                ui.end_row();
            }
        }
    });
}
