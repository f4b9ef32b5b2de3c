//! `--screenshot-to FILE`: render some frames, save the window as a PNG
//! and exit (the smoke test CI runs under Xvfb).

use super::Studio;
use crossbeam_channel::bounded;
use std::path::Path;
use std::time::Duration;

impl Studio {
    /// `--screenshot-to`: after the frame budget, saves a PNG of the window and closes it.
    pub(super) fn screenshot_logic(&mut self, ctx: &egui::Context) {
        if let Some(rx) = &self.shot_done
            && let Ok(r) = rx.try_recv()
        {
            if let Err(e) = r {
                eprintln!("error: {e}");
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let Some((path, frames)) = &self.screenshot else {
            return;
        };
        self.frame += 1;
        // Wait for the engine to be ready and the images to arrive, within
        // the budget (of frames, or of seconds).
        let due = match self.shot_after {
            Some((secs, start)) => start.elapsed().as_secs_f64() >= secs,
            None => self.frame >= *frames,
        };
        if due && self.shot_done.is_none() {
            let (tx, rx) = bounded(1);
            let path = path.clone();
            ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
                egui::ScreenshotCallback::new(move |img| {
                    let _ = tx.send(save_png(&img, &path));
                }),
            ));
            self.shot_done = Some(rx);
        }
        // A timed shot wakes the window once, when it is due, so that the
        // harness adds no frames to a live run it is timing.
        ctx.request_repaint_after(match self.shot_after {
            Some((secs, start)) if !due => {
                Duration::from_secs_f64((secs - start.elapsed().as_secs_f64()).max(0.01))
            }
            _ => Duration::from_millis(30),
        });
    }
}

fn save_png(img: &egui::ColorImage, path: &Path) -> Result<(), String> {
    let [w, h] = img.size;
    let mut buf = Vec::with_capacity(w * h * 4);
    for p in &img.pixels {
        buf.extend_from_slice(&p.to_array());
    }
    let out =
        image::RgbaImage::from_raw(w as u32, h as u32, buf).ok_or("screenshot has a bad size")?;
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    out.save(path)
        .map_err(|e| format!("cannot write the screenshot: {e}: {}", path.display()))
}
