//! The window meets a FITS file on which cfitsio divides by zero (the mwmVisit fixture with
//! TFORM2 = '6A0', crafted by `fuzz::division_by_zero_file`), opened through the window's own
//! load path (the Open dialog): a clear message naming the file, and the session goes on.

use std::path::PathBuf;
use std::sync::Arc;

use egui_kittest::Harness;
use frizzview::app::{DialogKind, Dialogs, FrizzApp, demo};

fn harness() -> Harness<'static, FrizzApp> {
    let app = FrizzApp::inline(demo::apogee_demo(2).expect("demo data"));
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(3);
    h
}

/// Open `path` with the Open dialog (injected) and return the window's last message.
fn open(h: &mut Harness<'_, FrizzApp>, path: PathBuf) -> String {
    h.state_mut().dialogs = Dialogs::Injected(Box::new(move |_| vec![path.clone()]));
    h.state_mut().start_dialog(DialogKind::OpenFiles);
    h.run_steps(3);
    let last = h.state().messages.last().expect("a message");
    assert!(last.error, "{last:?}");
    last.text.clone()
}

/// The session before and after: its visits and its result stay.
fn assert_session_kept(h: &mut Harness<'_, FrizzApp>, before: &Arc<frizzview::combine::Combined>) {
    let app = h.state();
    assert_eq!(app.data.visits.len(), 2, "the loaded visits stay");
    let now = app.result.clone().expect("a result");
    assert!(Arc::ptr_eq(&now, before), "the result stays");
    h.run_steps(2);
}

#[test]
fn ui_a_file_cfitsio_divides_by_zero_on_is_refused_and_the_session_continues() {
    let mut h = harness();
    let before = h.state().result.clone().expect("a result");
    let dir = tempfile::tempdir().expect("tempdir");
    let crafted = super::fuzz::division_by_zero_file(dir.path());
    let text = open(&mut h, crafted);
    assert!(
        text.contains("crafted-sigfpe.fits") && text.contains("HDU 1") && text.contains("TFORM2"),
        "{text}"
    );
    assert_session_kept(&mut h, &before);
}

/// With the card checks off, the division by zero happens, in the read sandbox's child process
/// (the `frizzview` binary's `read-check`): the window names the file and the signal and keeps
/// its session. The sandbox is process-wide and the checks are switched off by an environment
/// variable, so this test runs itself alone in a child process of the test binary.
#[test]
fn ui_a_division_by_zero_in_cfitsio_is_contained_by_the_read_sandbox() {
    const ME: &str =
        "ui_hostile::ui_a_division_by_zero_in_cfitsio_is_contained_by_the_read_sandbox";
    if std::env::var_os("FRIZZVIEW_UI_SANDBOX_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([ME, "--exact", "--nocapture", "--test-threads=1"])
            .env("FRIZZVIEW_UI_SANDBOX_CHILD", "1")
            .env("FRIZZVIEW_TEST_UNCHECKED_COLUMNS", "1")
            .output()
            .expect("the test binary runs");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && log.contains("1 passed"), "{log}");
        return;
    }
    frizzview::cli::preflight::install(PathBuf::from(env!("CARGO_BIN_EXE_frizzview")), Vec::new());
    let mut h = harness();
    let before = h.state().result.clone().expect("a result");
    let dir = tempfile::tempdir().expect("tempdir");
    let crafted = super::fuzz::division_by_zero_file(dir.path());
    let text = open(&mut h, crafted);
    assert!(
        text.contains("crafted-sigfpe.fits") && text.contains("signal 8 (SIGFPE"),
        "{text}"
    );
    assert_session_kept(&mut h, &before);
}
