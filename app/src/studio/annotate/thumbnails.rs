//! Thumbnails of the sample list: each sample's global view, computed on a
//! worker thread and kept as small textures.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use virl_engine::env::ImageStore;

type ThumbJobs = crossbeam_channel::Sender<(usize, usize, Arc<ImageStore>)>;
type ThumbDone = crossbeam_channel::Receiver<(usize, usize, Result<egui::ColorImage, String>)>;

/// Thumbnails of the sample list: the policy's global view of each sample,
/// computed on a worker thread and kept as small textures.
#[derive(Default)]
pub(super) struct Thumbs {
    tex: HashMap<(usize, usize), egui::TextureHandle>,
    pending: HashSet<(usize, usize)>,
    worker: Option<(ThumbJobs, ThumbDone)>,
    failed: HashSet<(usize, usize)>,
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
    ) -> Option<egui::TextureId> {
        if self.worker.is_none() {
            let (jtx, jrx) = crossbeam_channel::bounded::<(usize, usize, Arc<ImageStore>)>(64);
            let (dtx, drx) = crossbeam_channel::bounded(64);
            let c2 = ctx.clone();
            std::thread::Builder::new()
                .name("virl-thumbs".into())
                .spawn(move || {
                    while let Ok((k, i, st)) = jrx.recv() {
                        let v = st.view() as usize;
                        let r = st
                            .global_view(i)
                            .map(|g| egui::ColorImage::from_rgb([v, v], &g))
                            .map_err(|e| e.to_string());
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
                    Err(_) => {
                        self.failed.insert((k, i));
                    }
                }
            }
        }
        if let Some(t) = self.tex.get(&(split, idx)) {
            return Some(t.id());
        }
        if !self.pending.contains(&(split, idx))
            && !self.failed.contains(&(split, idx))
            && let Some((tx, _)) = &self.worker
            && tx.try_send((split, idx, store.clone())).is_ok()
        {
            self.pending.insert((split, idx));
        }
        None
    }
}
