//! Fuzzing the readers with mutated real files (proptest): truncations, byte flips, overwritten
//! windows, and FITS header cards (NAXISn, BITPIX, TFORMn...) replaced by random numbers.
//!
//! Every mutated file must either load or be refused with an error naming the file: never a
//! panic, never a signal. The normal test run uses a small fixed budget and a fixed seed, so that
//! a run on CI is repeatable; run longer and with fresh randomness by hand with e.g.
//! `FRIZZVIEW_FUZZ_CASES=5000 FRIZZVIEW_FUZZ_SEED=random cargo test --test integration fuzz -- --nocapture`
//! (the seed is printed to stderr before any case runs, and `FRIZZVIEW_FUZZ_SEED=<number>`
//! repeats it).
//!
//! Each fuzz run reads all its mutants in one child process (this test binary again, running the
//! ignored test `fuzz::fuzz_child_process`), which records the case it is about to read before
//! reading it: a reader that ends the process with a signal (a division by zero in cfitsio is
//! SIGFPE) fails the run with the seed, the case, the minimal mutation found (the case re-read
//! alone, in a child of its own, while it is shrunk) and the mutant saved under
//! `target/tmp/fuzz-failures/`, instead of ending the whole test process. One process per run,
//! not per case: a process start costs more than most reads. `FRIZZVIEW_FUZZ_THREADS=2` reads
//! the same cases on two threads of the child at once (as the window's background loads do).
//! `tests/fuzz-sweep.sh` runs many seeds. Adding a target is one `#[test]` calling [`fuzz_file`].

use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::io::fixture;

/// The seed of the mutations: `FRIZZVIEW_FUZZ_SEED` (a number, or `random`), else a fixed one.
/// One seed per process: `random` is drawn once, so every fuzz test of a run uses (and prints)
/// the same seed.
fn seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(
        || match std::env::var("FRIZZVIEW_FUZZ_SEED").ok().as_deref() {
            Some("random") => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            Some(s) => s
                .trim()
                .parse()
                .expect("FRIZZVIEW_FUZZ_SEED is a number or `random`"),
            None => 20_261_202,
        },
    )
}

fn cases() -> u32 {
    std::env::var("FRIZZVIEW_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

/// Reader threads in each fuzz child process: `FRIZZVIEW_FUZZ_THREADS` (default 1). With more
/// than one, the cases are read concurrently in one process (as the window's background loads
/// are), each thread with its own mutant file; the set of cases is the same for any count.
fn threads() -> usize {
    std::env::var("FRIZZVIEW_FUZZ_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&t| t >= 1)
        .unwrap_or(1)
}

/// A scratch folder for the mutants: in memory (`/dev/shm`) when the system has one, since
/// rewriting a file on a disk file system (ext4 replacing a file's blocks on every write) took
/// more time than reading most mutants did; else the usual temporary folder.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("frizzview-fuzz")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir")
}

/// Write a line to the process's stderr directly, past the test harness's output capture, so
/// that it is seen even if the process dies next.
fn announce(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
    let _ = e.flush();
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
    guard_panics: AtomicUsize,
    /// The slowest case so far (seconds, mutation), reported to spot near-hangs.
    slowest: std::sync::Mutex<(f64, String)>,
}

/// What one fuzz run saw.
#[derive(Debug)]
struct Counts {
    runs: usize,
    loaded: usize,
    refused: usize,
    /// The slowest case, in seconds.
    slowest: f64,
}

/// The readers under test, by name (the child process is told which to run).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reader {
    /// `frizzview::io::load_file`.
    LoadFile,
    /// [`reader_with_injected_panic`].
    InjectedPanic,
    /// [`reader_with_injected_abort`].
    InjectedAbort,
    /// [`reader_with_injected_race`].
    InjectedRace,
}

impl Reader {
    const ALL: [Self; 4] = [
        Self::LoadFile,
        Self::InjectedPanic,
        Self::InjectedAbort,
        Self::InjectedRace,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::LoadFile => "load_file",
            Self::InjectedPanic => "injected_panic",
            Self::InjectedAbort => "injected_abort",
            Self::InjectedRace => "injected_race",
        }
    }

    fn by_name(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .expect("a known reader")
    }

    fn read(self, p: &Path) -> Result<frizzview::model::Dataset, frizzview::io::LoadError> {
        match self {
            Self::LoadFile => frizzview::io::load_file(p),
            Self::InjectedPanic => reader_with_injected_panic(p),
            Self::InjectedAbort => reader_with_injected_abort(p),
            Self::InjectedRace => reader_with_injected_race(p),
        }
    }
}

/// How each mutant's bytes are written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    Plain,
    /// Gzipped whole, to `mutant.<ext>.gz`.
    Gzip,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Gzip => "gz",
        }
    }

    fn encode(self, bytes: Vec<u8>) -> Vec<u8> {
        match self {
            Self::Plain => bytes,
            Self::Gzip => gzip(&bytes),
        }
    }
}

fn fuzz_file(name: &str) -> (usize, usize, usize) {
    match run_fuzz(name, Reader::LoadFile, cases(), Encoding::Plain) {
        Ok(c) => (c.runs, c.loaded, c.refused),
        Err(e) => panic!("{e}"),
    }
}

/// Where the mutant of fixture `name` is written in `dir`.
fn mutant_path(dir: &Path, name: &str, encoding: Encoding) -> PathBuf {
    let ext = Path::new(name)
        .extension()
        .map_or_else(String::new, |e| e.to_string_lossy().into_owned());
    match encoding {
        Encoding::Gzip => dir.join(format!("mutant.{ext}.gz")),
        Encoding::Plain => dir.join(format!("mutant.{ext}")),
    }
}

/// The arguments that make this test binary run only the child entry point.
const CHILD_ARGS: [&str; 6] = [
    "fuzz::fuzz_child_process",
    "--exact",
    "--ignored",
    "--nocapture",
    "--test-threads=1",
    "--quiet",
];

/// The signal that ended a child, if one did.
fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

fn signal_name(s: i32) -> &'static str {
    match s {
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        _ => "a fatal signal",
    }
}

/// Fuzz `reader` with `n` mutations of the fixture `name`, in a child process. A case fails on a
/// panic, on a hang, on a panic caught by the readers' own guard (an error of kind `ReaderBug`:
/// the guard keeps users' sessions alive, but for the fuzz test it is a bug like any other
/// panic), on an error that does not name the file, and on a signal that ends the reader's
/// process. `Err` describes the first failing case, with the seed.
fn run_fuzz(name: &str, reader: Reader, n: u32, encoding: Encoding) -> Result<Counts, String> {
    run_fuzz_on(name, reader, n, encoding, threads())
}

/// [`run_fuzz`] with `threads` reader threads in the child.
fn run_fuzz_on(
    name: &str,
    reader: Reader,
    n: u32,
    encoding: Encoding,
    threads: usize,
) -> Result<Counts, String> {
    let seed = seed();
    let tag = if threads > 1 {
        format!("fuzz {name} (FRIZZVIEW_FUZZ_SEED={seed} FRIZZVIEW_FUZZ_THREADS={threads})")
    } else {
        format!("fuzz {name} (FRIZZVIEW_FUZZ_SEED={seed})")
    };
    announce(&format!(
        "{tag}: {n} cases of {}, {} ...",
        reader.name(),
        encoding.name()
    ));
    let dir = scratch_dir();
    let spec = format!(
        "{name}\n{}\n{}\n{n}\n{}",
        reader.name(),
        encoding.name(),
        dir.path().display()
    );
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(CHILD_ARGS)
        .env("FRIZZVIEW_FUZZ_CHILD", spec)
        .env("FRIZZVIEW_FUZZ_SEED", seed.to_string())
        .env("FRIZZVIEW_FUZZ_THREADS", threads.to_string())
        .output()
        .map_err(|e| format!("{tag}: cannot start the child process: {e}"))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if let Some(s) = signal_of(&out.status) {
        let report = report_signal(name, reader, encoding, seed, s, threads, dir.path());
        announce(&format!("{tag}: FAILED: {report}"));
        return Err(format!("{tag}: {report}"));
    }
    let result = std::fs::read_to_string(dir.path().join("result")).unwrap_or_default();
    match result.split_once('\n') {
        Some(("ok", counts)) => {
            let v: Vec<f64> = counts
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let [r, l, f, slowest] = v[..] else {
                return Err(format!("{tag}: unreadable child result {counts:?}"));
            };
            Ok(Counts {
                runs: r as usize,
                loaded: l as usize,
                refused: f as usize,
                slowest,
            })
        }
        Some(("fail", why)) => Err(why.to_owned()),
        _ => Err(format!(
            "{tag}: the child process ended with {} and no result: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Describe a child ended by signal `s`: the cases its reader threads had in flight are in
/// `dir/case-<thread>` (see [`run_cases`]). Each is read again alone, in a child process of its
/// own; the first that still ends its process is the failing case: its mutation is shrunk while
/// the signal persists and the smallest mutant saved. If none fails alone, the fault needed the
/// cases together (threads): all are named and saved.
fn report_signal(
    name: &str,
    reader: Reader,
    encoding: Encoding,
    seed: u64,
    s: i32,
    threads: usize,
    dir: &Path,
) -> String {
    let original = std::fs::read(fixture(name)).expect("fixture");
    let mut in_flight: Vec<(String, String, Option<Mutation>)> = (0..threads)
        .filter_map(|t| std::fs::read_to_string(dir.join(format!("case-{t}"))).ok())
        .map(|case| {
            let mut lines = case.lines();
            let index = lines.next().unwrap_or("?").to_owned();
            let debug = lines.next().unwrap_or_default().to_owned();
            (index, debug, lines.next().and_then(parse_mutation))
        })
        .collect();
    in_flight.sort_by_key(|(index, ..)| index.parse::<usize>().unwrap_or(usize::MAX));
    let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let _ = std::fs::create_dir_all(&keep);
    let stem = Path::new(name)
        .file_name()
        .map_or_else(|| "mutant".into(), |f| f.to_string_lossy().into_owned());
    let save = |index: &str, bytes: &[u8]| {
        let saved = keep.join(format!("seed{seed}-case{index}-{}-{stem}", reader.name()));
        if std::fs::write(&saved, bytes).is_ok() {
            saved.display().to_string()
        } else {
            "(could not be saved)".into()
        }
    };
    let alone = in_flight.iter().find_map(|(index, debug, m)| {
        let m = m.as_ref()?;
        crashes(&original, m, reader, encoding, dir).then(|| (index, debug, m.clone()))
    });
    if let Some((index, debug, m)) = alone {
        let m = shrink(&original, m, reader, encoding, dir);
        let saved = save(index, &encoding.encode(apply(&original, &m)));
        return format!(
            "the reader's process ended with signal {s} ({}) on case {index}: {debug}; minimal \
             mutation {m:?}; the minimal mutant is saved at {saved}",
            signal_name(s)
        );
    }
    let cases: Vec<String> = in_flight
        .iter()
        .map(|(index, debug, m)| {
            let saved = m.as_ref().map_or_else(
                || "(not saved)".to_owned(),
                |m| save(index, &encoding.encode(apply(&original, m))),
            );
            format!("case {index}: {debug} (saved at {saved})")
        })
        .collect();
    format!(
        "the reader's process ended with signal {s} ({}) with these cases in flight, none of \
         which ends a process when read alone: {}",
        signal_name(s),
        cases.join("; ")
    )
}

/// A case as the child records it: its Debug form, then its fields exactly (for [`shrink`]).
fn case_fields(m: &Mutation) -> String {
    let fields = match m {
        Mutation::Truncate(f) => format!("T {f:?}"),
        Mutation::Flip(v) => {
            let s: Vec<String> = v.iter().map(|(f, b)| format!("{f:?} {b}")).collect();
            format!("F {}", s.join(" "))
        }
        Mutation::Window(f, w) => {
            let s: Vec<String> = w.iter().map(u8::to_string).collect();
            format!("W {f:?} {}", s.join(" "))
        }
        Mutation::Card(k, v) => format!("C {k} {v}"),
    };
    let debug: String = format!("{m:?}").chars().take(300).collect();
    format!("{debug}\n{fields}")
}

/// The mutation [`case_fields`] wrote.
fn parse_mutation(fields: &str) -> Option<Mutation> {
    let mut it = fields.split(' ');
    let kind = it.next()?;
    let rest: Vec<&str> = it.filter(|x| !x.is_empty()).collect();
    let f = |i: usize| rest.get(i).and_then(|x| x.parse::<f64>().ok());
    match kind {
        "T" => Some(Mutation::Truncate(f(0)?)),
        "F" => Some(Mutation::Flip(
            rest.chunks_exact(2)
                .map(|c| Some((c[0].parse().ok()?, c[1].parse().ok()?)))
                .collect::<Option<_>>()?,
        )),
        "W" => Some(Mutation::Window(
            f(0)?,
            rest[1..]
                .iter()
                .map(|b| b.parse().ok())
                .collect::<Option<_>>()?,
        )),
        "C" => Some(Mutation::Card(
            rest.first()?.parse().ok()?,
            rest.get(1)?.parse().ok()?,
        )),
        _ => None,
    }
}

/// Whether `reader` on the mutant of `m` ends its process with a signal (run in a child).
fn crashes(original: &[u8], m: &Mutation, reader: Reader, encoding: Encoding, dir: &Path) -> bool {
    let p = mutant_path(&dir.join("shrink"), "x.fits", encoding);
    let _ = std::fs::create_dir_all(dir.join("shrink"));
    if std::fs::write(&p, encoding.encode(apply(original, m))).is_err() {
        return false;
    }
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(CHILD_ARGS)
        .env(
            "FRIZZVIEW_FUZZ_ONE",
            format!("{}\n{}", reader.name(), p.display()),
        )
        .output()
        .is_ok_and(|o| signal_of(&o.status).is_some())
}

/// A smaller mutation that still crashes: flipped bytes dropped one at a time, windows shortened.
fn shrink(
    original: &[u8],
    mut m: Mutation,
    reader: Reader,
    encoding: Encoding,
    dir: &Path,
) -> Mutation {
    for _ in 0..60 {
        let candidates: Vec<Mutation> = match &m {
            Mutation::Flip(v) if v.len() > 1 => (0..v.len())
                .map(|i| {
                    let mut w = v.clone();
                    w.remove(i);
                    Mutation::Flip(w)
                })
                .collect(),
            Mutation::Window(f, w) if w.len() > 1 => vec![
                Mutation::Window(*f, w[..w.len() / 2].to_vec()),
                Mutation::Window(*f, w[..w.len() - 1].to_vec()),
            ],
            _ => Vec::new(),
        };
        match candidates
            .into_iter()
            .find(|c| crashes(original, c, reader, encoding, dir))
        {
            Some(c) => m = c,
            None => break,
        }
    }
    m
}

/// The child process's entry point: runs the fuzz cases `FRIZZVIEW_FUZZ_CHILD` describes (from
/// [`run_fuzz`]), or reads the one file `FRIZZVIEW_FUZZ_ONE` names (from [`shrink`]). Ignored
/// in normal runs; without those variables it does nothing.
#[test]
#[ignore = "the fuzz harness's child process, run by run_fuzz"]
fn fuzz_child_process() {
    if let Ok(one) = std::env::var("FRIZZVIEW_FUZZ_ONE") {
        let (reader, path) = one.split_once('\n').expect("reader and path");
        let _ = Reader::by_name(reader).read(Path::new(path));
        return;
    }
    if let Ok(spec) = std::env::var("FRIZZVIEW_FUZZ_TIME") {
        time_case(&spec);
        return;
    }
    let Ok(spec) = std::env::var("FRIZZVIEW_FUZZ_CHILD") else {
        return;
    };
    let v: Vec<&str> = spec.split('\n').collect();
    let [name, reader, encoding, n, dir] = v[..] else {
        panic!("bad FRIZZVIEW_FUZZ_CHILD {spec:?}");
    };
    let encoding = [Encoding::Plain, Encoding::Gzip]
        .into_iter()
        .find(|e| e.name() == encoding)
        .expect("a known encoding");
    let dir = Path::new(dir);
    let n = n.parse().expect("a number of cases");
    let result = match run_cases(name, Reader::by_name(reader), n, encoding, dir) {
        Ok(c) => format!("ok\n{} {} {} {}", c.runs, c.loaded, c.refused, c.slowest),
        Err(e) => format!("fail\n{e}"),
    };
    std::fs::write(dir.join("result"), result).expect("write the result");
}

/// The `n` mutations of a seed, in order: drawn from the seed's ChaCha stream before any case
/// runs, so that they do not depend on the number of reader threads or on the order the cases
/// finish in.
fn mutations(seed: u64, n: u32) -> Vec<Mutation> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    let strategy = mutation();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("a mutation")
                .current()
        })
        .collect()
}

/// What one case did, or why it failed.
fn run_case(reader: Reader, path: &Path, m: &Mutation, stats: &Stats) -> Result<(), String> {
    let start = std::time::Instant::now();
    // The reader runs on its own thread so that a hang fails this case (naming the mutation)
    // instead of stalling the whole test run; the stuck thread is abandoned.
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(|| reader.read(&p))));
    });
    let Ok(outcome) = rx.recv_timeout(HANG) else {
        return Err(format!("no answer within {HANG:?} (a hang) on {m:?}"));
    };
    let took = start.elapsed().as_secs_f64();
    if let Ok(mut s) = stats.slowest.lock()
        && took > s.0
    {
        *s = (took, format!("{m:?}").chars().take(120).collect());
    }
    match outcome {
        Err(_) => Err(format!("panic on {m:?}")),
        Ok(Ok(d)) => {
            stats.loaded.fetch_add(1, Ordering::Relaxed);
            if d.visits.is_empty() {
                return Err(format!("a loaded dataset has no visits, on {m:?}"));
            }
            Ok(())
        }
        Ok(Err(e)) => {
            let msg = e.to_string();
            if matches!(e.kind, frizzview::io::LoadErrorKind::ReaderBug { .. }) {
                stats.guard_panics.fetch_add(1, Ordering::Relaxed);
                return Err(format!(
                    "panic caught by the reader's guard (a bug) on {m:?}: {msg}"
                ));
            }
            stats.refused.fetch_add(1, Ordering::Relaxed);
            if !msg.contains("mutant.") {
                return Err(format!(
                    "the message does not name the file, on {m:?}: {msg}"
                ));
            }
            Ok(())
        }
    }
}

/// Time one case again, alone: `FRIZZVIEW_FUZZ_TIME="<fixture>\n<cases>\n<start of the case's
/// Debug form>"` with the seed in `FRIZZVIEW_FUZZ_SEED` (how a sweep's slowest case, reported
/// under load, is checked on its own):
/// `FRIZZVIEW_FUZZ_SEED=1 FRIZZVIEW_FUZZ_TIME=$'spec-3586-55181-0500.fits\n3000\nWindow(0.2221'
/// cargo test --test integration fuzz::fuzz_child_process -- --ignored --nocapture`.
fn time_case(spec: &str) {
    let v: Vec<&str> = spec.splitn(3, '\n').collect();
    let [name, n, prefix] = v[..] else {
        panic!("bad FRIZZVIEW_FUZZ_TIME {spec:?}");
    };
    let cases = mutations(seed(), n.parse().expect("a number of cases"));
    let (index, m) = cases
        .iter()
        .enumerate()
        .find(|(_, m)| format!("{m:?}").starts_with(prefix))
        .expect("a case of that seed starts so");
    let dir = scratch_dir();
    let p = mutant_path(dir.path(), name, Encoding::Plain);
    let original = std::fs::read(fixture(name)).expect("fixture");
    std::fs::write(&p, apply(&original, m)).expect("write");
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let outcome = match frizzview::io::load_file(&p) {
            Ok(_) => "loaded".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        println!(
            "case {index}: {:.3} s, {outcome}",
            start.elapsed().as_secs_f64()
        );
    }
}

/// The fuzz cases themselves (in the child process), on [`threads`] reader threads. Thread `t`
/// writes each mutant to `dir/t<t>/` and the case about to run to `dir/case-<t>` first, so that
/// the parent can name the cases in flight if this process dies. The run stops at the first
/// failing case (the lowest-numbered one, of those that failed, is reported).
fn run_cases(
    name: &str,
    reader: Reader,
    n: u32,
    encoding: Encoding,
    dir: &Path,
) -> Result<Counts, String> {
    let original = std::fs::read(fixture(name)).expect("fixture");
    let stats = Stats {
        runs: AtomicUsize::new(0),
        loaded: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
        guard_panics: AtomicUsize::new(0),
        slowest: std::sync::Mutex::new((0.0, String::new())),
    };
    let seed = seed();
    let cases = mutations(seed, n);
    let next = AtomicUsize::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let failures = std::sync::Mutex::new(Vec::<(usize, String)>::new());
    std::thread::scope(|scope| {
        for t in 0..threads() {
            let (original, cases, next, stop, failures, stats) =
                (&original, &cases, &next, &stop, &failures, &stats);
            scope.spawn(move || {
                let sub = dir.join(format!("t{t}"));
                std::fs::create_dir_all(&sub).expect("a thread's folder");
                let target = mutant_path(&sub, name, encoding);
                let case_file = dir.join(format!("case-{t}"));
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(m) = cases.get(index) else { break };
                    let bytes = encoding.encode(apply(original, m));
                    std::fs::write(&target, &bytes).expect("write mutant");
                    std::fs::write(&case_file, format!("{index}\n{}", case_fields(m)))
                        .expect("write case");
                    stats.runs.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = run_case(reader, &target, m, stats) {
                        stop.store(true, Ordering::Relaxed);
                        if let Ok(mut f) = failures.lock() {
                            f.push((index, e));
                        }
                    }
                }
            });
        }
    });
    let (r, l, f) = (
        stats.runs.load(Ordering::Relaxed),
        stats.loaded.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
    );
    let p = stats.guard_panics.load(Ordering::Relaxed);
    println!(
        "fuzz {name} with {} (FRIZZVIEW_FUZZ_SEED={seed}, {} reader threads): {r} executions, \
         {l} loaded, {f} refused with an error, {p} panics behind the guard, 0 signals",
        reader.name(),
        threads()
    );
    let slowest = stats.slowest.lock().map_or(0.0, |s| {
        println!("  slowest case {:.3} s: {}", s.0, s.1);
        s.0
    });
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|(index, _)| *index);
    if let Some((index, e)) = failures.into_iter().next() {
        return Err(format!(
            "fuzz {name} (FRIZZVIEW_FUZZ_SEED={seed}): case {index} failed: {e}"
        ));
    }
    Ok(Counts {
        runs: r,
        loaded: l,
        refused: f,
        slowest,
    })
}

/// The size of the apVisit fixture: the injected faults below fire on shorter mutants.
fn apvisit_len() -> u64 {
    std::fs::metadata(fixture("apVisit-r13-5095-55844-128.fits")).map_or(0, |m| m.len())
}

/// A reader with a bug behind the real guard: it panics (as a reader bug would) on every
/// mutant shorter than the fixture, inside `frizzview::io::run_guarded`, the guard every FITS
/// reader runs behind.
fn reader_with_injected_panic(
    path: &Path,
) -> Result<frizzview::model::Dataset, frizzview::io::LoadError> {
    frizzview::io::run_guarded(path, || {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len < apvisit_len() {
            panic!("injected reader bug");
        }
        frizzview::io::load_file(path)
    })
}

/// A reader that ends its process as a fault in C code does (here an abort, SIGABRT), behind the
/// real guard (which cannot catch it), on every mutant shorter than the fixture.
fn reader_with_injected_abort(
    path: &Path,
) -> Result<frizzview::model::Dataset, frizzview::io::LoadError> {
    frizzview::io::run_guarded(path, || {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len < apvisit_len() {
            std::process::abort();
        }
        frizzview::io::load_file(path)
    })
}

/// A reader that ends its process (abort) when two reads of it overlap in one process, as a
/// fault of unsynchronised state shared between threads would: no file makes it fail alone.
fn reader_with_injected_race(
    path: &Path,
) -> Result<frizzview::model::Dataset, frizzview::io::LoadError> {
    static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
    frizzview::io::run_guarded(path, || {
        if IN_FLIGHT.fetch_add(1, Ordering::SeqCst) > 0 {
            std::process::abort();
        }
        // Long enough for the other thread's read to start meanwhile.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let r = frizzview::io::load_file(path);
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        r
    })
}

/// The harness can fail: a panic behind the guard (which users see as a "please report" error)
/// fails the fuzz run, and the guard counts it.
#[test]
fn fuzz_harness_fails_on_a_panic_behind_the_guard() {
    let err = run_fuzz(
        "apVisit-r13-5095-55844-128.fits",
        Reader::InjectedPanic,
        200,
        Encoding::Plain,
    )
    .expect_err("the injected panic must fail the fuzz run");
    assert!(
        err.contains("panic caught by the reader's guard")
            && err.contains("injected reader bug")
            && err.contains("a bug in frizzview"),
        "{err}"
    );
    // The guard counts it (here, in this process; the fuzz run's child counts its own).
    let before = frizzview::io::guarded_panics();
    let dir = tempfile::tempdir().expect("tempdir");
    let short = dir.path().join("short.fits");
    std::fs::write(&short, b"SIMPLE  =").expect("write");
    assert!(reader_with_injected_panic(&short).is_err());
    assert!(frizzview::io::guarded_panics() > before);
    // The same harness passes the real reader.
    let ok = run_fuzz(
        "apVisit-r13-5095-55844-128.fits",
        Reader::LoadFile,
        20,
        Encoding::Plain,
    )
    .expect("the real reader passes");
    assert_eq!(ok.runs, 20);
}

/// The harness survives a reader that ends its process (as cfitsio's SIGFPE did) and reports it
/// as a failure with the seed, the signal, the case and the saved minimal mutant.
#[test]
fn fuzz_harness_survives_and_reports_a_signal() {
    let err = run_fuzz(
        "apVisit-r13-5095-55844-128.fits",
        Reader::InjectedAbort,
        200,
        Encoding::Plain,
    )
    .expect_err("the injected abort must fail the fuzz run");
    assert!(
        err.contains(&format!("FRIZZVIEW_FUZZ_SEED={}", seed()))
            && err.contains("signal 6 (SIGABRT)")
            && err.contains("minimal mutation Truncate(")
            && err.contains("saved at"),
        "{err}"
    );
    let saved = err.rsplit("saved at ").next().unwrap_or_default().trim();
    let len = std::fs::metadata(saved).map_or(u64::MAX, |m| m.len());
    assert!(
        len < apvisit_len(),
        "the saved mutant is the truncated one: {saved}"
    );
}

/// A signal that needs two reads at once (two reader threads) is reported as such: every case in
/// flight is re-read alone, none fails, and all are named with the seed; one thread passes.
#[test]
fn fuzz_harness_reports_a_signal_of_concurrent_reads() {
    let name = "apVisit-r13-5095-55844-128.fits";
    let err = run_fuzz_on(name, Reader::InjectedRace, 40, Encoding::Plain, 2)
        .expect_err("two overlapping reads must fail the fuzz run");
    assert!(
        err.contains(&format!("FRIZZVIEW_FUZZ_SEED={}", seed()))
            && err.contains("FRIZZVIEW_FUZZ_THREADS=2")
            && err.contains("signal 6 (SIGABRT)")
            && err.contains("none of which ends a process when read alone")
            && err.matches("saved at").count() == 2,
        "{err}"
    );
    let ok = run_fuzz_on(name, Reader::InjectedRace, 10, Encoding::Plain, 1)
        .expect("one thread never overlaps");
    assert_eq!(ok.runs, 10);
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
        let c = run_fuzz(name, Reader::LoadFile, cases() / 2, Encoding::Gzip)
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

/// A copy of `bytes` with the value of the card `key` of the header starting at `from` replaced
/// by `value` (columns 11-80, as written), or with the card inserted before END when absent.
fn with_card_text(bytes: &[u8], from: usize, key: &str, value: &str) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let mut k = key.as_bytes().to_vec();
    k.resize(8, b' ');
    let cards = (from / 80..b.len() / 80).map(|c| c * 80);
    let end = cards
        .clone()
        .find(|&o| b[o..].starts_with(b"END     "))
        .expect("an END card");
    let at = cards
        .take_while(|&o| o < end)
        .find(|&o| b[o..].starts_with(&k))
        .unwrap_or_else(|| {
            // Insert: END moves one card on (the header block has room in these fixtures).
            assert!((end + 80) % 2880 != 0, "no room for a card before END");
            b.copy_within(end..end + 80, end + 80);
            end
        });
    let mut card = format!("{key:<8}= {value}").into_bytes();
    card.resize(80, b' ');
    b[at..at + 80].copy_from_slice(&card);
    b
}

/// The mwmVisit fixture's first table (HDU 1, BOSS/APO) starts here.
const MWM_HDU1: usize = 2880;

/// Every card cfitsio divides by or sizes an allocation with, set to a value it cannot take:
/// refused before cfitsio sees the file, naming the file, the HDU and the card. Each was shown
/// to end the process (SIGFPE) or panic in `fitsio` with the checks switched off
/// (`FRIZZVIEW_TEST_UNCHECKED_COLUMNS=1`).
#[test]
fn cards_cfitsio_divides_by_are_refused_naming_the_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mwm = std::fs::read(fixture("mwmVisit-0.6.0-63050396587.fits")).expect("fixture");
    let apvisit = std::fs::read(fixture("apVisit-r13-5095-55844-128.fits")).expect("fixture");
    let ext = apvisit
        .windows(9)
        .position(|w| w == b"XTENSION=")
        .expect("an extension");
    // (case, bytes, what the message must say)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // 'rAw' with w = 0: cfitsio divides the repeat by the string width (SIGFPE).
        (
            "string-width-0",
            with_card_text(&mwm, MWM_HDU1, "TFORM2", "'6A0     '"),
            "TFORM2 = '6A0' declares strings of no characters",
        ),
        // A TDIMn of 0 on a text column sets the same width to 0 (SIGFPE).
        (
            "tdim-0",
            with_card_text(&mwm, MWM_HDU1, "TDIM2", "'(0)'"),
            "TDIM2 = '(0)' has a dimension below 1",
        ),
        // A column of no elements: cfitsio divides by the repeat count (SIGFPE); NAXIS1 shrinks
        // with it so that cfitsio's own row-width check passes.
        (
            "repeat-0",
            with_card_text(
                &with_card_text(&mwm, MWM_HDU1, "TFORM3", "'0J      '"),
                MWM_HDU1,
                "NAXIS1",
                "               74428",
            ),
            "TFORM3 = '0J' declares a column of no elements",
        ),
        // A TFORM of digits only: `fitsio` indexed past its end (panic, tables.rs:716).
        (
            "no-code",
            with_card_text(&mwm, MWM_HDU1, "TFORM3", "'1       '"),
            "TFORM3 = '1' has no FITS column type code",
        ),
        // Unsigned 64-bit pixels: `fitsio` has no image type for them (panic).
        (
            "bzero-2-63",
            with_card_text(
                &with_card_text(&apvisit, ext, "BITPIX", "                  64"),
                ext,
                "BZERO",
                " 9223372036854775808",
            ),
            "BZERO = 2^63",
        ),
        (
            "blank-float",
            with_card_text(&apvisit, ext, "BLANK", "                   0"),
            "BLANK = 0 on a floating-point image",
        ),
        (
            "naxis1-0",
            with_card_text(&apvisit, ext, "NAXIS1", "                   0"),
            "NAXIS1 = 0 in an image",
        ),
        (
            "theap",
            with_card_text(&mwm, MWM_HDU1, "THEAP", "                  -5"),
            "THEAP = -5 is outside the heap",
        ),
        (
            "tdisp-wide",
            with_card_text(&mwm, MWM_HDU1, "TDISP2", "'A2000000000'"),
            "TDISP2 = 'A2000000000' declares a display width",
        ),
        (
            "duplicate",
            dup_tform1(&mwm),
            "the TFORM1 card appears twice",
        ),
        (
            "xtension",
            with_card_text(&mwm, MWM_HDU1, "XTENSION", "'A3DTABLE'"),
            "XTENSION = 'A3DTABLE' is not an extension frizzview reads",
        ),
    ];
    for (what, bytes, expect) in cases {
        let p = dir.path().join(format!("hostile-{what}.fits"));
        std::fs::write(&p, &bytes).expect("write");
        let err = frizzview::io::load_file(&p)
            .err()
            .unwrap_or_else(|| panic!("{what}: a hostile file loaded"));
        assert!(
            !matches!(err.kind, frizzview::io::LoadErrorKind::ReaderBug { .. }),
            "{what}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("hostile-{what}.fits"))
                && msg.contains("HDU")
                && msg.contains(expect),
            "{what}: {msg}"
        );
    }
}

/// Found by the fuzz sweep, seed 14 (`fuzz_allvisit_reader`, case 618): this window of bytes over the allVisit
/// table's header made `fitsio` index past the end of a column type cfitsio had left empty
/// (tables.rs:716, a panic behind the guard). With the card checks switched off
/// (`FRIZZVIEW_TEST_UNCHECKED_COLUMNS=1`) this test fails with that panic; now the file is refused
/// naming the HDU and the card.
#[test]
fn seed_14_allvisit_window_is_refused_naming_the_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, table) = sdss5_fixtures(dir.path());
    let original = std::fs::read(&table).expect("allVisit");
    let m = Mutation::Window(
        0.473_296_987_517_661_14,
        vec![
            86, 66, 36, 33, 149, 151, 171, 148, 240, 90, 252, 133, 205, 118, 7, 15, 45, 90, 33,
            166, 211, 49, 23, 195, 62, 73, 1, 217, 65, 165, 151, 58, 209, 88, 203, 127, 180, 120,
            32,
        ],
    );
    let p = dir.path().join("seed14.fits");
    std::fs::write(&p, apply(&original, &m)).expect("write");
    let err = frizzview::io::load_file(&p).expect_err("refused");
    let msg = err.to_string();
    println!("{msg}");
    assert!(
        !matches!(err.kind, frizzview::io::LoadErrorKind::ReaderBug { .. })
            && msg.contains("seed14.fits")
            && msg.contains("HDU 1"),
        "{msg}"
    );
}

/// The mwmVisit fixture with its TTYPE2 card (HDU 1) replaced by a second TFORM1.
fn dup_tform1(mwm: &[u8]) -> Vec<u8> {
    let mut b = mwm.to_vec();
    let mut card = b"TFORM1  = '4A      '".to_vec();
    card.resize(80, b' ');
    b[3680..3760].copy_from_slice(&card);
    b
}

/// The crafted file of the CLI and window tests: the mwmVisit fixture with TFORM2 = '6A0' (text
/// of zero-character strings), on which cfitsio divides by zero when the column is read.
pub(crate) fn division_by_zero_file(dir: &Path) -> PathBuf {
    let mwm = std::fs::read(fixture("mwmVisit-0.6.0-63050396587.fits")).expect("fixture");
    let p = dir.join("crafted-sigfpe.fits");
    std::fs::write(&p, with_card_text(&mwm, MWM_HDU1, "TFORM2", "'6A0     '")).expect("write");
    p
}

/// The crafted file is hostile to cfitsio itself, not only to frizzview's readers: opened with the
/// `fitsio` crate directly (no frizzview code, none of its checks), reading its text column
/// `telescope` ends the process with SIGFPE. Run in a child process of this test binary
/// ([`raw_fitsio_child`]); this is what makes the command-line and window tests of the file mean
/// something.
#[test]
fn the_crafted_file_makes_raw_cfitsio_divide_by_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crafted = division_by_zero_file(dir.path());
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "fuzz::raw_fitsio_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FRIZZVIEW_RAW_FITSIO", &crafted)
        .output()
        .expect("the test binary runs");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("raw fitsio: opened"), "{log}");
    assert_eq!(signal_of(&out.status), Some(8), "{log} {}", out.status);
    // The same column of the fixture as it was reads (the child is not simply broken).
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "fuzz::raw_fitsio_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "FRIZZVIEW_RAW_FITSIO",
            fixture("mwmVisit-0.6.0-63050396587.fits"),
        )
        .output()
        .expect("the test binary runs");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && log.contains("raw fitsio: read [\"apo25m\"]"),
        "{log}"
    );
}

/// The child of [`the_crafted_file_makes_raw_cfitsio_divide_by_zero`]: reads HDU 1's column
/// `telescope` of the file `FRIZZVIEW_RAW_FITSIO` names with `fitsio` alone.
#[test]
#[ignore = "run by the_crafted_file_makes_raw_cfitsio_divide_by_zero in a child process"]
fn raw_fitsio_child() {
    let Some(path) = std::env::var_os("FRIZZVIEW_RAW_FITSIO") else {
        return;
    };
    let mut f = fitsio::FitsFile::open(&path).expect("open");
    let hdu = f.hdu(1).expect("HDU 1");
    println!("raw fitsio: opened");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let col: Vec<String> = hdu.read_col(&mut f, "telescope").expect("read");
    println!("raw fitsio: read {col:?}");
}

/// The command line refuses the crafted file with exit 2 and a message naming the file, the HDU
/// and the card; with the card checks switched off, the read sandbox's child process meets the
/// division by zero (SIGFPE) and the command line still exits 2, naming the file and the signal.
#[test]
fn cli_refuses_a_file_cfitsio_divides_by_zero_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crafted = division_by_zero_file(dir.path());
    let out = dir.path().join("out.fits");
    let run = |unchecked: bool| {
        let mut c = super::shared::frizzview();
        c.arg("combine").arg(&crafted).arg("-o").arg(&out);
        if unchecked {
            c.env("FRIZZVIEW_TEST_UNCHECKED_COLUMNS", "1");
        }
        c.output().expect("frizzview runs")
    };
    let checked = run(false);
    let err = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(checked.status.code(), Some(2), "{err}");
    assert!(
        err.contains("crafted-sigfpe.fits") && err.contains("HDU 1") && err.contains("TFORM2"),
        "{err}"
    );
    let contained = run(true);
    let err = String::from_utf8_lossy(&contained.stderr);
    assert_eq!(contained.status.code(), Some(2), "{err}");
    assert!(
        err.contains("crafted-sigfpe.fits") && err.contains("signal 8 (SIGFPE"),
        "{err}"
    );
    assert!(!out.exists());
}

/// SDSS-V layouts, written at test time from the committed Doppler fixture (apVisit DR19 with a
/// FLUX CONVERSION image) and from synthetic rows (allVisit DR19); `fuzz_file` takes the absolute
/// path (`Path::join` of an absolute path is that path).
fn sdss5_fixtures(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use frizzview_core::testkit::write_layouts as wl;
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
    use frizzview_core::testkit::write_layouts as wl;
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
    use frizzview_core::testkit::write_layouts as wl;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = wl::write_lamost_mrs(dir.path(), &wl::lamost_mrs_example(58_268, 2, 48))
        .expect("LAMOST fixture");
    let (runs, loaded, refused) = fuzz_file(&file.to_string_lossy());
    assert!(runs >= cases() as usize && refused > 0 && loaded > 0);
    // The real files come gzipped: the same mutations through the in-memory path.
    let c = run_fuzz(
        &file.to_string_lossy(),
        Reader::LoadFile,
        cases() / 2,
        Encoding::Gzip,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.runs >= (cases() / 2) as usize && c.refused > 0);
}

/// Every reader of the registry has a fuzz target above: the formats the targets' files are
/// detected as cover `Registry::builtin().readers()`, but for the ones named here with why. A
/// reader registered without a fuzz target fails this test (it runs no mutation).
#[test]
fn every_registered_reader_has_a_fuzz_target() {
    use frizzview_core::testkit::write_layouts as wl;
    const NOT_FUZZED: [(&str, &str); 2] = [
        (
            "frizzview result",
            "refused on its FVSETN card before anything reads it",
        ),
        (
            "FITS table",
            "the generic reader: the mutants no specific reader claims any more reach it",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let (visit_dr19, allvisit) = sdss5_fixtures(dir.path());
    let mut files: Vec<std::path::PathBuf> = [
        "apVisit-r13-5095-55844-128.fits",
        "spec-3586-55181-0500.fits",
        "apCframe-b-42380011.fits",
        "spec-003586-55181-27021600000000500.fits",
        "mwmVisit-0.6.0-63050396587.fits",
        "reference/case_a_f64_input.npz",
        "small.csv",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    files.extend([visit_dr19, allvisit, sdss5_apstar(dir.path())]);
    files.push(
        wl::write_lamost_mrs(dir.path(), &wl::lamost_mrs_example(58_268, 2, 48))
            .expect("LAMOST fixture"),
    );
    let fuzzed: Vec<frizzview::io::Format> = files
        .iter()
        .map(|f| frizzview::io::detect_format(f).expect("a target's file is read"))
        .collect();
    for r in frizzview::io::Registry::builtin().readers() {
        let name = r.format().name();
        let exempt = NOT_FUZZED.iter().any(|(n, _)| *n == name);
        assert!(
            fuzzed.contains(&r.format()) || exempt,
            "the reader of {name} has no fuzz target: add one (a #[test] calling fuzz_file)"
        );
        assert!(
            !(exempt && fuzzed.contains(&r.format())),
            "{name} is fuzzed: take it off NOT_FUZZED"
        );
    }
}
