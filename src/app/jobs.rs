//! File work off the UI thread: reading visit files and session files, exports (FITS, CSV,
//! `.npz`), sessions and PNGs are written by background jobs, each on its own thread, while the
//! window keeps drawing. The status bar lists the running jobs with their progress; a finished
//! job's outcome (data, or a message naming the file) is taken by the window at the start of a
//! frame. A job that panics is reported as an error, not lost.
//!
//! Inline mode (the window's inline engine, for deterministic tests) runs each job inside
//! [`Jobs::spawn`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Instant;

use eframe::egui;

use super::files::{LoadOutcome, Session};
use crate::settings::Settings;

/// What a finished job hands back to the window.
#[derive(Debug)]
pub enum JobResult {
    /// Visit files were read.
    Loaded {
        /// The files asked for.
        request: LoadRequest,
        /// What was read and what failed.
        outcome: Box<LoadOutcome>,
    },
    /// A demo was built (the BOSS one is read from a file).
    Demo {
        /// Which.
        demo: super::demo::Demo,
        /// Its data, or why not.
        data: Result<Box<crate::model::Dataset>, String>,
        /// Settings to apply once loaded (reopening a session).
        then_settings: Option<Settings>,
    },
    /// A session file was read.
    Session(Result<Session, String>),
    /// A file was written: the message to show, or the error.
    Wrote(Result<String, String>),
}

/// A request to read visit files.
#[derive(Clone, Debug)]
pub struct LoadRequest {
    /// Files or folders.
    pub paths: Vec<PathBuf>,
    /// Replace the open dataset (else add to it).
    pub replace: bool,
    /// Settings to apply once loaded (reopening a session).
    pub then_settings: Option<Settings>,
}

/// Progress of one running job, shown in the status bar.
#[derive(Debug)]
pub struct Progress {
    /// What the job does ("loading 3 files", "exporting to x.fits").
    pub label: String,
    /// Steps finished.
    pub done: AtomicUsize,
    /// Steps in total (0: unknown).
    pub total: usize,
    /// When it started.
    pub started: Instant,
}

/// The running jobs by id, shared with their threads.
type Running = Arc<Mutex<Vec<(u64, Arc<Progress>)>>>;

struct Finished {
    id: u64,
    result: JobResult,
}

/// The window's background jobs; see the module docs.
pub struct Jobs {
    threaded: bool,
    tx: mpsc::Sender<Finished>,
    rx: mpsc::Receiver<Finished>,
    running: Running,
    /// Jobs spawned whose result has not been taken by [`Jobs::poll`] yet.
    outstanding: usize,
    next_id: u64,
    wake: Option<egui::Context>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("threaded", &self.threaded)
            .field("running", &self.running().len())
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// Jobs on threads (`threaded`) or run inside [`Jobs::spawn`].
    #[must_use]
    pub fn new(threaded: bool) -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            threaded,
            tx,
            rx,
            running: Arc::new(Mutex::new(Vec::new())),
            outstanding: 0,
            next_id: 0,
            wake: None,
        }
    }

    /// Whether jobs run on threads.
    #[must_use]
    pub fn is_threaded(&self) -> bool {
        self.threaded
    }

    /// Ask for a repaint of `ctx` when a job finishes.
    pub fn set_wake(&mut self, ctx: &egui::Context) {
        if self.wake.is_none() {
            self.wake = Some(ctx.clone());
        }
    }

    /// Run `work` in the background; `total` steps (0 if unknown) for the progress display.
    pub fn spawn(
        &mut self,
        label: String,
        total: usize,
        work: impl FnOnce(&Progress) -> JobResult + Send + 'static,
    ) {
        self.next_id += 1;
        self.outstanding += 1;
        let id = self.next_id;
        let progress = Arc::new(Progress {
            label: label.clone(),
            done: AtomicUsize::new(0),
            total,
            started: Instant::now(),
        });
        let run =
            move |p: &Progress| match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work(p)
            })) {
                Ok(r) => r,
                Err(payload) => JobResult::Wrote(Err(format!(
                    "{label}: internal error (a bug; please report it): {}",
                    crate::engine::worker::panic_message(payload.as_ref())
                ))),
            };
        if !self.threaded {
            let result = run(&progress);
            let _ = self.tx.send(Finished { id, result });
            return;
        }
        lock(&self.running).push((id, Arc::clone(&progress)));
        let tx = self.tx.clone();
        let running = Arc::clone(&self.running);
        let wake = self.wake.clone();
        let spawned = std::thread::Builder::new()
            .name("file-job".into())
            .spawn(move || {
                let result = run(&progress);
                let _ = tx.send(Finished { id, result });
                lock(&running).retain(|(i, _)| *i != id);
                if let Some(ctx) = wake {
                    ctx.request_repaint();
                }
            });
        if let Err(e) = spawned {
            lock(&self.running).retain(|(i, _)| *i != id);
            let _ = self.tx.send(Finished {
                id,
                result: JobResult::Wrote(Err(format!("cannot start a background job: {e}"))),
            });
        }
    }

    /// Finished jobs, oldest first.
    pub fn poll(&mut self) -> Vec<JobResult> {
        let mut done: Vec<Finished> = self.rx.try_iter().collect();
        self.outstanding = self.outstanding.saturating_sub(done.len());
        done.sort_by_key(|f| f.id);
        done.into_iter().map(|f| f.result).collect()
    }

    /// The running jobs.
    #[must_use]
    pub fn running(&self) -> Vec<Arc<Progress>> {
        lock(&self.running)
            .iter()
            .map(|(_, p)| Arc::clone(p))
            .collect()
    }

    /// True while a job runs or its result has not been taken yet.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.outstanding > 0
    }
}

/// The list of running jobs; only pushes and retains happen under the lock, so the data is valid
/// after a panic elsewhere.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Progress {
    /// "label (3/10)" or "label" for the status bar.
    #[must_use]
    pub fn text(&self) -> String {
        let done = self.done.load(Ordering::Relaxed);
        if self.total > 1 {
            format!("{} ({done}/{})…", self.label, self.total)
        } else {
            format!("{}…", self.label)
        }
    }
}
