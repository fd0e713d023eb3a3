//! `frizzview-bench`: time the combination on reference-sized synthetic cases (JSON lines, a
//! table, and optionally the scaling plot). A binary of its own, so the user's `frizzview` does
//! not carry it; see docs/performance.md for the commands and the figures.

mod args;
mod cases;
mod data;
mod plot;
mod point;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    match cases::run(&args::BenchArgs::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
