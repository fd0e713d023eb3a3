//! "Fetch a star's files": the dialog, and the background job that finds or downloads the files
//! (also behind the real APOGEE demo). The job runs on its own thread; the status bar shows its
//! progress; when it ends, the files are opened (or, for the demo, the synthetic star is shown
//! with a message saying why the real one could not be had).

use std::sync::mpsc;
use std::time::Duration;

use eframe::egui;

use super::FrizzApp;
use super::demo::Demo;
use crate::fetch::{
    Event, FetchConfig, FetchError, Origin, Product, Release, StarFiles, StarQuery, Templates,
    VisitRef, star,
};

/// Messages from the job's thread.
enum JobMsg {
    Start {
        name: String,
        index: usize,
        count: usize,
    },
    Bytes(u64, Option<u64>),
    Done(Box<Result<Loaded, String>>),
}

/// A fetched star, read on the job's thread: the data set, the files it was read from, notes,
/// and where the files came from.
struct Loaded {
    data: crate::model::Dataset,
    paths: Vec<std::path::PathBuf>,
    notes: Vec<String>,
    origins: String,
}

/// A running fetch.
pub struct FetchJob {
    rx: mpsc::Receiver<JobMsg>,
    /// What is fetched, for the status bar.
    pub what: String,
    /// True for the real APOGEE demo (fall back to the synthetic star on failure).
    pub demo: bool,
    /// The file being fetched: (name, 0-based index, files planned).
    pub current: Option<(String, usize, usize)>,
    /// Bytes of the current download.
    pub bytes: Option<(u64, Option<u64>)>,
}

impl FetchJob {
    /// Start fetching `query` on a new thread.
    pub fn spawn(
        query: StarQuery,
        templates: Templates,
        cfg: FetchConfig,
        what: String,
        demo: bool,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("fetch".into())
            .spawn(move || {
                let mut progress = |e: Event<'_>| {
                    let msg = match e {
                        Event::Start { rel, index, count } => JobMsg::Start {
                            name: rel.rsplit('/').next().unwrap_or(rel).to_owned(),
                            index,
                            count,
                        },
                        Event::Bytes { done, total } => JobMsg::Bytes(done, total),
                        Event::Done { .. } => return,
                    };
                    let _ = tx.send(msg);
                };
                let r = star::fetch_star(&query, &templates, &cfg, &mut progress)
                    .map_err(|e| e.to_string())
                    .and_then(|files| {
                        let origins = summary(&files);
                        star::load_star(&files)
                            .map(|(data, paths, notes)| Loaded {
                                data,
                                paths,
                                notes,
                                origins,
                            })
                            .map_err(|e| format!("{e:#}"))
                    });
                let _ = tx.send(JobMsg::Done(Box::new(r)));
            })?;
        Ok(Self {
            rx,
            what,
            demo,
            current: None,
            bytes: None,
        })
    }

    /// Take the job's messages; its result once it has ended.
    fn poll(&mut self) -> Option<Result<Loaded, String>> {
        loop {
            match self.rx.try_recv() {
                Ok(JobMsg::Start { name, index, count }) => {
                    self.current = Some((name, index, count));
                    self.bytes = None;
                }
                Ok(JobMsg::Bytes(d, t)) => self.bytes = Some((d, t)),
                Ok(JobMsg::Done(r)) => return Some(*r),
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Some(Err("the fetch thread ended without a result".into()));
                }
            }
        }
    }

    /// One line for the status bar.
    #[must_use]
    pub fn status(&self) -> String {
        let mut s = format!("fetching {}", self.what);
        if let Some((name, i, n)) = &self.current {
            s += &format!(": {name} ({}/{n})", i + 1);
        }
        if let Some((d, t)) = self.bytes {
            let kb = |b: u64| b as f64 / 1024.0;
            s += &match t {
                Some(t) => format!(", {:.0} of {:.0} KiB", kb(d), kb(t)),
                None => format!(", {:.0} KiB", kb(d)),
            };
        }
        s
    }
}

/// The settings of the real demo's fetch: short timeouts, so that without a network the
/// synthetic star appears within seconds.
#[must_use]
pub fn demo_config(base: &FetchConfig) -> FetchConfig {
    FetchConfig {
        connect_timeout: base.connect_timeout.min(Duration::from_secs(3)),
        read_timeout: base.read_timeout.min(Duration::from_secs(20)),
        retries: base.retries.min(1),
        ..base.clone()
    }
}

/// The fields of the fetch dialog.
#[derive(Clone, Debug)]
pub struct FetchDialog {
    /// Shown.
    pub open: bool,
    /// APOGEE id.
    pub apogee_id: String,
    /// Release.
    pub release: Release,
    /// Get the apStar.
    pub apstar: bool,
    /// Get the apVisit files.
    pub apvisit: bool,
    /// Visits PLATE-MJD-FIBER, separated by spaces or commas (empty: from the apStar).
    pub visits: String,
    /// Telescope.
    pub telescope: String,
    /// Field (DR17, DR19).
    pub field: String,
    /// Location id (DR13).
    pub location_id: String,
    /// An allVisit file whose rows give the visits.
    pub all_visit: String,
    /// The last error of the dialog.
    pub error: Option<String>,
}

impl Default for FetchDialog {
    fn default() -> Self {
        Self {
            open: false,
            apogee_id: String::new(),
            release: Release::Dr17,
            apstar: true,
            apvisit: true,
            visits: String::new(),
            telescope: "apo25m".into(),
            field: String::new(),
            location_id: String::new(),
            all_visit: String::new(),
            error: None,
        }
    }
}

impl FetchDialog {
    /// The query the fields describe.
    pub fn query(&self) -> Result<StarQuery, FetchError> {
        let id = self.apogee_id.trim();
        if id.is_empty() {
            return Err(FetchError::Usage("give the star's APOGEE id".into()));
        }
        let mut q = StarQuery::new(self.release, id);
        q.products.clear();
        if self.apstar {
            q.products.push(Product::ApStar);
        }
        if self.apvisit {
            q.products.push(Product::ApVisit);
        }
        if q.products.is_empty() {
            return Err(FetchError::Usage("choose apStar, apVisit or both".into()));
        }
        for (k, v) in [
            ("telescope", &self.telescope),
            ("field", &self.field),
            ("location_id", &self.location_id),
        ] {
            if !v.trim().is_empty() {
                q.values.set(k, v.trim());
            }
        }
        for v in self
            .visits
            .split([' ', ',', ';', '\n'])
            .filter(|s| !s.trim().is_empty())
        {
            q.visits.push(VisitRef::parse(v)?);
        }
        if !self.all_visit.trim().is_empty() {
            q.add_all_visit_rows(std::path::Path::new(self.all_visit.trim()))?;
        }
        Ok(q)
    }
}

impl FrizzApp {
    /// Start the real APOGEE demo in the background (the window stays responsive; see
    /// [`Self::poll_fetch`]).
    pub(crate) fn start_real_demo(&mut self) {
        let q = star::real_demo_query();
        let cfg = demo_config(&self.fetch_config);
        let what = format!("the real APOGEE star {}", star::REAL_DEMO_ID);
        match Templates::from_env()
            .map_err(|e| e.to_string())
            .and_then(|t| FetchJob::spawn(q, t, cfg, what, true).map_err(|e| e.to_string()))
        {
            Ok(job) => {
                self.report_info(format!("{}…", job.status()));
                self.fetch_job = Some(job);
            }
            Err(e) => self.real_demo_failed(&e),
        }
    }

    fn real_demo_failed(&mut self, why: &str) {
        self.open_demo(Demo::Apogee);
        self.report_error(format!(
            "showing the SYNTHETIC APOGEE-like star: the real APOGEE demo star could not be \
             fetched ({why}). Set SAS_BASE_DIR to a local SDSS mirror, or check the network"
        ));
    }

    /// Whether a fetch is running.
    #[must_use]
    pub fn is_fetching(&self) -> bool {
        self.fetch_job.is_some()
    }

    /// Take the fetch job's progress; open its files (or fall back) when it has ended.
    pub fn poll_fetch(&mut self) {
        let Some(job) = &mut self.fetch_job else {
            return;
        };
        let Some(result) = job.poll() else {
            return;
        };
        let demo = job.demo;
        self.fetch_job = None;
        match result {
            Ok(Loaded {
                mut data,
                paths,
                notes,
                origins,
            }) => {
                let n = data.visits.len();
                if demo {
                    data.name = format!("{} (real SDSS DR13, {n} visits)", star::REAL_DEMO_ID);
                    self.set_dataset(data, paths, Some(Demo::ApogeeReal));
                } else {
                    self.set_dataset(data, paths, None);
                }
                for note in notes {
                    self.report_info(note);
                }
                self.report_info(format!("opened {n} visit(s) ({origins})"));
            }
            Err(e) if demo => self.real_demo_failed(&e),
            Err(e) => self.report_error(format!("fetch failed: {e}")),
        }
    }

    /// The fetch dialog (a window over the others) and the job's repaints.
    pub(crate) fn fetch_ui(&mut self, ctx: &egui::Context) {
        if self.fetch_job.is_some() {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        if !self.fetch_dialog.open {
            return;
        }
        let mut open = true;
        let mut start = false;
        egui::Window::new("Fetch a star's files")
            .open(&mut open)
            .resizable(false)
            .show(ctx, |ui| {
                let d = &mut self.fetch_dialog;
                egui::Grid::new("fetch-grid").num_columns(2).show(ui, |ui| {
                    text_row(
                        ui,
                        "APOGEE id",
                        &mut d.apogee_id,
                        "2MASS style, e.g. 2M00005143+5615568",
                    );
                    ui.label("release");
                    ui.horizontal(|ui| {
                        for r in Release::ALL {
                            ui.selectable_value(&mut d.release, r, r.name());
                        }
                    });
                    ui.end_row();
                    ui.label("files");
                    ui.horizontal(|ui| {
                        ui.checkbox(&mut d.apvisit, "apVisit");
                        ui.checkbox(&mut d.apstar, "apStar");
                    });
                    ui.end_row();
                    text_row(
                        ui,
                        "visits",
                        &mut d.visits,
                        "PLATE-MJD-FIBER, e.g. 5094-55874-088; empty: the visits the apStar lists",
                    );
                    text_row(
                        ui,
                        "allVisit file",
                        &mut d.all_visit,
                        "optional: the star's rows give field, plate, MJD, fibre",
                    );
                    text_row(ui, "telescope", &mut d.telescope, "apo25m, lco25m or apo1m");
                    text_row(ui, "field (DR17, DR19)", &mut d.field, "e.g. N7789");
                    text_row(ui, "location id (DR13)", &mut d.location_id, "e.g. 4264");
                });
                let cfg = &self.fetch_config;
                ui.label(
                    egui::RichText::new(format!(
                        "mirror: {}\ncache: {}\ndownloads from: {}",
                        cfg.mirror.as_ref().map_or_else(
                            || "none (SAS_BASE_DIR)".into(),
                            |m| m.display().to_string()
                        ),
                        cfg.cache_dir.display(),
                        cfg.base_url
                    ))
                    .small(),
                );
                if let Some(e) = &d.error {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                let busy = self.fetch_job.is_some();
                if ui
                    .add_enabled(!busy, egui::Button::new("Fetch and open"))
                    .clicked()
                {
                    start = true;
                }
            });
        self.fetch_dialog.open = open;
        if start {
            self.start_dialog_fetch();
        }
    }

    fn start_dialog_fetch(&mut self) {
        let d = &self.fetch_dialog;
        let what = format!("{} ({})", d.apogee_id.trim(), d.release);
        let job = d
            .query()
            .and_then(|q| Templates::from_env().map(|t| (q, t)))
            .map_err(|e| e.to_string())
            .and_then(|(q, t)| {
                FetchJob::spawn(q, t, self.fetch_config.clone(), what, false)
                    .map_err(|e| e.to_string())
            });
        match job {
            Ok(job) => {
                self.fetch_dialog.error = None;
                self.fetch_dialog.open = false;
                self.fetch_job = Some(job);
            }
            Err(e) => self.fetch_dialog.error = Some(e),
        }
    }
}

/// One labelled text field of the dialog's grid.
fn text_row(ui: &mut egui::Ui, label: &str, value: &mut String, hint: &str) {
    let l = ui.label(label);
    ui.text_edit_singleline(value)
        .labelled_by(l.id)
        .on_hover_text(hint);
    ui.end_row();
}

/// "3 from the cache, 1 downloaded" for the status message.
fn summary(files: &StarFiles) -> String {
    let count = |f: fn(&Origin) -> bool| files.files.iter().filter(|x| f(&x.origin)).count();
    let parts = [
        (count(|o| *o == Origin::Mirror), "from the local mirror"),
        (count(|o| *o == Origin::Cache), "from the cache"),
        (
            count(|o| matches!(o, Origin::Downloaded { .. })),
            "downloaded",
        ),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} file(s) {w}"))
        .collect::<Vec<_>>()
        .join(", ")
}
