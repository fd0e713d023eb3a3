//! The live engine: runs combinations off the UI thread, newest request first, with a cache.
//!
//! [`worker::Worker`] is the generic part (thread, generation counter, cancellation, stale results
//! dropped, wake-up callback, panics caught); [`CombineEngine`] runs
//! [`crate::combine::combine_with`] on it with the [`Caches`] it owns and memoises recent results
//! in a byte-bounded [`cache::ResultCache`]. A combination that panics is delivered as an error
//! naming its settings, the engine's caches are replaced by fresh ones, and the next request runs
//! as usual. No egui here: the window passes a wake-up callback that requests a repaint.
//! [`CombineEngine::inline`] computes inside `submit`, for deterministic tests.
//!
//! Each request delivers twice ([`combine::combine_staged`]): first the combination with the
//! leave-one-visit-out scores pending (`Done::last` false, `Combined::loo_pending`), then the complete one. The
//! fit of 30 APOGEE visits takes about 10 ms and its scores about ten times that, so the window
//! draws the fit at once, a slider drag submits the next request as soon as the fit is in (which
//! cancels the scoring), and the scores arrive when the drag stops. Only complete results are
//! memoised.

pub mod cache;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use crate::combine::{self, Caches, Cancel, CombineError, Combined, MethodResult};
use crate::model::Dataset;
use crate::settings::Settings;

pub use worker::{Done, WakeFn, Worker};

/// Approximate bytes held by a result (its arrays; the continuous model's coefficients are small
/// next to the per-visit predictions).
#[must_use]
pub fn result_bytes(c: &Combined) -> usize {
    let method = |m: &MethodResult| {
        let band: usize = m.band.iter().map(Vec::len).sum();
        let visits: usize = m
            .visits
            .iter()
            .map(|v| v.prediction.len() + v.robust_weight.len())
            .sum();
        8 * (m.flux.len() + m.var.len() + band + m.flags.len() + visits) + m.no_data.len()
    };
    std::mem::size_of::<Combined>()
        + 8 * c.grid.len()
        + c.results()
            .into_iter()
            .map(|(_, r)| method(r))
            .sum::<usize>()
        + c.visits.len() * 64
}

impl cache::CacheSize for Combined {
    fn cache_bytes(&self) -> usize {
        result_bytes(self)
    }
}

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

/// What the engine runs for a request: [`combine::combine_with`] unless a test replaces it.
pub type Combiner = Arc<
    dyn Fn(&Dataset, &Settings, &Cancel, &Caches) -> Result<Combined, CombineError> + Send + Sync,
>;

/// What the engine runs: [`combine::combine_staged`] unless a test replaces it (the last
/// argument receives the early result).
pub type StagedCombiner = Arc<
    dyn Fn(
            &Dataset,
            &Settings,
            &Cancel,
            &Caches,
            &mut dyn FnMut(&Combined),
        ) -> Result<Combined, CombineError>
        + Send
        + Sync,
>;

/// Runs [`combine::combine_staged`] in the background; see the module docs.
pub struct CombineEngine {
    worker: Worker<CombineOutput>,
    cache: cache::ResultCache<Settings, Combined>,
    caches: Arc<Caches>,
    combiner: StagedCombiner,
}

impl std::fmt::Debug for CombineEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CombineEngine")
            .field("worker", &self.worker)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Bytes of recent results the engine keeps beyond the newest one (one result of 1000 APOGEE
/// visits with both methods is ~200 MB, of 30 visits ~6 MB).
pub const RESULT_CACHE_BYTES: usize = 256 << 20;

/// A short description of the settings for error messages (the per-visit entries summarised).
#[must_use]
pub fn describe_settings(s: &Settings) -> String {
    let forward = s.forward.as_ref().map_or_else(
        || "off".to_owned(),
        |f| format!("{:?} basis", f.basis).to_lowercase(),
    );
    let standard = s.standard.as_ref().map_or_else(
        || "off".to_owned(),
        |st| format!("{:?}", st.interpolator).to_lowercase(),
    );
    let excluded = s.visits.iter().filter(|v| !v.include).count();
    let manual = s.visits.iter().filter(|v| v.shift_kms.is_some()).count();
    format!(
        "forward model {forward}, standard practice {standard}, grid {:?}, shifts {}, \
         selection {:?}, weighting {:?}, bad bits {:#x}, {} lags, extensions {:?}, \
         {} visits ({excluded} excluded, {manual} with manual shifts)",
        s.grid,
        s.shift.label(),
        s.selection,
        s.weighting,
        s.bad_bits,
        s.band_lags,
        s.extensions,
        s.visits.len(),
    )
}

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
            cache: cache::ResultCache::new(RESULT_CACHE_BYTES),
            caches: Arc::new(Caches::new()),
            combiner: Arc::new(combine::combine_staged),
        }
    }

    /// Replace what runs for each request (tests: a combination that panics on some settings).
    /// The replacement delivers once per request (no early result).
    #[must_use]
    pub fn with_combiner(mut self, combiner: Combiner) -> Self {
        self.combiner = Arc::new(move |d, s, c, k, _first| combiner(d, s, c, k));
        self
    }

    /// Replace what runs for each request by a staged combination (tests: one that holds its
    /// second stage back).
    #[must_use]
    pub fn with_staged_combiner(mut self, combiner: StagedCombiner) -> Self {
        self.combiner = combiner;
        self
    }

    /// Bytes held by the engine's caches: (results, method caches).
    #[must_use]
    pub fn cache_bytes(&self) -> (usize, usize) {
        (self.cache.bytes(), self.caches.bytes())
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
        let caches = Arc::clone(&self.caches);
        let combiner = Arc::clone(&self.combiner);
        self.worker.submit_staged(move |cancel, early| {
            let mut first = |c: &Combined| {
                early(CombineOutput {
                    data_key,
                    settings: settings.clone(),
                    result: Ok(Arc::new(c.clone())),
                    cached: None,
                });
            };
            let run = std::panic::AssertUnwindSafe(|| {
                combiner(&data, &settings, cancel, &caches, &mut first)
            });
            let result = match std::panic::catch_unwind(run) {
                Ok(r) => r.map(Arc::new),
                Err(payload) => Err(CombineError::Panicked(format!(
                    "{} (settings: {})",
                    worker::panic_message(payload.as_ref()),
                    describe_settings(&settings)
                ))),
            };
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
        if let Some((generation, message)) = self.worker.take_panic() {
            // Only reachable if the catch inside the job failed; the caches may be half-built.
            log::error!("combination {generation} panicked outside its guard: {message}");
            self.caches = Arc::new(Caches::new());
        }
        let done = self.worker.poll()?;
        if matches!(done.value.result, Err(CombineError::Panicked(_))) {
            // Whatever the panicking combination left in the caches is not trusted.
            self.caches = Arc::new(Caches::new());
        }
        // A request's first delivery (`!done.last`) lacks its leave-one-out scores.
        if let (Ok(result), None, true) = (&done.value.result, done.value.cached, done.last) {
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

    /// True while the newest request has not been delivered complete.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.worker.is_busy()
    }

    /// True while the newest request has delivered nothing yet (its fit is being computed);
    /// false once its partial result is in and only the scores are being computed.
    #[must_use]
    pub fn is_fitting(&self) -> bool {
        self.worker.is_awaiting_first()
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
    fn a_panicking_combination_is_an_error_and_the_next_one_runs() {
        let data = tiny_dataset();
        let combiner: Combiner = Arc::new(|d, s, c, caches| {
            assert!(s.band_lags != 7, "boom at 7 lags");
            combine::combine_with(d, s, c, caches)
        });
        for engine in [
            CombineEngine::threaded(None).expect("spawn"),
            CombineEngine::inline(),
        ] {
            let mut engine = engine.with_combiner(Arc::clone(&combiner));
            let wait = |engine: &mut CombineEngine| {
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                let mut got = None;
                while engine.is_busy() {
                    assert!(std::time::Instant::now() < deadline, "stuck computing");
                    if let Some(d) = engine.poll() {
                        got = Some(d);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                got.expect("a result")
            };
            let bad = Settings {
                band_lags: 7,
                ..bookkeeping_only()
            };
            engine.submit(Arc::clone(&data), 1, bad);
            let err = wait(&mut engine)
                .value
                .result
                .expect_err("the panic is an error");
            let text = err.to_string();
            assert!(text.contains("boom at 7 lags"), "{text}");
            assert!(text.contains("7 lags"), "names the settings: {text}");
            engine.submit(Arc::clone(&data), 1, bookkeeping_only());
            let ok = wait(&mut engine);
            assert!(ok.value.result.is_ok(), "the next request computes");
            assert!(!engine.is_busy());
        }
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

    /// Eight paper-like visits and the settings the window starts with.
    fn paper_dataset() -> (Arc<Dataset>, Settings) {
        let p = crate::synth::paper::PaperParams {
            n_visits: 8,
            ..crate::synth::paper::PaperParams::default()
        };
        let data = crate::synth::paper::generate(&p).expect("synthetic data");
        (Arc::new(data), Settings::default())
    }

    /// A threaded engine whose first request stops after its early result until `gate` is
    /// released (later requests run straight through).
    fn gated_engine(gate: std::sync::mpsc::Receiver<()>) -> CombineEngine {
        let gate = std::sync::Mutex::new(Some(gate));
        let mut engine = CombineEngine::threaded(None).expect("spawn");
        engine.combiner = Arc::new(move |d, s, c, k, first| {
            combine::combine_staged(d, s, c, k, &mut |x| {
                first(x);
                if let Some(g) = gate.lock().ok().and_then(|mut g| g.take()) {
                    let _ = g.recv();
                }
            })
        });
        engine
    }

    fn poll_until(
        engine: &mut CombineEngine,
        mut stop: impl FnMut(&CombineDone) -> bool,
    ) -> Vec<CombineDone> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut got = Vec::new();
        loop {
            assert!(std::time::Instant::now() < deadline, "no such result");
            if let Some(d) = engine.poll() {
                let done = stop(&d);
                got.push(d);
                if done {
                    return got;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_request_delivers_the_fit_first_and_then_the_scores() {
        let (data, s) = paper_dataset();
        let expected = combine::combine(&data, &s, &Cancel::new()).expect("combines");
        let want = expected.forward.as_ref().expect("forward");
        assert!(want.visits.iter().all(|v| v.loo_chi2_nu.is_finite()));

        let (release, gate) = std::sync::mpsc::channel();
        let mut engine = gated_engine(gate);
        let g = engine.submit(Arc::clone(&data), 1, s.clone());
        let got = poll_until(&mut engine, |_| true);
        let first = &got[0];
        assert_eq!(first.generation, g);
        assert!(!first.last);
        let early = first.value.result.as_ref().expect("the fit");
        assert!(early.loo_pending);
        let fit = early.forward.as_ref().expect("forward");
        // The fit is already final; only the scores are missing.
        assert_eq!(fit.flux, want.flux);
        assert_eq!(fit.var, want.var);
        assert!(fit.visits.iter().all(|v| v.loo_chi2_nu.is_nan()));
        assert!(engine.is_busy() && !engine.is_fitting());

        release.send(()).expect("release");
        let got = poll_until(&mut engine, |d| d.last);
        let last = got.last().expect("the complete result");
        assert_eq!(last.generation, g);
        assert!(last.last);
        let done = last.value.result.as_ref().expect("complete");
        assert!(!done.loo_pending);
        let loo: Vec<f64> = done
            .forward
            .as_ref()
            .expect("forward")
            .visits
            .iter()
            .map(|v| v.loo_chi2_nu)
            .collect();
        let want_loo: Vec<f64> = want.visits.iter().map(|v| v.loo_chi2_nu).collect();
        assert_eq!(loo, want_loo);
        assert!(!engine.is_busy());

        // Only the complete result was memoised.
        engine.submit(Arc::clone(&data), 1, s);
        let got = poll_until(&mut engine, |d| d.last);
        let cached = got.last().expect("result");
        assert!(cached.value.cached.is_some() && cached.last);
        assert!(!cached.value.result.as_ref().expect("cached").loo_pending);
    }

    #[test]
    fn a_newer_request_cancels_the_scoring_of_the_older() {
        let (data, s) = paper_dataset();
        let (release, gate) = std::sync::mpsc::channel();
        let mut engine = gated_engine(gate);
        let g1 = engine.submit(Arc::clone(&data), 1, s.clone());
        let got = poll_until(&mut engine, |_| true);
        assert!(!got[0].last && got[0].generation == g1);
        // The next request while request 1 scores: it cancels the scoring.
        let mut s2 = s;
        s2.band_lags += 1;
        let g2 = engine.submit(Arc::clone(&data), 1, s2);
        release.send(()).expect("release");
        let got = poll_until(&mut engine, |d| d.generation == g2 && d.last);
        for d in &got {
            assert!(
                d.generation == g2 || matches!(d.value.result, Err(CombineError::Cancelled)),
                "request 1 delivers nothing complete after request 2"
            );
        }
        let last = got.last().expect("request 2");
        assert!(!last.value.result.as_ref().expect("complete").loo_pending);
        assert!(!engine.is_busy());
    }
}
