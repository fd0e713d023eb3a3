//! The `frizzview` binary: the window, or a headless subcommand.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = frizzview::cli::Cli::parse();
    // Every FITS file is read by a child process first (the `read-check` child itself excepted).
    if !matches!(cli.command, Some(frizzview::cli::Command::ReadCheck(_))) {
        frizzview::cli::preflight::install_current_exe();
    }
    if let Some(cmd) = cli.command {
        return frizzview::cli::run_command(cmd);
    }
    run_window(cli)
}

#[cfg(feature = "gui")]
fn run_window(cli: frizzview::cli::Cli) -> ExitCode {
    match cli.load_options() {
        Ok(opts) => frizzview::app::files::set_load_options(opts),
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    }
    match frizzview::app::run(cli.files, cli.demo, cli.screenshot) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(not(feature = "gui"))]
fn run_window(_cli: frizzview::cli::Cli) -> ExitCode {
    eprintln!(
        "error: this build has no window (feature `gui` is off); use a subcommand, see --help"
    );
    ExitCode::from(2)
}
