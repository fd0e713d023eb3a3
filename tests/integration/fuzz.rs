//! Fuzzing the readers with mutated real files (proptest): truncations, byte flips, overwritten
//! windows, and FITS header cards (NAXISn, BITPIX, TFORMn...) replaced by random numbers.
//!
//! Every mutated file must either load or be refused with an error naming the file: never a
//! panic. The normal test run uses a small fixed budget and a fixed seed, so that a run on CI is
//! repeatable; run longer and with fresh randomness by hand with e.g.
//! `FRIZZVIEW_FUZZ_CASES=5000 FRIZZVIEW_FUZZ_SEED=random cargo test --test integration fuzz -- --nocapture`
//! (the seed used is printed, and `FRIZZVIEW_FUZZ_SEED=<number>` repeats it).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::io::fixture;

/// The seed of the mutations: `FRIZZVIEW_FUZZ_SEED` (a number, or `random`), else a fixed one.
fn seed() -> u64 {
    match std::env::var("FRIZZVIEW_FUZZ_SEED").ok().as_deref() {
        Some("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        Some(s) => s
            .parse()
            .expect("FRIZZVIEW_FUZZ_SEED is a number or `random`"),
        None => 20_261_202,
    }
}

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

/// What one fuzz run saw.
#[derive(Debug)]
struct Counts {
    runs: usize,
    loaded: usize,
    refused: usize,
}

/// A transformation of each mutant's bytes before it is written (e.g. gzip).
type Encoder = fn(&[u8]) -> Vec<u8>;

/// A reader under test: `frizzview::io::load_file`, or a wrapper around it.
type Reader = fn(&Path) -> Result<frizzview::model::Dataset, frizzview::io::LoadError>;

fn fuzz_file(name: &str) -> (usize, usize, usize) {
    match run_fuzz(name, frizzview::io::load_file, cases(), None) {
        Ok(c) => (c.runs, c.loaded, c.refused),
        Err(e) => panic!("{e}"),
    }
}

/// Fuzz `reader` with `n` mutations of the fixture `name`. A case fails on a panic, on a hang,
/// on a panic caught by the readers' own guard (an error of kind `ReaderBug`: the guard keeps
/// users' sessions alive, but for the fuzz test it is a bug like any other panic), and on an
/// error that does not name the file. `Err` describes the first failing case.
///
/// With `encode`, each mutant is written through it (e.g. gzipped) to `mutant.<ext>.<suffix>`.
fn run_fuzz(
    name: &str,
    reader: Reader,
    n: u32,
    encode: Option<(&str, Encoder)>,
) -> Result<Counts, String> {
    let original = std::fs::read(fixture(name)).expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let ext = Path::new(name)
        .extension()
        .map_or_else(String::new, |e| e.to_string_lossy().into_owned());
    let target = match encode {
        Some((suffix, _)) => dir.path().join(format!("mutant.{ext}.{suffix}")),
        None => dir.path().join(format!("mutant.{ext}")),
    };
    let stats = Stats {
        runs: AtomicUsize::new(0),
        loaded: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
        slowest: std::sync::Mutex::new((0.0, String::new())),
    };
    let guard_panics = AtomicUsize::new(0);
    let seed = seed();
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: n,
            failure_persistence: None,
            // A failing mutation is reported as it is: shrinking a hang would only add more hangs.
            max_shrink_iters: 0,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    let result = runner.run(&mutation(), |m| {
        let bytes = apply(&original, &m);
        let bytes = match encode {
            Some((_, f)) => f(&bytes),
            None => bytes,
        };
        std::fs::write(&target, &bytes).expect("write mutant");
        stats.runs.fetch_add(1, Ordering::Relaxed);
        let start = std::time::Instant::now();
        // The reader runs on its own thread so that a hang fails this case (naming the mutation)
        // instead of stalling the whole test run; the stuck thread is abandoned.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = target.clone();
        std::thread::spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(|| reader(&path))));
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
                let msg = e.to_string();
                if matches!(e.kind, frizzview::io::LoadErrorKind::ReaderBug { .. }) {
                    guard_panics.fetch_add(1, Ordering::Relaxed);
                    return Err(TestCaseError::fail(format!(
                        "panic caught by the reader's guard (a bug) on {m:?}: {msg}"
                    )));
                }
                stats.refused.fetch_add(1, Ordering::Relaxed);
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
    let p = guard_panics.load(Ordering::Relaxed);
    println!(
        "fuzz {name} (FRIZZVIEW_FUZZ_SEED={seed}): {r} executions, {l} loaded, \
         {f} refused with an error, {p} panics behind the guard"
    );
    if let Ok(s) = stats.slowest.lock() {
        println!("  slowest case {:.3} s: {}", s.0, s.1);
    }
    result.map_err(|e| format!("fuzz {name} (FRIZZVIEW_FUZZ_SEED={seed}): {e}"))?;
    Ok(Counts {
        runs: r,
        loaded: l,
        refused: f,
    })
}

/// A reader with a bug behind the real guard: it panics (as a reader bug would) on every
/// mutant shorter than the fixture, inside `frizzview::io::run_guarded`, the guard every FITS
/// reader runs behind.
fn reader_with_injected_panic(
    path: &Path,
) -> Result<frizzview::model::Dataset, frizzview::io::LoadError> {
    frizzview::io::run_guarded(path, || {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        let full =
            std::fs::metadata(fixture("apVisit-r13-5095-55844-128.fits")).map_or(0, |m| m.len());
        if len < full {
            panic!("injected reader bug");
        }
        frizzview::io::load_file(path)
    })
}

/// The harness can fail: a panic behind the guard (which users see as a "please report" error)
/// fails the fuzz run, and the guard counts it.
#[test]
fn fuzz_harness_fails_on_a_panic_behind_the_guard() {
    let before = frizzview::io::guarded_panics();
    let err = run_fuzz(
        "apVisit-r13-5095-55844-128.fits",
        reader_with_injected_panic,
        200,
        None,
    )
    .expect_err("the injected panic must fail the fuzz run");
    assert!(
        err.contains("panic caught by the reader's guard")
            && err.contains("injected reader bug")
            && err.contains("a bug in frizzview"),
        "{err}"
    );
    assert!(frizzview::io::guarded_panics() > before);
    // The same harness passes the real reader.
    let ok = run_fuzz(
        "apVisit-r13-5095-55844-128.fits",
        frizzview::io::load_file,
        20,
        None,
    )
    .expect("the real reader passes");
    assert_eq!(ok.runs, 20);
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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// Mutated FITS content, gzipped whole: the in-memory path (decompression, structural check,
/// cfitsio's memory driver) under the same mutations.
#[test]
fn fuzz_gzipped_fits_readers() {
    for name in [
        "apVisit-r13-5095-55844-128.fits",
        "spec-3586-55181-0500.fits",
    ] {
        let c = run_fuzz(
            name,
            frizzview::io::load_file,
            cases() / 2,
            Some(("gz", gzip)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.runs >= (cases() / 2) as usize && c.refused > 0);
    }
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

/// Found by the fuzz test once the guard's panics became visible: a binary-table column of type
/// M (double complex), C, P or Q made `fitsio`'s HDU description panic. Now refused, naming the
/// HDU and the card.
#[test]
fn complex_or_variable_length_columns_are_refused_naming_the_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "spec-3586-55181-0500.fits",
        "apVisit-r13-5095-55844-128.fits",
    ] {
        let original = std::fs::read(fixture(name)).expect("fixture");
        let o = (0..original.len() / 80)
            .map(|c| c * 80)
            .find(|&o| original[o..].starts_with(b"TFORM1  = '"))
            .expect("a table column");
        // The values as they stand in the card, from column 11 on. The last two are what fuzzing
        // found: a value that lost its closing quote (cfitsio reads it to the end of the card
        // and `fitsio` then panicked on the `P`), and a TFORM with no type code.
        for code in [
            &b"'1M      '"[..],
            &b"'1C      '"[..],
            &b"'1PE(10) '"[..],
            &b"'1PV\x1e\xae 2 with no closing quote"[..],
            &b"'20      '"[..],
            &b"'1Z      '"[..],
        ] {
            let mut b = original.clone();
            let mut v = code.to_vec();
            v.resize(70, b' ');
            b[o + 10..o + 80].copy_from_slice(&v);
            let p = dir.path().join(format!("col-{}.fits", code.len()));
            let code = code.escape_ascii();
            std::fs::write(&p, &b).expect("write");
            let e = frizzview::io::load_file(&p).expect_err("refused");
            assert!(
                !matches!(e.kind, frizzview::io::LoadErrorKind::ReaderBug { .. }),
                "{name} {code}: {e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains("TFORM1") && msg.contains("HDU") && msg.contains("cannot read"),
                "{name} {code}: {msg}"
            );
        }
    }
}

/// SDSS-V layouts, written at test time from the committed Doppler fixture (apVisit DR19 with a
/// FLUX CONVERSION image) and from synthetic rows (allVisit DR19); `fuzz_file` takes the absolute
/// path (`Path::join` of an absolute path is that path).
fn sdss5_fixtures(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use frizzview::io::write_layouts as wl;
    let visit = wl::rewrite_apvisit(
        &fixture("apVisit-r13-5095-55844-128.fits"),
        dir,
        wl::VisitLayout::Dr19 {
            flux_conversion: true,
        },
        "apo25m",
    )
    .expect("rewrite");
    let rows: Vec<wl::AllVisitRow> = (0..5)
        .map(|i| wl::AllVisitRow {
            apogee_id: format!("2M0000000{i}+0000000"),
            file: format!("apVisit-1.3-apo25m-1-5900{i}-00{i}.fits"),
            telescope: "apo25m".into(),
            mjd: 59000 + i,
            fiber: i,
            jd: 2_459_000.5 + f64::from(i),
            bc: f64::from(i),
            vrel: -f64::from(i),
            snr: 50.0,
        })
        .collect();
    let table = wl::write_allvisit(dir, wl::AllVisitLayout::Dr19, &rows).expect("allVisit");
    (visit, table)
}

/// A DR19-layout apStar of two synthetic visits (smooth spectra with a few lines).
fn sdss5_apstar(dir: &Path) -> std::path::PathBuf {
    use frizzview::io::write_layouts as wl;
    let n = 8575;
    let row = |depth: f64| -> (Vec<f64>, Vec<f64>) {
        let f = (0..n)
            .map(|i| 100.0 * (1.0 - depth * (-(((i % 400) as f64 - 200.0) / 3.0).powi(2)).exp()))
            .collect();
        (f, vec![1.0; n])
    };
    let rows = vec![row(0.5), row(0.5), row(0.45), row(0.55)];
    let visits: Vec<wl::StarVisit> = (0..2)
        .map(|i| wl::StarVisit {
            file: format!("apVisit-1.3-apo25m-1-5900{i}-001.fits"),
            vrel: -40.0 - f64::from(i),
            bc: 5.0 * f64::from(i),
            jd: 2_459_000.5 + f64::from(i),
            snr: 60.0,
        })
        .collect();
    wl::write_apstar(
        dir,
        wl::StarLayout::Dr19,
        "apo25m",
        "2M00000000+0000000",
        &rows,
        &visits,
    )
    .expect("apStar")
}

#[test]
fn fuzz_apstar_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let star = sdss5_apstar(dir.path());
    let (runs, loaded, refused) = fuzz_file(&star.to_string_lossy());
    assert!(runs >= cases() as usize && refused > 0 && loaded > 0);
}

#[test]
fn fuzz_apvisit_dr19_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (visit, _) = sdss5_fixtures(dir.path());
    let (runs, _, refused) = fuzz_file(&visit.to_string_lossy());
    assert!(runs >= cases() as usize && refused > 0);
}

/// Through `load_file` an allVisit alone is always refused (it holds no spectra), so this covers
/// its detection and the refusal on mutated tables, not `read_allvisit`'s column reading.
#[test]
fn fuzz_allvisit_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, table) = sdss5_fixtures(dir.path());
    let (runs, _, refused) = fuzz_file(&table.to_string_lossy());
    assert!(runs >= cases() as usize && refused > 0);
}

/// A LAMOST MRS file (two exposures, both arms, the coadds) written by the layout's fixture writer.
#[test]
fn fuzz_lamost_mrs_reader() {
    use frizzview::io::write_layouts as wl;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = wl::write_lamost_mrs(dir.path(), &wl::lamost_mrs_example(58_268, 2, 48))
        .expect("LAMOST fixture");
    let (runs, loaded, refused) = fuzz_file(&file.to_string_lossy());
    assert!(runs >= cases() as usize && refused > 0 && loaded > 0);
    // The real files come gzipped: the same mutations through the in-memory path.
    let c = run_fuzz(
        &file.to_string_lossy(),
        frizzview::io::load_file,
        cases() / 2,
        Some(("gz", gzip)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.runs >= (cases() / 2) as usize && c.refused > 0);
}
