//! SDSS-V layouts: BOSS spec-full (run2d v6, `MJD_EXP_*` exposure HDUs), spec-lite, astra
//! mwmVisit; and the committed fixtures made by the layout writers.

use frizzview::io::{self, mwm};
use frizzview::model::VelocityKind;
use frizzview::synth;
use frizzview_core::testkit::sdss_layouts::{self, BossSpecV6};

use super::io::fixture;

fn v6_of_real_spec() -> BossSpecV6 {
    sdss_layouts::spec_v6_from_spec(
        &fixture("spec-3586-55181-0500.fits"),
        3586,
        55181,
        27_021_600_000_000_500,
    )
    .expect("rewrite the real BOSS file in the SDSS-V layout")
}

#[test]
fn boss_spec_full_v6_reads_each_exposure_as_a_resampled_barycentric_visit() {
    let dir = tempfile::tempdir().unwrap();
    let s = v6_of_real_spec();
    let path = dir.path().join(s.file_name());
    assert!(
        path.ends_with("spec-003586-55181-27021600000000500.fits"),
        "{path:?}"
    );
    sdss_layouts::write_boss_spec_v6(&path, &s).unwrap();
    let old = io::load_file(&fixture("spec-3586-55181-0500.fits")).unwrap();
    let d = io::load_file(&path).unwrap();
    assert_eq!(d.visits.len(), old.visits.len(), "one visit per exposure");
    assert_eq!(d.name, "003586-55181-27021600000000500");
    let coadd = d
        .pipeline_coadd
        .as_ref()
        .expect("the COADD is the reference");
    assert_eq!(coadd.ln_wave.len(), s.coadd.loglam.len());
    for (i, v) in d.visits.iter().enumerate() {
        let (_, t) = &s.exposures[i];
        assert!(v.meta.resampled, "exposure {i}: flagged as resampled");
        assert_eq!(v.segments().len(), 1, "blue and red already merged");
        assert_eq!(v.len(), coadd.ln_wave.len(), "on the coadd grid");
        // Values as written (f32 columns).
        for k in (0..v.len()).step_by(97) {
            assert_eq!(
                v.flux()[k],
                f64::from(t.flux[k] as f32),
                "exposure {i} pixel {k}"
            );
            let lw = 10f64.powf(f64::from(t.loglam[k] as f32));
            assert!((v.wavelength_aa()[k] - lw).abs() < 1e-9 * lw);
        }
        // Barycentric already: no shift, and no BC to apply again.
        assert_eq!(v.meta.velocity(VelocityKind::Vrel), Some(0.0));
        assert_eq!(v.meta.velocity(VelocityKind::Bc), None);
        // The time from TAI-BEG/TAI-END matches the original exposure's.
        let jd_old = old.visits[i].meta.jd.unwrap();
        assert!((v.meta.jd.unwrap() - jd_old).abs() < 1e-5, "exposure {i}");
        assert!(v.meta.header.iter().any(|(k, _)| k == "HELIO_RV"));
    }
    // The old camera HDUs are native pixels, the new exposures are not.
    assert!(old.visits.iter().all(|v| !v.meta.resampled));
}

#[test]
fn spec_lite_files_of_both_eras_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = v6_of_real_spec();
    s.exposures.clear();
    let path = dir.path().join("spec-lite-v6.fits");
    sdss_layouts::write_boss_spec_v6(&path, &s).unwrap();
    let e = io::load_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("spec-lite-v6.fits") && e.contains("spec-lite") && e.contains("MJD_EXP_"),
        "{e}"
    );
}

#[test]
fn mwm_visit_rows_are_resampled_visits_framed_by_in_stack() {
    let dir = tempfile::tempdir().unwrap();
    let (id, hdus) = synth::sdss5::mwm_visit_example(4).unwrap();
    let path = dir.path().join(format!("mwmVisit-0.6.0-{id}.fits"));
    sdss_layouts::write_mwm_visit(&path, id, &hdus).unwrap();
    let d = io::load_file(&path).unwrap();
    assert_eq!(d.visits.len(), 5, "4 APOGEE/APO rows + 1 BOSS/APO row");
    assert_eq!(d.name, format!("sdss_id {id}"));
    let apogee: Vec<_> = d
        .visits
        .iter()
        .filter(|v| v.meta.name.starts_with("APOGEE/APO"))
        .collect();
    assert_eq!(apogee.len(), 4);
    for (j, v) in apogee.iter().enumerate() {
        let row = &hdus[2].rows[j];
        assert!(v.meta.resampled);
        assert_eq!(v.len(), 8575);
        // Grid from CRVAL/CDELT: 10^(4.179 + 6e-6 i).
        assert!((v.wavelength_aa()[100] - 10f64.powf(4.179 + 6e-4)).abs() < 1e-6);
        assert_eq!(v.flux()[4000], f64::from(row.flux[4000]));
        let vrel = v.meta.velocity(VelocityKind::Vrel).unwrap();
        if row.in_stack {
            assert_eq!(vrel, 0.0, "row {j}: rest frame");
            assert_eq!(v.meta.velocity(VelocityKind::Bc), None);
        } else {
            assert_eq!(vrel, row.v_rel, "row {j}: observed frame, shifted by v_rel");
            assert_eq!(v.meta.velocity(VelocityKind::Bc), Some(row.bc));
        }
        assert_eq!(v.meta.jd, Some(row.jd));
    }
    let boss = d
        .visits
        .iter()
        .find(|v| v.meta.name.starts_with("BOSS/APO"))
        .unwrap();
    assert_eq!(boss.meta.velocity(VelocityKind::Vrel), Some(15.0));
    // The velocity source for apVisit files.
    let vel = mwm::visit_velocities(&path).unwrap();
    assert_eq!(vel.len(), 5);
    let ap: Vec<_> = vel.iter().filter(|v| v.hdu == "APOGEE/APO").collect();
    for (j, v) in ap.iter().enumerate() {
        let row = &hdus[2].rows[j];
        assert_eq!((v.v_rel, v.v_rad, v.bc), (row.v_rel, row.v_rad, row.bc));
        assert_eq!(v.in_stack, row.in_stack);
        assert_eq!(v.mjd, row.mjd as f64);
        assert_eq!(v.release, row.release);
    }
}

#[test]
fn mwm_visit_errors_name_the_hdu_and_the_card() {
    let dir = tempfile::tempdir().unwrap();
    let (id, mut hdus) = synth::sdss5::mwm_visit_example(2).unwrap();
    hdus[2].cdelt = -1.0;
    let path = dir.path().join("bad-grid.fits");
    sdss_layouts::write_mwm_visit(&path, id, &hdus).unwrap();
    let e = io::load_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("bad-grid.fits") && e.contains("APOGEE/APO") && e.contains("CDELT"),
        "{e}"
    );
    for h in &mut hdus {
        h.rows.clear();
    }
    let path = dir.path().join("empty.fits");
    sdss_layouts::write_mwm_visit(&path, id, &hdus).unwrap();
    let e = io::load_file(&path).unwrap_err().to_string();
    assert!(e.contains("empty.fits") && e.contains("empty"), "{e}");
}

/// The committed fixtures are what the writers make (regenerate with
/// `FRIZZVIEW_WRITE_FIXTURES=1 cargo test --test integration sdss5::committed`).
#[test]
fn committed_fixtures_are_what_the_layout_writers_make() {
    let dir = tempfile::tempdir().unwrap();
    let write = std::env::var("FRIZZVIEW_WRITE_FIXTURES").is_ok();
    let out = |name: &str| {
        if write {
            fixture(name)
        } else {
            dir.path().join(name)
        }
    };
    let chip = synth::dither::single_target_chip().unwrap();
    let a = out(&chip.file_name());
    if write && a.exists() {
        std::fs::remove_file(&a).unwrap();
    }
    sdss_layouts::write_apcframe(&a, &chip).unwrap();
    let s = v6_of_real_spec();
    let b = out(&s.file_name());
    if write && b.exists() {
        std::fs::remove_file(&b).unwrap();
    }
    sdss_layouts::write_boss_spec_v6(&b, &s).unwrap();
    let (id, hdus) = synth::sdss5::mwm_visit_example(3).unwrap();
    let c = out(&format!("mwmVisit-0.6.0-{id}.fits"));
    if write && c.exists() {
        std::fs::remove_file(&c).unwrap();
    }
    sdss_layouts::write_mwm_visit(&c, id, &hdus).unwrap();
    for p in [&a, &b, &c] {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let made = io::load_file(p).unwrap();
        let committed = io::load_file(&fixture(&name)).unwrap();
        assert_eq!(made.visits.len(), committed.visits.len(), "{name}");
        for (x, y) in made.visits.iter().zip(&committed.visits) {
            assert_eq!(x.flux(), y.flux(), "{name}");
            assert_eq!(x.wavelength_aa(), y.wavelength_aa(), "{name}");
            assert_eq!(x.meta.velocities, y.meta.velocities, "{name}");
        }
    }
}

#[test]
fn cli_summary_says_the_v6_exposures_are_resampled() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.fits");
    let args = frizzview::cli::combine::CombineArgs {
        method: "standard".into(),
        basis: "fourier".into(),
        interp: Some("cubic".into()),
        std_mask: "drop".into(),
        lags: 5,
        ..Default::default()
    };
    let input = fixture("spec-003586-55181-27021600000000500.fits");
    let s = frizzview::cli::combine::combine_one(&args, &[input], &out).unwrap();
    assert!(
        s.contains("7 visit(s) already resampled by the pipeline, not native pixels"),
        "{s}"
    );
}
