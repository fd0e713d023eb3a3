//! The runner: time the combination on reference-sized synthetic cases.
//!
//! Every case runs in a child process of the same binary (`--case NAME`) so that its peak
//! memory (VmHWM) is its own. Inputs are generated in-process (no files): case a is 10 visits x
//! 2000 px onto 2000 output pixels, case b 30 x 8000 onto 8500 (the sizes frizzle 0.2.8 was
//! measured at), spacing 1.3816e-5 in ln(lambda), for cases a and b, and an APOGEE-like set (3 chips x 4096 px per visit, apStar
//! output grid) for the live path. Each case prints one JSON object per line.

use std::io::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use frizzview_core::combine::local::{self, BasisCache, LocalOptions};
use frizzview_core::combine::{Cancel, prepare};
use frizzview_core::model::Dataset;
use frizzview_core::settings::{
    Basis, ForwardSettings, GridSpec, SelectionMode, Settings, ShiftSource, VisitSetting, Weighting,
};

use crate::args::{BenchArgs, CASES};
use crate::data::{apogee_dataset, lines_dataset};
use crate::plot;
use crate::point::ScalingPoint;

/// Run the bench: every case in a child process, then the scaling series.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.case {
        let line = run_case(name, args.quick, args.reps, kernel(&args.kernel)?)?;
        println!("{line}");
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find the frizzview-bench executable")?;
    let mut rows = Vec::new();
    for name in CASES {
        if args.no_cases || (args.quick && name == "dense_case_a") {
            continue;
        }
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--case", name, "--kernel", &args.kernel]);
        if args.quick {
            cmd.arg("--quick");
        }
        if let Some(r) = args.reps {
            cmd.args(["--reps", &r.to_string()]);
        }
        let out = cmd
            .output()
            .with_context(|| format!("cannot run the bench child for case {name}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("").trim().to_owned();
        let value: serde_json::Value = if out.status.success() && !line.is_empty() {
            serde_json::from_str(&line)
                .with_context(|| format!("case {name}: bad JSON line {line:?}"))?
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            serde_json::json!({"case": name, "error": err.trim()})
        };
        println!("{value}");
        std::io::stdout().flush().ok();
        rows.push(value);
    }
    // The ratio against the dense implementation, measured in this same run.
    let secs = |case: &str| {
        rows.iter()
            .find(|r| r["case"] == case)
            .and_then(|r| r["seconds"].as_f64())
    };
    if let (Some(d), Some(f)) = (secs("dense_case_a"), secs("case_a_fourier")) {
        println!(
            "{}",
            serde_json::json!({"case": "dense_case_a_ratio", "dense_over_fourier": d / f})
        );
    }
    let scaling = if args.no_scaling {
        Vec::new()
    } else {
        let s = scaling_series(args.quick, kernel(&args.kernel)?)?;
        for p in &s {
            println!("{}", p.json());
        }
        s
    };
    if let Some(path) = &args.plot {
        plot::write_png(path, &scaling)
            .with_context(|| format!("cannot write the plot {}", path.display()))?;
        if !args.json {
            eprintln!("wrote {}", path.display());
        }
    }
    if !args.json {
        eprintln!();
        eprintln!(
            "{:<18} {:>10} {:>9} {:>7}",
            "case", "seconds", "peak_mb", "threads"
        );
        for r in &rows {
            eprintln!(
                "{:<18} {:>10} {:>9} {:>7}",
                r["case"].as_str().unwrap_or("?"),
                r["seconds"]
                    .as_f64()
                    .map_or_else(|| "error".to_owned(), |s| format!("{s:.4}")),
                r["peak_mb"]
                    .as_f64()
                    .map_or_else(String::new, |m| format!("{m:.0}")),
                r["threads"]
                    .as_u64()
                    .map_or_else(String::new, |t| t.to_string()),
            );
        }
    }
    Ok(())
}

fn kernel(label: &str) -> anyhow::Result<local::Kernel> {
    if label == "default" {
        return Ok(local::DEFAULT_KERNEL);
    }
    local::Kernel::from_label(label).with_context(|| {
        format!("unknown kernel {label:?}; use lanczos3, bspline3, bspline5 ... bspline15 (odd), qbspline7, qbspline11, qbspline15")
    })
}

/// Peak resident memory of this process (VmHWM) in MB.
fn peak_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU time (seconds) used so far by all threads of this process, from
/// /proc/self/task/*/schedstat (nanoseconds on CPU): unlike wall time it barely depends on how
/// busy the machine is, so it is reported next to `seconds` on shared machines.
fn cpu_now() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ns = 0u64;
    for e in dir.flatten() {
        if let Ok(t) = std::fs::read_to_string(e.path().join("schedstat")) {
            ns += t
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 * 1e-9
}

/// The median of the finite values, NaN when there is none.
fn median(v: Vec<f64>) -> f64 {
    frizzview_core::numeric::median(v).unwrap_or(f64::NAN)
}

/// Run one case in this process and return its JSON line.
fn run_case(
    name: &str,
    quick: bool,
    reps: Option<usize>,
    kernel: local::Kernel,
) -> anyhow::Result<serde_json::Value> {
    let live_reps = reps.unwrap_or(if quick { 2 } else { 11 }).max(2);
    let reps = reps.unwrap_or(if quick { 1 } else { 5 }).max(1);
    let (seconds, extra) = match name {
        "case_a_fourier" | "case_a_local" | "dense_case_a" | "case_b_fourier" | "case_b_local" => {
            // Case sizes (visits, pixels per visit, output pixels: a 10 x 2000 -> 2000,
            // b 30 x 8000 -> 8500) and a seed.
            let case_a = name.starts_with("case_a") || name == "dense_case_a";
            let (v, px, m, seed) = match (case_a, quick) {
                (true, false) => (10, 2000, 2000, 1),
                (true, true) => (4, 400, 400, 1),
                (false, false) => (30, 8000, 8500, 2),
                (false, true) => (6, 800, 850, 2),
            };
            let data = lines_dataset(v, px, m, seed);
            let basis = if name.ends_with("_local") {
                Basis::Local
            } else {
                Basis::Fourier
            };
            if name == "dense_case_a" {
                time_dense(&data, 1)?
            } else {
                time_forward(&data, basis, reps, kernel)?
            }
        }
        "apogee30_live" | "apogee1000_live" => {
            let n = match (name, quick) {
                ("apogee30_live", false) => 30,
                ("apogee30_live", true) => 3,
                (_, false) => 1000,
                (_, true) => 10,
            };
            let chip = if quick { 512 } else { 4096 };
            let data = apogee_dataset(n, chip, 3);
            let t = time_live(&data, live_reps, kernel)?;
            (
                t.live_s,
                serde_json::json!({
                    "first_seconds": t.first_s,
                    "cpu_seconds": t.live_cpu_s,
                    "shift_seconds": t.shift_s,
                    "loo_seconds": t.loo_s,
                    "visits": n,
                    "pixels": n * 3 * chip,
                }),
            )
        }
        "standard_apogee30" => {
            let n = if quick { 3 } else { 30 };
            let t = time_standard(n, live_reps)?;
            (
                t.live_s,
                serde_json::json!({
                    "first_seconds": t.first_s,
                    "cpu_seconds": t.live_cpu_s,
                    "prepare_seconds": t.prepare_s,
                    "standard_seconds": t.standard_s,
                    "standard_cpu_seconds": t.standard_cpu_s,
                    "shift_seconds": t.shift_s,
                    "standard_cache_mb": t.cache_mb,
                    "visits": n,
                }),
            )
        }
        "engine_apogee30" => {
            let n = if quick { 3 } else { 30 };
            let t = time_engine(n, live_reps)?;
            (
                t.fit_s,
                serde_json::json!({
                    "complete_seconds": t.complete_s,
                    "visits": n,
                }),
            )
        }
        other => anyhow::bail!("unknown bench case {other:?}; known: {}", CASES.join(", ")),
    };
    let mut v = serde_json::json!({
        "case": name,
        "seconds": seconds,
        "peak_mb": peak_mb(),
        "threads": rayon::current_num_threads(),
        "quick": quick,
        "kernel": kernel.label(),
    });
    if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    Ok(v)
}

fn forward_settings(basis: Basis) -> Settings {
    Settings {
        grid: GridSpec::FromInput,
        shift: ShiftSource::True,
        weighting: Weighting::InverseVariance,
        bad_bits: 0,
        selection: SelectionMode::Ignore,
        forward: Some(ForwardSettings {
            basis,
            ..ForwardSettings::default()
        }),
        standard: None,
        ..Settings::default()
    }
}

/// Median wall and CPU time of `reps` runs of `run`, as (seconds, {reps, cpu_seconds,
/// first_seconds}). With `warm_up`, one untimed run goes first (FFT plans, first-touch pages) and
/// `first_seconds` is that cold call's time.
fn time_reps<T>(
    reps: usize,
    warm_up: bool,
    mut run: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(f64, serde_json::Value)> {
    let mut first = f64::NAN;
    if warm_up {
        let t = Instant::now();
        std::hint::black_box(run()?);
        first = t.elapsed().as_secs_f64();
    }
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..reps {
        let c = cpu_now();
        let t = Instant::now();
        let r = run()?;
        times.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_now() - c);
        std::hint::black_box(r);
    }
    let seconds = median(times);
    Ok((
        seconds,
        serde_json::json!({
            "reps": reps,
            "cpu_seconds": median(cpu),
            // Without a warm-up every timed run was cold.
            "first_seconds": if warm_up { first } else { seconds },
        }),
    ))
}

/// Median time of the forward model alone (prepare excluded) over `reps` runs.
fn time_forward(
    data: &Dataset,
    basis: Basis,
    reps: usize,
    kernel: local::Kernel,
) -> anyhow::Result<(f64, serde_json::Value)> {
    let settings = forward_settings(basis);
    let prep = prepare(data, &settings)?;
    let fs = settings.forward.clone().unwrap_or_default();
    time_reps(reps, true, || {
        let mut warnings = Vec::new();
        let r = if basis == Basis::Local {
            let opts = LocalOptions {
                kernel,
                ..LocalOptions::default()
            };
            let cache = BasisCache::new();
            local::fit_with(
                &prep,
                settings.band_lags,
                &Cancel::new(),
                &mut warnings,
                &cache,
                &opts,
            )?
        } else {
            frizzview_core::combine::fit_forward_plain(
                &prep,
                &fs,
                settings.band_lags,
                &Cancel::new(),
                &mut warnings,
            )?
        };
        Ok(r)
    })
}

/// Time the in-crate dense implementation (the test oracle).
fn time_dense(data: &Dataset, reps: usize) -> anyhow::Result<(f64, serde_json::Value)> {
    let settings = forward_settings(Basis::Fourier);
    let prep = prepare(data, &settings)?;
    let fs = settings.forward.clone().unwrap_or_default();
    // Minutes per run: no warm-up, and the cold run is what the ratio compares.
    time_reps(reps, false, || {
        Ok(frizzview_core::combine::dense::fit(&prep, &fs)?)
    })
}

/// First and live (median of later recomputes) times of the local basis with a cache.
struct Live {
    first_s: f64,
    live_s: f64,
    live_cpu_s: f64,
    /// Median recompute after one visit's shift changed (a dragged shift slider).
    shift_s: f64,
    /// Median time of the leave-one-visit-out scores after a weight change (the window
    /// computes them after every fit: `combine::local::leave_one_out`).
    loo_s: f64,
}

/// A recompute = prepare (one visit's weight changed to a value not seen before, so its
/// normal-equation sums are rebuilt; the other visits' are re-used) + local fit with the shared
/// cache. Then the same with one visit's shift changed instead (its kernel rows are rebuilt too).
fn time_live(data: &Dataset, reps: usize, kernel: local::Kernel) -> anyhow::Result<Live> {
    let mut settings = forward_settings(Basis::Local);
    settings.grid = GridSpec::Apogee;
    settings.visits = vec![VisitSetting::default(); data.visits.len()];
    let cache = BasisCache::new();
    let opts = LocalOptions {
        kernel,
        condition: false,
        ..LocalOptions::default()
    };
    let reps = reps.max(2);
    let recompute = |settings: &Settings| -> anyhow::Result<(f64, f64, f64)> {
        let c = cpu_now();
        let t = Instant::now();
        let prep = prepare(data, settings)?;
        let mut warnings = Vec::new();
        let r = local::fit_with(
            &prep,
            settings.band_lags,
            &Cancel::new(),
            &mut warnings,
            &cache,
            &opts,
        )?;
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_now() - c;
        std::hint::black_box(r);
        let t = Instant::now();
        let loo = local::leave_one_out(&prep, &cache, &opts, &Cancel::new())?;
        let loo_s = t.elapsed().as_secs_f64();
        std::hint::black_box(loo);
        Ok((wall, cpu, loo_s))
    };
    let (weight_runs, shift_runs) = drag_visit_0(data, &mut settings, reps, recompute)?;
    let loo_times: Vec<f64> = weight_runs.iter().skip(1).map(|r| r.2).collect();
    let (times, cpu): (Vec<f64>, Vec<f64>) = weight_runs.into_iter().map(|r| (r.0, r.1)).unzip();
    let shift_times = shift_runs.iter().map(|r| r.0).collect();
    let first_s = times[0];
    Ok(Live {
        first_s,
        live_s: median(times[1..].to_vec()),
        live_cpu_s: median(cpu[1..].to_vec()),
        shift_s: median(shift_times),
        loo_s: median(loo_times),
    })
}

/// The live workload: `reps` recomputes, each after visit 0's weight changed to a value not
/// seen before (as while a weight slider is dragged), then `reps` after its shift changed (a
/// dragged shift slider). Returns what `recompute` measured for each, in that order.
fn drag_visit_0<T>(
    data: &Dataset,
    settings: &mut Settings,
    reps: usize,
    mut recompute: impl FnMut(&Settings) -> anyhow::Result<T>,
) -> anyhow::Result<(Vec<T>, Vec<T>)> {
    let mut weight_runs = Vec::with_capacity(reps);
    for rep in 0..reps {
        settings.visits[0].weight = 1.0 - 0.5 * rep as f64 / reps as f64;
        weight_runs.push(recompute(settings)?);
    }
    let v0 = settings.shift.velocity(&data.visits[0].meta).unwrap_or(0.0);
    let mut shift_runs = Vec::with_capacity(reps);
    for rep in 0..reps {
        settings.visits[0].shift_kms = Some(v0 + 0.05 * (rep + 1) as f64);
        shift_runs.push(recompute(settings)?);
    }
    Ok((weight_runs, shift_runs))
}

/// Times of standard practice alone (see [`time_standard`]), seconds.
struct StandardTimes {
    /// The first call (every piece interpolated).
    first_s: f64,
    /// Median recompute after a weight change: wall, CPU, and its `prepare` and standard parts.
    live_s: f64,
    live_cpu_s: f64,
    prepare_s: f64,
    standard_s: f64,
    standard_cpu_s: f64,
    /// Median recompute after one visit's shift changed (its pieces are interpolated again).
    shift_s: f64,
    /// Size of the standard-practice cache afterwards (MB).
    cache_mb: f64,
}

/// Standard practice alone (the window's combination with the forward model off) on the
/// synthetic APOGEE star with `n_visits` visits: the first call, then recomputes that change
/// only visit 0's weight, then only its shift (medians).
fn time_standard(n_visits: usize, reps: usize) -> anyhow::Result<StandardTimes> {
    let data =
        frizzview_core::synth::apogee::generate(&frizzview_core::synth::apogee::ApogeeParams {
            n_visits,
            ..frizzview_core::synth::apogee::ApogeeParams::default()
        })
        .map_err(|e| anyhow::anyhow!("cannot generate the synthetic APOGEE star: {e}"))?;
    let mut settings = Settings {
        grid: GridSpec::Apogee,
        forward: None,
        standard: Some(frizzview_core::settings::StandardSettings::default()),
        ..Settings::default()
    };
    settings.visits = vec![VisitSetting::default(); data.visits.len()];
    let ss = settings.standard.clone().unwrap_or_default();
    let reps = reps.max(2);
    let data = &data;
    // The cache the window's engine would own across recomputes.
    let cache = frizzview_core::combine::standard::StandardCache::new();
    let cache = &cache;
    // (wall, cpu, prepare wall, prepare cpu) of one recompute.
    let recompute = |settings: &Settings| -> anyhow::Result<[f64; 4]> {
        let c = cpu_now();
        let t = Instant::now();
        let prep = prepare(data, settings)?;
        let (t_prep, c_prep) = (t.elapsed().as_secs_f64(), cpu_now() - c);
        let r = frizzview_core::combine::standard::combine_standard_with_cache(
            &prep,
            &ss,
            settings.band_lags,
            &Cancel::new(),
            cache,
        )?;
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_now() - c;
        std::hint::black_box((r, prep));
        Ok([wall, cpu, t_prep, c_prep])
    };
    // On a thread of its own, as in the window (the engine's worker thread).
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let (runs, shift_runs) = drag_visit_0(data, &mut settings, reps, recompute)?;
                let shift = shift_runs.iter().map(|r| r[0]).collect();
                let med = |f: &dyn Fn(&[f64; 4]) -> f64| median(runs[1..].iter().map(f).collect());
                Ok(StandardTimes {
                    first_s: runs[0][0],
                    live_s: med(&|r| r[0]),
                    live_cpu_s: med(&|r| r[1]),
                    prepare_s: med(&|r| r[2]),
                    standard_s: med(&|r| r[0] - r[2]),
                    standard_cpu_s: med(&|r| r[1] - r[3]),
                    shift_s: median(shift),
                    cache_mb: cache.bytes() as f64 / 1e6,
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the standard-practice timing thread panicked"))?
    })
}

/// Live-path timings against visits (1..1000) and pixels per visit.
fn scaling_series(quick: bool, kernel: local::Kernel) -> anyhow::Result<Vec<ScalingPoint>> {
    let (visits, chips, reps): (&[usize], &[usize], usize) = if quick {
        (&[1, 3, 10], &[256, 512], 2)
    } else {
        (&[1, 3, 10, 30, 100, 300, 1000], &[512, 1024, 2048, 4096], 5)
    };
    let chip_full = if quick { 512 } else { 4096 };
    let n_fixed = if quick { 3 } else { 30 };
    // (series, visits, pixels per chip, seed): visits vary at full chips, then chip size varies.
    let points = visits
        .iter()
        .map(|&n| ("visits", n, chip_full, 7))
        .chain(chips.iter().map(|&chip| ("pixels", n_fixed, chip, 8)));
    let mut out = Vec::new();
    for (series, n, chip, seed) in points {
        let data = apogee_dataset(n, chip, seed);
        let t = time_live(&data, reps, kernel)?;
        out.push(ScalingPoint {
            series,
            visits: n,
            pixels_per_visit: 3 * chip,
            first_s: t.first_s,
            live_s: t.live_s,
            live_cpu_s: t.live_cpu_s,
        });
    }
    Ok(out)
}

/// Latencies of the window's engine (medians, seconds).
struct EngineTimes {
    /// From a request to its first delivery: the fit of both methods (what the window draws).
    fit_s: f64,
    /// From a request to its complete result (with the leave-one-out scores).
    complete_s: f64,
}

/// The window's engine (a threaded [`frizzview_core::engine::CombineEngine`], the window's defaults for
/// APOGEE data: both methods, the local basis) on the synthetic APOGEE star: after a first request, `reps`
/// requests that each change visit 0's weight, each waited for to the end.
fn time_engine(n_visits: usize, reps: usize) -> anyhow::Result<EngineTimes> {
    let data = std::sync::Arc::new(
        frizzview_core::synth::apogee::generate(&frizzview_core::synth::apogee::ApogeeParams {
            n_visits,
            ..frizzview_core::synth::apogee::ApogeeParams::default()
        })
        .map_err(|e| anyhow::anyhow!("cannot generate the synthetic APOGEE star: {e}"))?,
    );
    // The window's settings for this star (the local basis: the live path).
    let mut settings = frizzview_core::settings::live_defaults(&data);
    settings.visits = vec![VisitSetting::default(); data.visits.len()];
    let mut engine = frizzview_core::engine::CombineEngine::threaded(None)?;
    let reps = reps.max(2);
    let (mut fit, mut complete) = (Vec::new(), Vec::new());
    for rep in 0..=reps {
        settings.visits[0].weight = 1.0 - 0.5 * rep as f64 / reps as f64;
        let t = Instant::now();
        let generation = engine.submit(std::sync::Arc::clone(&data), 1, settings.clone());
        let mut first = None;
        loop {
            if let Some(done) = engine.poll()
                && done.generation == generation
            {
                if let Err(e) = &done.value.result {
                    anyhow::bail!("the engine failed: {e}");
                }
                first.get_or_insert(t.elapsed().as_secs_f64());
                if done.last {
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        // The first request fills the caches; it is not a live recompute.
        if rep > 0 {
            fit.push(first.unwrap_or(f64::NAN));
            complete.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(EngineTimes {
        fit_s: median(fit),
        complete_s: median(complete),
    })
}
