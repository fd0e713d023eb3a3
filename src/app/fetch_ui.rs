//! "Fetch a star's files": the dialog, and the background job that finds or downloads the files
//! (also behind the real APOGEE demo). The job runs on its own thread; the status bar shows its
//! progress; when it ends, the files are opened (or, for the demo, the synthetic star is shown
//! with a message saying why the real one could not be had).

use std::sync::mpsc;

use eframe::egui;

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

/// A fetched star, read on the job's thread.
pub struct Loaded {
    /// The data set.
    pub data: crate::model::Dataset,
    /// The files it was read from.
    pub paths: Vec<std::path::PathBuf>,
    /// Notes for the status bar.
    pub notes: Vec<String>,
    /// Where the files came from, in words.
    pub origins: String,
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
    pub fn poll(&mut self) -> Option<Result<Loaded, String>> {
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

impl FetchDialog {
    /// The dialog (a window over the others) while it is open; true when "Fetch and open" was
    /// clicked (the window then starts [`FetchJob`] on [`FetchDialog::query`]). `cfg` is shown;
    /// `busy` (a fetch is running) disables the button.
    pub fn ui(&mut self, ctx: &egui::Context, cfg: &FetchConfig, busy: bool) -> bool {
        if !self.open {
            return false;
        }
        let mut open = true;
        let mut start = false;
        egui::Window::new("Fetch a star's files")
            .open(&mut open)
            .resizable(false)
            .show(ctx, |ui| {
                let d = &mut *self;
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
                if ui
                    .add_enabled(!busy, egui::Button::new("Fetch and open"))
                    .clicked()
                {
                    start = true;
                }
            });
        self.open = open;
        start
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
