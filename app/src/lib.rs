//! ViRL Studio, the application crate: the `virl` command line ([`cli`])
//! and the eframe studio ([`studio`], drawn with the shared [`widgets`]).
//! It holds no training or scoring logic; everything it shows comes from
//! `virl-engine`.

#![warn(missing_docs)]

pub mod cli;
pub mod studio;
pub mod widgets;
