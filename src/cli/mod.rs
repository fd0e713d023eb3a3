//! The command line: `frizzview [FILES...]` opens the window; subcommands work headless.
//!
//! Errors are printed to stderr as `error: {:#}` (the whole context chain) and exit with code 2.

pub mod bench;
pub mod combine;
pub mod experiment;
pub mod png;
pub mod synth;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Combine multi-epoch spectra with the Frizzle forward model, interactively or in batch.
#[derive(Debug, Parser)]
#[command(name = "frizzview", version, about)]
pub struct Cli {
    /// Files or folders to open in the window (no subcommand). No files: the built-in demo.
    pub files: Vec<PathBuf>,
    /// Open the window on a built-in demo: "apogee" (synthetic) or "boss" (real SDSS star).
    #[arg(long)]
    pub demo: Option<String>,
    /// Save a PNG of the window after it has drawn, then exit (for screenshots and smoke tests).
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
    /// Subcommand.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Headless subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Combine visits into one spectrum and write it (FITS, CSV or .npz by extension).
    Combine(Box<combine::CombineArgs>),
    /// Write a synthetic data set (`paper` or `apogee`) as a bundle `combine` reads.
    Synth(Box<synth::SynthArgs>),
    /// Time the combination on the reference cases and print JSON lines.
    Bench(bench::BenchArgs),
    /// Run the paper's experiments (the noise test) and print the result.
    Experiment(experiment::ExperimentArgs),
}

/// Run a headless subcommand, printing errors the CLI way. Returns the process exit code.
#[must_use]
pub fn run_command(cmd: Command) -> ExitCode {
    let result = match cmd {
        Command::Combine(a) => combine::run(&a),
        Command::Synth(a) => synth::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Experiment(a) => experiment::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
