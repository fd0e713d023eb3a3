//! File dialogs: what a dialog is for and how dialogs are shown (native rfd dialogs on a helper
//! thread, an injected chooser in tests, or none). What the window does with the paths chosen
//! is `FrizzApp::dialog_done`.

use std::path::PathBuf;
use std::sync::mpsc;

use crate::vocab::OutputFormat;

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

/// What opening a dialog gave.
pub enum Opened {
    /// The chooser answered at once (injected choosers; empty = cancelled).
    Chosen(Vec<PathBuf>),
    /// A native dialog is open on its thread; its paths arrive here.
    Waiting(mpsc::Receiver<Vec<PathBuf>>),
    /// No dialog could be shown: why.
    Failed(String),
}

impl Dialogs {
    /// Open a file dialog of `kind` (off the UI thread for native dialogs).
    pub fn open(&mut self, kind: DialogKind) -> Opened {
        match self {
            Self::Injected(chooser) => Opened::Chosen(chooser(kind)),
            Self::Native => {
                let (tx, rx) = mpsc::channel();
                let spawned = std::thread::Builder::new()
                    .name("file-dialog".into())
                    .spawn(move || {
                        let _ = tx.send(native_dialog(kind));
                    });
                match spawned {
                    Ok(_) => Opened::Waiting(rx),
                    Err(e) => Opened::Failed(format!("cannot open a file dialog: {e}")),
                }
            }
            Self::Disabled => Opened::Failed("file dialogs are not available".into()),
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
        DialogKind::Export => [
            ("FITS", OutputFormat::Fits),
            ("CSV", OutputFormat::Csv),
            ("npz", OutputFormat::Npz),
        ]
        .into_iter()
        .fold(d, |d, (name, format)| {
            let exts: Vec<&str> = OutputFormat::extensions()
                .into_iter()
                .filter(|e| OutputFormat::from_extension(e) == Some(format))
                .collect();
            d.add_filter(name, &exts)
        })
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
