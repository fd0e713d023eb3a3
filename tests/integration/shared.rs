//! The real files of `../shared/data` (beside the repository, never copied into it): one rule for
//! every test that reads them. Where a file or folder is absent the test says so and skips, except
//! under `CI=true`, where its absence is a failure (so CI can never pass without running them).
//! And the one way the tests run the `frizzview` binary ([`frizzview`], [`run`]).

use std::path::PathBuf;
use std::process::Command;

/// Whether the tests run under CI (`CI=true`).
pub fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `../shared/data/<sub>` (a folder or a file), or `None` with a message naming `test` when it
/// is absent outside CI.
///
/// # Panics
/// Under `CI=true` when it is absent.
pub fn data(sub: &str, test: &str) -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(sub);
    if d.exists() {
        return Some(d);
    }
    assert!(
        !under_ci(),
        "{test}: {} is missing under CI (CI must have ../shared beside its clone)",
        d.display()
    );
    eprintln!(
        "{test}: skipped: {} is absent (these tests need ../shared/data)",
        d.display()
    );
    None
}

/// A Python with astropy, from `$FRIZZVIEW_PYTHON`, or `None` with a message outside CI.
pub fn astropy_python(test: &str) -> Option<String> {
    let py = std::env::var("FRIZZVIEW_PYTHON")
        .ok()
        .filter(|p| !p.is_empty());
    let ok = py.as_ref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", "import astropy, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if ok {
        return py;
    }
    assert!(
        !under_ci(),
        "{test}: $FRIZZVIEW_PYTHON ({py:?}) is not a Python with astropy and numpy under CI"
    );
    eprintln!(
        "{test}: skipped: set FRIZZVIEW_PYTHON to a Python with astropy and numpy to compare the WCS with astropy"
    );
    None
}

/// The `frizzview` binary of this build, as a command to add arguments to.
pub fn frizzview() -> Command {
    Command::new(env!("CARGO_BIN_EXE_frizzview"))
}

/// Run `cmd` to its end: exit code (-1 when a signal ended it), stdout and stderr as text.
///
/// # Panics
/// When it cannot be started.
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The largest |a - b| over the pairs where both are finite (0 when there is none).
pub fn max_abs_diff<'a>(
    a: impl IntoIterator<Item = &'a f64>,
    b: impl IntoIterator<Item = &'a f64>,
) -> f64 {
    a.into_iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
