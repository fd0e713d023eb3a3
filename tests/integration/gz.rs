//! gzip-compressed FITS inputs: the real apVisit and BOSS fixtures (and a FITS export's
//! settings) gzipped at test time read exactly as the plain files; a truncated or corrupt
//! `.gz`, or one that is not FITS, is refused with a message naming it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use frizzview::model::Dataset;

use super::io::fixture;

/// `src` gzipped into `dir` as `name`.
fn gzip(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let bytes = std::fs::read(src).expect("read");
    let p = dir.join(name);
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).expect("create"),
        flate2::Compression::default(),
    );
    enc.write_all(&bytes).expect("gzip");
    enc.finish().expect("finish");
    p
}

/// Every visit's arrays and metadata equal, except the source path.
fn assert_same(a: &Dataset, b: &Dataset, what: &str) {
    assert_eq!(a.visits.len(), b.visits.len(), "{what}: visits");
    assert_eq!(a.name, b.name, "{what}: name");
    assert_eq!(a.survey, b.survey, "{what}: survey");
    for (va, vb) in a.visits.iter().zip(&b.visits) {
        let (mut ma, mut mb) = (va.meta.clone(), vb.meta.clone());
        ma.source = None;
        mb.source = None;
        // Cards that name the file they came from name the .gz file.
        for m in [&mut ma, &mut mb] {
            for (_, v) in &mut m.header {
                *v = v.replace(".fits.gz", ".fits");
            }
        }
        assert_eq!(ma, mb, "{what}: metadata");
        assert_eq!(
            va.wavelength_aa(),
            vb.wavelength_aa(),
            "{what}: wavelengths"
        );
        let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(va.flux()), bits(vb.flux()), "{what}: flux");
        assert_eq!(bits(va.ivar()), bits(vb.ivar()), "{what}: ivar");
        assert_eq!(va.flags(), vb.flags(), "{what}: flags");
        assert_eq!(va.bad(), vb.bad(), "{what}: bad pixels");
        assert_eq!(va.selection(), vb.selection(), "{what}: selection");
        assert_eq!(va.segments(), vb.segments(), "{what}: segments");
    }
    assert_eq!(
        a.pipeline_coadd.as_ref().map(|c| c.flux.len()),
        b.pipeline_coadd.as_ref().map(|c| c.flux.len()),
        "{what}: coadd"
    );
}

#[test]
fn gzipped_apvisit_and_boss_files_read_as_the_plain_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "apVisit-r13-5095-55844-128.fits",
        "apVisit-r13-9518-57729-104.fits",
        "spec-3586-55181-0500.fits",
    ] {
        let plain = frizzview::io::load_file(&fixture(name)).expect("plain");
        let gz = gzip(&fixture(name), dir.path(), &format!("{name}.gz"));
        assert_eq!(
            frizzview::io::detect_format(&gz).expect("detect"),
            frizzview::io::detect_format(&fixture(name)).expect("detect")
        );
        let zipped = frizzview::io::load_file(&gz).expect("gzipped");
        assert_same(&plain, &zipped, name);
        assert_eq!(
            zipped.visits[0].meta.source.as_deref(),
            Some(gz.as_path()),
            "the visit names the file it came from"
        );
        // The magic bytes decide, not the name.
        let odd = gzip(&fixture(name), dir.path(), &format!("renamed-{name}"));
        let d = frizzview::io::load_file(&odd).expect("gzip under a .fits name");
        assert_eq!(d.visits.len(), plain.visits.len());
    }
}

#[test]
fn a_folder_of_fits_gz_files_combines_like_the_plain_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = [
        "apVisit-r13-5095-55844-128.fits",
        "apVisit-r13-9518-57729-104.fits",
    ];
    for n in names {
        gzip(&fixture(n), dir.path(), &format!("{n}.gz"));
    }
    let opts = frizzview::io::LoadOptions {
        force: true,
        ..Default::default()
    };
    let zipped = frizzview::io::load_paths(&[dir.path().to_path_buf()], &opts).expect("folder");
    let plain =
        frizzview::io::load_paths(&names.iter().map(|n| fixture(n)).collect::<Vec<_>>(), &opts)
            .expect("plain");
    assert_same(&plain, &zipped, "folder");
    let s = frizzview::settings::Settings::default();
    let a = frizzview::combine::combine(&plain, &s, &frizzview::combine::Cancel::new())
        .expect("combine plain");
    let b = frizzview::combine::combine(&zipped, &s, &frizzview::combine::Cancel::new())
        .expect("combine gz");
    let fa = &a.forward.as_ref().expect("forward").flux;
    let fb = &b.forward.as_ref().expect("forward").flux;
    assert_eq!(
        fa.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        fb.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        "the same combined spectrum"
    );
}

#[test]
fn truncated_corrupt_and_non_fits_gz_files_are_refused_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "apVisit-r13-5095-55844-128.fits";
    let gz = gzip(&fixture(name), dir.path(), "whole.fits.gz");
    let bytes = std::fs::read(&gz).expect("read");
    let cut = dir.path().join("cut.fits.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let e = frizzview::io::load_file(&cut).expect_err("truncated");
    let msg = e.to_string();
    assert!(
        msg.contains("cut.fits.gz") && msg.contains("ends early"),
        "{msg}"
    );
    // Only the trailer (CRC and size) missing.
    let tail = dir.path().join("tail.fits.gz");
    std::fs::write(&tail, &bytes[..bytes.len() - 4]).expect("write");
    let e = frizzview::io::load_file(&tail).expect_err("no trailer");
    assert!(e.to_string().contains("tail.fits.gz"), "{e}");
    // Flipped bytes in the deflate stream.
    let mut bad = bytes.clone();
    for i in (100..bad.len() - 100).step_by(997) {
        bad[i] ^= 0x5a;
    }
    let flip = dir.path().join("flip.fits.gz");
    std::fs::write(&flip, &bad).expect("write");
    let e = frizzview::io::load_file(&flip).expect_err("corrupt");
    assert!(e.to_string().contains("flip.fits.gz"), "{e}");
    // gzip of something that is not FITS.
    let csv = gzip(&fixture("small.csv"), dir.path(), "small.csv.gz");
    let e = frizzview::io::load_file(&csv).expect_err("not FITS");
    assert!(
        e.to_string().contains("small.csv.gz") && e.to_string().contains("not FITS"),
        "{e}"
    );
    // The gzipped FITS data must pass the structural check too: a truncated FITS, gzipped whole.
    let plain = std::fs::read(fixture(name)).expect("read");
    let short = dir.path().join("short.fits");
    std::fs::write(&short, &plain[..plain.len() - 5000]).expect("write");
    let short_gz = gzip(&short, dir.path(), "short.fits.gz");
    let e = frizzview::io::load_file(&short_gz).expect_err("truncated FITS");
    assert!(
        e.to_string().contains("short.fits.gz") && e.to_string().contains("truncated"),
        "{e}"
    );
}

#[test]
fn a_gzip_that_inflates_past_the_limit_is_refused() {
    // 600 MiB of FITS-looking zeros would take long to compress in a test; the limit is a
    // parameter of the same function, exercised here with a small one.
    let dir = tempfile::tempdir().expect("tempdir");
    let gz = gzip(
        &fixture("apVisit-r13-5095-55844-128.fits"),
        dir.path(),
        "big.fits.gz",
    );
    let e = frizzview::io::gz::content_limited(&gz, 100_000).expect_err("above the limit");
    assert!(
        e.to_string().contains("big.fits.gz") && e.to_string().contains("100000 bytes"),
        "{e}"
    );
    assert!(
        frizzview::io::gz::content_limited(&gz, frizzview::io::gz::GZIP_MAX_BYTES)
            .is_ok_and(|c| c.is_some())
    );
}

#[test]
fn settings_read_from_a_gzipped_fits_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = fixture("apVisit-r13-5095-55844-128.fits");
    let data = frizzview::io::load_file(&input).expect("load");
    let s = frizzview::settings::Settings {
        band_lags: 7,
        standard: None,
        ..Default::default()
    };
    let c = frizzview::combine::combine(&data, &s, &frizzview::combine::Cancel::new())
        .expect("combine");
    let out = dir.path().join("star.fits");
    frizzview::export::fits::write_fits(&out, &data, &c, &[input]).expect("export");
    let gz = gzip(&out, dir.path(), "star.fits.gz");
    let plain = frizzview::export::fits::read_settings(&out).expect("plain");
    let zipped = frizzview::export::fits::read_settings(&gz).expect("gzipped");
    assert_eq!(plain, zipped);
    assert_eq!(zipped.band_lags, 7);
}

/// Each of `files` gzipped into `dir` under its own name plus `.gz`.
fn gzip_all(files: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| {
            let name = f.file_name().expect("name").to_string_lossy();
            gzip(f, dir, &format!("{name}.gz"))
        })
        .collect()
}

#[test]
fn gzipped_apcframe_boss_v6_and_mwmvisit_fixtures_read_as_the_plain_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "apCframe-b-42380011.fits",
        "spec-003586-55181-27021600000000500.fits",
        "mwmVisit-0.6.0-63050396587.fits",
    ] {
        let opts = frizzview::io::LoadOptions::default();
        let plain = frizzview::io::load_paths(&[fixture(name)], &opts).expect("plain");
        let gz = gzip(&fixture(name), dir.path(), &format!("{name}.gz"));
        assert_eq!(
            frizzview::io::detect_format(&gz).expect("detect"),
            frizzview::io::detect_format(&fixture(name)).expect("detect"),
            "{name}"
        );
        let zipped = frizzview::io::load_paths(&[gz], &opts).expect("gzipped");
        assert!(!plain.visits.is_empty(), "{name}: no visits");
        assert_same(&plain, &zipped, name);
    }
}

#[test]
fn gzipped_dr19_apvisits_and_apstar_of_the_real_star_read_as_the_plain_ones() {
    use frizzview_core::testkit::write_layouts as wl;
    let Some(star) = super::real_star::star("gz::gzipped_dr19_apvisits_and_apstar") else {
        return;
    };
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let gz_dir = tempfile::tempdir().expect("tempdir");
    let d = star.apstar.parent().expect("folder").to_path_buf();
    let visits = super::sdss5::dr19_visits(&d, plain_dir.path(), "apo25m");
    let keep = |s: &str| s.to_owned();
    let dr19_star = wl::rewrite_apstar(
        &star.apstar,
        plain_dir.path(),
        wl::StarLayout::Dr19,
        "apo25m",
        &keep,
    )
    .expect("rewrite the apStar");
    let opts = frizzview::io::LoadOptions::default();
    let load = |p: &[PathBuf]| frizzview::io::load_paths(p, &opts).expect("load");
    // Each file alone: the DR19 visits, the DR19 apStar and the real (DR13) apStar.
    let mut singles = visits.clone();
    singles.extend([dr19_star.clone(), star.apstar.clone()]);
    for (p, z) in singles.iter().zip(gzip_all(&singles, gz_dir.path())) {
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        let plain = load(std::slice::from_ref(p));
        assert!(!plain.visits.is_empty(), "{name}: no visits");
        assert_same(&plain, &load(&[z]), &name);
    }
    // The visits with their DR19 apStar beside them (its velocities, matched by the DR19 visit
    // names its SFILEn cards list): the gzipped set reads the same.
    let matched_star = wl::rewrite_apstar(
        &star.apstar,
        gz_dir.path(),
        wl::StarLayout::Dr19,
        "apo25m",
        &super::sdss5::dr19_name,
    )
    .expect("rewrite the apStar with DR19 visit names");
    let mut set = visits;
    set.push(matched_star);
    let plain = load(&set);
    let zipped = load(&gzip_all(&set, gz_dir.path()));
    assert_same(&plain, &zipped, "DR19 visits + apStar");
    assert!(
        plain.visits.iter().all(|v| v
            .meta
            .velocity(frizzview::model::VelocityKind::ApStar)
            .is_some()),
        "the apStar supplies each visit's velocity"
    );
}

#[test]
fn a_folder_of_gzipped_apcframes_selects_the_star_by_id_and_fibre() {
    use frizzview::io::apcframe::StarSelector;
    use frizzview::synth::dither::{self as sd, DitherParams};
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let gz_dir = tempfile::tempdir().expect("tempdir");
    let set = sd::generate(&DitherParams {
        n_exposures: 2,
        ..DitherParams::default()
    })
    .expect("generate");
    let files = set.write(plain_dir.path()).expect("write apCframes");
    let zipped = gzip_all(&files, gz_dir.path());
    assert!(zipped[0].to_string_lossy().ends_with(".fits.gz"));
    for sel in [
        StarSelector::Id(sd::STAR_ID.into()),
        StarSelector::Fiber(299),
    ] {
        let opts = frizzview::io::LoadOptions {
            star: Some(sel.clone()),
            ..frizzview::io::LoadOptions::default()
        };
        let load = |d: &Path| {
            frizzview::io::load_paths(&[d.to_path_buf()], &opts).expect("load the folder")
        };
        let plain = load(plain_dir.path());
        assert_eq!(plain.visits.len(), 2, "one visit per exposure");
        assert_same(&plain, &load(gz_dir.path()), &format!("{sel:?}"));
    }
}
