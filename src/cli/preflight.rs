//! The read sandbox: every FITS file is first read by a child process (this binary's hidden
//! `read-check` subcommand), and only read here if that child survived.
//!
//! cfitsio is C. A corrupt card it divides by ends the process with SIGFPE, and no panic guard
//! catches a signal; the structural checks (`io::fits_layout`) refuse every such card we know of,
//! and this is the guarantee for what they do not know: the window keeps its session, the
//! command line reports the file and exits 2. A child process is the one mechanism that contains
//! every fault (arithmetic, segmentation, abort, a runaway allocation) without touching cfitsio,
//! and re-running this same binary needs nothing installed beside it. The cost is one process
//! start and one read of the file, once per file version (the core remembers what it vouched
//! for).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::io::{LoadError, ReadSandbox};

/// The hidden subcommand the sandbox runs.
pub const SUBCOMMAND: &str = "read-check";

/// `frizzview read-check FILE`: read everything of a FITS file (`io::preflight`); exit 0 when it
/// was read, 2 with the error when it was refused. Any other end (a signal) is the parent's
/// signal to refuse it.
#[derive(Debug, clap::Args)]
pub struct ReadCheckArgs {
    /// The FITS file.
    pub path: PathBuf,
}

/// Run the check in this process (the child's side). Installs no sandbox: it *is* one.
pub fn run(args: &ReadCheckArgs) -> anyhow::Result<()> {
    crate::io::preflight(&args.path)?;
    Ok(())
}

/// A sandbox that checks each file with `exe read-check FILE`, with `envs` added to the child's
/// environment.
#[must_use]
pub fn sandbox(exe: PathBuf, envs: Vec<(OsString, OsString)>) -> ReadSandbox {
    Arc::new(move |path: &Path| check_in_child(&exe, &envs, path))
}

/// Install [`sandbox`] for this process (see `io::set_read_sandbox`).
pub fn install(exe: PathBuf, envs: Vec<(OsString, OsString)>) {
    crate::io::set_read_sandbox(Some(sandbox(exe, envs)));
}

/// Install the sandbox with this very binary as the checker. Without a known path to it (rare:
/// the binary was deleted) files are read unsandboxed, with a warning.
pub fn install_current_exe() {
    match std::env::current_exe() {
        Ok(exe) => install(exe, Vec::new()),
        Err(e) => log::warn!("files are read without the read sandbox: {e}"),
    }
}

fn check_in_child(exe: &Path, envs: &[(OsString, OsString)], path: &Path) -> Result<(), LoadError> {
    let status = Command::new(exe)
        .arg(SUBCOMMAND)
        .arg(path)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| {
            LoadError::io(
                path,
                format!(
                    "cannot start the process that checks the file first ({}): {e}",
                    exe.display()
                ),
            )
        })?;
    // 0: read; 2: refused with an error, which this process's own reader gives again.
    if matches!(status.code(), Some(0 | 2)) {
        return Ok(());
    }
    let why = match signal(&status) {
        Some(s) => format!(
            "reading it ended the process that checks files with signal {s} ({}): the FITS \
             library fails on this content (a corrupt or hostile file), so frizzview did not \
             read it",
            signal_name(s)
        ),
        None => format!(
            "the process that checks files ended with {status} on it, so frizzview did not read \
             it"
        ),
    };
    Err(LoadError::invalid(path, "the FITS file", why))
}

#[cfg(unix)]
fn signal(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn signal(_status: &std::process::ExitStatus) -> Option<i32> {
    None
}

/// The usual name of a POSIX signal number (Linux numbering).
#[must_use]
pub fn signal_name(s: i32) -> &'static str {
    match s {
        4 => "SIGILL, an illegal instruction",
        6 => "SIGABRT, an abort",
        7 => "SIGBUS, a bus error",
        8 => "SIGFPE, an arithmetic fault such as a division by zero",
        9 => "SIGKILL, killed, e.g. out of memory",
        11 => "SIGSEGV, an invalid memory access",
        _ => "a fatal signal",
    }
}
