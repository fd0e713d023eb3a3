//! Fuzzing the readers with mutated real files (proptest): truncations, byte flips, overwritten
//! windows, and FITS header cards (NAXISn, BITPIX, TFORMn...) replaced by random numbers.
//!
//! Every mutated file must either load or be refused with an error naming the file: never a
//! panic. The normal test run uses a small fixed budget; run longer by hand with e.g.
//! `FRIZZVIEW_FUZZ_CASES=5000 cargo test --test integration fuzz -- --nocapture`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::io::fixture;

fn cases() -> u32 {
    std::env::var("FRIZZVIEW_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

/// A mutation of a file's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    /// Keep this fraction of the file.
    Truncate(f64),
    /// Set bytes at these fractional positions.
    Flip(Vec<(f64, u8)>),
    /// Overwrite a window near the start (where the headers are).
    Window(f64, Vec<u8>),
    /// Replace the value of the k-th structural FITS card with a number.
    Card(usize, i64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Mutation::Truncate),
        prop::collection::vec((0.0..1.0f64, any::<u8>()), 1..24).prop_map(Mutation::Flip),
        (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..120))
            .prop_map(|(p, b)| Mutation::Window(p, b)),
        (
            any::<usize>(),
            prop_oneof![
                -10i64..10,
                -100_000i64..100_000,
                Just(i64::MAX),
                Just(i64::MIN),
                Just(2_147_483_648),
                Just(999_999_999_999)
            ]
        )
            .prop_map(|(k, v)| Mutation::Card(k, v)),
    ]
}

const CARDS: &[&[u8]] = &[
    b"NAXIS   ",
    b"NAXIS1  ",
    b"NAXIS2  ",
    b"BITPIX  ",
    b"PCOUNT  ",
    b"GCOUNT  ",
    b"TFIELDS ",
    b"TFORM1  ",
    b"TFORM2  ",
    b"TFORM3  ",
    b"TFORM4  ",
    b"THEAP   ",
    b"TBCOL1  ",
    b"TDIM1   ",
];

fn apply(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let n = b.len();
    let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len.saturating_sub(1));
    match m {
        Mutation::Truncate(f) => b.truncate(at(*f, n)),
        Mutation::Flip(v) => {
            for (f, x) in v {
                let i = at(*f, n);
                b[i] = *x;
            }
        }
        Mutation::Window(f, w) => {
            let start = at(*f, n.min(40_000));
            for (k, x) in w.iter().enumerate() {
                if let Some(slot) = b.get_mut(start + k) {
                    *slot = *x;
                }
            }
        }
        Mutation::Card(k, v) => {
            let spots: Vec<usize> = (0..n / 80)
                .map(|c| c * 80)
                .filter(|&o| CARDS.iter().any(|c| b[o..].starts_with(c)))
                .collect();
            if !spots.is_empty() {
                let o = spots[k % spots.len()];
                let text = format!("{v:>20}");
                b[o + 10..o + 30].copy_from_slice(&text.as_bytes()[text.len() - 20..]);
            }
        }
    }
    b
}

struct Stats {
    runs: AtomicUsize,
    loaded: AtomicUsize,
    refused: AtomicUsize,
}

fn fuzz_file(name: &str) -> (usize, usize, usize) {
    let original = std::fs::read(fixture(name)).expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let ext = Path::new(name)
        .extension()
        .map_or_else(String::new, |e| e.to_string_lossy().into_owned());
    let target = dir.path().join(format!("mutant.{ext}"));
    let stats = Stats {
        runs: AtomicUsize::new(0),
        loaded: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
    };
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&mutation(), |m| {
        let bytes = apply(&original, &m);
        std::fs::write(&target, &bytes).expect("write mutant");
        stats.runs.fetch_add(1, Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| frizzview::io::load_file(&target)));
        match outcome {
            Err(_) => Err(TestCaseError::fail(format!("panic on {m:?}"))),
            Ok(Ok(d)) => {
                stats.loaded.fetch_add(1, Ordering::Relaxed);
                prop_assert!(!d.visits.is_empty(), "a loaded dataset has visits");
                Ok(())
            }
            Ok(Err(e)) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                let msg = e.to_string();
                prop_assert!(msg.contains("mutant."), "message names the file: {msg}");
                Ok(())
            }
        }
    });
    let (r, l, f) = (
        stats.runs.load(Ordering::Relaxed),
        stats.loaded.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
    );
    println!("fuzz {name}: {r} executions, {l} loaded, {f} refused with an error, 0 panics");
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
    (r, l, f)
}

#[test]
fn fuzz_apvisit_reader() {
    let (runs, _, refused) = fuzz_file("apVisit-r13-5095-55844-128.fits");
    assert!(runs >= cases() as usize && refused > 0);
}

#[test]
fn fuzz_boss_reader() {
    let (runs, _, refused) = fuzz_file("spec-3586-55181-0500.fits");
    assert!(runs >= cases() as usize && refused > 0);
}

#[test]
fn fuzz_npz_reader() {
    let (runs, _, refused) = fuzz_file("reference/case_a_f64_input.npz");
    assert!(runs >= cases() as usize && refused > 0);
}

#[test]
fn fuzz_text_reader() {
    let (runs, _, refused) = fuzz_file("small.csv");
    assert!(runs >= cases() as usize && refused > 0);
}
