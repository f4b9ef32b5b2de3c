//! The samples of a session's two splits by id, with their image stores.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use virl_engine::config::SessionConfig;
use virl_engine::dataset::{Dataset, Sample};
use virl_engine::env::{ImageSource, ImageStore};
use virl_engine::trainer::load_splits_for;

/// Samples of both splits by id, with their images (ZoomBench images are
/// rendered on demand).
pub struct SampleIndex {
    stores: [Arc<ImageStore>; 2],
    by_id: HashMap<String, (usize, usize)>,
}

impl SampleIndex {
    /// Builds the index of a config's datasets (slow for large datasets: call
    /// it off the UI thread).
    /// `session` is the session folder, whose correction journal applies to
    /// generated data.
    pub fn build(cfg: &SessionConfig, session: Option<&Path>) -> Result<Self, String> {
        let (train, ts, eval, es) = load_splits_for(cfg, session)?;
        let store = |d: Dataset, s: ImageSource| {
            Arc::new(ImageStore::new(Arc::new(d), s, cfg.env.global_view, 16))
        };
        Ok(Self::from_stores([store(train, ts), store(eval, es)]))
    }

    /// The index over existing stores (a live trainer's, so that images are
    /// neither loaded nor indexed twice).
    pub fn from_stores(stores: [Arc<ImageStore>; 2]) -> Self {
        let mut by_id = HashMap::new();
        for (k, st) in stores.iter().enumerate().rev() {
            for (i, s) in st.dataset().samples().iter().enumerate() {
                by_id.insert(s.id.clone(), (k, i));
            }
        }
        Self { stores, by_id }
    }

    /// The image stores of the train and eval splits.
    pub fn stores(&self) -> &[Arc<ImageStore>; 2] {
        &self.stores
    }

    /// The sample with this id, its image store and index there.
    pub fn get(&self, id: &str) -> Option<(&Sample, &Arc<ImageStore>, usize)> {
        let &(k, i) = self.by_id.get(id)?;
        let st = &self.stores[k];
        Some((&st.dataset().samples()[i], st, i))
    }
}
