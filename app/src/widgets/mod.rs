//! Drawing helpers shared by the studio's panels: the fidelity colour
//! scale and answer labels, dashed boxes and image placeholders, the pan /
//! zoom of an image view, and a grid of linked plots.

mod labels;
mod paint;
mod plot_grid;
mod view_xf;

pub use labels::{correct_label, fidelity_color};
pub use paint::{child_ui, dashed_rect, placeholder};
pub use plot_grid::plot_grid;
pub use view_xf::{Placed, ViewXf};
