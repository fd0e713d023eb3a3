//! The live engine end to end: real combinations on a worker thread, newest request wins.

use std::sync::Arc;
use std::time::{Duration, Instant};

use frizzview::engine::CombineEngine;
use frizzview::settings::{Basis, ForwardSettings, GridSpec, Settings, VisitSetting};
use frizzview::synth::apogee::{ApogeeParams, generate};

fn small_settings(n: usize) -> Settings {
    Settings {
        grid: GridSpec::Apogee,
        forward: Some(ForwardSettings {
            basis: Basis::Local,
            ..ForwardSettings::default()
        }),
        standard: None,
        visits: vec![VisitSetting::default(); n],
        ..Settings::default()
    }
}

#[test]
fn engine_threaded_delivers_the_newest_of_many_requests() {
    let data = Arc::new(
        generate(&ApogeeParams {
            n_visits: 3,
            ..ApogeeParams::clean()
        })
        .expect("synthetic data"),
    );
    let mut engine = CombineEngine::threaded(None).expect("worker thread");
    // Ten quick requests with different weights of visit 0, as a dragged slider makes.
    let mut last_settings = None;
    let mut last_gen = 0;
    for k in 0..10 {
        let mut s = small_settings(3);
        s.visits[0].weight = 0.5 + 0.1 * f64::from(k);
        last_gen = engine.submit(Arc::clone(&data), 1, s.clone());
        last_settings = Some(s);
    }
    let t0 = Instant::now();
    let mut delivered = Vec::new();
    while engine.is_busy() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no result");
        if let Some(d) = engine.poll() {
            delivered.push(d);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = delivered.last().expect("a result");
    assert_eq!(last.generation, last_gen);
    assert_eq!(Some(&last.value.settings), last_settings.as_ref());
    let combined = last.value.result.as_ref().expect("combines");
    assert!((combined.visits[0].weight - 1.4).abs() < 1e-12);
    // Stale results never arrive after newer ones, and most requests were skipped or cancelled.
    assert!(
        delivered
            .windows(2)
            .all(|w| w[1].generation > w[0].generation)
    );
    assert!(
        delivered.len() < 10,
        "{} results for 10 requests",
        delivered.len()
    );

    // The same request again is served from the cache.
    engine.submit(
        Arc::clone(&data),
        1,
        last_settings.clone().expect("settings"),
    );
    let t0 = Instant::now();
    let again = loop {
        if let Some(d) = engine.poll() {
            break d;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no cached result");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(again.value.cached.is_some());
    assert!(Arc::ptr_eq(
        again.value.result.as_ref().expect("ok"),
        combined
    ));
}
