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
    let Err(err) = io::load_file(path) else {
        panic!("bad input must be refused: {}", path.display());
    };
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
    let d = io::npz::read_bundle(&fixture("reference/case_a_f64_input.npz")).expect("reads");
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
        load_warnings: Vec::new(),
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
    let bytes = std::fs::read(fixture("reference/case_a_f64_input.npz")).expect("fixture");
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
    let d = io::load_paths(
        &paths,
        &LoadOptions {
            force: true,
            ..LoadOptions::default()
        },
    )
    .expect("forced");
    assert_eq!(d.visits.len(), 3);
    // A folder contributes its files in name order (the same star twice here).
    std::fs::remove_file(&b).expect("remove");
    std::fs::copy(&a, dir.path().join("c.npz")).expect("copy");
    std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
    let d = io::load_paths(&[dir.path().to_path_buf()], &LoadOptions::default()).expect("folder");
    assert_eq!(d.visits.len(), 4);
}

fn card<'a>(v: &'a Visit, key: &str) -> Option<&'a str> {
    v.meta
        .header
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Values read independently with astropy (tests/fixtures/README-io.md) and `../shared/data/*/README.md`.
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
    let d = io::load_paths(
        &paths,
        &LoadOptions {
            force: true,
            ..LoadOptions::default()
        },
    )
    .expect("forced");
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

// ---------------------------------------------------------------------------------------------
// Generic tables and hand-made bad files.

use fitsio::FitsFile;
use fitsio::images::{ImageDescription, ImageType};
use fitsio::tables::{ColumnDataType, ColumnDescription};

#[test]
fn csv_and_tsv_tables_read_with_cards_and_visits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("star.csv");
    std::fs::write(
        &p,
        "# VRAD = 12.5\n# OBJID = my star\nWavelength,FLUX,err,mask\n5000,1.0,0.5,0\n5001,2.0,0,4\n5002,3.0,0.25,0\n",
    )
    .expect("write");
    let d = io::load_file(&p).expect("reads");
    assert_eq!(d.name, "my star");
    let v = &d.visits[0];
    assert_eq!(v.wavelength_aa(), &[5000.0, 5001.0, 5002.0]);
    assert_eq!(v.ivar(), &[4.0, 0.0, 16.0]);
    assert_eq!(v.bad(), &[false, true, false]);
    assert_eq!(v.flags(), &[0, 4, 0]);
    assert_eq!(v.meta.velocity(VelocityKind::Vrel), Some(12.5));
    let p = dir.path().join("two.tsv");
    std::fs::write(
        &p,
        "visit\tloglam\tflux\tivar\na\t3.7\t1\t1\na\t3.7001\t1\t1\nb\t3.7\t2\t1\nb\t3.7002\t2\t1\n",
    )
    .expect("write");
    let d = io::load_file(&p).expect("reads");
    assert_eq!(d.visits.len(), 2);
    assert_eq!(d.visits[1].meta.name, "b");
    assert!((d.visits[1].wavelength_aa()[1] - 10f64.powf(3.7002)).abs() < 1e-9);
}

#[test]
fn bad_text_tables_name_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let case = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        load_err(&p)
    };
    assert!(case("fields.csv", "wave,flux,ivar\n1,2,3\n4,5\n").contains("line 3"));
    assert!(case("number.csv", "wave,flux,ivar\n1,2,x\n").contains("'ivar'"));
    assert!(case("empty.csv", "wave,flux,ivar\n").contains("no data rows"));
    assert!(case("nowave.csv", "a,flux,ivar\n1,2,3\n").contains("wavelength"));
    assert!(case("noivar.csv", "wave,flux\n1,2\n2,3\n").contains("ivar or error"));
    assert!(case("unsorted.csv", "wave,flux,ivar\n1,1,1\n3,1,1\n2,1,1\n").contains("monotonic"));
    assert!(case("negwave.csv", "wave,flux,ivar\n-1,1,1\n3,1,1\n").contains("'wave'"));
    assert!(case("mask.csv", "wave,flux,ivar,mask\n1,1,1,-3\n").contains("'mask'"));
    // Negative and NaN ivar are bad pixels, not errors.
    let p = dir.path().join("neg.csv");
    std::fs::write(&p, "wave,flux,ivar\n1,1,-1\n2,nan,1\n3,1,1\n").expect("write");
    let d = io::load_file(&p).expect("reads");
    assert_eq!(d.visits[0].bad(), &[true, true, false]);
}

fn fits_table(path: &Path, hdu: &str, cols: &[(&str, Vec<f64>)]) {
    let mut f = FitsFile::create(path).open().expect("create");
    let descs: Vec<_> = cols
        .iter()
        .map(|(n, _)| {
            ColumnDescription::new(*n)
                .with_type(ColumnDataType::Double)
                .create()
                .expect("column")
        })
        .collect();
    let h = f.create_table(hdu, &descs).expect("table");
    for (n, v) in cols {
        h.write_col(&mut f, *n, v).expect("write column");
    }
}

#[test]
fn fits_tables_and_image_sets_read_and_bad_ones_name_the_hdu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wave: Vec<f64> = (0..20).map(|i| 6000.0 + i as f64).collect();
    let ones = vec![1.0; 20];
    let p = dir.path().join("table.fits");
    fits_table(
        &p,
        "SPEC",
        &[
            ("WAVELENGTH", wave.clone()),
            ("FLUX", ones.clone()),
            ("SIGMA", vec![0.5; 20]),
        ],
    );
    assert_eq!(
        io::detect_format(&p).expect("detect"),
        io::Format::FitsTable
    );
    let d = io::load_file(&p).expect("reads");
    assert_eq!(d.visits[0].wavelength_aa(), wave.as_slice());
    assert!(d.visits[0].ivar().iter().all(|&x| x == 4.0));
    // Missing ivar/error column.
    let p = dir.path().join("noivar.fits");
    fits_table(
        &p,
        "SPEC",
        &[("wave", wave.clone()), ("flux", ones.clone())],
    );
    let msg = load_err(&p);
    assert!(
        msg.contains("ivar or error") && msg.contains("HDU 1 (SPEC)"),
        "{msg}"
    );
    // An empty table.
    let p = dir.path().join("empty.fits");
    fits_table(
        &p,
        "SPEC",
        &[("wave", vec![]), ("flux", vec![]), ("ivar", vec![])],
    );
    let msg = load_err(&p);
    assert!(
        msg.contains("HDU 1 (SPEC)") && msg.contains("no rows"),
        "{msg}"
    );
    // NaN wavelength.
    let mut w = wave.clone();
    w[3] = f64::NAN;
    let p = dir.path().join("nanwave.fits");
    fits_table(
        &p,
        "SPEC",
        &[("wave", w), ("flux", ones.clone()), ("ivar", ones.clone())],
    );
    assert!(load_err(&p).contains("column 'wave' of HDU 1 (SPEC)"));

    // Image set: 2 visits x 20 px.
    let img = |f: &mut FitsFile, name: &str, shape: &[usize], v: &[f64]| {
        let h = f
            .create_image(
                name,
                &ImageDescription {
                    data_type: ImageType::Double,
                    dimensions: shape,
                },
            )
            .expect("image");
        h.write_image(f, v).expect("write");
    };
    let p = dir.path().join("images.fits");
    {
        let mut f = FitsFile::create(&p).open().expect("create");
        let w2: Vec<f64> = wave.iter().chain(&wave).copied().collect();
        img(&mut f, "WAVE", &[2, 20], &w2);
        img(&mut f, "FLUX", &[2, 20], &[1.0; 40]);
        img(&mut f, "IVAR", &[2, 20], &[2.0; 40]);
    }
    let d = io::load_file(&p).expect("reads");
    assert_eq!(d.visits.len(), 2);
    let p = dir.path().join("images-bad.fits");
    {
        let mut f = FitsFile::create(&p).open().expect("create");
        img(&mut f, "WAVE", &[2, 20], &[6000.0; 40]);
        img(&mut f, "FLUX", &[20], &[1.0; 20]);
    }
    assert!(load_err(&p).contains("HDU 2 (FLUX)"));
}

/// An apVisit-like file with 3 chips x `n` px; `edit` may change the arrays first.
fn fake_apvisit(path: &Path, n: usize, edit: impl FnOnce(&mut [Vec<f64>; 4]), n_hdus: usize) {
    let mut arrays = [
        vec![1.0; 3 * n],
        vec![0.1; 3 * n],
        vec![0.0; 3 * n],
        (0..3 * n)
            .map(|i| 17_000.0 - i as f64)
            .collect::<Vec<f64>>(),
    ];
    edit(&mut arrays);
    let mut f = FitsFile::create(path).open().expect("create");
    let prim = f.primary_hdu().expect("primary");
    prim.write_key(&mut f, "TELESCOP", "apo25m".to_owned())
        .expect("key");
    prim.write_key(&mut f, "VRAD", -10.0).expect("key");
    for (k, name) in ["FLUX", "ERROR", "MASK", "WAVELENGTH", "SKY"]
        .iter()
        .enumerate()
        .take(n_hdus)
    {
        let h = f
            .create_image(
                *name,
                &ImageDescription {
                    data_type: ImageType::Double,
                    dimensions: &[3, n],
                },
            )
            .expect("image");
        h.write_image(&mut f, &arrays[k.min(3)]).expect("write");
    }
}

#[test]
fn bad_apvisit_files_name_the_hdu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("apVisit-ok.fits");
    fake_apvisit(
        &p,
        10,
        |a| {
            a[1][2] = 1e10;
            a[1][3] = -1.0;
            a[1][4] = f64::NAN;
        },
        5,
    );
    assert_eq!(io::detect_format(&p).expect("detect"), io::Format::ApVisit);
    let d = io::load_file(&p).expect("reads");
    let v = &d.visits[0];
    assert_eq!(&v.bad()[..6], &[false, false, true, true, true, false]);
    assert_eq!(v.meta.velocity(VelocityKind::Vrel), Some(-10.0));
    let missing = v
        .meta
        .header
        .iter()
        .find(|(k, _)| k == "FV_MISSING")
        .expect("stated");
    assert!(
        missing.1.contains("BC") && missing.1.contains("JD-MID"),
        "{missing:?}"
    );
    assert!(v.selection().is_none() && !v.flux_divided_by_selection());

    let p = dir.path().join("apVisit-nanwave.fits");
    fake_apvisit(&p, 10, |a| a[3][15] = f64::NAN, 5);
    let msg = load_err(&p);
    assert!(
        msg.contains("HDU 4 (WAVELENGTH)") && msg.contains("chip 1 pixel 5"),
        "{msg}"
    );
    let p = dir.path().join("apVisit-unsorted.fits");
    fake_apvisit(&p, 10, |a| a[3].swap(12, 13), 5);
    assert!(load_err(&p).contains("monotonic"));
    let p = dir.path().join("apVisit-mask.fits");
    fake_apvisit(&p, 10, |a| a[2][0] = 0.5, 5);
    assert!(load_err(&p).contains("HDU 3 (MASK)"));
    let p = dir.path().join("apVisit-short.fits");
    fake_apvisit(&p, 10, |_| {}, 3);
    assert!(load_err(&p).contains("HDU 4 (WAVELENGTH) is missing"));
    let p = dir.path().join("apVisit-mixed.fits");
    fake_apvisit(&p, 10, |_| {}, 5);
    {
        // Make HDU3 (MASK) a different shape.
        let mut f = FitsFile::edit(&p).expect("edit");
        let h = f.hdu(3).expect("hdu 3");
        h.resize(&mut f, &[3, 9]).expect("resize");
    }
    assert!(load_err(&p).contains("HDU 3"));
    // An apStar file (already combined) is refused as an input.
    let p = dir.path().join("apStar-r13-x.fits");
    fake_apvisit(&p, 10, |_| {}, 5);
    assert!(load_err(&p).contains("apStar"));
    // Truncated copies of the real file.
    let bytes = std::fs::read(fixture("apVisit-r13-5095-55844-128.fits")).expect("fixture");
    // (A cut inside the optional HDU11 visit table still loads: the spectrum HDUs are whole.)
    // Cuts in: the primary header, HDU1 data, HDU4 data, HDU7 (TELLURIC) data.
    for cut in [100, 2880, 8647, 40_000, 200_000, 380_000] {
        let p = dir.path().join(format!("apVisit-cut{cut}.fits"));
        std::fs::write(&p, &bytes[..cut]).expect("write");
        load_err(&p);
    }
}

#[test]
fn boss_lite_file_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("spec-lite.fits");
    let w: Vec<f64> = (0..10).map(|i| 3.6 + 1e-4 * i as f64).collect();
    fits_table(
        &p,
        "COADD",
        &[
            ("loglam", w),
            ("flux", vec![1.0; 10]),
            ("ivar", vec![1.0; 10]),
        ],
    );
    assert_eq!(io::detect_format(&p).expect("detect"), io::Format::BossSpec);
    assert!(load_err(&p).contains("lite"));
}

/// Running median over `half` pixels each side (finite values only).
pub fn running_median(y: &[f64], half: usize) -> Vec<f64> {
    (0..y.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(y.len());
            let mut w: Vec<f64> = y[lo..hi]
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .collect();
            if w.is_empty() {
                return f64::NAN;
            }
            w.sort_by(f64::total_cmp);
            w[w.len() / 2]
        })
        .collect()
}

/// The BOSS star's 7 exposures, combined by frizzview on the BOSS grid, against the pipeline's
/// own COADD (same star, same exposures, independent code): continuum-normalised line structure.
#[test]
fn boss_exposures_combine_like_the_pipeline_coadd() {
    let d = io::load_file(&fixture("spec-3586-55181-0500.fits")).expect("reads");
    let settings = frizzview::cli::combine::survey_defaults(&d);
    let c = frizzview::combine::combine(&d, &settings, &frizzview::combine::Cancel::new())
        .expect("combines");
    let coadd = d.pipeline_coadd.as_ref().expect("COADD");
    // Mean step (the float32 loglam makes a single difference inaccurate).
    let step = (coadd.ln_wave[coadd.ln_wave.len() - 1] - coadd.ln_wave[0])
        / (coadd.ln_wave.len() - 1) as f64;
    for (label, r) in [
        ("forward", c.forward.as_ref()),
        ("standard", c.standard.as_ref()),
    ] {
        let r = r.expect("both methods ran");
        // Pairs (ours, pipeline, combined sigma) on common pixels (the grids share the step).
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut sig = Vec::new();
        for (l, &x) in c.grid.ln_wave.iter().enumerate() {
            let j = ((x - coadd.ln_wave[0]) / step).round();
            if j < 0.0 || j as usize >= coadd.flux.len() {
                continue;
            }
            let j = j as usize;
            // The COADD stores loglam in float32: alignment to ~0.3% of a pixel.
            assert!((coadd.ln_wave[j] - x).abs() < 0.05 * step, "grids align");
            if r.no_data[l] || coadd.ivar[j] <= 0.0 || !r.flux[l].is_finite() {
                ours.push(f64::NAN);
                theirs.push(f64::NAN);
                sig.push(f64::NAN);
                continue;
            }
            ours.push(r.flux[l]);
            theirs.push(coadd.flux[j]);
            sig.push((r.var[l] + 1.0 / coadd.ivar[j]).sqrt());
        }
        let (co, ct) = (running_median(&ours, 75), running_median(&theirs, 75));
        let norm = |v: &[f64], cont: &[f64]| -> Vec<f64> {
            v.iter()
                .zip(cont)
                .map(|(x, c)| if *c > 0.0 { x / c } else { f64::NAN })
                .collect()
        };
        let (a, b) = (norm(&ours, &co), norm(&theirs, &ct));
        // 3-px boxcar: the forward model's pixels carry nearly independent noise, which lowers a
        // per-pixel correlation; at the resolution of the lines both should agree.
        let box3 = |v: &[f64]| -> Vec<f64> {
            (0..v.len())
                .map(|i| {
                    if i == 0 || i + 1 == v.len() {
                        f64::NAN
                    } else {
                        (v[i - 1] + v[i] + v[i + 1]) / 3.0
                    }
                })
                .collect()
        };
        let corr = |a: &[f64], b: &[f64], upto: usize| {
            let idx: Vec<usize> = (0..a.len().min(upto))
                .filter(|&i| a[i].is_finite() && b[i].is_finite())
                .collect();
            let n = idx.len() as f64;
            let ma = idx.iter().map(|&i| a[i]).sum::<f64>() / n;
            let mb = idx.iter().map(|&i| b[i]).sum::<f64>() / n;
            let cov: f64 = idx.iter().map(|&i| (a[i] - ma) * (b[i] - mb)).sum();
            let va: f64 = idx.iter().map(|&i| (a[i] - ma).powi(2)).sum();
            let vb: f64 = idx.iter().map(|&i| (b[i] - mb).powi(2)).sum();
            (cov / (va * vb).sqrt(), idx.len())
        };
        let (raw, n_px) = corr(&a, &b, usize::MAX);
        let (smooth, _) = corr(&box3(&a), &box3(&b), usize::MAX);
        // Below ~5460 A (pixel 1850 of the BOSS grid): the line-rich blue part.
        let (smooth_blue, _) = corr(&box3(&a), &box3(&b), 1850);
        let mut zs: Vec<f64> = (0..ours.len())
            .filter(|&i| ours[i].is_finite())
            .map(|i| ((ours[i] - theirs[i]) / sig[i]).abs())
            .collect();
        zs.sort_by(f64::total_cmp);
        let median_abs_z = zs[zs.len() / 2];
        println!(
            "BOSS {label} vs pipeline COADD: {n_px} px; correlation of continuum-normalised flux per pixel {raw:.4}, 3-px boxcar {smooth:.4} (below 5460 A {smooth_blue:.4}); median |diff|/sigma {median_abs_z:.3}"
        );
        assert!(n_px > 4000, "overlap {n_px} px");
        assert!(smooth > 0.97, "{label}: smoothed correlation {smooth}");
        assert!(
            smooth_blue > 0.97,
            "{label}: smoothed correlation below 5460 A {smooth_blue}"
        );
        assert!(
            median_abs_z < 1.0,
            "{label}: median |diff|/sigma {median_abs_z}"
        );
    }
}

/// Without a BC card (SDSS-V apVisit headers have none; the velocities live in allVisit), BC comes from RA, DEC, JD-MID at the telescope's site. The
/// pipeline's own BC of the two real visits is the reference.
#[test]
fn barycentric_correction_matches_the_pipeline_and_fills_a_missing_bc() {
    use frizzview::model::barycentric::{Observatory, barycentric_correction};
    let num = |v: &Visit, k: &str| -> f64 {
        card(v, k)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("card {k}"))
    };
    for name in [
        "apVisit-r13-5095-55844-128.fits",
        "apVisit-r13-9518-57729-104.fits",
    ] {
        let d = io::load_file(&fixture(name)).expect("reads");
        let v = &d.visits[0];
        let header_bc = v.meta.velocity(VelocityKind::Bc).expect("header BC");
        let site = Observatory::from_telescope(card(v, "TELESCOP").expect("TELESCOP"))
            .expect("known site");
        let bc = barycentric_correction(
            num(v, "RA"),
            num(v, "DEC"),
            v.meta.jd.expect("JD-MID"),
            &site,
        );
        println!("{name}: computed BC {bc:.4} km/s, pipeline {header_bc:.4} km/s");
        assert!(
            (bc - header_bc).abs() < 0.01,
            "{name}: computed BC {bc} vs the pipeline's {header_bc}"
        );
    }

    // An apVisit without BC but with the position and time of the first real visit.
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("apVisit-nobc.fits");
    fake_apvisit(&p, 10, |_| {}, 5);
    {
        let mut f = FitsFile::edit(&p).expect("edit");
        let prim = f.primary_hdu().expect("primary");
        prim.write_key(&mut f, "RA", 19.658251).expect("key");
        prim.write_key(&mut f, "DEC", 84.061646).expect("key");
        prim.write_key(&mut f, "JD-MID", 2455844.76737)
            .expect("key");
    }
    let d = io::load_file(&p).expect("reads");
    let v = &d.visits[0];
    let bc = v.meta.velocity(VelocityKind::Bc).expect("computed BC");
    assert!((bc - 11.2977627448).abs() < 0.01, "computed BC {bc}");
    assert!(card(v, "FV_BC").is_some_and(|s| s.contains("APO")));
    assert!(
        card(v, "FV_MISSING").is_none_or(|m| !m.contains("BC")),
        "BC still listed as missing"
    );
}
