//! A background worker that runs the newest job: a generation counter, cancellation of the
//! superseded job, and stale results dropped.
//!
//! Generic over what a job returns, so the window's combination, the teaching panel and tests
//! share one implementation. No egui here: the owner registers a wake-up callback (the window
//! passes `move || ctx.request_repaint()`), which the worker calls after sending each result.
//!
//! A job may deliver an early value before its final one ([`Worker::submit_staged`]): the
//! window's combination shows the fit while the slower leave-one-out scores are computed, and
//! the next request cancels the scoring.
//!
//! A job that panics does not take the worker down: the panic is caught on the worker thread,
//! the thread goes on with the next job, and [`Worker::poll`] counts the job as delivered (so
//! [`Worker::is_busy`] turns false) and keeps its message for [`Worker::take_panic`]. Owners that
//! can describe the failure better (the combination engine names the settings) catch inside
//! their job and return an error value instead.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::cancel::Cancel;

/// A unit of work: gets the job's cancellation flag and a function that delivers an early value
/// (each call sends one, in order; plain jobs never call it), returns the final value.
pub type JobFn<T> = Box<dyn FnOnce(&Cancel, &dyn Fn(T)) -> T + Send + 'static>;

/// Called by the worker after each result was sent (e.g. to request a repaint).
pub type WakeFn = Arc<dyn Fn() + Send + Sync + 'static>;

/// A finished job.
#[derive(Debug)]
pub struct Done<T> {
    /// The generation [`Worker::submit`] returned for this job.
    pub generation: u64,
    /// What the job returned.
    pub value: T,
    /// Wall-clock time the job ran until this value (not counting time waiting in the queue).
    pub elapsed: Duration,
    /// Whether this is the job's final value; false for an early one of a staged job.
    pub last: bool,
}

/// What the worker thread sends back: a result, or the message of a job that panicked.
enum Outcome<T> {
    Done(Done<T>),
    Panicked { generation: u64, message: String },
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
#[must_use]
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Run a job, catching a panic; `early` receives its early values. The job's captured state is
/// dropped if it panics and nothing observes it afterwards, so asserting unwind safety is sound.
fn run_caught<T>(job: Job<T>, early: &dyn Fn(Outcome<T>)) -> Outcome<T> {
    let Job {
        generation,
        cancel,
        run,
    } = job;
    let start = Instant::now();
    let send_early = |value: T| {
        early(Outcome::Done(Done {
            generation,
            value,
            elapsed: start.elapsed(),
            last: false,
        }));
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&cancel, &send_early))) {
        Ok(value) => Outcome::Done(Done {
            generation,
            value,
            elapsed: start.elapsed(),
            last: true,
        }),
        Err(payload) => Outcome::Panicked {
            generation,
            message: panic_message(payload.as_ref()),
        },
    }
}

struct Job<T> {
    generation: u64,
    cancel: Cancel,
    run: JobFn<T>,
}

enum Mode<T> {
    /// Jobs run on the "combine-worker" thread.
    Threaded {
        jobs: mpsc::Sender<Job<T>>,
        results: mpsc::Receiver<Outcome<T>>,
        running: Arc<AtomicBool>,
    },
    /// Jobs run synchronously inside `submit` (deterministic tests).
    Inline { ready: VecDeque<Outcome<T>> },
}

/// Runs the newest submitted job; see the module docs.
pub struct Worker<T: Send + 'static> {
    mode: Mode<T>,
    /// Generation of the newest submitted job; shared with the thread so it can skip stale jobs.
    latest: Arc<AtomicU64>,
    /// The newest result handed out by [`Worker::poll`]: (generation, whether it was its job's
    /// final value). Results are ordered by this pair.
    delivered: (u64, bool),
    /// Cancellation flag of the newest job (set when a newer one is submitted).
    cancel: Cancel,
    /// The newest job that panicked and has not been taken: (generation, message).
    panicked: Option<(u64, String)>,
}

impl<T: Send + 'static> std::fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("threaded", &matches!(self.mode, Mode::Threaded { .. }))
            .field("latest", &self.latest.load(Ordering::Relaxed))
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Worker<T> {
    /// A worker with its own thread named "combine-worker". `wake` is called after every result.
    ///
    /// The thread ends when the worker is dropped (its job channel closes).
    pub fn threaded(wake: Option<WakeFn>) -> std::io::Result<Self> {
        let (job_tx, job_rx) = mpsc::channel::<Job<T>>();
        let (done_tx, done_rx) = mpsc::channel::<Outcome<T>>();
        let latest = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicBool::new(false));
        let thread_latest = Arc::clone(&latest);
        let thread_running = Arc::clone(&running);
        thread::Builder::new()
            .name("combine-worker".into())
            .spawn(move || {
                while let Ok(mut job) = job_rx.recv() {
                    // Latest wins: skip everything queued behind a newer job.
                    while let Ok(newer) = job_rx.try_recv() {
                        job = newer;
                    }
                    if job.generation < thread_latest.load(Ordering::Acquire)
                        || job.cancel.is_cancelled()
                    {
                        continue;
                    }
                    thread_running.store(true, Ordering::Release);
                    let early = |o: Outcome<T>| {
                        if done_tx.send(o).is_ok()
                            && let Some(wake) = &wake
                        {
                            wake();
                        }
                    };
                    let outcome = run_caught(job, &early);
                    thread_running.store(false, Ordering::Release);
                    if done_tx.send(outcome).is_err() {
                        break;
                    }
                    // After sending and holding no lock, so the owner sees the result when woken.
                    if let Some(wake) = &wake {
                        wake();
                    }
                }
            })?;
        Ok(Self {
            mode: Mode::Threaded {
                jobs: job_tx,
                results: done_rx,
                running,
            },
            latest,
            delivered: (0, true),
            cancel: Cancel::new(),
            panicked: None,
        })
    }

    /// A worker that runs each job synchronously inside [`Worker::submit`].
    #[must_use]
    pub fn inline() -> Self {
        Self {
            mode: Mode::Inline {
                ready: VecDeque::new(),
            },
            latest: Arc::new(AtomicU64::new(0)),
            delivered: (0, true),
            cancel: Cancel::new(),
            panicked: None,
        }
    }

    /// Whether jobs run on a thread.
    #[must_use]
    pub fn is_threaded(&self) -> bool {
        matches!(self.mode, Mode::Threaded { .. })
    }

    /// Submit a job; cancels the previous one. Returns the new job's generation (1, 2, ...).
    pub fn submit(&mut self, run: impl FnOnce(&Cancel) -> T + Send + 'static) -> u64 {
        self.submit_staged(move |cancel, _| run(cancel))
    }

    /// Submit a job that may deliver early values before its final one (each call of the
    /// function it gets sends one); cancels the previous job. [`Worker::poll`] hands out a job's
    /// values in order, each only while no newer job has delivered anything.
    pub fn submit_staged(
        &mut self,
        run: impl FnOnce(&Cancel, &dyn Fn(T)) -> T + Send + 'static,
    ) -> u64 {
        self.cancel.cancel();
        self.cancel = Cancel::new();
        let generation = self.latest.load(Ordering::Acquire) + 1;
        self.latest.store(generation, Ordering::Release);
        let job = Job {
            generation,
            cancel: self.cancel.clone(),
            run: Box::new(run),
        };
        match &mut self.mode {
            Mode::Threaded { jobs, .. } => {
                // Panics are caught on the thread, so it only stops when this worker is dropped;
                // should it be gone anyway, the job is reported as failed rather than pending.
                if jobs.send(job).is_err() {
                    log::error!("the combine worker thread has stopped; job {generation} dropped");
                    self.delivered = (generation, true);
                    self.panicked = Some((generation, "the worker thread has stopped".into()));
                }
            }
            Mode::Inline { ready } => {
                let early = std::cell::RefCell::new(Vec::new());
                let last = run_caught(job, &|o| early.borrow_mut().push(o));
                ready.extend(early.into_inner());
                ready.push_back(last);
            }
        }
        generation
    }

    /// The newest finished result not older than what was already delivered, if any.
    ///
    /// Results older than the newest one available (or already delivered) are dropped; a job's
    /// final value is newer than its early ones. A result
    /// of a superseded job may be returned while a newer job still runs, so a continuous slider
    /// drag updates the plots at the rate results arrive; compare `generation` with
    /// [`Worker::latest_generation`] to know whether the shown result is current.
    pub fn poll(&mut self) -> Option<Done<T>> {
        let mut newest: Option<Done<T>> = None;
        let mut panicked_up_to = 0;
        loop {
            let next = match &mut self.mode {
                Mode::Threaded { results, .. } => results.try_recv().ok(),
                Mode::Inline { ready } => ready.pop_front(),
            };
            let Some(outcome) = next else { break };
            let done = match outcome {
                Outcome::Done(done) => done,
                Outcome::Panicked {
                    generation,
                    message,
                } => {
                    log::error!("job {generation} panicked: {message}");
                    // A job that panicked after an early value still ends there.
                    if (generation, true) > self.delivered && generation > panicked_up_to {
                        panicked_up_to = generation;
                        self.panicked = Some((generation, message));
                    }
                    continue;
                }
            };
            let order = (done.generation, done.last);
            if order > self.delivered
                && newest
                    .as_ref()
                    .is_none_or(|n| order > (n.generation, n.last))
            {
                newest = Some(done);
            }
        }
        if let Some(n) = &newest {
            self.delivered = (n.generation, n.last);
        }
        // A panicked job counts as delivered: nothing more will come for it.
        if panicked_up_to >= self.delivered.0 {
            self.delivered = (panicked_up_to, true);
        }
        newest
    }

    /// The newest job that panicked since the last call, as (generation, panic message).
    pub fn take_panic(&mut self) -> Option<(u64, String)> {
        self.panicked.take()
    }

    /// Generation of the newest submitted job (0 before the first).
    #[must_use]
    pub fn latest_generation(&self) -> u64 {
        self.latest.load(Ordering::Acquire)
    }

    /// Generation of the newest result delivered by [`Worker::poll`] (0 before the first).
    #[must_use]
    pub fn delivered_generation(&self) -> u64 {
        self.delivered.0
    }

    /// True while the newest submitted job has not delivered its final value yet.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        (self.latest_generation(), true) > self.delivered
    }

    /// True while the newest submitted job has delivered nothing yet, not even an early value.
    #[must_use]
    pub fn is_awaiting_first(&self) -> bool {
        self.latest_generation() > self.delivered.0
    }

    /// True while the thread is executing a job (always false inline).
    #[must_use]
    pub fn is_running(&self) -> bool {
        match &self.mode {
            Mode::Threaded { running, .. } => running.load(Ordering::Acquire),
            Mode::Inline { .. } => false,
        }
    }

    /// Cancel the newest job (it returns early if it checks its flag) without submitting another;
    /// its result, if it still arrives, is dropped.
    pub fn cancel(&mut self) {
        self.cancel.cancel();
        self.delivered = (self.latest_generation(), true);
    }
}

impl<T: Send + 'static> Drop for Worker<T> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc::channel;

    fn wait_for<T: Send + 'static>(w: &mut Worker<T>, generation: u64) -> Vec<Done<T>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        while w.delivered_generation() < generation {
            assert!(
                Instant::now() < deadline,
                "worker did not deliver {generation}"
            );
            if let Some(d) = w.poll() {
                got.push(d);
            }
            thread::sleep(Duration::from_millis(1));
        }
        got
    }

    #[test]
    fn inline_runs_in_submit_and_delivers_the_newest() {
        let mut w = Worker::inline();
        assert!(!w.is_threaded());
        let g1 = w.submit(|_| 1);
        let g2 = w.submit(|_| 2);
        assert_eq!((g1, g2), (1, 2));
        let d = w.poll().expect("a result");
        assert_eq!((d.generation, d.value), (2, 2));
        assert!(w.poll().is_none(), "the older result is stale and dropped");
        assert!(!w.is_busy());
    }

    #[test]
    fn threaded_latest_wins_and_queued_jobs_are_skipped() {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let (gate_tx, gate_rx) = channel::<()>();
        let gate_rx = Arc::new(Mutex::new(gate_rx));
        let mut w = Worker::threaded(None).expect("spawn");
        // Job 1 blocks until released, so jobs 2..=10 queue up behind it.
        {
            let ran = Arc::clone(&ran);
            let gate_rx = Arc::clone(&gate_rx);
            w.submit(move |_| {
                let _ = gate_rx.lock().expect("lock").recv();
                ran.lock().expect("lock").push(1);
                1
            });
        }
        while !w.is_running() {
            thread::sleep(Duration::from_millis(1));
        }
        for i in 2..=10u64 {
            let ran = Arc::clone(&ran);
            w.submit(move |_| {
                ran.lock().expect("lock").push(i);
                i
            });
        }
        assert!(w.is_busy());
        gate_tx.send(()).expect("release job 1");
        let got = wait_for(&mut w, 10);
        assert_eq!(got.last().map(|d| d.value), Some(10));
        assert_eq!(
            *ran.lock().expect("lock"),
            vec![1, 10],
            "jobs 2..=9 must be skipped"
        );
        assert!(!w.is_busy());
    }

    #[test]
    fn threaded_submit_cancels_the_running_job() {
        let mut w = Worker::threaded(None).expect("spawn");
        w.submit(|cancel: &Cancel| {
            let start = Instant::now();
            while !cancel.is_cancelled() {
                assert!(start.elapsed() < Duration::from_secs(20), "never cancelled");
                thread::sleep(Duration::from_millis(1));
            }
            "cancelled"
        });
        while !w.is_running() {
            thread::sleep(Duration::from_millis(1));
        }
        w.submit(|_| "second");
        let got = wait_for(&mut w, 2);
        let values: Vec<_> = got.iter().map(|d| d.value).collect();
        assert_eq!(values.last(), Some(&"second"));
        assert!(values.iter().all(|v| *v == "second" || *v == "cancelled"));
    }

    #[test]
    fn stale_results_are_dropped_after_a_newer_one_was_delivered() {
        let mut w = Worker::threaded(None).expect("spawn");
        let (gate_tx, gate_rx) = channel::<()>();
        w.submit(move |_| {
            let _ = gate_rx.recv();
            1
        });
        while !w.is_running() {
            thread::sleep(Duration::from_millis(1));
        }
        w.submit(|_| 2);
        gate_tx.send(()).expect("release");
        // Job 1 finishes (it ignores its cancel flag), then job 2; both arrive, only 2 is newest.
        let got = wait_for(&mut w, 2);
        assert_eq!(got.last().map(|d| d.generation), Some(2));
        assert!(w.poll().is_none());
        // A result older than the delivered one never comes back.
        assert!(got.windows(2).all(|p| p[1].generation > p[0].generation));
    }

    #[test]
    fn a_panicking_job_does_not_stop_the_worker() {
        for mut w in [Worker::threaded(None).expect("spawn"), Worker::inline()] {
            let g1 = w.submit(|_| -> u32 { panic!("job one exploded") });
            let deadline = Instant::now() + Duration::from_secs(20);
            while w.is_busy() {
                assert!(Instant::now() < deadline, "busy for ever after a panic");
                assert!(w.poll().is_none(), "a panicked job delivers no value");
                thread::sleep(Duration::from_millis(1));
            }
            let (g, message) = w.take_panic().expect("the panic is reported");
            assert_eq!(g, g1);
            assert!(message.contains("job one exploded"), "{message}");
            // The next job runs and is delivered.
            let g2 = w.submit(|_| 2);
            let got = wait_for(&mut w, g2);
            assert_eq!(got.last().map(|d| d.value), Some(2));
            assert!(!w.is_busy());
            assert!(w.take_panic().is_none());
        }
    }

    #[test]
    fn wake_is_called_after_each_result() {
        let (tx, rx) = channel::<()>();
        let tx = Mutex::new(tx);
        let wake: WakeFn = Arc::new(move || {
            let _ = tx.lock().expect("lock").send(());
        });
        let mut w = Worker::threaded(Some(wake)).expect("spawn");
        w.submit(|_| 7);
        rx.recv_timeout(Duration::from_secs(20)).expect("woken");
        // The result was sent before the wake-up, so it is there now.
        assert_eq!(w.poll().map(|d| d.value), Some(7));
    }

    #[test]
    fn staged_jobs_deliver_early_values_then_the_final_one() {
        // Inline: both values are ready at once, and poll hands out the final one.
        let mut w = Worker::inline();
        w.submit_staged(|_, early| {
            early(1);
            2
        });
        let d = w.poll().expect("a result");
        assert_eq!((d.value, d.last), (2, true));
        assert!(w.poll().is_none() && !w.is_busy());

        // Threaded: the early value arrives while the job still runs.
        let (gate_tx, gate_rx) = channel::<()>();
        let mut w = Worker::threaded(None).expect("spawn");
        let g = w.submit_staged(move |_, early| {
            early(10);
            let _ = gate_rx.recv();
            20
        });
        assert!(w.is_awaiting_first());
        let first = loop {
            if let Some(d) = w.poll() {
                break d;
            }
            thread::sleep(Duration::from_millis(1));
        };
        assert_eq!((first.generation, first.value, first.last), (g, 10, false));
        assert!(w.is_busy() && !w.is_awaiting_first());
        gate_tx.send(()).expect("release");
        let got = wait_for(&mut w, g);
        assert!(
            got.is_empty(),
            "delivered counts the generation, not the stage"
        );
        let last = loop {
            if let Some(d) = w.poll() {
                break d;
            }
            assert!(w.is_busy(), "busy until the final value is taken");
            thread::sleep(Duration::from_millis(1));
        };
        assert_eq!((last.value, last.last), (20, true));
        assert!(!w.is_busy());
    }

    #[test]
    fn a_staged_job_that_panics_after_its_early_value_ends() {
        for mut w in [Worker::threaded(None).expect("spawn"), Worker::inline()] {
            let g = w.submit_staged(|_, early| -> u32 {
                early(1);
                panic!("stage two exploded")
            });
            let deadline = Instant::now() + Duration::from_secs(20);
            while w.is_busy() {
                assert!(Instant::now() < deadline, "busy for ever after a panic");
                let _ = w.poll();
                thread::sleep(Duration::from_millis(1));
            }
            let (pg, message) = w.take_panic().expect("the panic is reported");
            assert_eq!(pg, g);
            assert!(message.contains("stage two exploded"), "{message}");
        }
    }
}
