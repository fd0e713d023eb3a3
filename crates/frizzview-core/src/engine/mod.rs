//! The live engine: runs combinations off the UI thread, newest request first, with a cache.
//!
//! [`worker::Worker`] is the generic part (thread, generation counter, cancellation, stale results
//! dropped, wake-up callback); [`CombineEngine`] runs [`crate::combine::combine`] on it and
//! memoises recent results in a [`cache::ResultCache`]. No egui here: the window passes a wake-up
//! callback that requests a repaint. [`CombineEngine::inline`] computes inside `submit`, for
//! deterministic tests.

pub mod cache;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use crate::combine::{self, CombineError, Combined};
use crate::model::Dataset;
use crate::settings::Settings;

pub use worker::{Done, WakeFn, Worker};

/// What a combination job returns: its inputs' identity and the outcome.
#[derive(Debug)]
pub struct CombineOutput {
    /// The dataset key given to [`CombineEngine::submit`].
    pub data_key: u64,
    /// The settings that were used.
    pub settings: Settings,
    /// The combination, or why it failed.
    pub result: Result<Arc<Combined>, CombineError>,
    /// `Some(original compute time)` when the result came from the cache.
    pub cached: Option<Duration>,
}

/// A finished combination as delivered by [`CombineEngine::poll`].
pub type CombineDone = Done<CombineOutput>;

/// Runs [`combine::combine`] in the background; see the module docs.
#[derive(Debug)]
pub struct CombineEngine {
    worker: Worker<CombineOutput>,
    cache: cache::ResultCache,
}

/// How many recent results the engine keeps.
const CACHE_CAPACITY: usize = 16;

impl CombineEngine {
    /// An engine with a background thread; `wake` is called after each result.
    pub fn threaded(wake: Option<WakeFn>) -> std::io::Result<Self> {
        Ok(Self::with_worker(Worker::threaded(wake)?))
    }

    /// An engine that computes synchronously inside [`CombineEngine::submit`].
    #[must_use]
    pub fn inline() -> Self {
        Self::with_worker(Worker::inline())
    }

    fn with_worker(worker: Worker<CombineOutput>) -> Self {
        Self {
            worker,
            cache: cache::ResultCache::new(CACHE_CAPACITY),
        }
    }

    /// Request a combination of `data` (identified by `data_key`, which must change whenever
    /// the dataset does) with `settings`. Cancels the previous request. Returns its generation.
    pub fn submit(&mut self, data: Arc<Dataset>, data_key: u64, settings: Settings) -> u64 {
        self.cache.retain_dataset(data_key);
        if let Some((hit, elapsed)) = self.cache.get(data_key, &settings) {
            // Still goes through the worker so ordering and generations stay uniform; the job
            // is trivial.
            return self.worker.submit(move |_| CombineOutput {
                data_key,
                settings,
                result: Ok(hit),
                cached: Some(elapsed),
            });
        }
        self.worker.submit(move |cancel| {
            let result = combine::combine(&data, &settings, cancel).map(Arc::new);
            CombineOutput {
                data_key,
                settings,
                result,
                cached: None,
            }
        })
    }

    /// The newest finished combination not older than the last one delivered; see
    /// [`Worker::poll`]. Successful results are cached.
    pub fn poll(&mut self) -> Option<CombineDone> {
        let done = self.worker.poll()?;
        if let (Ok(result), None) = (&done.value.result, done.value.cached) {
            self.cache.insert(
                done.value.data_key,
                done.value.settings.clone(),
                Arc::clone(result),
                done.elapsed,
            );
        }
        Some(done)
    }

    /// Generation of the newest request.
    #[must_use]
    pub fn latest_generation(&self) -> u64 {
        self.worker.latest_generation()
    }

    /// True while the newest request has not been delivered.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.worker.is_busy()
    }

    /// Whether combinations run on a background thread.
    #[must_use]
    pub fn is_threaded(&self) -> bool {
        self.worker.is_threaded()
    }

    /// Cancel the newest request.
    pub fn cancel(&mut self) {
        self.worker.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Visit, VisitArrays, VisitMeta};

    fn tiny_dataset() -> Arc<Dataset> {
        let n = 50;
        let wavelength_aa: Vec<f64> = (0..n).map(|i| 5000.0 + i as f64).collect();
        let visit = Visit::new(
            VisitMeta {
                name: "v0".into(),
                ..VisitMeta::default()
            },
            VisitArrays {
                wavelength_aa,
                flux: vec![1.0; n],
                ivar: vec![1.0; n],
                ..VisitArrays::default()
            },
        )
        .expect("valid visit");
        Arc::new(Dataset {
            visits: vec![Arc::new(visit)],
            ..Dataset::default()
        })
    }

    fn bookkeeping_only() -> Settings {
        Settings {
            forward: None,
            standard: None,
            ..Settings::default()
        }
    }

    #[test]
    fn inline_engine_computes_then_serves_the_cache() {
        let data = tiny_dataset();
        let mut engine = CombineEngine::inline();
        let mut s = bookkeeping_only();
        engine.submit(Arc::clone(&data), 1, s.clone());
        let first = engine.poll().expect("inline result");
        assert!(first.value.cached.is_none());
        let combined = first.value.result.expect("combines");
        assert_eq!(combined.visits.len(), 1);
        assert_eq!(combined.settings, s);

        // Different settings: computed again, and reflect the change.
        s.visits = vec![crate::settings::VisitSetting {
            weight: 0.5,
            ..Default::default()
        }];
        engine.submit(Arc::clone(&data), 1, s.clone());
        let second = engine.poll().expect("inline result");
        assert!(second.value.cached.is_none());
        let w = second.value.result.expect("combines").visits[0].weight;
        assert!((w - 0.5).abs() < 1e-15);

        // Back to the first settings: served from the cache, same Arc.
        engine.submit(Arc::clone(&data), 1, bookkeeping_only());
        let third = engine.poll().expect("inline result");
        assert!(third.value.cached.is_some());
        assert!(Arc::ptr_eq(&third.value.result.expect("cached"), &combined));

        // A new dataset key never hits the old entries.
        engine.submit(data, 2, bookkeeping_only());
        assert!(engine.poll().expect("result").value.cached.is_none());
    }

    #[test]
    fn errors_are_delivered_not_cached() {
        let mut engine = CombineEngine::inline();
        engine.submit(Arc::new(Dataset::default()), 1, bookkeeping_only());
        let done = engine.poll().expect("result");
        assert_eq!(done.value.result.err(), Some(CombineError::NoVisits));
        engine.submit(Arc::new(Dataset::default()), 1, bookkeeping_only());
        assert!(engine.poll().expect("result").value.cached.is_none());
    }

    #[test]
    fn threaded_engine_delivers_the_newest() {
        let data = tiny_dataset();
        let mut engine = CombineEngine::threaded(None).expect("spawn");
        assert!(engine.is_threaded());
        let mut last = 0;
        for lags in 5..10 {
            let s = Settings {
                band_lags: lags,
                ..bookkeeping_only()
            };
            last = engine.submit(Arc::clone(&data), 1, s);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut got = None;
        while engine.is_busy() {
            assert!(std::time::Instant::now() < deadline, "no result");
            if let Some(d) = engine.poll() {
                got = Some(d);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = got.expect("a result");
        assert_eq!(got.generation, last);
        assert_eq!(got.value.settings.band_lags, 9);
        assert_eq!(engine.latest_generation(), last);
    }
}
