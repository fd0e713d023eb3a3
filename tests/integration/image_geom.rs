//! The image mode's geometry and inputs on real files: the 14 DECam exposures of legacypipe's
//! testcase3 and testcase6 (TPV WCS, ooi/oow/ood triplets), the bridge dither sequence (TIFF),
//! and files the tests write (HST/JWST-style extensions, `.npy` sets, pixmaps).
//!
//! The real files are read from `../shared/data/images` beside the repository (see its README);
//! where absent the tests say so and skip, except under `CI=true`. The WCS is checked against
//! astropy through `$FRIZZVIEW_PYTHON` (a Python with astropy and numpy); without it the astropy
//! comparisons skip with a message, except under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use fitsio::FitsFile;
use fitsio::images::{ImageDescription, ImageType};
use frizzview::model::pixel_policy::BitAction;
use frizzview_core::image::read::{self, DqEncoding, DqPolicy, ImageExposure};
use frizzview_core::image::wcs::{self, Distortion, Wcs};
use ndarray::{Array2, Array3};

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `../shared/data/images`, or `None` (with a message) when absent outside CI.
fn images_dir(test: &str) -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/images");
    if d.join("legacypipe").is_dir() && d.join("bridge").is_dir() {
        return Some(d);
    }
    assert!(
        !under_ci(),
        "{test}: the real image data are missing under CI: {} (CI must have ../shared beside its clone)",
        d.display()
    );
    eprintln!(
        "{test}: skipped: the real image data are not at {} (these tests need ../shared/data)",
        d.display()
    );
    None
}

/// Every `*_ooi_*.fits` under `dir`, sorted by file name (= date order).
fn ooi_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("_ooi_") && n.ends_with(".fits"))
            {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, &mut v);
    v.sort_by_key(|p| p.file_name().map(std::ffi::OsStr::to_os_string));
    v
}

const ASTROPY_SCRIPT: &str = r#"
import sys, warnings
import numpy as np
warnings.simplefilter('ignore')
from astropy.io import fits
from astropy.wcs import WCS, Sip
mode = sys.argv[1]
if mode == 'make':
    out = sys.argv[2]
    nx, ny = 200, 150
    def tan(crval=(210.8, -33.4)):
        w = WCS(naxis=2)
        w.wcs.ctype = ['RA---TAN', 'DEC--TAN']
        w.wcs.crpix = [87.3, 61.9]
        w.wcs.crval = list(crval)
        w.wcs.cd = [[-1.1e-4, 2.3e-6], [1.9e-6, 1.1e-4]]
        return w
    data = np.zeros((ny, nx), 'f4')
    fits.PrimaryHDU(data, header=tan().to_header()).writeto(out + '/tan.fits', overwrite=True)
    fits.PrimaryHDU(data, header=tan((17.0, 89.93)).to_header()).writeto(out + '/tan_pole.fits', overwrite=True)
    w = tan()
    w.wcs.ctype = ['RA---TAN-SIP', 'DEC--TAN-SIP']
    a = np.zeros((4, 4)); b = np.zeros((4, 4))
    a[2, 0] = 2.1e-4; a[1, 1] = -1.3e-4; a[0, 2] = 6e-5; a[3, 0] = 4e-7; a[1, 2] = -3e-7
    b[0, 2] = 1.7e-4; b[1, 1] = 9e-5; b[2, 0] = -5e-5; b[0, 3] = 2e-7; b[2, 1] = 3e-7
    w.sip = Sip(a, b, None, None, w.wcs.crpix)
    fits.PrimaryHDU(data, header=w.to_header(relax=True)).writeto(out + '/sip.fits', overwrite=True)
    # TPV with the terms the DECam headers leave at 0 (r, r^3, r^5, r^7; degrees 4 to 7) and
    # coefficients missing on purpose (they are 0).
    h = tan((150.1, 2.2)).to_header()
    h['CTYPE1'] = 'RA---TPV'; h['CTYPE2'] = 'DEC--TPV'
    # Each term moves the far corner (r = 0.0156 deg) by about one pixel.
    pv1 = {0: 2e-4, 1: 1.002, 2: -3e-3, 3: 4e-3, 4: 0.5, 5: -0.3, 7: 30.0, 10: -20.0, 11: 25.0,
           13: 2000.0, 16: -1500.0, 17: 1.2e5, 23: 1e5, 26: -8e6, 31: 5e8, 39: 4e8}
    pv2 = {0: -1e-4, 1: 0.997, 2: 2e-3, 3: -5e-3, 5: 0.4, 6: -0.2, 8: 30.0, 11: -25.0, 12: 2000.0,
           19: -1.2e5, 23: 1e5, 24: 8e6, 38: -5e8, 39: 4e8}
    for k, v in pv1.items(): h['PV1_%d' % k] = v
    for k, v in pv2.items(): h['PV2_%d' % k] = v
    fits.PrimaryHDU(data, header=h).writeto(out + '/tpv.fits', overwrite=True)
else:
    args = sys.argv[2:]
    for i in range(0, len(args), 4):
        f, hdu, pix, out = args[i:i + 4]
        w = WCS(fits.getheader(f, int(hdu)))
        p = np.load(pix)
        ra, dec = w.pixel_to_world_values(p[:, 0], p[:, 1])
        xb, yb = w.all_world2pix(ra, dec, 0, tolerance=1e-12, maxiter=200, quiet=True)
        np.save(out, np.stack([ra, dec, xb, yb], axis=1))
"#;

/// Angle between two sky positions, arcsec.
fn sep_arcsec(a: [f64; 2], b: [f64; 2]) -> f64 {
    let v = |s: [f64; 2]| {
        let (ra, dec) = (s[0].to_radians(), s[1].to_radians());
        [dec.cos() * ra.cos(), dec.cos() * ra.sin(), dec.sin()]
    };
    let (p, q) = (v(a), v(b));
    let chord = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
    (2.0 * (chord / 2.0).asin()).to_degrees() * 3600.0
}

/// One FITS file's WCS (HDU `hdu`) compared with astropy's over every pixel of an (nx, ny)
/// image: (worst pixel -> sky difference, worst sky -> pixel difference), both in pixels.
struct Case {
    label: String,
    file: PathBuf,
    hdu: usize,
    wcs: Wcs,
    nx: usize,
    ny: usize,
}

fn compare_with_astropy(py: &str, cases: &[Case]) -> Vec<(String, f64, f64)> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = tmp.path().join("astropy_map.py");
    std::fs::write(&script, ASTROPY_SCRIPT).expect("script");
    let mut args = vec![script.display().to_string(), "map".to_owned()];
    for (k, c) in cases.iter().enumerate() {
        let n = c.nx * c.ny;
        let mut pix = Array2::<f64>::zeros((n, 2));
        for iy in 0..c.ny {
            for ix in 0..c.nx {
                pix[[iy * c.nx + ix, 0]] = ix as f64;
                pix[[iy * c.nx + ix, 1]] = iy as f64;
            }
        }
        let pf = tmp.path().join(format!("pix{k}.npy"));
        ndarray_npy::write_npy(&pf, &pix).expect("write pixels");
        args.extend([
            c.file.display().to_string(),
            c.hdu.to_string(),
            pf.display().to_string(),
            tmp.path().join(format!("out{k}.npy")).display().to_string(),
        ]);
    }
    let o = Command::new(py).args(&args).output().expect("run python");
    assert!(
        o.status.success(),
        "astropy failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut worst = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        let out: Array2<f64> =
            ndarray_npy::read_npy(tmp.path().join(format!("out{k}.npy"))).expect("read output");
        assert_eq!(out.dim(), (c.nx * c.ny, 4));
        let (mut fwd, mut inv) = (0.0f64, 0.0f64);
        for iy in 0..c.ny {
            for ix in 0..c.nx {
                let r = out.row(iy * c.nx + ix);
                let (x, y) = (ix as f64, iy as f64);
                let mine = c.wcs.pixel_to_sky(x, y);
                let d = sep_arcsec(mine, [r[0], r[1]]) / c.wcs.pixel_scale_arcsec(x, y);
                fwd = fwd.max(d);
                let p = c.wcs.sky_to_pixel(r[0], r[1]).expect("my inverse");
                inv = inv.max((p[0] - r[2]).abs().max((p[1] - r[3]).abs()));
            }
        }
        worst.push((c.label.clone(), fwd, inv));
    }
    worst
}

fn load_all_decam(d: &Path) -> Vec<ImageExposure> {
    let files = ooi_files(&d.join("legacypipe"));
    assert_eq!(files.len(), 14, "14 ooi files in {}", d.display());
    read::load_images(&files).expect("load the DECam triplets")
}

#[test]
fn decam_tpv_matches_astropy_over_every_pixel() {
    let test = "decam_tpv_matches_astropy_over_every_pixel";
    let Some(d) = images_dir(test) else { return };
    let Some(py) = super::shared::astropy_python(test) else {
        return;
    };
    let exps = load_all_decam(&d);
    let cases: Vec<Case> = exps
        .iter()
        .map(|e| {
            let w = e.wcs.clone().expect("a WCS");
            assert!(
                matches!(w.distortion, Distortion::Tpv(_)),
                "{}: TPV",
                e.name
            );
            let (nx, ny) = e.size();
            Case {
                label: e.name.clone(),
                file: e.path.clone(),
                hdu: 1,
                wcs: w,
                nx,
                ny,
            }
        })
        .collect();
    let worst = compare_with_astropy(&py, &cases);
    for (name, fwd, inv) in &worst {
        println!(
            "{name}: worst pixel->sky {fwd:.2e} px, sky->pixel {inv:.2e} px (against astropy, over every pixel)"
        );
    }
    for (name, fwd, inv) in &worst {
        assert!(*fwd < 1e-3, "{name}: pixel->sky off by {fwd} px");
        assert!(*inv < 1e-3, "{name}: sky->pixel off by {inv} px");
    }
}

#[test]
fn tan_and_sip_match_astropy_on_synthetic_headers() {
    let test = "tan_and_sip_match_astropy_on_synthetic_headers";
    let Some(py) = super::shared::astropy_python(test) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = tmp.path().join("make.py");
    std::fs::write(&script, ASTROPY_SCRIPT).expect("script");
    let o = Command::new(&py)
        .args([
            script.display().to_string(),
            "make".into(),
            tmp.path().display().to_string(),
        ])
        .output()
        .expect("python");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut cases = Vec::new();
    for (name, kind) in [("tan", 0), ("tan_pole", 0), ("sip", 1), ("tpv", 2)] {
        let f = tmp.path().join(format!("{name}.fits"));
        let e = read::load_image(&f).expect("read").remove(0);
        let w = e.wcs.clone().expect("wcs");
        let got = match w.distortion {
            Distortion::None => 0,
            Distortion::Sip(_) => 1,
            Distortion::Tpv(_) => 2,
        };
        assert_eq!(got, kind, "{name}");
        let (nx, ny) = e.size();
        assert_eq!((nx, ny), (200, 150));
        cases.push(Case {
            label: name.into(),
            file: f,
            hdu: 0,
            wcs: w,
            nx,
            ny,
        });
    }
    let worst = compare_with_astropy(&py, &cases);
    for (name, fwd, inv) in &worst {
        println!("{name}: worst pixel->sky {fwd:.2e} px, sky->pixel {inv:.2e} px");
        assert!(*fwd < 1e-3, "{name}: pixel->sky off by {fwd} px");
        assert!(*inv < 1e-3, "{name}: sky->pixel off by {inv} px");
    }
    // The SIP and TPV terms matter on these headers (so the check above checks them): dropping
    // them moves the far corner by more than a pixel.
    for c in &cases[2..] {
        let plain = c.wcs.without_distortion();
        let s = c.wcs.pixel_to_sky(199.0, 149.0);
        let p = plain.sky_to_pixel(s[0], s[1]).expect("inverse");
        let moved = (p[0] - 199.0).abs().max((p[1] - 149.0).abs());
        println!(
            "{}: the distortion moves the far corner by {moved:.2} px",
            c.label
        );
        assert!(moved > 1.0, "{}: {p:?}", c.label);
    }
}

/// The pixel (0-based) where `from`'s pixel lands in `to`'s frame.
fn map_pixel(from: &Wcs, to: &Wcs, x: f64, y: f64) -> [f64; 2] {
    let s = from.pixel_to_sky(x, y);
    to.sky_to_pixel(s[0], s[1]).expect("inverse")
}

#[test]
fn dropping_the_tpv_terms_moves_testcase3_by_more_than_10_px() {
    let Some(d) = images_dir("dropping_the_tpv_terms_moves_testcase3_by_more_than_10_px") else {
        return;
    };
    let files = ooi_files(&d.join("legacypipe/testcase3"));
    assert_eq!(files.len(), 8);
    let exps = read::load_images(&files).expect("load");
    let mut worst = 0.0f64;
    for e in &exps {
        let w = e.wcs.as_ref().expect("wcs");
        let tan = w.without_distortion();
        let (nx, ny) = e.size();
        let mut m = 0.0f64;
        for iy in 0..ny {
            for ix in 0..nx {
                let p = map_pixel(w, &tan, ix as f64, iy as f64);
                m = m.max((p[0] - ix as f64).hypot(p[1] - iy as f64));
            }
        }
        println!("{}: the PV terms move pixels by up to {m:.2} px", e.name);
        worst = worst.max(m);
    }
    assert!(
        worst > 10.0,
        "the TPV terms move pixels by at most {worst} px"
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The flux-weighted centroid of `tools/registration_check.py`: 30 iterations of a radius-6
/// aperture, the sky the median of the annulus 10..16 px, negative values clipped.
fn centroid(d: &Array2<f64>, mut x0: f64, mut y0: f64) -> (f64, f64) {
    let r_ap = 6.0;
    for _ in 0..30 {
        let mut ring = Vec::new();
        for ((iy, ix), &v) in d.indexed_iter() {
            let r = (ix as f64 - x0).hypot(iy as f64 - y0);
            if r > r_ap + 4.0 && r < r_ap + 10.0 {
                ring.push(v);
            }
        }
        let sky = median(ring);
        let (mut sw, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for ((iy, ix), &v) in d.indexed_iter() {
            let r = (ix as f64 - x0).hypot(iy as f64 - y0);
            if r < r_ap {
                let w = (v - sky).max(0.0);
                sw += w;
                sx += w * ix as f64;
                sy += w * iy as f64;
            }
        }
        x0 = sx / sw;
        y0 = sy / sw;
    }
    (x0, y0)
}

fn std(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// The testcase3 galaxy's centroid in each exposure mapped into exposure #1's frame: the
/// scatter (x, y) in px, with the full WCS or with the PV terms dropped.
fn registration_scatter(exps: &[ImageExposure], drop_pv: bool) -> (f64, f64) {
    let w1 = exps[0].wcs.clone().expect("wcs");
    let sel = |w: &Wcs| {
        if drop_pv {
            w.without_distortion()
        } else {
            w.clone()
        }
    };
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for e in exps {
        let w = e.wcs.clone().expect("wcs");
        // The first guess always through the full WCS, as the script does.
        let g = map_pixel(&w1, &w, 20.87, 26.55);
        let (cx, cy) = centroid(&e.sci, g[0], g[1]);
        let p = map_pixel(&sel(&w), &sel(&w1), cx, cy);
        xs.push(p[0]);
        ys.push(p[1]);
    }
    (std(&xs), std(&ys))
}

#[test]
fn testcase3_galaxy_registers_within_0_2_px() {
    let Some(d) = images_dir("testcase3_galaxy_registers_within_0_2_px") else {
        return;
    };
    let files = ooi_files(&d.join("legacypipe/testcase3"));
    let exps = read::load_images(&files).expect("load");
    assert_eq!(exps.len(), 8);
    let (sx, sy) = registration_scatter(&exps, false);
    let (tx, ty) = registration_scatter(&exps, true);
    println!(
        "testcase3 galaxy centroid scatter in exposure #1's frame: TPV {sx:.3} / {sy:.3} px, PV dropped {tx:.3} / {ty:.3} px (README: 0.098 / 0.094 and 1.2 / 7.6)"
    );
    assert!(sx <= 0.2 && sy <= 0.2, "scatter {sx} / {sy} px");
    assert!(
        tx.max(ty) > 1.0,
        "without PV the scatter should exceed 1 px"
    );
}

#[test]
fn decam_triplets_load_from_the_ooi_files_alone() {
    let Some(d) = images_dir("decam_triplets_load_from_the_ooi_files_alone") else {
        return;
    };
    let exps = load_all_decam(&d);
    assert_eq!(exps.len(), 14);
    let mut masked = 0usize;
    for e in &exps {
        assert_eq!(e.companions.len(), 2, "{}: oow and ood found", e.name);
        assert!(
            e.companions
                .iter()
                .any(|c| c.to_string_lossy().contains("_oow_"))
        );
        assert!(
            e.companions
                .iter()
                .any(|c| c.to_string_lossy().contains("_ood_"))
        );
        assert_eq!(e.dq_encoding, DqEncoding::Codes);
        assert!(e.notes.iter().any(|n| n.contains("BUNIT")), "{:?}", e.notes);
        let dq = e.dq.as_ref().expect("dq");
        assert_eq!(dq.dim(), e.sci.dim());
        // The file's claim: ivar == 0 exactly where DQ != 0.
        for (&q, &w) in dq.iter().zip(&e.ivar) {
            assert_eq!(q != 0, w == 0.0, "{}: ivar {w} with DQ {q}", e.name);
            assert!(q <= 8, "{}: DQ code {q} outside the CP codes", e.name);
        }
        let eff = e.effective_ivar(&DqPolicy::default());
        for (&q, &w) in dq.iter().zip(&eff) {
            if q != 0 {
                assert_eq!(w, 0.0);
            }
        }
        masked += dq.iter().filter(|&&q| q != 0).count();
    }
    // testcase6's saturated star: codes 3 and 4 on 1350-2150 px per exposure (README).
    assert!(masked > 6 * 1300, "only {masked} masked pixels");
    // Sizes as in the README's tables (ny x nx).
    let sizes: Vec<(usize, usize)> = exps.iter().map(|e| e.sci.dim()).collect();
    assert_eq!(sizes.iter().filter(|s| **s == (51, 41)).count(), 7);
    assert_eq!(sizes.iter().filter(|s| **s == (50, 41)).count(), 1);
    // Given with their companions, the same 14 exposures (not 42).
    let mut all = ooi_files(&d.join("legacypipe"));
    let extra: Vec<PathBuf> = all
        .iter()
        .flat_map(|p| {
            let n = p.file_name().expect("name").to_string_lossy().into_owned();
            [
                p.with_file_name(n.replacen("_ooi_", "_oow_", 1)),
                p.with_file_name(n.replacen("_ooi_", "_ood_", 1)),
            ]
        })
        .collect();
    all.extend(extra);
    assert_eq!(read::load_images(&all).expect("load").len(), 14);
    // A policy that ignores saturation (3) and bleed (4) keeps those pixels' ivar as the file
    // gives it (0 there: the CP zeroed the weight itself).
    let e = exps
        .iter()
        .find(|e| e.dq.as_ref().is_some_and(|d| d.iter().any(|&q| q == 3)))
        .expect("a saturated exposure");
    let p = DqPolicy::default()
        .with(3, BitAction::Ignore)
        .with(4, BitAction::Ignore);
    let x = e.to_exposure2d(Array3::zeros((e.sci.nrows(), e.sci.ncols(), 2)), &p, 1.0);
    assert!(x.is_ok());
    assert!(
        e.to_exposure2d(Array3::zeros((3, 3, 2)), &p, 1.0)
            .is_err_and(|m| m.contains("pixmap"))
    );
}

fn write_image(
    f: &mut FitsFile,
    name: &str,
    ny: usize,
    nx: usize,
    v: &[f64],
) -> fitsio::hdu::FitsHdu {
    let h = f
        .create_image(
            name,
            &ImageDescription {
                data_type: ImageType::Double,
                dimensions: &[ny, nx],
            },
        )
        .expect("image");
    h.write_image(f, v).expect("write");
    h
}

#[test]
fn hst_and_jwst_style_extensions_load() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ny, nx) = (6usize, 5usize);
    let n = nx * ny;
    let sci: Vec<f64> = (0..n).map(|i| 10.0 + i as f64).collect();
    let err: Vec<f64> = (0..n).map(|i| 0.5 + 0.1 * i as f64).collect();
    let mut dq = vec![0.0; n];
    dq[7] = 4.0; // bit 2
    dq[8] = 2048.0; // bit 11
    let p = tmp.path().join("hst_flt.fits");
    {
        let mut f = FitsFile::create(&p).open().expect("create");
        let prim = f.primary_hdu().expect("primary");
        prim.write_key(&mut f, "TELESCOP", "HST".to_owned())
            .expect("key");
        for ver in [1i64, 2] {
            let s: Vec<f64> = sci.iter().map(|v| v * ver as f64).collect();
            let h = write_image(&mut f, "SCI", ny, nx, &s);
            h.write_key(&mut f, "EXTVER", ver).expect("key");
            h.write_key(&mut f, "BUNIT", "ELECTRONS/S".to_owned())
                .expect("key");
            for (k, v) in [("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN")] {
                h.write_key(&mut f, k, v.to_owned()).expect("key");
            }
            for (k, v) in [
                ("CRPIX1", 3.0),
                ("CRPIX2", 4.0),
                ("CRVAL1", 10.5 + ver as f64),
                ("CRVAL2", -20.0),
                ("CD1_1", -1e-5),
                ("CD1_2", 0.0),
                ("CD2_1", 0.0),
                ("CD2_2", 1e-5),
            ] {
                h.write_key(&mut f, k, v).expect("key");
            }
            let h = write_image(&mut f, "ERR", ny, nx, &err);
            h.write_key(&mut f, "EXTVER", ver).expect("key");
            let h = write_image(&mut f, "DQ", ny, nx, &dq);
            h.write_key(&mut f, "EXTVER", ver).expect("key");
        }
    }
    let exps = read::load_images(std::slice::from_ref(&p)).expect("load");
    assert_eq!(exps.len(), 2, "one exposure per SCI EXTVER");
    for (k, e) in exps.iter().enumerate() {
        let ver = (k + 1) as f64;
        assert_eq!(e.sci.dim(), (ny, nx));
        assert_eq!(e.sci[[1, 2]], sci[7] * ver);
        assert!((e.ivar[[1, 2]] - 1.0 / (err[7] * err[7])).abs() < 1e-12);
        assert_eq!(e.dq.as_ref().expect("dq")[[1, 3]], 2048);
        assert_eq!(e.dq_encoding, DqEncoding::Bits);
        assert!(
            e.notes.iter().all(|n| !n.contains("BUNIT")),
            "{:?}",
            e.notes
        );
        // CRPIX (3, 4) is FITS 1-based: array pixel (2, 3) is at CRVAL.
        let w = e.wcs.as_ref().expect("wcs");
        let s = w.pixel_to_sky(2.0, 3.0);
        assert!((s[0] - (10.5 + ver)).abs() < 1e-12 && (s[1] + 20.0).abs() < 1e-12);
        // Default policy: both flagged pixels bad; ignoring bit 11 keeps one.
        let iv = e.effective_ivar(&DqPolicy::default());
        assert_eq!((iv[[1, 2]], iv[[1, 3]]), (0.0, 0.0));
        let iv = e.effective_ivar(&DqPolicy::default().with(11, BitAction::Ignore));
        assert!(iv[[1, 3]] > 0.0 && iv[[1, 2]] == 0.0);
    }
    assert!(exps[0].name.ends_with("[SCI,1]") && exps[1].name.ends_with("[SCI,2]"));

    // JWST: VAR_POISSON + VAR_RNOISE, no ERR; BUNIT missing -> a note.
    let p = tmp.path().join("jw_cal.fits");
    {
        let mut f = FitsFile::create(&p).open().expect("create");
        write_image(&mut f, "SCI", ny, nx, &sci);
        write_image(&mut f, "VAR_POISSON", ny, nx, &vec![0.25; n]);
        write_image(&mut f, "VAR_RNOISE", ny, nx, &vec![0.75; n]);
        let mut d = vec![0.0; n];
        d[0] = 1.0;
        write_image(&mut f, "DQ", ny, nx, &d);
    }
    let e = read::load_image(&p).expect("load").remove(0);
    assert!((e.ivar[[2, 2]] - 1.0).abs() < 1e-12, "1 / (0.25 + 0.75)");
    assert!(e.notes.iter().any(|n| n.contains("BUNIT")));
    assert!(e.wcs.is_none());
    assert_eq!(e.effective_ivar(&DqPolicy::default())[[0, 0]], 0.0);

    // Mismatched ERR: the error names the file and the HDU.
    let p = tmp.path().join("bad.fits");
    {
        let mut f = FitsFile::create(&p).open().expect("create");
        write_image(&mut f, "SCI", ny, nx, &sci);
        write_image(&mut f, "ERR", 2, 2, &[1.0; 4]);
    }
    let msg = read::load_image(&p).expect_err("bad").to_string();
    assert!(msg.contains("bad.fits") && msg.contains("(ERR)"), "{msg}");

    // A broken WCS card is named.
    let p = tmp.path().join("badwcs.fits");
    {
        let mut f = FitsFile::create(&p).open().expect("create");
        let h = write_image(&mut f, "SCI", ny, nx, &sci);
        h.write_key(&mut f, "CTYPE1", "RA---TPV".to_owned())
            .expect("key");
        h.write_key(&mut f, "CTYPE2", "DEC--TPV".to_owned())
            .expect("key");
        h.write_key(&mut f, "CRPIX1", 1.0).expect("key");
        h.write_key(&mut f, "CRPIX2", 1.0).expect("key");
        h.write_key(&mut f, "CRVAL1", 1.0).expect("key");
    }
    let msg = read::load_image(&p).expect_err("bad wcs").to_string();
    assert!(
        msg.contains("badwcs.fits") && msg.contains("CRVAL2"),
        "{msg}"
    );
}

#[test]
fn plain_fits_finds_its_weight_file_beside_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ny, nx) = (3usize, 4usize);
    let sci: Vec<f64> = (0..12).map(f64::from).collect();
    let mut wht = vec![4.0; 12];
    wht[5] = 0.0;
    for (img, w) in [("a.fits", "a.wht.fits"), ("b.fits", "b_wht.fits")] {
        let (pi, pw) = (tmp.path().join(img), tmp.path().join(w));
        {
            let mut f = FitsFile::create(&pi).open().expect("create");
            let h = f
                .create_image(
                    "",
                    &ImageDescription {
                        data_type: ImageType::Double,
                        dimensions: &[ny, nx],
                    },
                )
                .expect("image");
            h.write_image(&mut f, &sci).expect("write");
            h.write_key(&mut f, "BUNIT", "COUNTS".to_owned())
                .expect("key");
        }
        {
            let mut f = FitsFile::create(&pw).open().expect("create");
            write_image(&mut f, "WHT", ny, nx, &wht);
        }
        // Given with and without its weight file: one exposure, weighted.
        for files in [vec![pi.clone()], vec![pi.clone(), pw.clone()]] {
            let exps = read::load_images(&files).expect("load");
            assert_eq!(exps.len(), 1);
            let e = &exps[0];
            assert_eq!(e.companions, vec![pw.clone()]);
            assert_eq!((e.ivar[[0, 0]], e.ivar[[1, 1]]), (4.0, 0.0));
            assert_eq!(e.sci[[2, 3]], 11.0);
            assert!(
                e.notes.iter().any(|n| n.contains("count per exposure")),
                "{:?}",
                e.notes
            );
        }
    }
    // Without a weight file: unit weights, said so.
    std::fs::remove_file(tmp.path().join("a.wht.fits")).expect("rm");
    let e = read::load_image(&tmp.path().join("a.fits"))
        .expect("load")
        .remove(0);
    assert!(e.ivar.iter().all(|&w| w == 1.0));
    assert!(e.notes.iter().any(|n| n.contains("unit weights")));
    // A CP image without its oow file: the error names the missing file.
    let p = tmp.path().join("c4d_1_ooi_z_ls9.N4.fits");
    std::fs::copy(tmp.path().join("b.fits"), &p).expect("copy");
    let msg = read::load_image(&p).expect_err("no oow").to_string();
    assert!(msg.contains("c4d_1_oow_z_ls9.N4.fits"), "{msg}");
}

#[test]
fn npy_sets_and_pixmaps_load() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ny, nx) = (4usize, 7usize);
    let sci = Array2::from_shape_fn((ny, nx), |(y, x)| (10 * y + x) as f64);
    let err = Array2::from_shape_fn((ny, nx), |(y, x)| 1.0 + 0.5 * (x + y) as f64);
    let mut dq = Array2::<i32>::zeros((ny, nx));
    dq[[2, 3]] = 1;
    ndarray_npy::write_npy(tmp.path().join("frame.npy"), &sci).expect("npy");
    ndarray_npy::write_npy(tmp.path().join("frame_err.npy"), &err).expect("npy");
    ndarray_npy::write_npy(tmp.path().join("frame_dq.npy"), &dq).expect("npy");
    let files: Vec<PathBuf> = ["frame.npy", "frame_err.npy", "frame_dq.npy"]
        .iter()
        .map(|n| tmp.path().join(n))
        .collect();
    let exps = read::load_images(&files).expect("load");
    assert_eq!(exps.len(), 1, "companions are not images");
    let e = &exps[0];
    assert_eq!(e.sci, sci);
    assert!((e.ivar[[3, 6]] - 1.0 / (5.5 * 5.5)).abs() < 1e-12);
    assert_eq!(e.dq.as_ref().expect("dq")[[2, 3]], 1);
    assert_eq!(e.effective_ivar(&DqPolicy::default())[[2, 3]], 0.0);
    assert_eq!(e.companions.len(), 2);

    // A (ny, nx, 2) pixmap, read back; the wrong shape is refused with the file's name.
    let g = wcs::ShiftRotation {
        dx: 0.3,
        dy: -0.2,
        theta: 0.01,
        scale: 2.0,
        center: [3.0, 1.5],
    };
    let pm = wcs::pixmap_shift_rotation(nx, ny, &g);
    let pf = tmp.path().join("pixmap.npy");
    ndarray_npy::write_npy(&pf, &pm).expect("npy");
    let back = read::read_pixmap(&pf, Some((ny, nx))).expect("pixmap");
    assert_eq!(back, pm);
    let msg = read::read_pixmap(&pf, Some((ny + 1, nx)))
        .expect_err("shape")
        .to_string();
    assert!(msg.contains("pixmap.npy"), "{msg}");
    // The same pixmap as a FITS cube (NAXIS1 = 2).
    let ff = tmp.path().join("pixmap.fits");
    {
        let mut f = FitsFile::create(&ff).open().expect("create");
        let h = f
            .create_image(
                "PIXMAP",
                &ImageDescription {
                    data_type: ImageType::Double,
                    dimensions: &[ny, nx, 2],
                },
            )
            .expect("image");
        h.write_image(&mut f, pm.as_slice().expect("contiguous"))
            .expect("write");
    }
    assert_eq!(
        read::read_pixmap(&ff, Some((ny, nx))).expect("fits pixmap"),
        pm
    );
    let x = e
        .to_exposure2d(back, &DqPolicy::default(), 0.5)
        .expect("exposure");
    assert_eq!(x.pixmap[[3, 6, 0]], g.apply(6.0, 3.0)[0]);
    assert_eq!(x.ivar[[2, 3]], 0.0);
    assert!(x.include && x.weight == 0.5);
}

#[test]
fn bridge_tiff_stack_loads_with_10_frames() {
    let Some(d) = images_dir("bridge_tiff_stack_loads_with_10_frames") else {
        return;
    };
    let tif = read::load_image(&d.join("bridge/bridge_sequence_fig1.tif")).expect("tiff");
    assert_eq!(tif.len(), 10);
    // The FITS conversion, read by cfitsio: the same frames, value for value.
    let fit = read::load_image(&d.join("bridge/bridge_sequence_fig1.fits")).expect("fits");
    assert_eq!(fit.len(), 10);
    for (t, f) in tif.iter().zip(&fit) {
        assert_eq!(t.sci.dim(), (108, 150));
        assert_eq!(t.sci, f.sci, "{} vs {}", t.name, f.name);
        assert!(t.wcs.is_none());
        assert!(t.notes.iter().any(|n| n.contains("unit weights")));
    }
    // README: range 28.93-255.22.
    let lo = tif
        .iter()
        .flat_map(|t| t.sci.iter().copied())
        .fold(f64::INFINITY, f64::min);
    let hi = tif
        .iter()
        .flat_map(|t| t.sci.iter().copied())
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        (28.9..29.0).contains(&lo) && (255.2..255.3).contains(&hi),
        "{lo} {hi}"
    );
    // The bridge geometry: frame k at x3 with the shifts of shifts_fig1.txt.
    let shifts = std::fs::read_to_string(d.join("bridge/shifts_fig1.txt")).expect("shifts");
    let first: Vec<f64> = shifts
        .split_whitespace()
        .take(2)
        .map(|s| s.parse().expect("number"))
        .collect();
    let g = wcs::ShiftRotation {
        dx: first[0],
        dy: first[1],
        scale: 3.0,
        ..wcs::ShiftRotation::default()
    };
    let pm = wcs::pixmap_shift_rotation(150, 108, &g);
    assert_eq!(pm[[10, 20, 0]], 3.0 * (20.0 + first[0]));
    assert_eq!(pm[[10, 20, 1]], 3.0 * (10.0 + first[1]));
}

#[test]
fn decam_output_grid_and_pixmaps_cover_every_pixel() {
    let Some(d) = images_dir("decam_output_grid_and_pixmaps_cover_every_pixel") else {
        return;
    };
    let files = ooi_files(&d.join("legacypipe/testcase3"));
    let exps = read::load_images(&files).expect("load");
    let inputs: Vec<(&Wcs, (usize, usize))> = exps
        .iter()
        .map(|e| (e.wcs.as_ref().expect("wcs"), e.size()))
        .collect();
    let g = wcs::output_grid(&inputs, &wcs::OutputOptions::default()).expect("grid");
    // The same sky box at the same scale (README: all within 1 px; 0.262-0.264"/px).
    let scale = g.wcs.cd[1][1] * 3600.0;
    assert!((0.262..0.265).contains(&scale), "{scale}");
    // The CCDs' columns run north-south (CD1_1 ~ 0): north up, the 41 x 51 cutouts lie on
    // their side, so the grid is about 51 wide and 41 high.
    assert!(
        (51..=56).contains(&g.nx) && (41..=46).contains(&g.ny),
        "{} x {}",
        g.nx,
        g.ny
    );
    for e in &exps {
        let (nx, ny) = e.size();
        let pm = wcs::pixmap_wcs(e.wcs.as_ref().expect("wcs"), nx, ny, &g.wcs);
        for v in pm.iter() {
            assert!(v.is_finite());
        }
        let (xs, ys): (Vec<f64>, Vec<f64>) = (
            pm.index_axis(ndarray::Axis(2), 0).iter().copied().collect(),
            pm.index_axis(ndarray::Axis(2), 1).iter().copied().collect(),
        );
        let inside = |v: &[f64], n: usize| v.iter().all(|&x| x >= -0.5 && x <= n as f64 - 0.5);
        assert!(inside(&xs, g.nx) && inside(&ys, g.ny), "{}", e.name);
    }
}
