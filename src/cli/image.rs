//! `frizzview image combine IMAGES... -o out.fits`: the image mode headless, through the core's
//! one pipeline ([`frizzview_core::image::pipeline`]) and its FITS export.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use frizzview_core::image::export;
use frizzview_core::image::frizzle2d::VarianceMode;
use frizzview_core::image::pipeline::{
    self, Aperture, ApertureCenter, ExposureChoice, Geometry, PipelineOptions,
};
use frizzview_core::image::read::{self, DqPolicy};
use frizzview_core::image::wcs::ShiftRotation;
use frizzview_core::model::pixel_policy::BitAction;

/// `frizzview image ...`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// Image-mode subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Combine dithered exposures by the 2-D forward model and by drizzle; write both to FITS.
    Combine(Box<ImageCombineArgs>),
}

/// `frizzview image combine`.
#[derive(Debug, Args)]
pub struct ImageCombineArgs {
    /// Image files: FITS (NOIRLab ooi with oow/ood beside it, SCI/ERR/DQ extensions, plain
    /// images or cubes), .npy, TIFF stacks.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Output FITS file (SCI, VAR, COVERAGE, DQ, DRZ_SCI, DRZ_WHT, DRZ_VAR, DRZ_CTX, EXPOSURES).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Output pixel scale, arcsec per pixel (default: the inputs' own).
    #[arg(long, value_name = "ARCSEC")]
    pub scale: Option<f64>,
    /// Output size NXxNY pixels (default: covering every input).
    #[arg(long, value_name = "NXxNY")]
    pub size: Option<String>,
    /// Output tangent point RA,DEC in degrees (default: the inputs' centre).
    #[arg(long, value_name = "RA,DEC", allow_hyphen_values = true)]
    pub center: Option<String>,
    /// Drizzle's pixfrac (0 < p <= 1).
    #[arg(long, default_value_t = 1.0)]
    pub pixfrac: f64,
    /// Do not fit per-exposure sky offsets.
    #[arg(long)]
    pub no_sky: bool,
    /// Ridge (inverse variance pulling each model pixel to 0).
    #[arg(long, default_value_t = 0.0)]
    pub ridge: f64,
    /// Model pixels added beyond the output grid (against periodic wrap-around at the edges).
    #[arg(long, default_value_t = 0)]
    pub pad: usize,
    /// Leave an exposure out (its name, a unique part of it, or its 0-based index); repeatable.
    #[arg(long, value_name = "NAME")]
    pub exclude: Vec<String>,
    /// Per-exposure weight, NAME=W; repeatable.
    #[arg(long, value_name = "NAME=W")]
    pub weight: Vec<String>,
    /// Per-exposure photometric scale, NAME=F: the data are multiplied by F (e.g. to
    /// nanomaggies, or to counts per second = 1/EXPTIME); repeatable.
    #[arg(long, value_name = "NAME=F")]
    pub flux_scale: Vec<String>,
    /// DQ policy: `all` (every nonzero code or set bit is bad; the default), `none` (DQ
    /// ignored), or CODE=ACTION (ACTION bad, ignore or inflate:F; codes for NOIRLab ood files,
    /// bit numbers otherwise); repeatable, e.g. `--dq none --dq 3=bad --dq 4=bad`.
    #[arg(long, value_name = "POLICY")]
    pub dq: Vec<String>,
    /// Shift-rotation geometry for frames without a WCS: a CSV with a header naming columns
    /// dx.. and dy.. (input pixels) and optionally theta/rot (degrees), one row per exposure in
    /// order (e.g. the bridge sequence's shifts_fig1.csv).
    #[arg(long, value_name = "CSV")]
    pub shifts: Option<PathBuf>,
    /// With --shifts: output pixels per input pixel.
    #[arg(long, default_value_t = 1.0)]
    pub zoom: f64,
    /// Aperture photometry: RA,DEC,R_ARCSEC (sky) or px:X,Y,R (output pixels, 0-based).
    #[arg(long, value_name = "RA,DEC,R", allow_hyphen_values = true)]
    pub aperture: Option<String>,
    /// Background annulus for --aperture, RIN,ROUT (same units as R); `none` for no background
    /// (default: 1.5 R to 2.5 R).
    #[arg(long, value_name = "RIN,ROUT")]
    pub annulus: Option<String>,
    /// Variance probes beyond the exact size (0: no variance map).
    #[arg(long, default_value_t = 32)]
    pub probes: usize,
    /// Skip the leave-one-out scores (one solve per exposure).
    #[arg(long)]
    pub no_loo: bool,
    /// CG iteration cap.
    #[arg(long, default_value_t = 3000)]
    pub max_iter: usize,
}

/// Run `frizzview image ...`.
pub fn run(a: &ImageArgs) -> anyhow::Result<()> {
    match &a.command {
        ImageCommand::Combine(c) => combine(c),
    }
}

fn parse_pair(s: &str, what: &str) -> anyhow::Result<(f64, f64)> {
    let v: Vec<&str> = s.split(',').map(str::trim).collect();
    if v.len() != 2 {
        bail!("{what} {s}: expected two numbers separated by a comma");
    }
    let n = |t: &str| -> anyhow::Result<f64> {
        let x: f64 = t
            .parse()
            .with_context(|| format!("{what} {s}: '{t}' is not a number"))?;
        if !x.is_finite() {
            bail!("{what} {s}: '{t}' is not finite");
        }
        Ok(x)
    };
    Ok((n(v[0])?, n(v[1])?))
}

fn parse_size(s: &str) -> anyhow::Result<(usize, usize)> {
    let t = s.to_ascii_lowercase();
    let (a, b) = t
        .split_once('x')
        .with_context(|| format!("--size {s}: expected NXxNY, e.g. 128x96"))?;
    let p = |u: &str| -> anyhow::Result<usize> {
        u.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("--size {s}: '{u}' is not a positive integer"))
    };
    Ok((p(a)?, p(b)?))
}

fn parse_dq(specs: &[String]) -> anyhow::Result<DqPolicy> {
    let mut p = DqPolicy::default();
    for s in specs {
        for part in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "all" | "bad" => p.default = BitAction::Bad,
                "none" | "ignore" => p.default = BitAction::Ignore,
                _ => {
                    let (k, v) = part.split_once('=').with_context(|| {
                        format!("--dq {part}: expected all, none or CODE=ACTION")
                    })?;
                    let k: u32 = k
                        .trim()
                        .parse()
                        .with_context(|| format!("--dq {part}: '{k}' is not a code or bit"))?;
                    let act = BitAction::parse(v).map_err(|e| anyhow::anyhow!("--dq {e}"))?;
                    p = p.with(k, act);
                }
            }
        }
    }
    Ok(p)
}

/// Reads a shifts CSV: header with dx*/dy* (first such columns) and optional theta/rot (deg).
fn read_shifts(path: &Path, zoom: f64) -> anyhow::Result<Vec<ShiftRotation>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--shifts {}: cannot read", path.display()))?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let head: Vec<String> = lines
        .next()
        .with_context(|| format!("--shifts {}: empty file", path.display()))?
        .split([',', '\t', ' '])
        .filter(|t| !t.is_empty())
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let col = |p: &str| head.iter().position(|h| h.starts_with(p));
    let (ix, iy) = match (col("dx"), col("dy")) {
        (Some(x), Some(y)) => (x, y),
        _ => bail!(
            "--shifts {}: the header needs columns starting with dx and dy (got {head:?})",
            path.display()
        ),
    };
    let ir = col("theta").or_else(|| col("rot"));
    let mut out = Vec::new();
    for (n, l) in lines.enumerate() {
        let f: Vec<&str> = l
            .split([',', '\t', ' '])
            .filter(|t| !t.is_empty())
            .collect();
        let get = |i: usize| -> anyhow::Result<f64> {
            let t = f.get(i).with_context(|| {
                format!(
                    "--shifts {}: row {} has no column {}",
                    path.display(),
                    n + 1,
                    i + 1
                )
            })?;
            let v: f64 = t.trim().parse().with_context(|| {
                format!(
                    "--shifts {}: row {}: '{t}' is not a number",
                    path.display(),
                    n + 1
                )
            })?;
            if !v.is_finite() {
                bail!(
                    "--shifts {}: row {}: '{t}' is not finite",
                    path.display(),
                    n + 1
                );
            }
            Ok(v)
        };
        out.push(ShiftRotation {
            dx: get(ix)?,
            dy: get(iy)?,
            theta: match ir {
                Some(i) => get(i)?.to_radians(),
                None => 0.0,
            },
            scale: zoom,
            center: [0.0, 0.0],
        });
    }
    if out.is_empty() {
        bail!("--shifts {}: no rows", path.display());
    }
    Ok(out)
}

fn resolve(names: &[String], s: &str, what: &str) -> anyhow::Result<usize> {
    if let Ok(i) = s.parse::<usize>()
        && i < names.len()
    {
        return Ok(i);
    }
    pipeline::index_of(names.iter().map(String::as_str), s).with_context(|| {
        format!(
            "{what} {s}: no single exposure matches (exposures: {})",
            names.join(", ")
        )
    })
}

fn parse_aperture(s: &str, annulus: Option<&str>) -> anyhow::Result<Aperture> {
    let (pix, body) = match s.strip_prefix("px:") {
        Some(b) => (true, b),
        None => (false, s),
    };
    let v: Vec<f64> = body
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .with_context(|| format!("--aperture {s}: '{t}' is not a number"))
        })
        .collect::<anyhow::Result<_>>()?;
    if v.len() != 3 {
        bail!("--aperture {s}: expected RA,DEC,R_ARCSEC or px:X,Y,R");
    }
    if !(v[2] > 0.0) {
        bail!("--aperture {s}: the radius must be > 0");
    }
    let annulus = match annulus {
        Some(t) if t.eq_ignore_ascii_case("none") => None,
        Some(t) => Some(parse_pair(t, "--annulus")?),
        None => Some((1.5 * v[2], 2.5 * v[2])),
    };
    Ok(Aperture {
        center: if pix {
            ApertureCenter::Pixel(v[0], v[1])
        } else {
            ApertureCenter::Sky(v[0], v[1])
        },
        radius: v[2],
        annulus,
    })
}

fn fmt_corr(c: &[[f64; 3]; 2]) -> String {
    format!("{:+.3} (x), {:+.3} (y)", c[0][0], c[1][0])
}

fn combine(a: &ImageCombineArgs) -> anyhow::Result<()> {
    let mut opts = PipelineOptions::default();
    opts.output.scale_arcsec = a.scale;
    opts.output.size = a.size.as_deref().map(parse_size).transpose()?;
    opts.output.center = a
        .center
        .as_deref()
        .map(|s| parse_pair(s, "--center"))
        .transpose()?;
    if !(a.pixfrac > 0.0 && a.pixfrac <= 1.0) {
        bail!("--pixfrac {}: must be in (0, 1]", a.pixfrac);
    }
    opts.pixfrac = a.pixfrac;
    if !(a.ridge >= 0.0 && a.ridge.is_finite()) {
        bail!("--ridge {}: must be a finite number >= 0", a.ridge);
    }
    if !(a.zoom > 0.0 && a.zoom.is_finite()) {
        bail!("--zoom {}: must be > 0", a.zoom);
    }
    opts.frizzle.ridge = a.ridge;
    opts.frizzle.sky = !a.no_sky;
    opts.frizzle.pad = a.pad;
    opts.frizzle.loo = !a.no_loo;
    opts.frizzle.max_iter = a.max_iter.max(1);
    opts.frizzle.variance = if a.probes == 0 {
        VarianceMode::None
    } else {
        VarianceMode::Auto { probes: a.probes }
    };
    opts.dq = parse_dq(&a.dq)?;
    let ap = a
        .aperture
        .as_deref()
        .map(|s| parse_aperture(s, a.annulus.as_deref()))
        .transpose()?;
    let inputs = read::load_images(&a.images)?;
    if inputs.is_empty() {
        bail!("no exposures in the images given");
    }
    if let Some(p) = &a.shifts {
        if a.scale.is_some() || a.center.is_some() {
            bail!("--shifts: --scale and --center need a WCS; use --zoom and --size");
        }
        opts.geometry = Geometry::ShiftRotation(read_shifts(p, a.zoom)?);
    }
    let names: Vec<String> = inputs.iter().map(|x| x.name.clone()).collect();
    let mut choices = vec![ExposureChoice::default(); inputs.len()];
    for s in &a.exclude {
        choices[resolve(&names, s, "--exclude")?].include = false;
    }
    for s in &a.weight {
        let (n, w) = s
            .rsplit_once('=')
            .with_context(|| format!("--weight {s}: expected NAME=W"))?;
        let w: f64 = w
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite() && *x >= 0.0)
            .with_context(|| format!("--weight {s}: '{w}' is not a number >= 0"))?;
        choices[resolve(&names, n, "--weight")?].weight = w;
    }
    for s in &a.flux_scale {
        let (n, w) = s
            .rsplit_once('=')
            .with_context(|| format!("--flux-scale {s}: expected NAME=F"))?;
        let w: f64 = w
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite() && *x > 0.0)
            .with_context(|| format!("--flux-scale {s}: '{w}' is not a number > 0"))?;
        choices[resolve(&names, n, "--flux-scale")?].flux_scale = w;
    }
    if choices.iter().all(|c| !c.include || c.weight == 0.0) {
        bail!("every exposure is excluded or has weight 0");
    }
    opts.choices = choices;
    let t0 = std::time::Instant::now();
    let prep = pipeline::prepare(&inputs, &opts)?;
    let prod = pipeline::solve(&prep, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    export::write_fits(&a.output, &prep, &prod, &a.images)?;
    let (ny, nx) = prep.shape;
    println!(
        "{} exposures -> {nx} x {ny} output{} in {secs:.2} s; wrote {}",
        prep.exposures.len(),
        prep.scale_arcsec()
            .map_or_else(String::new, |s| format!(" at {s:.4} arcsec/px")),
        a.output.display()
    );
    println!(
        "{:<40} {:>7} {:>7} {:>12} {:>9} {:>9}",
        "exposure", "include", "weight", "sky offset", "chi2/nu", "LOO"
    );
    for r in &prod.table {
        println!(
            "{:<40} {:>7} {:>7.3} {:>12.4} {:>9.3} {:>9.3}",
            r.name,
            if r.include { "yes" } else { "no" },
            r.weight,
            r.sky,
            r.chi2nu,
            r.loo_chi2nu
        );
    }
    if let Some(f) = &prod.frizzle {
        println!(
            "frizzle: {} CG iterations, {} samples clipped, variance {}, noise correlation lag 1: {}",
            f.iterations,
            f.clipped,
            pipeline::variance_label(f.var_kind),
            fmt_corr(&f.noise_corr)
        );
    }
    if let Some(d) = &prod.drizzle {
        println!(
            "drizzle (pixfrac {}): noise correlation lag 1: {}",
            d.pixfrac,
            fmt_corr(&prod.drizzle_noise_corr)
        );
    }
    if let Some(ap) = ap {
        let r = pipeline::aperture(&prep, &prod, &ap)?;
        println!(
            "aperture at pixel ({:.2}, {:.2}), r = {:.2} px (area {:.1} px){}",
            r.center_px[0],
            r.center_px[1],
            r.radius_px,
            r.area,
            r.annulus_px.map_or_else(
                || ", no background".to_owned(),
                |(i, o)| format!(", background annulus {i:.2}-{o:.2} px")
            )
        );
        if let Some((fl, v)) = r.frizzle {
            println!(
                "  frizzle: {fl:.6e} +- {:.6e} (exact variance {v:.6e})",
                v.sqrt()
            );
        }
        if let Some((fl, v, naive)) = r.drizzle {
            println!(
                "  drizzle: {fl:.6e} +- {:.6e} (exact variance {v:.6e}; drizzle's VAR summed, covariance ignored: {naive:.6e})",
                v.sqrt()
            );
        }
        if let (Some((ff, vf)), Some((fd, vd, _))) = (r.frizzle, r.drizzle) {
            println!(
                "  frizzle/drizzle: flux ratio {:.5}, variance ratio {:.4}",
                ff / fd,
                vf / vd
            );
        }
    }
    for n in &prod.notes {
        println!("note: {n}");
    }
    for w in &prod.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_accept_good_and_name_bad_input() {
        assert_eq!(parse_size("128x96").expect("size"), (128, 96));
        assert!(parse_size("12").is_err());
        assert!(parse_size("0x5").is_err());
        assert_eq!(
            parse_pair("10.5,-3", "--center").expect("pair"),
            (10.5, -3.0)
        );
        assert!(parse_pair("a,b", "--center").is_err());
        let p = parse_dq(&["none".into(), "3=bad".into()]).expect("dq");
        assert_eq!(p.default, BitAction::Ignore);
        assert!(parse_dq(&["x=bad".into()]).is_err());
        let ap = parse_aperture("px:3,4,2", None).expect("ap");
        assert_eq!(ap.annulus, Some((3.0, 5.0)));
        assert!(parse_aperture("1,2", None).is_err());
        let names = vec!["c4d_a_z".to_owned(), "c4d_b_g".to_owned()];
        assert_eq!(resolve(&names, "b_g", "--exclude").expect("r"), 1);
        assert_eq!(resolve(&names, "0", "--exclude").expect("r"), 0);
        assert!(resolve(&names, "c4d", "--exclude").is_err());
    }
}
