//! Image-mode engine benchmark: `cargo run --release -p frizzview-core --example image_bench`.
//!
//! 1. A 128 x 128 output from 9 exposures: prepare, solve, then one exposure's weight changed and
//!    the output recomputed (the live path); drizzle on the same inputs.
//! 2. A 512 x 512 output from 16 exposures: prepare + solve + image (the SCI); then, separately,
//!    the per-exposure residuals, one aperture variance and the per-probe cost of the variance
//!    map; drizzle on the same inputs; peak RSS.
//!
//! Every time is printed with the process CPU time and the load average (the machine is shared),
//! and as a ratio to drizzle's time measured in the same run.

use std::time::Instant;

use frizzview_core::image::drizzle;
use frizzview_core::image::frizzle2d::{Frizzle2d, FrizzleSettings, VarianceMode};
use frizzview_core::image::synth::{self, SynthSpec};

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("VmHWM")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Process CPU time (user + system) in seconds, from /proc/self/stat (10 ms ticks).
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| {
            let rest = t.rsplit(')').next()?.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u = f.get(11)?.parse::<f64>().ok()?;
            let s = f.get(12)?.parse::<f64>().ok()?;
            Some((u + s) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (t, c) = (Instant::now(), cpu_s());
    let v = f();
    (v, t.elapsed().as_secs_f64(), cpu_s() - c)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "CPU: {} ({} threads)",
        cpu_name(),
        rayon::current_num_threads()
    );
    let st = FrizzleSettings {
        robust_clip: None,
        variance: VarianceMode::None,
        loo: false,
        coverage: false,
        tol: 1e-8,
        ..FrizzleSettings::default()
    };
    for (n, k, label) in [
        (69usize, 9usize, "128 x 128 from 9"),
        (261, 16, "512 x 512 from 16"),
    ] {
        let d = synth::generate(&SynthSpec {
            n,
            n_exposures: k,
            n_stars: 40,
            seed: 2,
            ..SynthSpec::default()
        });
        // Drizzle first and last, the reference time of this run.
        let mut dz = Vec::new();
        for pf in [1.0, 0.6] {
            let (r, w, c) = timed(|| drizzle::drizzle(&d.exposures, d.out_shape, pf));
            r?;
            println!(
                "  drizzle (square, pixfrac {pf}) on the same inputs: {w:.3} s wall, {c:.2} s CPU (load {})",
                load()
            );
            dz.push(w);
        }
        let (m, tp, cp) = timed(|| Frizzle2d::new(&d.exposures, d.out_shape, &st));
        let mut m = m?;
        let (c, ts, cs) = timed(|| m.solve());
        let c = c?;
        let (img, ti, ci) = timed(|| m.image(&c));
        let resid = {
            let (ny, nx) = img.dim();
            let mut s2 = 0.0;
            let mut cnt = 0.0;
            for y in 4..ny - 4 {
                for x in 4..nx - 4 {
                    s2 += (img[[y, x]] - d.truth[[y, x]]).powi(2);
                    cnt += 1.0;
                }
            }
            (s2 / cnt).sqrt()
        };
        let tot = tp + ts + ti;
        println!(
            "{label} exposures ({:?} output, {} modes): prepare (NUFFTs) {tp:.3} s ({cp:.2} s CPU), \
             CG solve {ts:.3} s ({cs:.2} s CPU, {} iterations), image {ti:.3} s; SCI total {tot:.3} s \
             wall, {:.2} s CPU (load {}); RMS vs truth {resid:.4} (noise 0.01)",
            d.out_shape,
            m.n_modes(),
            c.iterations,
            cp + cs + ci,
            load()
        );
        let (dz1, dz2) = (dz[0], dz[1]);
        println!(
            "  SCI total / drizzle: {:.2} x pixfrac 1, {:.2} x pixfrac 0.6",
            tot / dz1,
            tot / dz2
        );
        // The live path: one exposure's weight changes, the output is recomputed (warm start).
        for (w, inc) in [(0.5, true), (1.0, false), (1.0, true)] {
            let (r, tw, cw) = timed(|| -> Result<usize, frizzview_core::image::ImageError> {
                m.set_weight(3, w, inc)?;
                let c2 = m.solve()?;
                let _ = m.image(&c2);
                Ok(c2.iterations)
            });
            println!(
                "  exposure 3 -> weight {w}, include {inc}: recomputed in {:.1} ms wall, {:.0} ms CPU \
                 ({} CG iterations; {:.2} x drizzle pixfrac 1; load {})",
                tw * 1e3,
                cw * 1e3,
                r?,
                tw / dz1,
                load()
            );
        }
        if n > 100 {
            let (_, tr, cr) = timed(|| m.residuals(&c));
            let mut a = ndarray::Array2::zeros(d.out_shape);
            a.slice_mut(ndarray::s![200..212, 200..212]).fill(1.0);
            let (ap, ta, ca) = timed(|| m.aperture(&c, &a));
            let (f, v) = ap?;
            let np = 2;
            let (_, tv, cv) = timed(|| m.variance_probe(np));
            println!(
                "  beyond the SCI: residual images {tr:.3} s ({cr:.2} s CPU); one 12 x 12 aperture \
                 (flux {f:.3} +- {:.4}) {ta:.3} s ({ca:.2} s CPU); variance map {:.3} s per probe \
                 ({:.2} s CPU); load {}",
                v.sqrt(),
                tv / np as f64,
                cv / np as f64,
                load()
            );
        }
        println!("  peak RSS so far: {:.0} MB", peak_rss_mb());
    }
    Ok(())
}
