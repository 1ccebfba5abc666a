//! The table of fills in progress, by key: joining it is how coalescing happens.

use super::{Fill, FillWriter, InflightBudget};
use crate::cache::key::{CacheKey, VaryValues};
use crate::cache::store::Hasher;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// The fills in progress, by key. Joining is how coalescing happens.
pub(crate) struct Fills<M> {
    /// The fills new requests may join, by key; a fill leaves when it closes its door or is done.
    map: Mutex<HashMap<FillKey, Arc<Fill<M>>, Hasher>>,
    /// Given to every new fill, which reserves the bytes it retains from it.
    budget: Arc<InflightBudget>,
}

/// A fill is shared by requests for the same URL and, once the URL's Vary names are known, the
/// same normalised values for them.
pub(crate) type FillKey = (CacheKey, VaryValues);

/// The result of [`Fills::join`].
pub(crate) enum Joined<M> {
    /// This request fetches; it must drive the writer to the end.
    Leader(FillWriter<M>),
    /// Another request is fetching; read its fill.
    Follower(Arc<Fill<M>>),
}

impl<M> Fills<M> {
    pub(crate) fn new(budget: Arc<InflightBudget>) -> Self {
        Self {
            map: Mutex::new(HashMap::default()),
            budget,
        }
    }

    pub(crate) fn budget(&self) -> &Arc<InflightBudget> {
        &self.budget
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FillKey, Arc<Fill<M>>, Hasher>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the fill for `key`, or starts one.
    pub(crate) fn join(self: &Arc<Self>, key: FillKey) -> Joined<M> {
        let mut map = self.lock();
        if let Some(f) = map.get(&key) {
            return Joined::Follower(f.clone());
        }
        let fill = Arc::new(Fill::new(self.budget.clone()));
        map.insert(key.clone(), fill.clone());
        Joined::Leader(FillWriter::new(fill, Some((self.clone(), key))))
    }

    /// A fill nobody can join: for requests that must not wait on others but may still store.
    pub(crate) fn solo(&self) -> FillWriter<M> {
        FillWriter::new(Arc::new(Fill::new(self.budget.clone())), None)
    }

    /// Number of fills in progress.
    pub(crate) fn in_progress(&self) -> usize {
        self.lock().len()
    }
}
