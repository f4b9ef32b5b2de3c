//! What the studio's kittest flows share.

#![allow(dead_code)]

pub mod annotate;

use egui_kittest::Harness;
use std::time::Duration;
use virl_studio::studio::{Studio, StudioOptions};

/// The real `eframe::App` in a 1400×900 harness. A new session writes under
/// `opts.sessions_root`; never under the repository.
pub fn harness<'a>(opts: StudioOptions) -> Harness<'a, Studio> {
    Harness::builder()
        .with_size([1400.0, 900.0])
        .build_eframe(|cc| Studio::new(cc, opts))
}

/// Steps the UI until `done` holds. The bound only keeps a broken build from
/// hanging CI; it is not a speed requirement.
pub fn step_until(h: &mut Harness<'_, Studio>, what: &str, done: impl Fn(&Studio) -> bool) {
    for _ in 0..6000 {
        h.step();
        if done(h.state()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("gave up waiting for: {what}");
}
