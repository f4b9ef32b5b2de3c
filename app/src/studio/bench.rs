//! Frame-time benchmark of the studio, headless: the whole UI is laid out and
//! tessellated each frame (everything but the GPU upload and draw), with a
//! run training in the background and many trajectories loaded.

use super::commands::Cmd;
use super::run::RunStatus;
use super::selection::Scope;
use super::{Prefs, Studio, StudioOptions, Tab};
use std::sync::Arc;
use std::time::{Duration, Instant};
use virl_engine::config::SessionConfig;

/// Frame times in milliseconds.
pub struct FrameTimes {
    /// Trajectories loaded in the browser.
    pub trajectories: usize,
    /// Iterations the live run finished during the frames.
    pub live_iterations: usize,
    /// Sorted frame times (ms).
    pub ms: Vec<f64>,
}

impl FrameTimes {
    /// The `q`-quantile (0…1).
    pub fn quantile(&self, q: f64) -> f64 {
        let i = ((self.ms.len() as f64 - 1.0) * q).round() as usize;
        self.ms.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// One frame of the studio in a `size` window, headless: its logic, the
/// whole layout and the tessellation (textures are dropped, not uploaded).
pub(super) fn headless_frame(s: &mut Studio, ctx: &egui::Context, size: [f32; 2]) {
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(size[0], size[1]),
        )),
        ..Default::default()
    };
    s.tick(ctx);
    let mut out = ctx.run_ui(input, |ui| s.show(ui));
    let _ = ctx.tessellate(std::mem::take(&mut out.shapes), out.pixels_per_point);
    out.textures_delta.clear();
}

/// Runs `frames` frames of the Rollouts tab with "all loaded" trajectories
/// (`trajectories` of them, copies of the live run's first iteration) while
/// the live run keeps training; the selection moves one row per frame, so
/// the virtualised table scrolls. Frames are paced at 60 Hz.
pub fn frame_times(
    cfg: SessionConfig,
    trajectories: usize,
    frames: usize,
) -> Result<FrameTimes, String> {
    let tmp = std::env::temp_dir().join(format!("virl-bench-studio-{}", std::process::id()));
    let ctx = egui::Context::default();
    let mut s = Studio::with_context(
        ctx.clone(),
        StudioOptions {
            sessions_root: Some(tmp.clone()),
            config: Some(cfg),
            train: true,
            tab: Some(Tab::Rollouts),
            ..Default::default()
        },
        Prefs::default(),
    );
    let frame = |s: &mut Studio| headless_frame(s, &ctx, [1440.0, 900.0]);
    // Wait for the first iteration's trajectories.
    let start = Instant::now();
    while s.run.as_ref().is_none_or(|r| r.rollouts.is_empty()) {
        if let Some(RunStatus::Failed(e)) = s.run.as_ref().map(|r| r.status.clone()) {
            return Err(e);
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err("no iteration finished in 10 minutes".into());
        }
        frame(&mut s);
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = s.run.as_mut().ok_or("no run")?;
    let first = run.rollouts.values().next().cloned().ok_or("no rollouts")?;
    let per = first.len().max(1);
    let copies = trajectories.div_ceil(per);
    for k in 0..copies {
        let it = 1_000_000 + k as u64;
        let v: Vec<_> = first
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.iteration = it;
                t
            })
            .collect();
        run.rollouts.insert(it, Arc::new(v));
    }
    let before = run.metrics.len();
    s.browser.scope = Scope::All;
    s.browser.follow = false;
    for _ in 0..5 {
        frame(&mut s);
    }
    let mut ms = Vec::with_capacity(frames);
    for _ in 0..frames {
        s.run_cmd(Cmd::NextTrajectory);
        let t0 = Instant::now();
        frame(&mut s);
        let dt = t0.elapsed();
        ms.push(dt.as_secs_f64() * 1e3);
        // Paced like a 60 Hz display, so the live run keeps delivering
        // iterations (and re-sorting 100 000 rows) during the measurement.
        std::thread::sleep(Duration::from_millis(16).saturating_sub(dt));
    }
    ms.sort_by(f64::total_cmp);
    let loaded = s.browser.rows.len();
    let live = s
        .run
        .as_ref()
        .map(|r| r.metrics.len() - before)
        .unwrap_or(0);
    drop(s);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(FrameTimes {
        trajectories: loaded,
        live_iterations: live,
        ms,
    })
}
