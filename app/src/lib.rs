//! ViRL Studio, the application crate: the `virl` command line (and, with
//! the studio issue, the eframe GUI). It holds no training or scoring logic;
//! everything it computes comes from `virl-engine`.

pub mod cli;
pub mod studio;
