//! `frizzview combine` as a user runs it: the real binary, real files, exit codes, messages.

use std::path::Path;

use super::io::fixture;
use super::shared::frizzview;

fn run(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    super::shared::run(frizzview().args(args))
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn combine_reference_bundle_to_npz_matches_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("a.npz");
    let input = fixture("reference/case_a_f64_input.npz");
    let (code, stdout, stderr) =
        run(&[os("combine"), input.as_os_str(), os("-o"), out.as_os_str()]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stdout.contains("10 visits"), "{stdout}");
    // The library on the same input with the same defaults gives the same y*.
    let data = frizzview::io::load_file(&input).expect("load");
    let settings = frizzview::cli::combine::survey_defaults(&data);
    let c = frizzview::combine::combine(&data, &settings, &frizzview::combine::Cancel::new())
        .expect("combine");
    let f = c.forward.as_ref().expect("forward");
    let bytes = std::fs::read(&out).expect("output");
    assert!(bytes.starts_with(b"PK"), "an .npz archive");
    let mut z = ndarray_npy::NpzReader::new(std::fs::File::open(&out).expect("open")).expect("npz");
    let y: ndarray::Array1<f64> = z.by_name("y_star").expect("y_star");
    let band: ndarray::Array2<f64> = z.by_name("C_band").expect("C_band");
    let lam: ndarray::Array1<f64> = z.by_name("lam_out").expect("lam_out");
    assert_eq!(lam.len(), 2000);
    assert_eq!(band.shape(), &[6, 2000]);
    for l in 0..2000 {
        assert!(y[l] == f.flux[l] || (y[l].is_nan() && f.flux[l].is_nan()));
        assert!(band[[0, l]] == f.var[l] || (band[[0, l]].is_nan() && f.var[l].is_nan()));
    }
    let names = z.names().expect("names");
    for key in [
        "var",
        "flags",
        "no_data_mask",
        "standard_y_star",
        "settings_json",
    ] {
        assert!(names.iter().any(|n| n == key), "missing {key}: {names:?}");
    }
}

#[test]
fn combine_apvisit_to_fits_with_no_other_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("star.fits");
    let input = fixture("apVisit-r13-5095-55844-128.fits");
    let (code, stdout, stderr) =
        run(&[os("combine"), input.as_os_str(), os("-o"), out.as_os_str()]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stdout.contains("shifts from vrad"), "{stdout}");
    assert!(stdout.contains("8575 px"), "{stdout}");
    let bytes = std::fs::read(&out).expect("output");
    assert!(bytes.starts_with(b"SIMPLE  ="));
    let header = String::from_utf8_lossy(&bytes[..2880 * 4]);
    for card in [
        "NVISITS =                    1",
        "CTYPE1  = 'LOG-LINEAR'",
        "SFILE1  = 'apVisit-r13-5095-55844-128.fits'",
    ] {
        assert!(header.contains(card), "missing {card}");
    }
    assert!(
        header.contains("\"bad_bits\":16639"),
        "settings JSON with APOGEE bad bits"
    );
    // A result is not an input.
    let again = dir.path().join("again.fits");
    let (code, _, stderr) = run(&[os("combine"), out.as_os_str(), os("-o"), again.as_os_str()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("star.fits") && stderr.contains("frizzview result"),
        "{stderr}"
    );
    // Running again over an input file is refused, and the input survives.
    let before = std::fs::read(&input).expect("input");
    let (code, _, stderr) = run(&[
        os("combine"),
        input.as_os_str(),
        os("-o"),
        input.as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("input"), "{stderr}");
    assert_eq!(std::fs::read(&input).expect("input"), before);
}

/// cfitsio's extended file-name syntax reads `(`, `[` and `+` as syntax; a browser download named
/// `spec (1).fits` or an output folder `run[2]` must still just work.
#[test]
fn fits_names_with_brackets_and_parentheses_read_and_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("apVisit copy (1) [a]+b.fits");
    std::fs::copy(fixture("apVisit-r13-5095-55844-128.fits"), &input).expect("copy");
    let plain =
        frizzview::io::load_file(&fixture("apVisit-r13-5095-55844-128.fits")).expect("plain");
    let odd = frizzview::io::load_file(&input).expect("a name with brackets loads");
    assert_eq!(odd.visits[0].flux(), plain.visits[0].flux());
    let folder = dir.path().join("run[2] (x)");
    std::fs::create_dir(&folder).expect("folder");
    let out = folder.join("star (1).fits");
    let (code, _, stderr) = run(&[os("combine"), input.as_os_str(), os("-o"), out.as_os_str()]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let settings = frizzview::export::fits::read_settings(&out).expect("settings read back");
    assert_eq!(settings.grid, frizzview::settings::GridSpec::Apogee);
    assert_eq!(settings.visits.len(), 1);
}

#[test]
fn errors_exit_2_and_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("broken-visit.fits");
    let bytes = std::fs::read(fixture("apVisit-r13-5095-55844-128.fits")).expect("fixture");
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).expect("write");
    let out = dir.path().join("o.fits");
    let (code, _, stderr) = run(&[os("combine"), bad.as_os_str(), os("-o"), out.as_os_str()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("broken-visit.fits"), "{stderr}");
    assert!(!out.exists(), "no output on failure");
    let missing = dir.path().join("nope.npz");
    let (code, _, stderr) = run(&[
        os("combine"),
        missing.as_os_str(),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("nope.npz"), "{stderr}");
    let (code, _, stderr) = run(&[
        os("combine"),
        fixture("reference/case_a_f64_input.npz").as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--exclude"),
        os("no-such-visit"),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no-such-visit"), "{stderr}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn batch_manifest_with_shards_and_skips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for n in ["a", "b", "c"] {
        std::fs::copy(
            fixture("reference/case_a_f64_input.npz"),
            d.join(format!("{n}.npz")),
        )
        .expect("copy");
    }
    let manifest = d.join("stars.txt");
    write(
        &manifest,
        "# name files\nstar-a a.npz\nstar-b\tb.*\nstar-c c.npz\n",
    );
    let out = d.join("out");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "combine".to_owned(),
            "--manifest".into(),
            manifest.display().to_string(),
            "--out-dir".into(),
            out.display().to_string(),
            "--format".into(),
            "npz".into(),
            "--method".into(),
            "standard".into(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let o = frizzview()
        .args(args(&["--shard", "1/2"]))
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("star-b.npz").exists());
    assert!(!out.join("star-a.npz").exists() && !out.join("star-c.npz").exists());
    let o = frizzview().args(args(&[])).output().expect("run");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("2 combined, 1 skipped"), "{stdout}");
    for n in ["a", "b", "c"] {
        assert!(out.join(format!("star-{n}.npz")).exists());
    }
    // A star with a broken file fails alone; the batch reports it and exits 2.
    write(&d.join("bad.npz"), "not a bundle");
    write(&manifest, "star-bad bad.npz\nstar-a a.npz\n");
    let o = frizzview().args(args(&["--force"])).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("star-bad") && stderr.contains("bad.npz"),
        "{stderr}"
    );
}

/// `frizzview combine --compat frizzle` on the reference bundle reproduces frizzle 0.2.8 (x64):
/// the whole path (reader, defaults, solver, writer) against outputs no one here wrote.
#[test]
fn combine_cli_compat_frizzle_matches_the_python_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("a.npz");
    let input = fixture("reference/case_a_f64_input.npz");
    let (code, _, stderr) = run(&[
        os("combine"),
        input.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--compat"),
        os("frizzle"),
        os("--method"),
        os("forward"),
        os("--quiet"),
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let mut ours =
        ndarray_npy::NpzReader::new(std::fs::File::open(&out).expect("open")).expect("npz");
    let mut refr = ndarray_npy::NpzReader::new(
        std::fs::File::open(fixture("reference/case_a_f64_out.npz")).expect("open"),
    )
    .expect("npz");
    let y: ndarray::Array1<f64> = ours.by_name("y_star").expect("y_star");
    let var: ndarray::Array1<f64> = ours.by_name("var").expect("var");
    let flags: ndarray::Array1<u64> = ours.by_name("flags").expect("flags");
    let nd: ndarray::Array1<bool> = ours.by_name("no_data_mask").expect("no_data_mask");
    let y_ref: ndarray::Array1<f64> = refr.by_name("y_star").expect("y_star");
    let var_ref: ndarray::Array1<f64> = refr.by_name("C_star_diag").expect("C_star_diag");
    let flags_ref: ndarray::Array1<u64> = refr.by_name("flags_star").expect("flags_star");
    let nd_ref: ndarray::Array1<bool> = refr.by_name("no_data_mask").expect("no_data_mask");
    assert_eq!(nd, nd_ref, "no-data mask");
    assert_eq!(flags, flags_ref, "flags");
    let mut worst_sigma: f64 = 0.0;
    let mut worst_var: f64 = 0.0;
    for l in 0..y.len() {
        if nd_ref[l] || !var_ref[l].is_finite() {
            continue;
        }
        worst_sigma = worst_sigma.max((y[l] - y_ref[l]).abs() / var_ref[l].sqrt());
        worst_var = worst_var.max((var[l] / var_ref[l] - 1.0).abs());
    }
    println!(
        "cli --compat frizzle vs frizzle 0.2.8: max |dy|/sigma {worst_sigma:.2e}, max rel dvar {worst_var:.2e}"
    );
    assert!(worst_sigma < 1e-5, "y* off by {worst_sigma} sigma");
    assert!(worst_var < 1e-5, "var off by {worst_var} relative");
}

/// A result can be reproduced from its own file: `--settings star.fits` gives the same numbers.
#[test]
fn a_fits_result_reproduces_itself_with_settings_from_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = fixture("reference/case_a_f64_input.npz");
    let first_fits = dir.path().join("first.fits");
    let first_npz = dir.path().join("first.npz");
    let again = dir.path().join("again.npz");
    let flags = [
        "--basis",
        "local",
        "--lags",
        "7",
        "--exclude",
        "3",
        "--weight",
        "visit 1=0.5",
        "--quiet",
    ];
    for out in [&first_fits, &first_npz] {
        let mut args = vec![os("combine"), input.as_os_str(), os("-o"), out.as_os_str()];
        args.extend(flags.iter().map(|s| os(s)));
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, _, stderr) = run(&[
        os("combine"),
        input.as_os_str(),
        os("-o"),
        again.as_os_str(),
        os("--settings"),
        first_fits.as_os_str(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let read = |p: &Path| {
        let mut z =
            ndarray_npy::NpzReader::new(std::fs::File::open(p).expect("open")).expect("npz");
        let y: ndarray::Array1<f64> = z.by_name("y_star").expect("y_star");
        let band: ndarray::Array2<f64> = z.by_name("C_band").expect("C_band");
        let s: ndarray::Array1<u8> = z.by_name("settings_json").expect("settings");
        (y, band, s)
    };
    let (y1, b1, s1) = read(&first_npz);
    let (y2, b2, s2) = read(&again);
    assert_eq!(s1, s2, "same settings");
    assert_eq!(b1.shape(), &[8, 2000], "--lags 7 kept");
    let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
    assert!(y1.iter().zip(&y2).all(|(a, b)| same(*a, *b)));
    assert!(b1.iter().zip(&b2).all(|(a, b)| same(*a, *b)));
    let json = String::from_utf8(s1.to_vec()).expect("utf8");
    assert!(
        json.contains("\"Local\"") && json.contains("\"weight\":0.5"),
        "{json}"
    );
}

#[test]
fn a_failing_method_still_writes_the_other() {
    // The LSF extension needs the local basis: with the Fourier basis the forward model fails,
    // and standard practice is still written, with the failure in the summary.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("s.npz");
    let input = fixture("reference/case_a_f64_input.npz");
    let (code, stdout, stderr) = run(&[
        os("combine"),
        input.as_os_str(),
        os("--lsf"),
        os("--basis"),
        os("fourier"),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(
        stdout.contains("forward model FAILED") && stdout.contains("local basis"),
        "{stdout}"
    );
    assert!(stdout.contains("standard practice: chi2/nu"), "{stdout}");
    let mut z = ndarray_npy::NpzReader::new(std::fs::File::open(&out).expect("open")).expect("npz");
    let y: ndarray::Array1<f64> = z.by_name("standard_y_star").expect("standard_y_star");
    assert!(y.iter().filter(|v| v.is_finite()).count() > 1000);
}
