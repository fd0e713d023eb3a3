//! A memo of recent combinations, keyed by (dataset key, settings), bounded by bytes.
//!
//! Toggling a setting back and forth (method A/B, a visit on/off) is the common interactive
//! pattern; the second time the result is already known and shows instantly. Results of 1000
//! APOGEE visits are ~200 MB each, so the memo is bounded by their size, not their number.
//!
//! The key holds the settings themselves (as their JSON text, compared in full), not a hash of
//! them, and the dataset key is a counter the window bumps on every load: a hit is always the
//! result of exactly these inputs.
//!
//! Generic over the settings and the result (any [`CacheSize`]): the spectral engine keeps
//! `ResultCache<Settings, Combined>`; another kind of data can keep its own.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::combine::memo::GenLru;

/// What a cached value costs in memory (its arrays), the measure of the cache's budget.
pub trait CacheSize {
    /// Approximate bytes held.
    fn cache_bytes(&self) -> usize;
}

type Key = (u64, String);

/// Most-recently-used results within a byte budget: values `V` keyed by a dataset key and the
/// settings `S` that produced them (compared as their JSON text).
#[derive(Debug)]
pub struct ResultCache<S, V> {
    entries: GenLru<Key, (Arc<V>, Duration)>,
    /// Use counter (each lookup or insertion is a generation of the memo).
    clock: u64,
    settings: PhantomData<fn(&S)>,
}

fn key<S: Serialize>(data_key: u64, settings: &S) -> Option<Key> {
    serde_json::to_string(settings).ok().map(|s| (data_key, s))
}

impl<S: Serialize, V: CacheSize> ResultCache<S, V> {
    /// A cache holding at most `budget` bytes of results besides the newest (0 disables it).
    #[must_use]
    pub fn new(budget: usize) -> Self {
        Self {
            entries: GenLru::new(budget),
            clock: 0,
            settings: PhantomData,
        }
    }

    /// The result for exactly these inputs and the time it took to compute, marked as most
    /// recently used.
    pub fn get(&mut self, data_key: u64, settings: &S) -> Option<(Arc<V>, Duration)> {
        let key = key(data_key, settings)?;
        self.clock += 1;
        let hit = self.entries.get(&key, self.clock, |_| true)?;
        Some((Arc::clone(&hit.0), hit.1))
    }

    /// Remember a result, evicting the least recently used beyond the budget.
    pub fn insert(&mut self, data_key: u64, settings: S, result: Arc<V>, elapsed: Duration) {
        if self.entries.budget() == 0 {
            return;
        }
        let Some(key) = key(data_key, &settings) else {
            return;
        };
        self.clock += 1;
        let bytes = result.cache_bytes();
        self.entries
            .insert(key, Arc::new((result, elapsed)), bytes, self.clock);
    }

    /// Forget everything about datasets other than `data_key` (a new dataset was loaded).
    pub fn retain_dataset(&mut self, data_key: u64) {
        self.entries.retain(|k| k.0 == data_key);
    }

    /// Number of cached results.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held by the cached results.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.entries.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::combine::VisitFit;
    use crate::combine::{Combined, MethodResult};
    use crate::engine::result_bytes;
    use crate::model::OutputGrid;
    use crate::settings::Settings;

    fn combined(settings: &Settings, n_pred: usize) -> Arc<Combined> {
        Arc::new(Combined {
            grid: OutputGrid::boss(),
            forward: Some(MethodResult {
                visits: vec![VisitFit {
                    prediction: vec![0.0; n_pred],
                    ..VisitFit::default()
                }],
                ..MethodResult::default()
            }),
            forward_error: None,
            standard: None,
            standard_error: None,
            others: Vec::new(),
            visits: Vec::new(),
            warnings: Vec::new(),
            settings: settings.clone(),
            loo_pending: false,
            velocity: None,
        })
    }

    fn lags(n: usize) -> Settings {
        Settings {
            band_lags: n,
            ..Settings::default()
        }
    }

    #[test]
    fn hit_miss_and_lru_eviction() {
        let mut c = ResultCache::new(1 << 30);
        let (a, b) = (Settings::default(), lags(7));
        c.insert(1, a.clone(), combined(&a, 0), Duration::ZERO);
        c.insert(1, b.clone(), combined(&b, 0), Duration::ZERO);
        assert!(c.get(2, &a).is_none(), "other dataset key must miss");
        assert_eq!(c.get(1, &a).map(|r| r.0.settings.band_lags), Some(5));
        assert_eq!(c.len(), 2);
        c.retain_dataset(3);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_by_bytes_not_by_count() {
        // Results of ~8 MB each (1M predicted pixels) in a 20 MB budget: the newest plus at most
        // two older ones stay, however many are inserted, and the most recently used survive.
        let mut c = ResultCache::new(20 << 20);
        let one = result_bytes(&combined(&lags(0), 1 << 20));
        assert!(one > 8 << 20 && one < 9 << 20, "{one}");
        for n in 0..10 {
            let s = lags(n);
            c.insert(1, s.clone(), combined(&s, 1 << 20), Duration::ZERO);
            // Keep lags = 0 in use.
            assert!(c.get(1, &lags(0)).is_some(), "the most recently used stays");
        }
        assert!(c.bytes() <= (20 << 20) + one, "{} bytes", c.bytes());
        assert!(c.len() <= 3, "{} results", c.len());
        assert!(c.get(1, &lags(9)).is_some(), "the newest stays");
        assert!(c.get(1, &lags(3)).is_none(), "old ones are evicted");
        // Tiny results: many fit (the old count limit of 16 is gone).
        let mut c = ResultCache::new(20 << 20);
        for n in 0..100 {
            let s = lags(n);
            c.insert(1, s.clone(), combined(&s, 0), Duration::ZERO);
        }
        assert_eq!(c.len(), 100);
    }
}
