//! The command line: `frizzview [FILES...]` opens the window; subcommands work headless.
//!
//! Errors are printed to stderr as `error: {:#}` (the whole context chain) and exit with code 2.

pub mod combine;
pub mod experiment;
pub mod fetch;
pub mod image;
/// The PNG writer, shared with the window (kept here under its old path).
pub use crate::png;
pub mod preflight;
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
    /// Open the window on a built-in demo: "apogee" (synthetic APOGEE-like star, 12 visits),
    /// "boss" (real SDSS BOSS star, 7 exposures) or "apogee-real" (2M00005143+5615568, real SDSS
    /// DR13, 3 visits and the pipeline's apStar: from $SAS_BASE_DIR, the fetch cache, or
    /// downloaded; the synthetic star with a message when none is reachable).
    #[arg(long, value_name = "apogee|boss|apogee-real")]
    pub demo: Option<String>,
    /// Save a PNG of the window after it has drawn, then exit (for screenshots and smoke tests).
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
    /// Open the raw exposures behind each apVisit given: its FRAMEn apCframe files in DIR.
    #[arg(long, value_name = "DIR")]
    pub exposures: Option<PathBuf>,
    /// apCframe inputs: the star to read, by APOGEE id (2M...) or CATALOGID.
    #[arg(long, value_name = "ID", conflicts_with = "fiber")]
    pub star: Option<String>,
    /// apCframe inputs: the fibre to read (FIBERID 1-300).
    #[arg(long, value_name = "N")]
    pub fiber: Option<i32>,
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
    /// Run the paper's experiments (the noise test) and print the result.
    Experiment(experiment::ExperimentArgs),
    /// Find a star's SDSS files (apVisit, apStar, allVisit, apCframe, spec, mwmVisit) in a local
    /// mirror or the cache, or download them; prints their local paths.
    Fetch(Box<fetch::FetchArgs>),
    /// The image mode headless: `frizzview image combine IMAGES... -o out.fits`.
    Image(image::ImageArgs),
    /// Read a FITS file the way the read sandbox's child does (internal: exit 0 read, 2 refused).
    #[command(name = "read-check", hide = true)]
    ReadCheck(preflight::ReadCheckArgs),
}

/// Run a headless subcommand, printing errors the CLI way. Returns the process exit code.
#[must_use]
pub fn run_command(cmd: Command) -> ExitCode {
    let result = match cmd {
        Command::Combine(a) => combine::run(&a),
        Command::Synth(a) => synth::run(&a),
        Command::Experiment(a) => experiment::run(&a),
        Command::Fetch(a) => fetch::run(&a),
        Command::Image(a) => image::run(&a),
        Command::ReadCheck(a) => preflight::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

impl Cli {
    /// The load options of the window's `--exposures`, `--star` and `--fiber`.
    pub fn load_options(&self) -> anyhow::Result<crate::io::LoadOptions> {
        Ok(crate::io::LoadOptions {
            star: combine::star_selector_of(self.star.as_deref(), self.fiber)?,
            exposures: self.exposures.clone(),
            ..crate::io::LoadOptions::default()
        })
    }
}
