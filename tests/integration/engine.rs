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
    // Stale results never arrive after newer ones (a request's fit comes before its complete
    // result), and most requests were skipped or cancelled.
    assert!(
        delivered
            .windows(2)
            .all(|w| (w[1].generation, w[1].last) > (w[0].generation, w[0].last))
    );
    assert!(last.last, "the last delivery is complete");
    let mut requests: Vec<u64> = delivered.iter().map(|d| d.generation).collect();
    requests.dedup();
    assert!(
        requests.len() < 10,
        "results of {} of 10 requests",
        requests.len()
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

#[test]
fn one_failing_method_keeps_the_other() {
    use frizzview::combine::{Cancel, combine};
    use frizzview::settings::{Extensions, LsfMode, StandardSettings};
    let data = generate(&ApogeeParams {
        n_visits: 3,
        ..ApogeeParams::clean()
    })
    .expect("synthetic data");
    // The LSF extension needs the local basis: the forward model fails, standard practice not.
    let both = Settings {
        forward: Some(ForwardSettings {
            basis: Basis::Fourier,
            ..ForwardSettings::default()
        }),
        standard: Some(StandardSettings::default()),
        extensions: Extensions {
            lsf: LsfMode::FromVisits,
            ..Extensions::default()
        },
        ..small_settings(3)
    };
    let c = combine(&data, &both, &Cancel::new()).expect("standard practice still combines");
    assert!(c.forward.is_none());
    let err = c.forward_error.as_ref().expect("the forward model's error");
    assert!(err.to_string().contains("needs the local basis"), "{err}");
    assert!(c.standard_error.is_none());
    let standard = c.standard.as_ref().expect("standard practice result");
    // The same as standard practice alone, to the bit.
    let alone = combine(
        &data,
        &Settings {
            forward: None,
            ..both.clone()
        },
        &Cancel::new(),
    )
    .expect("standard alone");
    let alone = alone.standard.expect("standard result");
    assert_eq!(standard.flux.len(), alone.flux.len());
    assert!(
        standard
            .flux
            .iter()
            .zip(&alone.flux)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert!(standard.flux.iter().filter(|f| f.is_finite()).count() > 1000);
    // Only the failing method asked for: nothing to show, an error.
    let forward_only = Settings {
        standard: None,
        ..both
    };
    let e = combine(&data, &forward_only, &Cancel::new()).expect_err("refused");
    assert!(e.to_string().contains("needs the local basis"), "{e}");
}

#[test]
fn each_engine_owns_its_caches() {
    // The window's engine and the teaching panel's used to share process-wide caches and evict
    // each other's entries; now a second engine's work leaves the first one's caches alone.
    let data = |seed| {
        Arc::new(
            generate(&ApogeeParams {
                n_visits: 3,
                seed,
                ..ApogeeParams::clean()
            })
            .expect("synthetic data"),
        )
    };
    let mut a = CombineEngine::inline();
    let mut b = CombineEngine::inline();
    a.submit(data(1), 1, small_settings(3));
    assert!(a.poll().expect("result").value.result.is_ok());
    let (_, a_bytes) = a.cache_bytes();
    assert!(a_bytes > 0, "the local basis cached its kernel rows");
    for seed in 2..5 {
        b.submit(data(seed), seed, small_settings(3));
        assert!(b.poll().expect("result").value.result.is_ok());
    }
    assert_eq!(a.cache_bytes().1, a_bytes, "engine a's caches were touched");
    assert!(b.cache_bytes().1 > 0);
    // One-shot combinations use fresh caches and leave both engines' alone.
    let _ = frizzview::combine::combine(
        &data(9),
        &small_settings(3),
        &frizzview::combine::Cancel::new(),
    )
    .expect("combines");
    assert_eq!(a.cache_bytes().1, a_bytes);
}
