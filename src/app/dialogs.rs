//! File dialogs: what a dialog is for, how dialogs are shown (native rfd dialogs on a helper
//! thread, an injected chooser in tests, or none), and what the window does with the paths
//! chosen.

use std::path::PathBuf;
use std::sync::mpsc;

use super::{FrizzApp, files, jobs};

/// What a file dialog is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogKind {
    /// Add visit files.
    OpenFiles,
    /// Open a session file.
    OpenSession,
    /// Save the session.
    SaveSession,
    /// Export the result (FITS / CSV / npz by extension).
    Export,
    /// Save a PNG of the window.
    SavePng,
}

/// A file chooser that tests can replace: returns the chosen paths (empty = cancelled).
pub type Chooser = Box<dyn FnMut(DialogKind) -> Vec<PathBuf> + Send>;

/// How file dialogs are shown.
pub enum Dialogs {
    /// rfd dialogs on a helper thread (the UI keeps running).
    Native,
    /// An injected chooser, called synchronously (tests; never reaches rfd).
    Injected(Chooser),
    /// No dialogs: the buttons report that none is available.
    Disabled,
}

impl FrizzApp {
    /// Open a file dialog of `kind` (off the UI thread for native dialogs).
    pub fn start_dialog(&mut self, kind: DialogKind) {
        match &mut self.dialogs {
            Dialogs::Injected(chooser) => {
                let paths = chooser(kind);
                self.dialog_done(kind, paths);
            }
            Dialogs::Native => {
                if self.dialog_rx.is_some() {
                    return;
                }
                let (tx, rx) = mpsc::channel();
                let spawned = std::thread::Builder::new()
                    .name("file-dialog".into())
                    .spawn(move || {
                        let _ = tx.send(native_dialog(kind));
                    });
                match spawned {
                    Ok(_) => self.dialog_rx = Some((kind, rx)),
                    Err(e) => self.report_error(format!("cannot open a file dialog: {e}")),
                }
            }
            Dialogs::Disabled => self.report_error("file dialogs are not available".into()),
        }
    }

    pub(super) fn poll_dialog(&mut self) {
        let Some((kind, rx)) = &self.dialog_rx else {
            return;
        };
        let kind = *kind;
        match rx.try_recv() {
            Ok(paths) => {
                self.dialog_rx = None;
                self.dialog_done(kind, paths);
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => self.dialog_rx = None,
        }
    }

    fn dialog_done(&mut self, kind: DialogKind, paths: Vec<PathBuf>) {
        let Some(first) = paths.first().cloned() else {
            self.report_info("no file chosen".into());
            return;
        };
        match kind {
            DialogKind::OpenFiles => self.load_and_add(paths, false),
            DialogKind::OpenSession => {
                let label = format!("reading the session {}", first.display());
                self.jobs.spawn(label, 0, move |_| {
                    jobs::JobResult::Session(
                        files::load_session(&first).map_err(|e| format!("{e:#}")),
                    )
                });
                self.poll_jobs();
            }
            DialogKind::SaveSession => {
                let session = self.session();
                let label = format!("saving the session to {}", first.display());
                self.jobs.spawn(label, 0, move |_| {
                    jobs::JobResult::Wrote(
                        files::save_session(&first, &session)
                            .map(|()| format!("session saved to {}", first.display()))
                            .map_err(|e| format!("{e:#}")),
                    )
                });
                self.poll_jobs();
            }
            DialogKind::Export => self.export(&first),
            DialogKind::SavePng => self.png_request = Some(first),
        }
    }
}

/// Blocking rfd dialog (runs on the "file-dialog" thread).
fn native_dialog(kind: DialogKind) -> Vec<PathBuf> {
    let d = rfd::FileDialog::new();
    match kind {
        DialogKind::OpenFiles => d
            .add_filter("spectra", &["fits", "fit", "fits.gz", "npz", "csv", "tsv"])
            .add_filter(
                "images",
                &[
                    "fits", "fit", "fits.gz", "fits.fz", "npy", "tif", "tiff", "txt", "csv",
                ],
            )
            .pick_files()
            .unwrap_or_default(),
        DialogKind::OpenSession => d
            .add_filter("session", &["json"])
            .pick_file()
            .into_iter()
            .collect(),
        DialogKind::SaveSession => d
            .add_filter("session", &["json"])
            .set_file_name("session.json")
            .save_file()
            .into_iter()
            .collect(),
        DialogKind::Export => d
            .add_filter("FITS", &["fits"])
            .add_filter("CSV", &["csv"])
            .add_filter("npz", &["npz"])
            .set_file_name("combined.fits")
            .save_file()
            .into_iter()
            .collect(),
        DialogKind::SavePng => d
            .add_filter("PNG", &["png"])
            .set_file_name("frizzview.png")
            .save_file()
            .into_iter()
            .collect(),
    }
}
