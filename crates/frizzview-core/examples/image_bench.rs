//! Image-mode engine benchmark: `cargo run --release -p frizzview-core --example image_bench`.
//!
//! 1. A 128 x 128 output from 9 exposures: prepare, solve, then one exposure's weight changed and
//!    the output recomputed (the live path); drizzle on the same inputs.
//! 2. A 512 x 512 output from 16 exposures: prepare + solve; drizzle on the same inputs; peak RSS.

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
        let t = Instant::now();
        let mut m = Frizzle2d::new(&d.exposures, d.out_shape, &st)?;
        let tp = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let c = m.solve()?;
        let ts = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let img = m.image(&c);
        let ti = t.elapsed().as_secs_f64();
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
        println!(
            "{label} exposures ({:?} output, {} modes): prepare (one 2-D NUFFT per exposure) {:.3} s, \
             CG solve {:.3} s ({} iterations), image {:.3} s; total {:.3} s; RMS vs truth {resid:.4} (noise 0.01)",
            d.out_shape,
            m.n_modes(),
            tp,
            ts,
            c.iterations,
            ti,
            tp + ts + ti
        );
        // The live path: one exposure's weight changes, the output is recomputed (warm start).
        for (w, inc) in [(0.5, true), (1.0, false), (1.0, true)] {
            let t = Instant::now();
            m.set_weight(3, w, inc)?;
            let c2 = m.solve()?;
            let _ = m.image(&c2);
            println!(
                "  exposure 3 -> weight {w}, include {inc}: recomputed in {:.1} ms ({} CG iterations)",
                t.elapsed().as_secs_f64() * 1e3,
                c2.iterations
            );
        }
        for pf in [1.0, 0.6] {
            let t = Instant::now();
            let _ = drizzle::drizzle(&d.exposures, d.out_shape, pf)?;
            println!(
                "  drizzle (square, pixfrac {pf}) on the same inputs: {:.3} s",
                t.elapsed().as_secs_f64()
            );
        }
        println!("  peak RSS so far: {:.0} MB", peak_rss_mb());
    }
    Ok(())
}
