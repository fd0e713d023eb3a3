//! Crafted inputs that ask for absurd amounts of memory: a settings file asking for 10^9
//! covariance lags or a 10^9-pixel grid, data whose automatic grid would need 10^12 pixels, a
//! 100 KB `.npz` that inflates to 8 GiB, a BOSS file with wdisp = 1e6. Each must be refused with
//! a message naming the file or setting and the limit, with exit code 2 from the real binary,
//! while the child's peak memory (wait4's ru_maxrss) stays under 1 GB; the window keeps its data.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::io::fixture;

/// Peak memory allowed to a refused crafted input.
const PEAK_LIMIT_KB: u64 = 1_000_000;

/// A child using more than this is killed (so that a regression fails instead of swapping).
const KILL_KB: u64 = 1_500_000;

/// What a run of the binary did.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stderr: String,
    /// Peak resident memory in KB (None where it cannot be measured).
    peak_kb: Option<u64>,
}

/// Resident memory of a live process (KB), from /proc.
fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run the binary with `args`; on Linux reap it with wait4 to read its own peak memory, with a
/// watchdog that kills it past [`KILL_KB`].
#[allow(unsafe_code)]
fn run_measured(args: &[&OsStr]) -> Outcome {
    let mut child = super::shared::frizzview()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn frizzview");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&done);
    let watchdog = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            if rss_kb(pid).is_some_and(|kb| kb > KILL_KB)
                && !flag.load(std::sync::atomic::Ordering::SeqCst)
            {
                // SAFETY: plain syscall on the child's pid, which is not reaped yet (`done` unset).
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    #[cfg(target_os = "linux")]
    let (code, peak_kb) = {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value of the plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child's pid with valid out-pointers to locals.
        let r = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(r, pid as i32, "wait4 failed");
        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        // Linux reports ru_maxrss in KB.
        (code, u64::try_from(usage.ru_maxrss).ok())
    };
    #[cfg(not(target_os = "linux"))]
    let (code, peak_kb) = {
        let s = child.wait().expect("wait");
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (s.code(), None)
    };
    // The child is reaped (by wait4 or wait): dropping the handle does nothing more.
    drop(child);
    let _ = watchdog.join();
    let stderr = reader.join().unwrap_or_default();
    Outcome {
        code,
        stderr,
        peak_kb,
    }
}

/// Assert a clean refusal: exit code 2, every `expect` in the message, peak memory bounded.
fn assert_refused(case: &str, o: &Outcome, expect: &[&str]) {
    assert_eq!(o.code, Some(2), "{case}: exit code ({o:?})");
    for e in expect {
        assert!(
            o.stderr.contains(e),
            "{case}: '{e}' missing from: {}",
            o.stderr
        );
    }
    match o.peak_kb {
        Some(kb) => {
            println!(
                "{case}: exit 2, peak {:.0} MB: {}",
                kb as f64 / 1000.0,
                o.stderr.trim()
            );
            assert!(kb < PEAK_LIMIT_KB, "{case}: peak memory {kb} KB");
        }
        None => println!("{case}: exit 2 (peak memory not measured here)"),
    }
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// A settings JSON: the defaults with `edit` applied to the JSON value.
fn settings_file(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut v = serde_json::to_value(frizzview::settings::Settings::default()).expect("json");
    edit(&mut v);
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(&v).expect("json")).expect("write");
    p
}

/// Settings asking for 10^9 covariance lags.
fn lags_settings(dir: &Path) -> PathBuf {
    settings_file(dir, "lags.json", |v| {
        v["band_lags"] = 1_000_000_000u64.into()
    })
}

/// A window session (no files, no demo) whose settings ask for 10^9 covariance lags.
#[cfg(feature = "gui")]
fn lags_session(dir: &Path) -> PathBuf {
    let mut settings =
        serde_json::to_value(frizzview::settings::Settings::default()).expect("json");
    settings["band_lags"] = 1_000_000_000u64.into();
    let session =
        serde_json::json!({"version": 1, "files": [], "demo": null, "settings": settings});
    let p = dir.join("lags-session.json");
    std::fs::write(&p, serde_json::to_vec(&session).expect("json")).expect("write");
    p
}

/// An `.npz` of 128 members of 64 MiB of zeros each (8 GiB declared) that all point at one
/// deflated block: about 100 KB on disk.
pub fn npz_bomb(path: &Path) {
    use zip::write::SimpleFileOptions;
    let f = std::fs::File::create(path).expect("create");
    let mut z = zip::ZipWriter::new(f);
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    z.start_file("flux.npy", opts).expect("start");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        z.write_all(&zeros).expect("write");
    }
    for i in 1..128 {
        z.shallow_copy_file("flux.npy", &format!("m{i:03}.npy"))
            .expect("copy");
    }
    z.finish().expect("finish");
}

/// The BOSS fixture with every `wdisp` value set to 1e6 pixels.
pub fn boss_wide_lsf(dir: &Path) -> PathBuf {
    let p = dir.join("spec-wide-lsf.fits");
    std::fs::copy(fixture("spec-3586-55181-0500.fits"), &p).expect("copy");
    let mut f = fitsio::FitsFile::edit(&p).expect("edit");
    let n = f.iter().count();
    let mut edited = 0;
    for i in 1..n {
        let hdu = f.hdu(i).expect("hdu");
        if let fitsio::hdu::HduInfo::TableInfo {
            column_descriptions,
            num_rows,
        } = &hdu.info
            && column_descriptions
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case("wdisp"))
        {
            let rows = *num_rows;
            hdu.write_col(&mut f, "wdisp", &vec![1e6f64; rows])
                .expect("write wdisp");
            edited += 1;
        }
    }
    assert!(edited > 1, "the BOSS fixture has wdisp columns");
    p
}

/// Text data whose median pixel step is 1e-13 in ln lambda over 5000-9000 Angstrom: an
/// automatic grid of 6e12 pixels.
fn tiny_step_csv(dir: &Path) -> PathBuf {
    let p = dir.join("tiny-step.csv");
    let mut s = String::from("wave,flux,ivar\n");
    for i in 0..200 {
        s.push_str(&format!("{},1.0,1.0\n", 5000.0 + 5e-10 * f64::from(i)));
    }
    s.push_str("9000,1.0,1.0\n");
    std::fs::write(&p, s).expect("write");
    p
}

#[test]
fn settings_asking_for_1e9_lags_are_refused_by_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("o.npz");
    let input = fixture("apVisit-r13-5095-55844-128.fits");
    let s = lags_settings(dir.path());
    let o = run_measured(&[
        os("combine"),
        input.as_os_str(),
        os("--settings"),
        s.as_os_str(),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_refused(
        "settings JSON band_lags 1e9",
        &o,
        &["lags.json", "band_lags", "1000000000", "limit of 1000"],
    );
    let o = run_measured(&[
        os("combine"),
        input.as_os_str(),
        os("--lags"),
        os("1000000000"),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_refused("--lags 1e9", &o, &["band_lags", "limit of 1000"]);
    assert!(!out.exists());
}

#[test]
fn a_1e9_pixel_grid_and_an_automatic_grid_of_6e12_pixels_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("o.npz");
    let input = fixture("apVisit-r13-5095-55844-128.fits");
    let s = settings_file(dir.path(), "grid.json", |v| {
        v["grid"] = serde_json::json!({"LogLinear": {"log10_start": 3.5, "log10_step": 1e-9, "n": 1_000_000_000u64}});
    });
    let o = run_measured(&[
        os("combine"),
        input.as_os_str(),
        os("--settings"),
        s.as_os_str(),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_refused(
        "settings JSON grid n 1e9",
        &o,
        &["grid.json", "output grid pixels", "limit of 1000000"],
    );
    // A band of (lags + 1) x pixels above the limit, each within its own.
    let s = settings_file(dir.path(), "band.json", |v| {
        v["grid"] = serde_json::json!({"LogLinear": {"log10_start": 3.5, "log10_step": 1e-7, "n": 900_000u64}});
        v["band_lags"] = 900u64.into();
    });
    let o = run_measured(&[
        os("combine"),
        input.as_os_str(),
        os("--settings"),
        s.as_os_str(),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_refused("band 901 x 900 000", &o, &["band.json", "covariance band"]);
    let csv = tiny_step_csv(dir.path());
    let o = run_measured(&[os("combine"), csv.as_os_str(), os("-o"), out.as_os_str()]);
    assert_refused(
        "automatic grid of 6e12 pixels",
        &o,
        &["automatic grid would need", "limit of 1000000"],
    );
    assert!(!out.exists());
}

#[test]
fn an_npz_that_inflates_to_8_gib_is_refused_before_inflating() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bomb = dir.path().join("bomb.npz");
    npz_bomb(&bomb);
    let size = std::fs::metadata(&bomb).expect("meta").len();
    assert!(size < 200_000, "the bomb is small on disk: {size} bytes");
    let out = dir.path().join("o.npz");
    let o = run_measured(&[os("combine"), bomb.as_os_str(), os("-o"), out.as_os_str()]);
    assert_refused("npz bomb (8 GiB declared)", &o, &["bomb.npz", "limit"]);
    // In the library too, and below the total limit the shared blocks are what gives it away.
    let small = dir.path().join("overlap.npz");
    {
        use zip::write::SimpleFileOptions;
        let mut z = zip::ZipWriter::new(std::fs::File::create(&small).expect("create"));
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        z.start_file("lam.npy", opts).expect("start");
        z.write_all(&[0u8; 4096]).expect("write");
        z.shallow_copy_file("lam.npy", "flux.npy").expect("copy");
        z.finish().expect("finish");
    }
    let e = frizzview::io::load_file(&small).expect_err("overlapping members");
    assert!(e.to_string().contains("share compressed bytes"), "{e}");
}

#[test]
fn an_npz_member_that_inflates_past_its_declared_size_is_refused() {
    use zip::write::SimpleFileOptions;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("liar.npz");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).expect("create"));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    z.start_file("lam.npy", opts).expect("start");
    z.write_all(&vec![0u8; 1 << 20]).expect("write");
    z.finish().expect("finish");
    // Declare 1000 bytes uncompressed in the central directory (offset 24 of its record) and
    // in the local header (offset 22): the deflated stream still holds 1 MiB.
    let mut b = std::fs::read(&p).expect("read");
    let cd = b
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    b[cd + 24..cd + 28].copy_from_slice(&1000u32.to_le_bytes());
    b[22..26].copy_from_slice(&1000u32.to_le_bytes());
    std::fs::write(&p, &b).expect("write");
    let e = frizzview::io::load_file(&p).expect_err("a lying member");
    let msg = e.to_string();
    assert!(
        msg.contains("liar.npz") && msg.contains("key 'lam'"),
        "{msg}"
    );
}

#[test]
fn a_boss_file_with_wdisp_1e6_is_refused_naming_the_file_and_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = boss_wide_lsf(dir.path());
    let out = dir.path().join("o.npz");
    let o = run_measured(&[os("combine"), p.as_os_str(), os("-o"), out.as_os_str()]);
    assert_refused(
        "BOSS wdisp 1e6",
        &o,
        &["spec-wide-lsf.fits", "line-spread-function", "limit of 25"],
    );
    // The unedited file still loads, with its LSF.
    let d = frizzview::io::load_file(&fixture("spec-3586-55181-0500.fits")).expect("BOSS");
    assert!(d.visits.iter().all(|v| v.meta.lsf_sigma_ln.is_some()));
}

#[test]
fn the_lsf_extension_refuses_a_difference_kernel_wider_than_200_output_pixels() {
    use frizzview::settings::{Basis, GridSpec, LsfMode, Settings};
    let d = frizzview::io::load_file(&fixture("spec-3586-55181-0500.fits")).expect("BOSS");
    // Make one visit's LSF 20 native pixels (allowed), the others as read: on the BOSS grid
    // (one output pixel per native pixel) its difference kernel is ~20 pixels: fine; on a grid
    // 100 times finer it is ~2000 output pixels: refused before any design row is built.
    let mut d = d;
    let v0 = (*d.visits[0]).clone();
    let mut meta = v0.meta.clone();
    meta.lsf_sigma_ln = Some(20.0 * 1e-4 * std::f64::consts::LN_10);
    let arrays = frizzview::model::VisitArrays {
        wavelength_aa: v0.wavelength_aa().to_vec(),
        flux: v0.flux().to_vec(),
        ivar: v0.ivar().to_vec(),
        flags: v0.flags().to_vec(),
        bad: v0.bad().to_vec(),
        segments: v0.segments().to_vec(),
        ..Default::default()
    };
    d.visits[0] = std::sync::Arc::new(frizzview::model::Visit::new(meta, arrays).expect("visit"));
    let mut s = Settings {
        grid: GridSpec::LogLinear {
            log10_start: 3.6,
            log10_step: 1e-6,
            n: 100_000,
        },
        standard: None,
        ..Settings::default()
    };
    s.extensions.lsf = LsfMode::FromVisits;
    if let Some(f) = &mut s.forward {
        f.basis = Basis::Local;
    }
    let e = frizzview::combine::combine(&d, &s, &frizzview::combine::Cancel::new())
        .expect_err("too wide for this grid");
    assert!(
        e.to_string().contains("output pixels") && e.to_string().contains("limit of 200"),
        "{e}"
    );
}

#[cfg(feature = "gui")]
mod window {
    use std::path::PathBuf;
    use std::sync::Arc;

    use egui_kittest::Harness;
    use frizzview::app::{DialogKind, Dialogs, FrizzApp, demo};

    fn harness() -> Harness<'static, FrizzApp> {
        let app = FrizzApp::inline(demo::apogee_demo(2).expect("demo data"));
        let mut h = Harness::builder()
            .with_size([1400.0, 900.0])
            .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
        h.run_steps(3);
        h
    }

    /// Open `path` through the (injected) dialog `kind` and let the window settle.
    fn open(h: &mut Harness<'_, FrizzApp>, kind: DialogKind, path: PathBuf) {
        h.state_mut().dialogs = Dialogs::Injected(Box::new(move |_| vec![path.clone()]));
        h.state_mut().start_dialog(kind);
        for _ in 0..200 {
            h.run_steps(1);
            if !h.state().is_computing() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        h.run_steps(2);
    }

    /// Each crafted input, opened in a window that already shows two visits: an error naming
    /// the file and the limit, the two visits, their settings and their result unchanged.
    #[test]
    fn ui_crafted_inputs_are_refused_and_the_session_stays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bomb = dir.path().join("bomb.npz");
        super::npz_bomb(&bomb);
        let cases = [
            (
                DialogKind::OpenSession,
                super::lags_session(dir.path()),
                "limit of 1000",
            ),
            (DialogKind::OpenFiles, bomb, "limit"),
            (
                DialogKind::OpenFiles,
                super::boss_wide_lsf(dir.path()),
                "limit of 25",
            ),
        ];
        let mut h = harness();
        let before = h.state().result.clone().expect("a result");
        let settings = h.state().settings.clone();
        for (kind, path, expect) in cases {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            open(&mut h, kind, path);
            let app = h.state();
            let err = app
                .messages
                .iter()
                .rev()
                .find(|m| m.error)
                .expect("an error message");
            assert!(
                err.text.contains(&name) && err.text.contains(expect),
                "{name}: {}",
                err.text
            );
            assert_eq!(app.data.visits.len(), 2, "{name}: the visits stay");
            assert_eq!(app.settings, settings, "{name}: the settings stay");
            let now = app.result.clone().expect("a result");
            assert!(Arc::ptr_eq(&now, &before), "{name}: the result stays");
        }
    }
}
