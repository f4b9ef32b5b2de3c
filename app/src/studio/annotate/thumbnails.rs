//! Thumbnails of the sample list: each sample's global view, computed on a
//! worker thread and kept as small textures.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use virl_engine::env::ImageStore;

type ThumbJobs = crossbeam_channel::Sender<(usize, usize, Arc<ImageStore>)>;
type ThumbDone = crossbeam_channel::Receiver<(usize, usize, Result<egui::ColorImage, String>)>;

/// A sample's thumbnail.
pub(super) enum Thumb {
    /// Ready to draw.
    Ready(egui::TextureId),
    /// Being made.
    Pending,
    /// Its image could not be read or decoded: why.
    Failed(String),
}

/// Thumbnails of the sample list: the policy's global view of each sample,
/// computed on a worker thread and kept as small textures.
#[derive(Default)]
pub(super) struct Thumbs {
    tex: HashMap<(usize, usize), egui::TextureHandle>,
    pending: HashSet<(usize, usize)>,
    worker: Option<(ThumbJobs, ThumbDone)>,
    failed: HashMap<(usize, usize), String>,
}

impl Thumbs {
    const CAPACITY: usize = 400;

    /// The thumbnail of sample `idx` of `split`, once its worker made it
    /// (requested on first ask; kept up to `CAPACITY` textures).
    pub(super) fn get(
        &mut self,
        ctx: &egui::Context,
        split: usize,
        idx: usize,
        store: &Arc<ImageStore>,
    ) -> Thumb {
        if self.worker.is_none() {
            let (jtx, jrx) = crossbeam_channel::bounded::<(usize, usize, Arc<ImageStore>)>(64);
            let (dtx, drx) = crossbeam_channel::bounded(64);
            let c2 = ctx.clone();
            std::thread::Builder::new()
                .name("virl-thumbs".into())
                .spawn(move || {
                    while let Ok((k, i, st)) = jrx.recv() {
                        let v = st.view() as usize;
                        // A panic while decoding must not leave the sample's
                        // spinner turning for ever.
                        let r = std::panic::catch_unwind(|| st.global_view(i))
                            .map_err(|_| "reading the image failed unexpectedly".to_string())
                            .and_then(|g| g.map_err(|e| e.to_string()))
                            .map(|g| egui::ColorImage::from_rgb([v, v], &g));
                        if dtx.send((k, i, r)).is_err() {
                            return;
                        }
                        c2.request_repaint();
                    }
                })
                .ok();
            self.worker = Some((jtx, drx));
        }
        if let Some((_, rx)) = &self.worker {
            while let Ok((k, i, r)) = rx.try_recv() {
                self.pending.remove(&(k, i));
                match r {
                    Ok(img) => {
                        if self.tex.len() >= Self::CAPACITY {
                            self.tex.clear();
                        }
                        let t = ctx.load_texture(
                            format!("thumb:{k}:{i}"),
                            img,
                            egui::TextureOptions::LINEAR,
                        );
                        self.tex.insert((k, i), t);
                    }
                    Err(e) => {
                        self.failed.insert((k, i), e);
                    }
                }
            }
        }
        if let Some(t) = self.tex.get(&(split, idx)) {
            return Thumb::Ready(t.id());
        }
        if let Some(e) = self.failed.get(&(split, idx)) {
            return Thumb::Failed(e.clone());
        }
        if !self.pending.contains(&(split, idx))
            && let Some((tx, _)) = &self.worker
            && tx.try_send((split, idx, store.clone())).is_ok()
        {
            self.pending.insert((split, idx));
        }
        Thumb::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_that_cannot_be_read_shows_its_error_instead_of_a_spinner() {
        let dir = tempfile::tempdir().expect("tmp");
        // A PNG whose header declares 60 000 × 60 000 pixels (10 GB decoded).
        std::fs::write(dir.path().join("big.png"), b"\x89PNG\r\n\x1a\nnot really").expect("png");
        let store = crate::studio::images::one_image_store(dir.path(), "big.png", 60_000, 60_000);
        let ctx = egui::Context::default();
        let mut thumbs = Thumbs::default();
        let start = std::time::Instant::now();
        loop {
            match thumbs.get(&ctx, 0, 0, &store) {
                Thumb::Failed(e) => {
                    assert!(e.contains("big.png"), "{e}");
                    break;
                }
                Thumb::Ready(_) => panic!("an undecodable image made a thumbnail"),
                Thumb::Pending => {
                    assert!(
                        start.elapsed().as_secs() < 60,
                        "still pending after a minute"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }
}
