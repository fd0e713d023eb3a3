//! The command line of `frizzview-bench`.

use std::path::PathBuf;

/// Time the combination on reference-sized synthetic cases and print JSON lines.
#[derive(Debug, clap::Parser)]
#[command(name = "frizzview-bench", version, about)]
pub struct BenchArgs {
    /// Small sizes and one repetition (CI runs this in the debug build).
    #[arg(long)]
    pub quick: bool,
    /// Print only JSON lines (no table).
    #[arg(long)]
    pub json: bool,
    /// Write the scaling plot (PNG) here.
    #[arg(long, value_name = "PNG")]
    pub plot: Option<PathBuf>,
    /// Skip the scaling series.
    #[arg(long)]
    pub no_scaling: bool,
    /// Skip the cases (run only the scaling series, e.g. to redraw the plot).
    #[arg(long)]
    pub no_cases: bool,
    /// Kernel of the local basis (qbspline15 = default; lanczos3, bspline3, bspline5 ...
    /// bspline15, qbspline7, qbspline11).
    #[arg(long, default_value = "default")]
    pub kernel: String,
    /// Repetitions per case (default: 5, 11 for the live cases, 1 with --quick); the median is
    /// reported. Many repetitions make a profile (`perf record`) of one case meaningful.
    #[arg(long, value_name = "N")]
    pub reps: Option<usize>,
    /// Run one case in this process and print its JSON line (used by the parent process).
    #[arg(long, hide = true)]
    pub case: Option<String>,
}

/// The cases, in the order they run.
pub const CASES: [&str; 9] = [
    "case_a_fourier",
    "case_b_fourier",
    "case_a_local",
    "case_b_local",
    "apogee30_live",
    "apogee1000_live",
    "dense_case_a",
    "standard_apogee30",
    "engine_apogee30",
];
