//! The images mode's computations off the UI thread: two of the core's workers
//! (`engine::worker`, as the spectral mode uses), each running the newest request only (older
//! ones are dropped unstarted; a running one is cancelled and stops between stages), so drizzle
//! (one pass, fast) shows at once while the forward model (CG, up to minutes for the M/P-trap
//! dither sequence) follows. Updates carry the request's generation; the window drops those of
//! older generations.
//!
//! Inline mode (tests) runs every stage inside [`Workers::submit`].

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ndarray::Array2;

use frizzview_core::cancel::Cancel;
use frizzview_core::engine::worker::{Worker, panic_message};
use frizzview_core::image::drizzle::{self, DrizzleResult};
use frizzview_core::image::frizzle2d::{Coeffs, Frizzle2d, FrizzleSettings, VarianceMode};

use super::inputs::{self, Built, ImageSettings, Inputs};

/// A circular aperture on the output grid (output pixel coordinates; a pixel is in it when its
/// centre is within `r` of `(x, y)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aperture {
    pub x: f64,
    pub y: f64,
    pub r: f64,
}

/// The background annulus, in units of the aperture radius.
pub const ANNULUS: (f64, f64) = (1.5, 2.5);

impl Aperture {
    /// The aperture's weights on an `(ny, nx)` grid: 1 inside, and `-n_in / n_annulus` on the
    /// background annulus ([`ANNULUS`] x r) when it holds output pixels, so the sum is the
    /// aperture flux minus the annulus' mean background times the aperture's pixels (a linear
    /// combination of the output, whose variance both methods give exactly).
    #[must_use]
    pub fn mask(&self, shape: (usize, usize)) -> Array2<f64> {
        let d2 = |j: usize, i: usize| (i as f64 - self.x).powi(2) + (j as f64 - self.y).powi(2);
        let (a0, a1) = (ANNULUS.0 * self.r, ANNULUS.1 * self.r);
        let mut m = Array2::zeros(shape);
        let (mut n_in, mut n_an) = (0usize, 0usize);
        for ((j, i), v) in m.indexed_iter_mut() {
            let d = d2(j, i);
            if d <= self.r * self.r {
                *v = 1.0;
                n_in += 1;
            } else if d >= a0 * a0 && d <= a1 * a1 {
                *v = -1.0;
                n_an += 1;
            }
        }
        let b = if n_an > 0 {
            n_in as f64 / n_an as f64
        } else {
            0.0
        };
        m.mapv_inplace(|v| if v < 0.0 { -b } else { v });
        m
    }
}

/// One request: the inputs, the settings, the aperture and the pixel the noise correlation is
/// measured at.
#[derive(Clone, Debug)]
pub struct Request {
    pub generation: u64,
    pub inputs: Arc<Inputs>,
    pub inputs_key: u64,
    pub settings: ImageSettings,
    pub aperture: Option<Aperture>,
    /// (y, x) on the output grid, or None for the centre.
    pub noise_at: Option<(usize, usize)>,
}

/// Correlation at lags 1..3 along x (row 0) and y (row 1), and the output pixel (y, x).
pub type NoiseCorr = ([[f64; 3]; 2], (usize, usize));

/// The forward model's products, filled stage by stage.
#[derive(Clone, Debug, Default)]
pub struct FrizzleOut {
    pub sci: Arc<Array2<f64>>,
    /// Per-pixel variance and what it is ("exact", "probe estimate (n)").
    pub var: Option<(Arc<Array2<f64>>, String)>,
    /// Per-exposure residuals (data - model - sky) in each exposure's own pixels.
    pub residuals: Arc<Vec<Array2<f64>>>,
    pub chi2nu: Vec<f64>,
    pub loo: Option<Vec<f64>>,
    pub sky: Vec<f64>,
    pub iterations: usize,
    pub rel_residual: f64,
    pub max_iter: usize,
    /// The aperture and its (sum, exact variance).
    pub aperture: Option<(Aperture, f64, f64)>,
    /// Correlation at lags 1..3 along x (row 0) and y (row 1), and the pixel (y, x).
    pub noise: Option<NoiseCorr>,
    /// Why the variance and leave-one-out stages were skipped, if they were.
    pub skipped: Option<String>,
    /// Every stage done.
    pub complete: bool,
    pub elapsed: Duration,
}

impl FrizzleOut {
    /// Whether CG stopped at its cap before converging.
    #[must_use]
    pub fn capped(&self) -> bool {
        self.iterations >= self.max_iter && self.rel_residual > 1e-6
    }
}

/// Drizzle's products and the coverage analysis.
#[derive(Clone, Debug)]
pub struct DrizzleOut {
    pub result: Arc<DrizzleResult>,
    /// Aperture (sum, exact variance with covariance, per-pixel VAR sum).
    pub aperture: Option<(Aperture, f64, f64, f64)>,
    /// Exact correlation of drizzle's SCI at lags 1..3 along x and y at a pixel.
    pub noise: Option<NoiseCorr>,
    pub coverage: Arc<super::coverage::Coverage>,
    /// The sky offsets subtracted from drizzle's inputs (medians against the first included).
    pub sky: Vec<f64>,
    pub elapsed: Duration,
}

/// What the workers hand back.
#[derive(Clone, Debug)]
pub enum Update {
    /// The output grid for a generation.
    Grid { generation: u64, built: Arc<Built> },
    Frizzle {
        generation: u64,
        out: Arc<FrizzleOut>,
    },
    Drizzle {
        generation: u64,
        out: Arc<DrizzleOut>,
    },
    Error {
        generation: u64,
        what: &'static str,
        message: String,
    },
}

/// What a worker is doing, for the progress display.
#[derive(Debug, Default)]
pub struct Status {
    busy: AtomicBool,
    /// Milliseconds since the UNIX epoch when the current request started.
    since_ms: AtomicU64,
    stage: Mutex<String>,
}

impl Status {
    fn set(&self, stage: &str) {
        *self.stage.lock().unwrap_or_else(PoisonError::into_inner) = stage.to_owned();
    }
    fn start(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.since_ms.store(now, Ordering::Relaxed);
        self.busy.store(true, Ordering::Relaxed);
    }
    fn stop(&self) {
        self.busy.store(false, Ordering::Relaxed);
    }
    /// (busy, stage, seconds running).
    #[must_use]
    pub fn get(&self) -> (bool, String, f64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let since = self.since_ms.load(Ordering::Relaxed);
        (
            self.busy.load(Ordering::Relaxed),
            self.stage
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            now.saturating_sub(since) as f64 / 1e3,
        )
    }
}

/// The forward model's cached state.
#[derive(Default)]
struct FrizzleState {
    /// (geometry key, prepared model, built inputs).
    model: Option<(String, Frizzle2d, Arc<Built>)>,
    /// (solve key, coefficients).
    coeffs: Option<(String, Coeffs)>,
}

fn geometry_key(r: &Request) -> String {
    let shifts: Vec<(f64, f64)> = r.settings.exposures.iter().map(|e| (e.dx, e.dy)).collect();
    format!("{}|{:?}|{:?}", r.inputs_key, r.settings.scale, shifts)
}

fn solve_key(r: &Request) -> String {
    let w: Vec<(bool, f64)> = r
        .settings
        .exposures
        .iter()
        .map(|e| (e.include, e.weight))
        .collect();
    format!(
        "{}|{w:?}|{}|{:?}|{}",
        geometry_key(r),
        r.settings.sky,
        r.settings.ridge,
        r.settings.max_iter()
    )
}

/// The settings of the window's live fit: no robust clipping (the window shows the plain
/// weighted fit; the command line clips), variance and leave-one-out as later stages.
#[must_use]
pub fn live_settings(s: &ImageSettings) -> FrizzleSettings {
    FrizzleSettings {
        ridge: s.ridge,
        sky: s.sky,
        max_iter: s.max_iter(),
        robust_clip: None,
        variance: VarianceMode::None,
        loo: false,
        coverage: false,
        ..FrizzleSettings::default()
    }
}

/// When one solve costs more than this (CG iterations x model pixels), the window skips the
/// stages that need more solves (noise correlation, per-pixel variance, leave-one-out): the
/// M/P-trap dither sequence (~1750 iterations x 146k pixels) would take many minutes more.
pub const EXTRA_SOLVES_BUDGET: usize = 20_000_000;

/// Probes of the per-pixel variance estimate beyond the exact size.
pub const PROBES: usize = 16;

/// The forward model's stages for `r`, each sent when done; stops (`Ok`) between stages once
/// `cancel` is set (a newer request is waiting).
fn run_frizzle(
    st: &mut FrizzleState,
    r: &Request,
    cancel: &Cancel,
    status: &Status,
    send: &dyn Fn(Update),
) -> Result<(), String> {
    let t0 = Instant::now();
    let g = r.generation;
    let gk = geometry_key(r);
    if st.model.as_ref().is_none_or(|(k, _, _)| *k != gk) {
        status.set("preparing the forward model (one NUFFT per exposure)");
        st.model = None;
        st.coeffs = None;
        let built = match inputs::build(&r.inputs, &r.settings) {
            Ok(b) => Arc::new(b),
            Err(e) => return Err(e),
        };
        match Frizzle2d::new(&built.exposures, built.shape, &live_settings(&r.settings)) {
            Ok(m) => st.model = Some((gk, m, built)),
            Err(e) => return Err(e.to_string()),
        }
        if cancel.is_cancelled() {
            return Ok(());
        }
    }
    let Some((_, model, built)) = st.model.as_mut() else {
        return Ok(());
    };
    let sk = solve_key(r);
    let coeffs = match &st.coeffs {
        Some((k, c)) if *k == sk => c.clone(),
        _ => {
            status.set(&format!(
                "solving (CG, up to {} iterations)",
                r.settings.max_iter()
            ));
            let ls = live_settings(&r.settings);
            model.settings.ridge = ls.ridge;
            model.settings.sky = ls.sky;
            model.settings.max_iter = ls.max_iter;
            for (e, es) in r.settings.exposures.iter().enumerate() {
                if let Err(x) = model.set_weight(e, es.weight, es.include && es.weight > 0.0) {
                    return Err(x.to_string());
                }
            }
            match model.solve() {
                Ok(c) => {
                    st.coeffs = Some((sk, c.clone()));
                    c
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let (residuals, chi2nu) = model.residuals(&coeffs);
    let mut out = FrizzleOut {
        sci: Arc::new(model.image(&coeffs)),
        residuals: Arc::new(residuals),
        chi2nu,
        sky: coeffs.sky.clone(),
        iterations: coeffs.iterations,
        rel_residual: coeffs.rel_residual,
        max_iter: r.settings.max_iter(),
        elapsed: t0.elapsed(),
        ..FrizzleOut::default()
    };
    let shape = built.shape;
    let deliver = |out: &FrizzleOut| {
        send(Update::Frizzle {
            generation: g,
            out: Arc::new(out.clone()),
        });
    };
    deliver(&out);
    if let Some(a) = r.aperture {
        if cancel.is_cancelled() {
            return Ok(());
        }
        status.set("aperture variance (one CG solve)");
        match model.aperture(&coeffs, &a.mask(shape)) {
            Ok((f, v)) => out.aperture = Some((a, f, v)),
            Err(e) => return Err(e.to_string()),
        }
        deliver(&out);
    }
    if coeffs.iterations.saturating_mul(model.n_modes()) > EXTRA_SOLVES_BUDGET {
        out.skipped = Some(format!(
            "noise correlation, per-pixel σ and leave-one-out skipped: each needs solves like \
             this one ({} CG iterations on {} model pixels)",
            coeffs.iterations,
            model.n_modes()
        ));
        out.complete = true;
        out.elapsed = t0.elapsed();
        deliver(&out);
        return Ok(());
    }
    if cancel.is_cancelled() {
        return Ok(());
    }
    status.set("noise correlation (one CG solve)");
    let at = r.noise_at.unwrap_or((shape.0 / 2, shape.1 / 2));
    out.noise = Some((model.noise_correlation(at), at));
    deliver(&out);
    if cancel.is_cancelled() {
        return Ok(());
    }
    let exact = model.n_modes() + r.settings.exposures.len() <= 1200;
    status.set(if exact {
        "per-pixel variance (exact)"
    } else {
        "per-pixel variance (probe estimate)"
    });
    let var = if exact {
        model
            .variance_exact()
            .map(|v| (Arc::new(v), "exact".to_owned()))
    } else {
        Ok((
            Arc::new(model.variance_probe(PROBES)),
            format!("unbiased probe estimate, {PROBES} probes"),
        ))
    };
    match var {
        Ok(v) => out.var = Some(v),
        Err(e) => return Err(e.to_string()),
    }
    deliver(&out);
    if cancel.is_cancelled() {
        return Ok(());
    }
    status.set("leave-one-out scores (one solve per exposure)");
    match model.loo(&coeffs) {
        Ok(l) => out.loo = Some(l),
        Err(e) => return Err(e.to_string()),
    }
    out.complete = true;
    out.elapsed = t0.elapsed();
    deliver(&out);
    Ok(())
}

/// Exact correlation of drizzle's SCI between pixel `at` and its neighbours at lags 1..3 along
/// x and y, from the exact aperture variances by polarisation:
/// cov(p, q) = (var(p + q) - var(p) - var(q)) / 2.
fn drizzle_noise(
    exps: &[frizzview_core::image::Exposure2d],
    d: &DrizzleResult,
    at: (usize, usize),
) -> Result<[[f64; 3]; 2], String> {
    let shape = d.sci.dim();
    let var_of = |pts: &[(usize, usize)]| -> Result<f64, String> {
        let mut a = Array2::zeros(shape);
        for p in pts {
            a[*p] = 1.0;
        }
        drizzle::aperture(exps, d, &a)
            .map(|(_, v, _)| v)
            .map_err(|e| e.to_string())
    };
    let v0 = var_of(&[at])?;
    let mut out = [[f64::NAN; 3]; 2];
    for l in 1..=3 {
        for (row, q) in [(0, (at.0, at.1 + l)), (1, (at.0 + l, at.1))] {
            if q.0 < shape.0 && q.1 < shape.1 && d.wht[q] > 0.0 && d.wht[at] > 0.0 {
                let vq = var_of(&[q])?;
                let vs = var_of(&[at, q])?;
                out[row][l - 1] = 0.5 * (vs - v0 - vq) / (v0 * vq).sqrt();
            }
        }
    }
    Ok(out)
}

/// Drizzle's output grid (sent first) and products for `r`.
fn run_drizzle(r: &Request, status: &Status, send: &dyn Fn(Update)) -> Result<(), String> {
    let t0 = Instant::now();
    let g = r.generation;
    status.set("drizzle");
    let built = match inputs::build(&r.inputs, &r.settings) {
        Ok(b) => Arc::new(b),
        Err(e) => return Err(e),
    };
    send(Update::Grid {
        generation: g,
        built: Arc::clone(&built),
    });
    if built.exposures.iter().all(|e| !e.include) {
        return Err("no exposure is included".into());
    }
    // Sky matching (when sky offsets are fitted): each included exposure's median minus the
    // first included one's, subtracted, so drizzle shares the forward model's zero point.
    let mut exps = built.exposures.clone();
    let mut sky = vec![0.0; exps.len()];
    if r.settings.sky {
        let median = |x: &frizzview_core::image::Exposure2d| {
            let mut v: Vec<f64> = x
                .sci
                .iter()
                .zip(&x.ivar)
                .filter(|(s, w)| s.is_finite() && **w > 0.0)
                .map(|(s, _)| *s)
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let meds: Vec<Option<f64>> = exps.iter().map(median).collect();
        if let Some(m0) = exps
            .iter()
            .zip(&meds)
            .find(|(x, _)| x.include)
            .and_then(|x| *x.1)
        {
            for ((x, m), s) in exps.iter_mut().zip(&meds).zip(sky.iter_mut()) {
                if let Some(m) = m {
                    *s = m - m0;
                    x.sci.mapv_inplace(|v| v - *s);
                }
            }
        }
    }
    let d = match drizzle::drizzle(&exps, built.shape, r.settings.pixfrac) {
        Ok(d) => d,
        Err(e) => return Err(e.to_string()),
    };
    let coverage = super::coverage::analyse(&built.exposures, built.shape, r.settings.scale);
    let aperture = match r.aperture {
        Some(a) => match drizzle::aperture(&exps, &d, &a.mask(built.shape)) {
            Ok((f, v, naive)) => Some((a, f, v, naive)),
            Err(e) => return Err(e.to_string()),
        },
        None => None,
    };
    let at = r.noise_at.unwrap_or((built.shape.0 / 2, built.shape.1 / 2));
    let noise = drizzle_noise(&exps, &d, at).ok().map(|n| (n, at));
    send(Update::Drizzle {
        generation: g,
        out: Arc::new(DrizzleOut {
            result: Arc::new(d),
            aperture,
            noise,
            coverage: Arc::new(coverage),
            sky,
            elapsed: t0.elapsed(),
        }),
    });
    Ok(())
}

type Wake = Option<Arc<dyn Fn() + Send + Sync>>;

/// One job: runs `run` with `status` showing it and turns its error, or a panic, into an
/// [`Update::Error`] (`what` names the method; a panic is reported as "images"). Each update
/// `run` sends is delivered at once as all of the job's updates so far (the worker keeps only a
/// job's newest value; the window's handling of an update is the same when it sees it again),
/// and the last value holds them all.
fn job(
    r: &Request,
    what: &'static str,
    status: &Status,
    early: &dyn Fn(Vec<Update>),
    run: impl FnOnce(&dyn Fn(Update)) -> Result<(), String>,
) -> Vec<Update> {
    status.start();
    let sent = RefCell::new(Vec::new());
    let send = |u: Update| {
        sent.borrow_mut().push(u);
        early(sent.borrow().clone());
    };
    let failed = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&send))) {
        Ok(Ok(())) => None,
        Ok(Err(message)) => Some((what, message)),
        Err(p) => Some((
            "images",
            format!(
                "internal error (a bug; please report it): {}",
                panic_message(p.as_ref())
            ),
        )),
    };
    status.stop();
    let mut all = sent.into_inner();
    if let Some((what, message)) = failed {
        all.push(Update::Error {
            generation: r.generation,
            what,
            message,
        });
    }
    all
}

/// A worker on its own thread (`threaded`, when one can be started) or inline.
fn worker(threaded: bool, wake: &Wake) -> Worker<Vec<Update>> {
    if threaded {
        // No thread: compute inline rather than not at all.
        Worker::threaded(wake.clone()).unwrap_or_else(|_| Worker::inline())
    } else {
        Worker::inline()
    }
}

/// The two workers and the forward model's state kept between requests.
pub struct Workers {
    frizzle: Worker<Vec<Update>>,
    drizzle: Worker<Vec<Update>>,
    /// Left half-made by a panic (the mutex is then poisoned), it is started afresh.
    frizzle_state: Arc<Mutex<FrizzleState>>,
    pub frizzle_status: Arc<Status>,
    pub drizzle_status: Arc<Status>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").finish_non_exhaustive()
    }
}

impl Workers {
    /// Workers on threads (`threaded`) or inline; `wake` is called when a result is sent.
    #[must_use]
    pub fn new(threaded: bool, wake: Wake) -> Self {
        Self {
            frizzle: worker(threaded, &wake),
            drizzle: worker(threaded, &wake),
            frizzle_state: Arc::default(),
            frizzle_status: Arc::default(),
            drizzle_status: Arc::default(),
        }
    }

    /// Send a request to both workers (inline: compute it now); cancels their running jobs.
    pub fn submit(&mut self, r: &Request) {
        let (req, status) = (r.clone(), Arc::clone(&self.drizzle_status));
        self.drizzle.submit_staged(move |_, early| {
            job(&req, "drizzle", &status, early, |send| {
                run_drizzle(&req, &status, send)
            })
        });
        let (req, status) = (r.clone(), Arc::clone(&self.frizzle_status));
        let state = Arc::clone(&self.frizzle_state);
        self.frizzle.submit_staged(move |cancel, early| {
            job(&req, "forward model", &status, early, |send| {
                let mut st = state.lock().unwrap_or_else(|poisoned| {
                    let mut st = poisoned.into_inner();
                    *st = FrizzleState::default();
                    st
                });
                state.clear_poison();
                run_frizzle(&mut st, &req, cancel, &status, send)
            })
        });
    }

    /// Updates delivered since the last call: drizzle's, then the forward model's, each in the
    /// order sent.
    pub fn poll(&mut self) -> Vec<Update> {
        let mut out = Vec::new();
        for w in [&mut self.drizzle, &mut self.frizzle] {
            if let Some(done) = w.poll() {
                out.extend(done.value);
            }
        }
        out
    }

    /// Whether the forward-model worker is computing.
    #[must_use]
    pub fn frizzle_busy(&self) -> bool {
        self.frizzle_status.get().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aperture_weights_cancel_a_flat_background() {
        let a = Aperture {
            x: 20.3,
            y: 18.0,
            r: 4.0,
        };
        let m = a.mask((40, 44));
        let inside = m.iter().filter(|v| **v == 1.0).count();
        assert!(inside > 40 && inside < 60, "{inside}");
        assert!(
            m.sum().abs() < 1e-9,
            "a flat background sums to 0: {}",
            m.sum()
        );
        // A source inside only (2 x 2 pixels of 5): its flux.
        let src = Array2::from_shape_fn((40, 44), |(j, i)| {
            if (20..=21).contains(&i) && (18..=19).contains(&j) {
                5.0
            } else {
                0.0
            }
        });
        let f: f64 = (&m * &src).sum();
        assert!((f - 20.0).abs() < 1e-12, "{f}");
    }
}
