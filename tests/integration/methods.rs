//! A third combination method, defined in this file only, runs through everything the two
//! built-in ones do: the orchestration (beside them, their results unchanged bit for bit), the
//! leave-one-out stage, the fit-quality verdict and the exports (FITS read back: its HDUs and
//! columns present, every HDU of a run without it byte for byte the same). Adding a method is a
//! module implementing `Method` plus one registration; here the registration is the list passed
//! to `combine_methods` (the default path passes `METHODS`).

use std::path::Path;

use frizzview::combine::{
    Caches, Cancel, CombineError, Combined, Inputs, METHODS, Method, MethodInfo, MethodResult,
    Prepared, VisitFit, Warning, combine_methods, complete_leave_one_out_methods, fit_quality,
};
use frizzview::model::Dataset;
use frizzview::settings::{Settings, VisitSetting};
use frizzview::synth::apogee::{ApogeeParams, generate};

/// Nearest-pixel mean: each output pixel is the weighted mean of the input pixels whose
/// rest-frame position is nearest to it; its variance 1 / sum of weights. It scores each visit
/// against the same mean of the other visits.
#[derive(Debug)]
struct Nearest;

/// The output pixel nearest to `x` (`grid` ascending).
fn nearest(grid: &[f64], x: f64) -> usize {
    let k = grid.partition_point(|&g| g < x);
    if k == 0 {
        0
    } else if k == grid.len() || x - grid[k - 1] <= grid[k] - x {
        k - 1
    } else {
        k
    }
}

/// Flux and variance of the included visits except `skip`.
fn mean(prep: &Prepared, skip: Option<usize>) -> (Vec<f64>, Vec<f64>) {
    let g = &prep.grid.ln_wave;
    let (mut sw, mut swy) = (vec![0.0; g.len()], vec![0.0; g.len()]);
    for v in prep.included().filter(|v| Some(v.index) != skip) {
        for (k, &x) in v.x_rest.iter().enumerate() {
            if v.w[k] > 0.0 {
                let l = nearest(g, x);
                sw[l] += v.w[k];
                swy[l] += v.w[k] * v.y[k];
            }
        }
    }
    let flux = sw
        .iter()
        .zip(&swy)
        .map(|(&w, &wy)| if w > 0.0 { wy / w } else { f64::NAN })
        .collect();
    let var = sw
        .iter()
        .map(|&w| if w > 0.0 { 1.0 / w } else { f64::NAN })
        .collect();
    (flux, var)
}

/// `flux` as visit `v` sees it at its own pixels (S times the nearest output pixel's value; NaN
/// past the grid's ends).
fn predict(prep: &Prepared, v: usize, flux: &[f64]) -> Vec<f64> {
    let g = &prep.grid.ln_wave;
    let half = (g[1] - g[0]) / 2.0;
    let pv = &prep.visits[v];
    pv.x_rest
        .iter()
        .zip(&pv.s)
        .map(|(&x, &s)| {
            if x < g[0] - half || x > g[g.len() - 1] + half {
                f64::NAN
            } else {
                s * flux[nearest(g, x)]
            }
        })
        .collect()
}

impl Method for Nearest {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            name: "nearest",
            label: "nearest-pixel mean",
            export_prefix: "nearest_",
        }
    }
    fn wanted(&self, _settings: &Settings) -> bool {
        true
    }
    fn run(&self, x: Inputs<'_>, _w: &mut Vec<Warning>) -> Result<MethodResult, CombineError> {
        let prep = x.prep;
        let (flux, var) = mean(prep, None);
        let no_data = flux.iter().map(|f: &f64| f.is_nan()).collect();
        let visits = (0..prep.visits.len())
            .map(|v| VisitFit::from_prediction(&prep.visits[v], predict(prep, v, &flux)))
            .collect();
        Ok(MethodResult {
            band: vec![var.clone()],
            flags: vec![0; flux.len()],
            flux,
            var,
            no_data,
            visits,
            ..MethodResult::default()
        })
    }
    fn scores_visits(&self) -> bool {
        true
    }
    fn leave_one_out(&self, x: Inputs<'_>, r: &mut MethodResult) -> Result<(), CombineError> {
        let prep = x.prep;
        for (v, fit) in r.visits.iter_mut().enumerate() {
            x.cancel.check()?;
            if !prep.visits[v].included {
                continue;
            }
            let (flux, _) = mean(prep, Some(v));
            let l = VisitFit::from_prediction(&prep.visits[v], predict(prep, v, &flux));
            fit.loo_chi2 = l.chi2;
            fit.loo_n_used = l.n_used;
            fit.loo_chi2_nu = l.chi2_nu;
            fit.loo_prediction = l.prediction;
        }
        Ok(())
    }
}

/// Eight clean APOGEE-like visits of one star, visit `BAD` replaced by another star's.
const BAD: usize = 2;
fn star() -> Dataset {
    let p = |truth_seed| ApogeeParams {
        n_visits: 8,
        seed: 11,
        truth_seed,
        snr_range: (60.0, 120.0),
        ..ApogeeParams::clean()
    };
    let mut data = generate(&p(42)).expect("synth");
    let other = generate(&p(7)).expect("synth");
    data.visits[BAD] = std::sync::Arc::clone(&other.visits[BAD]);
    data
}

fn run(data: &Dataset, s: &Settings, methods: &[&dyn Method]) -> (Combined, Vec<Combined>) {
    let mut early = Vec::new();
    let c = combine_methods(
        data,
        s,
        &Cancel::new(),
        &Caches::new(),
        &mut |c| early.push(c.clone()),
        methods,
    )
    .expect("combines");
    (c, early)
}

fn bits(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Every HDU of a FITS file as (EXTNAME, its bytes: header and data blocks), read by walking the
/// 2880-byte blocks (not by cfitsio).
fn hdus(path: &Path) -> Vec<(String, Vec<u8>)> {
    let b = std::fs::read(path).expect("read fits");
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let start = at;
        let (mut bitpix, mut naxis, mut pcount, mut gcount) = (8i64, 0usize, 0i64, 1i64);
        let mut dims = Vec::new();
        let mut name = String::new();
        'header: loop {
            let block = &b[at..at + 2880];
            at += 2880;
            for card in block.chunks(80) {
                let card = std::str::from_utf8(card).expect("ASCII header");
                let (k, v) = (card[..8].trim(), card.get(10..).unwrap_or("").trim());
                let num = || v.split('/').next().unwrap_or("").trim().parse::<i64>().ok();
                match k {
                    "END" => break 'header,
                    "BITPIX" => bitpix = num().expect("BITPIX"),
                    "NAXIS" => naxis = num().expect("NAXIS") as usize,
                    "PCOUNT" => pcount = num().expect("PCOUNT"),
                    "GCOUNT" => gcount = num().expect("GCOUNT"),
                    "EXTNAME" => name = v.split('\'').nth(1).unwrap_or("").trim().to_owned(),
                    k if k.starts_with("NAXIS") && k.len() > 5 => {
                        dims.push(num().expect("NAXISn") as usize);
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(dims.len(), naxis, "NAXISn cards of HDU {}", out.len());
        let n: usize = if naxis == 0 { 0 } else { dims.iter().product() };
        let data = (bitpix.unsigned_abs() as usize / 8) * (n + pcount as usize) * gcount as usize;
        at += data.div_ceil(2880) * 2880;
        out.push((name, b[start..at].to_vec()));
    }
    out
}

#[test]
fn a_third_method_runs_beside_the_built_in_ones_with_its_loo_fit_quality_and_export() {
    let data = star();
    let s = frizzview::settings::headless_defaults(&data);
    let mut list: Vec<&dyn Method> = METHODS.to_vec();
    list.push(&Nearest);
    let (plain, _) = run(&data, &s, METHODS);
    let (c, early) = run(&data, &s, &list);

    // The orchestration: three named results, the built-in ones unchanged bit for bit.
    let names: Vec<&str> = c.results().iter().map(|(i, _)| i.name).collect();
    assert_eq!(names, ["forward", "standard", "nearest"]);
    for name in ["forward", "standard"] {
        let (a, b) = (c.result(name).expect("a"), plain.result(name).expect("b"));
        assert_eq!(bits(&a.flux), bits(&b.flux), "{name}");
        assert_eq!(bits(&a.var), bits(&b.var), "{name}");
        assert_eq!(a.band.len(), b.band.len(), "{name}");
        for (x, y) in a.band.iter().zip(&b.band) {
            assert_eq!(bits(x), bits(y), "{name}");
        }
        assert_eq!(a.flags, b.flags, "{name}");
        for (x, y) in a.visits.iter().zip(&b.visits) {
            assert_eq!(x.chi2.to_bits(), y.chi2.to_bits(), "{name}");
            assert_eq!(x.loo_chi2_nu.to_bits(), y.loo_chi2_nu.to_bits(), "{name}");
        }
    }
    assert_eq!(c.warnings, plain.warnings);

    // The leave-one-out stage: the first delivery has no scores, the last has them; each equals
    // the chi^2/nu of the visit against the method run with that visit excluded.
    assert_eq!(early.len(), 1);
    assert!(early[0].loo_pending && !c.loo_pending);
    let pending = early[0].result("nearest").expect("nearest, first stage");
    assert!(pending.visits.iter().all(|v| v.loo_chi2_nu.is_nan()));
    let r = c.result("nearest").expect("nearest");
    for v in 0..data.visits.len() {
        let mut sv = s.clone();
        sv.visits = vec![VisitSetting::default(); data.visits.len()];
        sv.visits[v].include = false;
        let (without, _) = run(&data, &sv, &[&Nearest]);
        let want = without.result("nearest").expect("nearest").visits[v].clone();
        let got = &r.visits[v];
        assert_eq!(got.loo_n_used, want.n_used, "visit {v}");
        assert!(
            (got.loo_chi2_nu - want.chi2_nu).abs() <= 1e-12 * want.chi2_nu,
            "visit {v}: {} against {}",
            got.loo_chi2_nu,
            want.chi2_nu
        );
        assert!(got.loo_chi2_nu >= got.chi2_nu, "visit {v}");
    }

    // A result delivered before its scores is completed by the same list.
    let mut e = early[0].clone();
    complete_leave_one_out_methods(&data, &mut e, &Cancel::new(), &Caches::new(), &list)
        .expect("scores");
    let loo = |c: &Combined| -> Vec<u64> {
        c.result("nearest")
            .expect("nearest")
            .visits
            .iter()
            .map(|v| v.loo_chi2_nu.to_bits())
            .collect()
    };
    assert_eq!(loo(&e), loo(&c));

    // Exports: the FITS file of a run without it, HDU for HDU, the same bytes, but VISITS, whose
    // columns are the same; its own HDUs and columns after them.
    let dir = tempfile::tempdir().expect("tempdir");
    let (fa, fb) = (dir.path().join("plain.fits"), dir.path().join("three.fits"));
    frizzview::export::fits::write_fits(&fa, &data, &plain, &[]).expect("fits");
    frizzview::export::fits::write_fits(&fb, &data, &c, &[]).expect("fits");
    let (ha, hb) = (hdus(&fa), hdus(&fb));
    let names: Vec<&str> = hb.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "",
            "FLUX",
            "ERROR",
            "MASK",
            "COVAR_FORWARD",
            "COVAR_STANDARD",
            "VISITS",
            "FLUX_NEAREST",
            "ERROR_NEAREST",
            "MASK_NEAREST",
            "COVAR_NEAREST"
        ]
    );
    assert_eq!(ha.len(), 7);
    for (a, b) in ha.iter().zip(&hb) {
        assert_eq!(a.0, b.0);
        if a.0 != "VISITS" {
            assert!(a.1 == b.1, "HDU {} differs", a.0);
        }
    }
    let mut f = fitsio::FitsFile::open(&fb).expect("open");
    let mut fp = fitsio::FitsFile::open(&fa).expect("open");
    let (t, tp) = (
        f.hdu("VISITS").expect("VISITS"),
        fp.hdu("VISITS").expect("VISITS"),
    );
    let fitsio::hdu::HduInfo::TableInfo {
        column_descriptions,
        ..
    } = &tp.info
    else {
        panic!("VISITS is a table")
    };
    for col in column_descriptions {
        let n = &col.name;
        if let (Ok(x), Ok(y)) = (t.read_col::<f64>(&mut f, n), tp.read_col::<f64>(&mut fp, n)) {
            assert_eq!(bits(&x), bits(&y), "column {n}");
        } else {
            let x: Vec<String> = t.read_col(&mut f, n).expect("column");
            let y: Vec<String> = tp.read_col(&mut fp, n).expect("column");
            assert_eq!(x, y, "column {n}");
        }
    }
    let chi: Vec<f64> = t
        .read_col(&mut f, "CHI2_NU_NEAREST")
        .expect("CHI2_NU_NEAREST");
    assert_eq!(
        bits(&chi),
        bits(&r.visits.iter().map(|v| v.chi2_nu).collect::<Vec<_>>())
    );
    let lc: Vec<f64> = t.read_col(&mut f, "CHI2_NU_LOO_NEAREST").expect("LOO");
    assert_eq!(
        bits(&lc),
        bits(&r.visits.iter().map(|v| v.loo_chi2_nu).collect::<Vec<_>>())
    );
    let h = f.hdu("FLUX_NEAREST").expect("FLUX_NEAREST");
    let y: Vec<f64> = h.read_image(&mut f).expect("flux");
    assert_eq!(bits(&y), bits(&r.flux));
    let h = f.hdu("ERROR_NEAREST").expect("ERROR_NEAREST");
    let e: Vec<f64> = h.read_image(&mut f).expect("error");
    let want: Vec<f64> = r.var.iter().map(|v| v.sqrt()).collect();
    assert_eq!(bits(&e), bits(&want));
    let h = f.hdu("COVAR_NEAREST").expect("COVAR_NEAREST");
    let band: Vec<f64> = h.read_image(&mut f).expect("band");
    let m = c.grid.len();
    assert_eq!(band.len(), (s.band_lags + 1) * m);
    assert_eq!(bits(&band[..m]), bits(&r.var));
    assert!(band[m..].iter().all(|x| x.is_nan()));
    let method: String = h.read_key(&mut f, "METHOD").expect("METHOD");
    assert_eq!(method, "nearest");

    // .npz and CSV: its prefix.
    let npz = dir.path().join("c.npz");
    frizzview::export::write_npz(&npz, &c, &[]).expect("npz");
    let mut z = ndarray_npy::NpzReader::new(std::fs::File::open(&npz).expect("open")).expect("npz");
    let y: ndarray::Array1<f64> = z.by_name("nearest_y_star").expect("nearest_y_star");
    assert_eq!(bits(&y.to_vec()), bits(&r.flux));
    let l: ndarray::Array1<f64> = z
        .by_name("nearest_visit_loo_chi2_nu")
        .expect("nearest_visit_loo_chi2_nu");
    assert_eq!(bits(&l.to_vec()), bits(&lc));
    assert!(
        z.by_name::<ndarray::OwnedRepr<f64>, ndarray::Ix1>("standard_visit_loo_chi2_nu")
            .is_err()
    );
    eprintln!(
        "third method: {} visits; nearest LOO chi2/nu {:.2?}",
        data.visits.len(),
        r.visits.iter().map(|v| v.loo_chi2_nu).collect::<Vec<_>>()
    );
}

/// With neither built-in method asked for, the fit quality is the third method's, by its
/// leave-one-out scores: the other star's visit stands out.
#[test]
fn fit_quality_judges_a_third_method_alone_by_its_loo_scores() {
    let data = star();
    let mut s = frizzview::settings::headless_defaults(&data);
    s.forward = None;
    s.standard = None;
    let mut list: Vec<&dyn Method> = METHODS.to_vec();
    list.push(&Nearest);
    let (c, early) = run(&data, &s, &list);
    let names: Vec<&str> = c.results().iter().map(|(i, _)| i.name).collect();
    assert_eq!(names, ["nearest"]);
    let r = c.result("nearest").expect("nearest");
    let Some(Warning::PoorFit {
        chi2_nu,
        outliers,
        loo,
        ..
    }) = fit_quality(&c)
    else {
        panic!("a poor fit: {:?}", c.warnings)
    };
    assert!(
        c.warnings
            .iter()
            .any(|w| matches!(w, Warning::PoorFit { .. }))
    );
    assert!(loo);
    let (chi2, n) = r
        .visits
        .iter()
        .zip(&c.visits)
        .filter(|(_, u)| u.included)
        .fold((0.0, 0), |(c, n), (v, _)| (c + v.chi2, n + v.n_used));
    assert!((chi2_nu - chi2 / n as f64).abs() <= 1e-12 * chi2_nu);
    eprintln!(
        "nearest alone: chi2/nu {chi2_nu:.2}, outliers {outliers:?}, LOO {:.2?}",
        r.visits.iter().map(|v| v.loo_chi2_nu).collect::<Vec<_>>()
    );
    assert_eq!(
        outliers.first().map(|o| o.0.as_str()),
        Some(data.visits[BAD].meta.name.as_str())
    );
    // The first stage judged it by the in-sample scores.
    assert!(matches!(
        fit_quality(&early[0]),
        Some(Warning::PoorFit { loo: false, .. }) | None
    ));
}
