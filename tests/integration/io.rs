//! Readers and writers against real files and hand-made bad inputs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use frizzview::io::{self, LoadOptions};
use frizzview::model::{
    Dataset, OutputGrid, Spectrum, Survey, VelocityKind, Visit, VisitArrays, VisitMeta,
};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The message of a load error, checked to name the file.
fn load_err(path: &Path) -> String {
    let err = io::load_file(path).expect_err("bad input must be refused");
    let msg = err.to_string();
    let name = path.file_name().expect("file name").to_string_lossy();
    assert!(
        msg.contains(&*name),
        "message does not name the file: {msg}"
    );
    msg
}

#[test]
fn reference_bundle_reads_like_numpy() {
    let d = io::npz::read_bundle(&fixture("case_a_f64.npz")).expect("reads");
    assert_eq!(d.visits.len(), 10);
    let grid = d
        .input_grid
        .as_ref()
        .expect("lam_out becomes the input grid");
    assert_eq!(grid.len(), 2000);
    for v in &d.visits {
        assert_eq!(v.len(), 2000);
        // The bundle documents flags bit 0 as the bad-pixel bit that `mask` also carries.
        for i in 0..v.len() {
            assert_eq!(v.bad()[i], v.flags()[i] & 1 == 1, "pixel {i}");
        }
        assert!(
            v.meta.velocities.is_empty(),
            "reference bundles carry no velocities"
        );
    }
    // lam is rest-frame ln lambda: the grid spans the visits.
    let lo = d
        .visits
        .iter()
        .map(|v| v.ln_wave()[0])
        .fold(f64::INFINITY, f64::min);
    assert!(
        (lo - grid.ln_wave[0]).abs() < 0.01,
        "visit start {lo} vs grid {}",
        grid.ln_wave[0]
    );
}

fn sample_dataset(src: &Path) -> Dataset {
    let mk = |n: usize, v_kms: f64, sel: bool, segs: Vec<std::ops::Range<usize>>| {
        let mut meta = VisitMeta {
            name: format!("v{n}"),
            source: Some(src.to_path_buf()),
            object: Some("star".into()),
            jd: Some(2_455_844.5 + n as f64),
            snr: Some(42.0),
            header: vec![("FIBERID".into(), "128".into())],
            lsf_sigma_ln: Some(2e-5),
            ..VisitMeta::default()
        };
        meta.set_velocity(VelocityKind::True, v_kms);
        meta.set_velocity(VelocityKind::Bc, -3.5);
        let wave: Vec<f64> = (0..n).map(|i| 15_000.0 + 0.25 * i as f64).collect();
        let mut ivar: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 * 0.01).collect();
        ivar[1] = 0.0; // no information, but not flagged bad
        Visit::new(
            meta,
            VisitArrays {
                flux: wave.iter().map(|w| (w * 0.01).sin()).collect(),
                ivar,
                flags: (0..n as u64).map(|i| (i % 7) << 60).collect(),
                bad: (0..n).map(|i| i % 11 == 0).collect(),
                selection: sel.then(|| (0..n).map(|i| 1.0 - 0.001 * i as f64).collect()),
                flux_divided_by_selection: sel,
                segments: segs,
                wavelength_aa: wave,
            },
        )
        .expect("valid visit")
    };
    Dataset {
        name: "round trip".into(),
        visits: vec![
            Arc::new(mk(50, 12.5, true, vec![0..20, 20..50])),
            Arc::new(mk(37, -8.0, false, vec![])),
        ],
        input_grid: Some(OutputGrid::log_linear(4.18, 1e-5, 30)),
        truth: Some(Spectrum {
            label: "truth".into(),
            ln_wave: vec![9.6, 9.61, 9.62],
            flux: vec![1.0, 0.5, 1.0],
            ivar: vec![],
        }),
        pipeline_coadd: None,
        survey: Survey::Apogee,
    }
}

#[test]
fn dataset_bundle_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("synth.npz");
    let d = sample_dataset(&dir.path().join("origin.fits"));
    io::npz::write_dataset(&path, &d).expect("writes");
    let r = io::load_file(&path).expect("reads back");
    assert_eq!(r.name, d.name);
    assert_eq!(r.survey, d.survey);
    assert_eq!(r.visits.len(), 2);
    for (a, b) in r.visits.iter().zip(&d.visits) {
        assert_eq!(**a, **b);
    }
    assert_eq!(r.input_grid, d.input_grid);
    assert_eq!(r.truth, d.truth);
    assert_eq!(r.visits[0].meta.velocity(VelocityKind::True), Some(12.5));
    assert_eq!(r.visits[1].selection(), None);
    assert_eq!(r.visits[0].segments(), &[0..20, 20..50]);
}

#[test]
fn writing_over_an_input_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("origin.fits");
    std::fs::write(&input, b"precious").expect("write");
    let d = sample_dataset(&input);
    let err = io::npz::write_dataset(&input, &d).expect_err("must refuse");
    assert!(err.to_string().contains("input"), "{err}");
    assert_eq!(std::fs::read(&input).expect("read"), b"precious");
}

/// Write an .npz from (name, .npy bytes) members.
fn write_npz(path: &Path, members: &[(&str, Vec<u8>)]) {
    use std::io::Write;
    let f = std::fs::File::create(path).expect("create");
    let mut z = zip::ZipWriter::new(f);
    for (name, bytes) in members {
        z.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .expect("start");
        z.write_all(bytes).expect("write");
    }
    z.finish().expect("finish");
}

fn npy_f64(shape: &[usize], vals: &[f64]) -> Vec<u8> {
    let shape_txt = match shape {
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut h = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    for v in vals {
        out.extend(v.to_le_bytes());
    }
    out
}

#[test]
fn bad_npz_bundles_name_file_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lam: Vec<f64> = (0..10).map(|i| 9.6 + 1e-4 * i as f64).collect();
    let ones = vec![1.0; 10];
    // Missing flux.
    let p = dir.path().join("noflux.npz");
    write_npz(
        &p,
        &[
            ("lam", npy_f64(&[2, 5], &lam)),
            ("ivar", npy_f64(&[2, 5], &ones)),
        ],
    );
    assert!(load_err(&p).contains("'flux'"));
    // Mismatched shapes.
    let p = dir.path().join("shape.npz");
    write_npz(
        &p,
        &[
            ("lam", npy_f64(&[2, 5], &lam)),
            ("flux", npy_f64(&[10], &ones)),
            ("ivar", npy_f64(&[2, 5], &ones)),
        ],
    );
    assert!(load_err(&p).contains("'flux'"));
    // Unsorted wavelengths.
    let mut un = lam.clone();
    un.swap(2, 3);
    let p = dir.path().join("unsorted.npz");
    write_npz(
        &p,
        &[
            ("lam", npy_f64(&[2, 5], &un)),
            ("flux", npy_f64(&[2, 5], &ones)),
            ("ivar", npy_f64(&[2, 5], &ones)),
        ],
    );
    assert!(load_err(&p).contains("monotonic"));
    // NaN wavelength.
    let mut nan = lam.clone();
    nan[4] = f64::NAN;
    let p = dir.path().join("nan.npz");
    write_npz(
        &p,
        &[
            ("lam", npy_f64(&[2, 5], &nan)),
            ("flux", npy_f64(&[2, 5], &ones)),
            ("ivar", npy_f64(&[2, 5], &ones)),
        ],
    );
    assert!(load_err(&p).contains("'lam'"));
    // A header that claims more data than there is.
    let mut lying = npy_f64(&[2, 5], &lam);
    lying.truncate(lying.len() - 8);
    let p = dir.path().join("short.npz");
    write_npz(
        &p,
        &[
            ("lam", lying),
            ("flux", npy_f64(&[2, 5], &ones)),
            ("ivar", npy_f64(&[2, 5], &ones)),
        ],
    );
    assert!(load_err(&p).contains("'lam'"));
    // Truncated archive.
    let bytes = std::fs::read(fixture("case_a_f64.npz")).expect("fixture");
    let p = dir.path().join("truncated.npz");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
    load_err(&p);
    // Empty file.
    let p = dir.path().join("empty.npz");
    std::fs::write(&p, b"").expect("write");
    assert!(load_err(&p).contains("empty"));
}

#[test]
fn negative_and_nan_ivar_become_bad_pixels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lam: Vec<f64> = (0..5).map(|i| 9.6 + 1e-4 * i as f64).collect();
    let p = dir.path().join("neg.npz");
    write_npz(
        &p,
        &[
            ("lam", npy_f64(&[5], &lam)),
            ("flux", npy_f64(&[5], &[1.0, f64::INFINITY, 1.0, 1.0, 1.0])),
            ("ivar", npy_f64(&[5], &[1.0, 1.0, -2.0, f64::NAN, 1.0])),
        ],
    );
    let d = io::load_file(&p).expect("reads");
    assert_eq!(d.visits[0].bad(), &[false, true, true, true, false]);
    assert_eq!(d.visits[0].n_invalid(), 3);
}

#[test]
fn load_paths_refuses_mixed_objects_unless_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.npz");
    let b = dir.path().join("b.npz");
    let mut d = sample_dataset(&dir.path().join("x.fits"));
    io::npz::write_dataset(&a, &d).expect("write a");
    let mut v = (*d.visits[0]).clone();
    v.meta.object = Some("another star".into());
    d.visits = vec![Arc::new(v)];
    io::npz::write_dataset(&b, &d).expect("write b");
    let paths = vec![a.clone(), b.clone()];
    let err = io::load_paths(&paths, &LoadOptions::default()).expect_err("mixed objects");
    let msg = err.to_string();
    assert!(
        msg.contains("another star") && msg.contains("star ("),
        "{msg}"
    );
    let d = io::load_paths(&paths, &LoadOptions { force: true }).expect("forced");
    assert_eq!(d.visits.len(), 3);
}

fn card<'a>(v: &'a Visit, key: &str) -> Option<&'a str> {
    v.meta
        .header
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Values read independently with astropy (tests/fixtures/README-io.md) and the data README.
#[test]
fn apvisit_files_load_with_their_header_values() {
    let p = fixture("apVisit-r13-5095-55844-128.fits");
    assert_eq!(io::detect_format(&p).expect("detects"), io::Format::ApVisit);
    let d = io::load_file(&p).expect("reads");
    assert_eq!(d.survey, Survey::Apogee);
    assert_eq!(d.visits.len(), 1);
    let v = &d.visits[0];
    assert_eq!(v.len(), 3 * 4096);
    assert_eq!(v.segments(), &[0..4096, 4096..8192, 8192..12288]);
    let m = &v.meta;
    assert!((m.velocity(VelocityKind::Bc).expect("BC") - 11.298).abs() < 1e-3);
    assert!((m.velocity(VelocityKind::Vrel).expect("VRAD") + 44.421).abs() < 1e-3);
    assert!((m.velocity(VelocityKind::Vhelio).expect("VHELIO") + 33.123).abs() < 1e-3);
    assert!((m.snr.expect("SNR") - 45.0).abs() < 0.1);
    assert!((m.jd.expect("JD-MID") - 2_455_844.767_37).abs() < 1e-6);
    assert_eq!(m.object.as_deref(), Some("2M01183798+8403419"));
    assert_eq!(card(v, "FIBERID"), Some("128"));
    assert_eq!(card(v, "MJD5"), Some("55844"));
    assert!(
        card(v, "VISIT.VREL").is_some(),
        "HDU11 visit table columns are kept"
    );
    assert!(card(v, "FV_MISSING").is_none());
    // Decreasing wavelengths within each chip; rows run red to blue.
    for seg in v.segments() {
        assert!(
            v.wavelength_aa()[seg.clone()]
                .windows(2)
                .all(|p| p[1] < p[0])
        );
    }
    assert!((v.wavelength_aa()[0] - 16_954.790_707_572_374).abs() < 1e-9);
    assert!((v.wavelength_aa()[12_287] - 15_142.685_396_870_587).abs() < 1e-9);
    // Pixel values (astropy): flux[1,2000] 267.73706, error 5.4765573, telluric 0.98382145.
    let i = 4096 + 2000;
    assert!((v.flux()[i] - 267.737_06).abs() < 1e-3);
    assert!((v.ivar()[i] - 1.0 / (5.476_557_3f64 * 5.476_557_3)).abs() < 1e-7);
    assert!((v.selection().expect("TELLURIC")[i] - 0.983_821_45).abs() < 1e-6);
    assert!(v.flux_divided_by_selection());
    // No ERROR >= 1e10 in this file; 200 pixels carry a bad APOGEE_PIXMASK bit (astropy).
    assert_eq!(v.bad().iter().filter(|&&b| b).count(), 0);
    let n_bad_bits = v.flags().iter().filter(|&&f| f & 16639 != 0).count();
    assert_eq!(n_bad_bits, 200);

    let d2 = io::load_file(&fixture("apVisit-r13-9518-57729-104.fits")).expect("reads");
    let m = &d2.visits[0].meta;
    assert!((m.velocity(VelocityKind::Bc).expect("BC") + 14.581).abs() < 1e-3);
    assert!((m.velocity(VelocityKind::Vrel).expect("VRAD") + 67.472).abs() < 1e-3);
    assert!((m.velocity(VelocityKind::Vhelio).expect("VHELIO") + 82.053).abs() < 1e-3);
    assert!((m.snr.expect("SNR") - 90.0).abs() < 0.5);
}

#[test]
fn two_apvisits_of_different_stars_are_refused_by_name() {
    let paths = vec![
        fixture("apVisit-r13-5095-55844-128.fits"),
        fixture("apVisit-r13-9518-57729-104.fits"),
    ];
    let err = io::load_paths(&paths, &LoadOptions::default()).expect_err("two stars");
    let msg = err.to_string();
    assert!(
        msg.contains("2M01183798+8403419") && msg.contains("2M00242666+5341178"),
        "{msg}"
    );
    let d = io::load_paths(&paths, &LoadOptions { force: true }).expect("forced");
    assert_eq!(d.visits.len(), 2);
}

#[test]
fn boss_spec_file_gives_seven_two_camera_exposures_and_the_coadd() {
    let p = fixture("spec-3586-55181-0500.fits");
    assert_eq!(
        io::detect_format(&p).expect("detects"),
        io::Format::BossSpec
    );
    let d = io::load_file(&p).expect("reads");
    assert_eq!(d.survey, Survey::Boss);
    assert_eq!(d.name, "3586-55181-0500");
    assert_eq!(d.visits.len(), 7);
    let blue = [2537, 2537, 2537, 2537, 2537, 2538, 2538];
    let red = [3142, 3142, 3142, 3142, 3142, 3141, 3141];
    for (k, v) in d.visits.iter().enumerate() {
        assert_eq!(v.segments().len(), 2, "exposure {k}");
        assert_eq!(v.segments()[0].len(), blue[k]);
        assert_eq!(v.segments()[1].len(), red[k]);
        assert_eq!(v.meta.name, format!("exp {}", 104_927 + k));
        assert_eq!(v.meta.velocity(VelocityKind::Vrel), Some(0.0));
        assert!(card(v, "HELIO_RV").is_some());
        assert!(v.meta.lsf_sigma_ln.is_some_and(|s| s > 0.0 && s < 1e-3));
    }
    let v0 = &d.visits[0];
    // astropy: B1-00104927 row 100: flux 116.03962707519531, loglam 3.5633859634399414.
    assert!((v0.flux()[100] - 116.039_627_075_195_31).abs() < 1e-9);
    assert!((v0.wavelength_aa()[100] - 10f64.powf(3.563_385_963_439_941_4)).abs() < 1e-9);
    // TAI-BEG 4767642805, TAI-END 4767643706 (seconds, MJD * 86400).
    let jd = (4_767_642_805.0 + 4_767_643_706.0) / 2.0 / 86_400.0 + 2_400_000.5;
    assert!((v0.meta.jd.expect("jd") - jd).abs() < 1e-9);
    let v6 = &d.visits[6];
    let i = v6.segments()[1].start + 3000;
    assert!((v6.flux()[i] - 52.939_624_786_376_95).abs() < 1e-9);
    let coadd = d.pipeline_coadd.as_ref().expect("COADD");
    assert_eq!(coadd.flux.len(), 4625);
    assert!((coadd.flux[1000] - 159.230_300_903_320_3).abs() < 1e-9);
    assert!((coadd.ln_wave[0] - 3.551_599_979_400_634_8 * std::f64::consts::LN_10).abs() < 1e-12);
}
