//! The desktop studio (DESIGN §9): an eframe app over a [`run::Run`].
//!
//! The UI thread only draws and drains channels; training, file reading and
//! image preparation run on their own threads (see [`run`], [`images`] and
//! [`tiles`], the full-resolution tiles of large images).
//! Drawing code returns or queues what the user asked for
//! ([`app::Request`]); [`Studio::logic`] carries it out.
//!
//! Rooms: [`app`] (state, layout, window), `logic` (what it does), `menu`,
//! `help`, `palette`, `open`, `toasts`, `quit`, `screenshot`; the tabs
//! ([`training`], [`browser`] with [`selection`], [`rows`] and the
//! inspector, `compare`, `annotate`) and the tool windows ([`interchange`],
//! [`vlm`]).

mod annotate;
pub mod app;
pub mod bench;
pub mod bench_tiles;
pub mod browser;
pub mod commands;
pub mod compare;
mod help;
mod images;
mod inspector;
pub mod interchange;
mod logic;
mod menu;
mod open;
mod palette;
mod quit;
pub mod rows;
pub mod run;
mod screenshot;
pub mod selection;
mod settings;
mod tiles;
mod toasts;
mod training;
pub mod vlm;

use app::unix_secs;
pub use app::{Prefs, Request, Studio, StudioOptions, Tab, default_config, run_native};
pub use compare::CompareRun;
