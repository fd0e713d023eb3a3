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
        .unwrap_or(300)
}

/// A reader that has not answered after this long is taken to hang. Not a speed goal: the
/// slowest of 20 000 cases per reader takes about 20 ms in a debug build.
const HANG: std::time::Duration = std::time::Duration::from_secs(60);

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
                put_value(&mut b, spots[k % spots.len()], *v);
            }
        }
    }
    b
}

/// Write `v` as the value of the card at byte offset `o` (columns 11-30, right-aligned).
fn put_value(bytes: &mut [u8], o: usize, v: i64) {
    let text = format!("{v:>20}");
    bytes[o + 10..o + 30].copy_from_slice(&text.as_bytes()[text.len() - 20..]);
}

struct Stats {
    runs: AtomicUsize,
    loaded: AtomicUsize,
    refused: AtomicUsize,
    /// The slowest case so far (seconds, mutation), reported to spot near-hangs.
    slowest: std::sync::Mutex<(f64, String)>,
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
        slowest: std::sync::Mutex::new((0.0, String::new())),
    };
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        // A failing mutation is reported as it is: shrinking a hang would only add more hangs.
        max_shrink_iters: 0,
        ..Config::default()
    });
    let result = runner.run(&mutation(), |m| {
        let bytes = apply(&original, &m);
        std::fs::write(&target, &bytes).expect("write mutant");
        stats.runs.fetch_add(1, Ordering::Relaxed);
        let start = std::time::Instant::now();
        // The reader runs on its own thread so that a hang fails this case (naming the mutation)
        // instead of stalling the whole test run; the stuck thread is abandoned.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = target.clone();
        std::thread::spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(|| {
                frizzview::io::load_file(&path)
            })));
        });
        let Ok(outcome) = rx.recv_timeout(HANG) else {
            return Err(TestCaseError::fail(format!(
                "no answer within {HANG:?} (a hang) on {m:?}"
            )));
        };
        let took = start.elapsed().as_secs_f64();
        if let Ok(mut s) = stats.slowest.lock()
            && took > s.0
        {
            *s = (took, format!("{m:?}").chars().take(120).collect());
        }
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
    if let Ok(s) = stats.slowest.lock() {
        println!("  slowest case {:.3} s: {}", s.0, s.1);
    }
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
fn fuzz_apcframe_reader() {
    let (runs, _, refused) = fuzz_file("apCframe-b-42380011.fits");
    assert!(runs >= cases() as usize && refused > 0);
}

#[test]
fn fuzz_boss_v6_reader() {
    let (runs, _, refused) = fuzz_file("spec-003586-55181-27021600000000500.fits");
    assert!(runs >= cases() as usize && refused > 0);
}

#[test]
fn fuzz_mwm_visit_reader() {
    let (runs, _, refused) = fuzz_file("mwmVisit-0.6.0-63050396587.fits");
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

/// A copy of `bytes` with the value of the first `key` card at or after byte `from` set to
/// `value` (a FITS card edit, as a corrupt file would have it).
fn with_card(bytes: &[u8], from: usize, key: &[u8; 8], value: i64) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let o = (from / 80..b.len() / 80)
        .map(|c| c * 80)
        .find(|&o| b[o..].starts_with(key))
        .expect("card present");
    put_value(&mut b, o, value);
    b
}

/// Regression (CI, stop 9): a negative PCOUNT made cfitsio walk the same HDUs forever while
/// counting them. Every impossible sizing card, and every truncation, is now refused at once by a
/// structural check, with the file, the HDU and the card named.
#[test]
fn corrupt_sizing_cards_and_truncations_are_refused_naming_the_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (case, card, value, expected in the message)
    let edits: [(&str, &[u8; 8], i64, &str); 6] = [
        (
            "pcount",
            b"PCOUNT  ",
            -58_482,
            "PCOUNT = -58482 is negative",
        ),
        ("gcount", b"GCOUNT  ", -1, "GCOUNT = -1 is negative"),
        (
            "bitpix",
            b"BITPIX  ",
            7,
            "BITPIX = 7 is not a FITS data type",
        ),
        ("naxis", b"NAXIS   ", 1000, "NAXIS = 1000 is outside"),
        ("naxis1", b"NAXIS1  ", -3, "NAXIS1 = -3 is negative"),
        ("naxis2", b"NAXIS2  ", i64::MAX, "data"),
    ];
    for name in [
        "apVisit-r13-5095-55844-128.fits",
        "spec-3586-55181-0500.fits",
    ] {
        let original = std::fs::read(fixture(name)).expect("fixture");
        // Cards of the second HDU (the first extension), after the primary header.
        let ext = original
            .windows(9)
            .position(|w| w == b"XTENSION=")
            .expect("an extension");
        let mut cases: Vec<(&str, Vec<u8>, &str)> = edits
            .iter()
            .map(|&(what, key, value, expect)| {
                (what, with_card(&original, ext, key, value), expect)
            })
            .collect();
        cases.push(("header cut", original[..ext + 1000].to_vec(), "no END card"));
        cases.push((
            "data cut",
            original[..original.len() - 5000].to_vec(),
            "truncated",
        ));
        for (what, bytes, expect) in cases {
            let p = dir.path().join(format!("corrupt-{what}.fits"));
            std::fs::write(&p, &bytes).expect("write");
            let start = std::time::Instant::now();
            let err = frizzview::io::load_file(&p)
                .err()
                .unwrap_or_else(|| panic!("{name}, {what}: a corrupt file loaded"));
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("corrupt-{what}.fits"))
                    && msg.contains("HDU")
                    && msg.contains(expect),
                "{name}, {what}: {msg}"
            );
            // Not a timing test: a generous bound that only a loop would break.
            assert!(
                start.elapsed().as_secs() < 30,
                "{name}, {what}: took {:?}",
                start.elapsed()
            );
        }
    }
}
