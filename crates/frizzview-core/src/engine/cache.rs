//! A small memo of recent combinations, keyed by (dataset key, settings).
//!
//! Toggling a setting back and forth (method A/B, a visit on/off) is the common interactive
//! pattern; the second time the result is already known and shows instantly.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::combine::Combined;
use crate::settings::Settings;

/// Most-recently-used results, compared by value (settings hold floats, so no hashing).
#[derive(Debug)]
pub struct ResultCache {
    capacity: usize,
    entries: VecDeque<(u64, Settings, Arc<Combined>, Duration)>,
}

impl ResultCache {
    /// A cache holding at most `capacity` results (0 disables it).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: VecDeque::new(),
        }
    }

    /// The result for exactly these inputs and the time it took to compute, marked as most
    /// recently used.
    pub fn get(&mut self, data_key: u64, settings: &Settings) -> Option<(Arc<Combined>, Duration)> {
        let pos = self
            .entries
            .iter()
            .position(|(k, s, _, _)| *k == data_key && s == settings)?;
        let entry = self.entries.remove(pos)?;
        let result = (Arc::clone(&entry.2), entry.3);
        self.entries.push_front(entry);
        Some(result)
    }

    /// Remember a result, evicting the least recently used beyond capacity.
    pub fn insert(
        &mut self,
        data_key: u64,
        settings: Settings,
        result: Arc<Combined>,
        elapsed: Duration,
    ) {
        if self.capacity == 0 {
            return;
        }
        self.entries
            .retain(|(k, s, _, _)| !(*k == data_key && *s == settings));
        self.entries
            .push_front((data_key, settings, result, elapsed));
        self.entries.truncate(self.capacity);
    }

    /// Forget everything about datasets other than `data_key` (a new dataset was loaded).
    pub fn retain_dataset(&mut self, data_key: u64) {
        self.entries.retain(|(k, _, _, _)| *k == data_key);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OutputGrid;

    fn combined(settings: &Settings) -> Arc<Combined> {
        Arc::new(Combined {
            grid: OutputGrid::boss(),
            forward: None,
            standard: None,
            visits: Vec::new(),
            warnings: Vec::new(),
            settings: settings.clone(),
        })
    }

    #[test]
    fn hit_miss_and_lru_eviction() {
        let mut c = ResultCache::new(2);
        let a = Settings::default();
        let b = Settings {
            band_lags: 7,
            ..Settings::default()
        };
        let d = Settings {
            band_lags: 9,
            ..Settings::default()
        };
        c.insert(1, a.clone(), combined(&a), Duration::ZERO);
        c.insert(1, b.clone(), combined(&b), Duration::ZERO);
        assert!(c.get(2, &a).is_none(), "other dataset key must miss");
        assert_eq!(c.get(1, &a).map(|r| r.0.settings.band_lags), Some(5));
        // a was used last, so inserting d evicts b.
        c.insert(1, d.clone(), combined(&d), Duration::ZERO);
        assert_eq!(c.len(), 2);
        assert!(c.get(1, &b).is_none());
        assert!(c.get(1, &a).is_some() && c.get(1, &d).is_some());
        c.retain_dataset(3);
        assert!(c.is_empty());
    }
}
