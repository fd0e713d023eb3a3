//! Readers and writers. Nothing here imports egui.
//!
//! - [`load_file`] / [`load_paths`]: read any supported input into a [`Dataset`], detecting the
//!   format from the content ([`detect`]): `.npz` bundles ([`npz`]), APOGEE apVisit ([`apvisit`]),
//!   APOGEE apStar ([`apstar`]: alone, its resampled visits; beside apVisit files, their
//!   velocities and reference curve), allVisit summaries beside apVisit files ([`survey_rv`]),
//!   BOSS spec files ([`boss`]), generic FITS tables/images and CSV/TSV ([`table`]).
//! - Writers: the frizzview dataset bundle ([`npz::write_dataset`]), results as `.npz` / `.csv`
//!   (`crate::export`) and as an apStar-like FITS file (`crate::export::fits`). Every write is atomic and
//!   refuses to overwrite an input file ([`atomic`]).
//!
//! `fitsio::FitsFile` is not `Send`: it never leaves the function that opened it.

pub mod allvisit;
pub mod apcframe;
pub mod apogee_names;
pub mod apstar;
pub mod apvisit;
pub mod atomic;
pub mod boss;
pub mod detect;
pub mod error;
pub(crate) mod fits;
pub(crate) mod fits_disk;
mod fits_layout;
pub mod gz;
pub mod lamost;
pub mod mwm;
pub mod npz;
pub mod sdss_layouts;
pub mod survey_rv;
pub mod table;
pub mod write_layouts;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use detect::{Format, detect_format};
pub use error::{LoadError, LoadErrorKind, SaveError};
pub use fits::{ReadSandbox, preflight, set_read_sandbox};

use crate::model::{Dataset, Survey};

/// How many reader panics the FITS guard has caught in this process: each one is a bug (see
/// [`LoadErrorKind::ReaderBug`]). The fuzz tests check it stays 0.
#[must_use]
pub fn guarded_panics() -> usize {
    fits::GUARDED_PANICS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Run `read` behind the readers' panic guard, as every FITS reader runs: a panic inside becomes
/// a [`LoadErrorKind::ReaderBug`] error naming `path` (and is counted by [`guarded_panics`]).
/// Public so that tests can show a panic behind the guard is seen.
pub fn run_guarded<T>(
    path: &Path,
    read: impl FnOnce() -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    fits::guard(path, read)
}

/// Check that `path` is structurally a FITS file: every HDU's header ends and its declared data lie
/// inside the file (used to verify downloads before they are cached).
pub fn check_fits_structure(path: &Path) -> Result<(), LoadError> {
    fits_layout::check(path)
}

/// Options of [`load_paths`].
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Combine visits of different objects (OBJID) anyway.
    pub force: bool,
    /// apCframe inputs: the star to read (APOGEE id, CATALOGID, or fibre).
    pub star: Option<apcframe::StarSelector>,
    /// Read the raw exposures (apCframe files in this folder) behind each apVisit given, instead
    /// of the apVisit itself.
    pub exposures: Option<PathBuf>,
}

/// Read one file (any supported format).
pub fn load_file(path: &Path) -> Result<Dataset, LoadError> {
    match detect_format(path)? {
        Format::Npz => npz::read_bundle(path),
        Format::ApVisit => apvisit::read(path),
        Format::ApStar => apstar::read_alone(path),
        Format::AllVisit => Err(LoadError::new(
            path,
            LoadErrorKind::Unrecognised(
                "an allVisit summary (per-visit velocities, no spectra): give it with the apVisit \
                 files, or as --visits-table"
                    .into(),
            ),
        )),
        Format::BossSpec => boss::read(path),
        Format::ApCframe => apcframe::read_exposures(&[path.to_path_buf()], None),
        Format::MwmVisit => mwm::read(path),
        Format::LamostMrs => lamost::read(path),
        Format::FitsTable => table::read_fits(path),
        Format::Text => table::read_text(path),
    }
}

/// Files of a folder that look like inputs (by extension), sorted by name.
fn folder_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let rd = std::fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| LoadError::io(dir, e))?.path();
        let name = p
            .file_name()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let ext = name.rsplit('.').next().unwrap_or_default();
        let fits_gz = [".fits.gz", ".fit.gz", ".fts.gz"]
            .iter()
            .any(|s| name.ends_with(s));
        if p.is_file() && (fits_gz || matches!(ext, "fits" | "fit" | "fts" | "npz" | "csv" | "tsv"))
        {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(LoadError::new(
            dir,
            LoadErrorKind::Unrecognised("the folder has no .fits, .npz, .csv or .tsv file".into()),
        ));
    }
    Ok(out)
}

/// Read many files and folders into one dataset (visits concatenated in the given order).
///
/// Visits that name different objects are refused unless `opts.force`; with it, each visit of an
/// object other than the majority's is named in [`Dataset::load_warnings`]. A folder contributes
/// its `.fits`/`.fits.gz`/`.npz`/`.csv`/`.tsv` files in name order.
///
/// Companion files (an apStar, an allVisit table) are matched to the visits by what identifies a
/// visit ([`crate::model::VisitMeta::identity`]: telescope, plate or field, MJD, fibre, from each
/// visit's header), then by file name, so renamed files work. Visits a companion does not describe
/// and its rows of this star whose visit was not given are load warnings; a companion that matches
/// nothing and is not of the visits' star is refused, naming both sides.
pub fn load_paths(paths: &[PathBuf], opts: &LoadOptions) -> Result<Dataset, LoadError> {
    let mut files = Vec::new();
    let mut from_folders = Vec::new();
    for p in paths {
        if p.is_dir() {
            from_folders.extend(folder_files(p)?);
        } else {
            files.push(p.clone());
        }
    }
    // A folder opened for one star of its apCframes (`--star`/`--fiber`) contributes only those:
    // the visit folder also holds apVisit and other files of many stars.
    if opts.star.is_some()
        && from_folders
            .iter()
            .any(|p| apcframe::parse_name(p).is_some())
    {
        from_folders.retain(|p| apcframe::parse_name(p).is_some());
    }
    files.extend(from_folders);
    let Some(first) = files.first().cloned() else {
        return Err(LoadError::new(
            Path::new(""),
            LoadErrorKind::Unrecognised("no input file given".into()),
        ));
    };
    // Survey files that describe the visits (an apStar, an allVisit table) are companions when
    // visit files come with them: they add velocities and the reference curve, not visits.
    let formats = files
        .iter()
        .map(|f| detect_format(f))
        .collect::<Result<Vec<_>, _>>()?;
    let is_companion = |f: Format| matches!(f, Format::ApStar | Format::AllVisit);
    let plain_single = files.len() == 1 && opts.exposures.is_none() && opts.star.is_none();
    if plain_single || formats.iter().all(|f| is_companion(*f)) {
        return match files
            .iter()
            .zip(&formats)
            .find(|(_, f)| **f == Format::ApStar)
        {
            Some((p, _)) if files.len() > 1 => Err(LoadError::new(
                p,
                LoadErrorKind::Unrecognised(
                    "an apStar file with no apVisit file beside it: open it alone to inspect its \
                     resampled visits, or give it with its apVisit files"
                        .into(),
                ),
            )),
            _ => load_file(&first),
        };
    }
    // apCframe files are chips of exposures: read together, for one star. With `--exposures`,
    // each visit file is replaced by the raw exposures behind it.
    let is_cframe = |p: &PathBuf, f: Format| !is_companion(f) && apcframe::parse_name(p).is_some();
    let cframes: Vec<PathBuf> = files
        .iter()
        .zip(&formats)
        .filter(|(p, f)| is_cframe(p, **f))
        .map(|(p, _)| p.clone())
        .collect();
    let mut parts: Vec<Result<Dataset, LoadError>> = Vec::new();
    if !cframes.is_empty() {
        parts.push(apcframe::read_exposures(&cframes, opts.star.as_ref()));
    }
    for (f, fmt) in files.iter().zip(&formats) {
        if is_companion(*fmt) || is_cframe(f, *fmt) {
            continue;
        }
        parts.push(match &opts.exposures {
            Some(dir) => apcframe::read_behind_visit(f, dir, opts.star.as_ref()),
            None => load_file(f),
        });
    }
    let mut out: Option<Dataset> = None;
    for d in parts {
        let d = d?;
        out = Some(match out {
            None => d,
            Some(mut acc) => {
                if acc.survey != d.survey {
                    acc.survey = Survey::Generic;
                }
                acc.visits.extend(d.visits.iter().map(Arc::clone));
                if acc.input_grid.is_none() {
                    acc.input_grid = d.input_grid;
                }
                if acc.truth.is_none() {
                    acc.truth = d.truth;
                }
                if acc.pipeline_coadd.is_none() {
                    acc.pipeline_coadd = d.pipeline_coadd;
                }
                acc.load_warnings.extend(d.load_warnings);
                acc
            }
        });
    }
    if let Some(data) = &mut out {
        for (f, fmt) in files.iter().zip(&formats) {
            let (table, coadd) = match fmt {
                Format::ApStar => {
                    let c = apstar::read_companion(f)?;
                    (c.velocities, Some(c.coadd))
                }
                Format::AllVisit => (survey_rv::read_allvisit(f)?, None),
                _ => continue,
            };
            if attach_companion(data, f, &table)?
                && let Some(c) = coadd
            {
                data.pipeline_coadd = Some(c);
            }
        }
    }
    let mut data = out.ok_or_else(|| LoadError::missing(&first, "data"))?;
    check_objects(&mut data, &first, opts)?;
    Ok(data)
}

/// The file name of `p`, for messages.
fn file_label(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A list for a message: the first `max` items, then how many more.
fn short_list(items: &[String], max: usize) -> String {
    let mut s = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > max {
        s.push_str(&format!(", and {} more", items.len() - max));
    }
    s
}

/// How a visit is named in a message: its name and, when known, its identity.
fn visit_label(v: &crate::model::Visit) -> String {
    match &v.meta.identity {
        Some(id) => format!("{} ({})", v.meta.name, id.label()),
        None => v.meta.name.clone(),
    }
}

/// The objects the visits are of, most frequent first (ties in order of appearance), with counts.
fn objects_by_count(visits: &[Arc<crate::model::Visit>]) -> Vec<(String, usize)> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for v in visits {
        if let Some(o) = v
            .meta
            .object
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            match seen.iter_mut().find(|(s, _)| s == o) {
                Some(slot) => slot.1 += 1,
                None => seen.push((o.to_owned(), 1)),
            }
        }
    }
    // A stable sort keeps the first-seen order among equal counts.
    seen.sort_by_key(|s| std::cmp::Reverse(s.1));
    seen
}

/// Match a companion file's rows (an apStar's visit list, an allVisit table) to the visits of
/// `data` by what identifies each visit (telescope, plate or field, MJD, fibre), then by file name,
/// and store the velocities on the matched visits. Visits the companion does not describe, and
/// its rows (of this star) whose visit was not given, become load warnings. Returns whether the
/// companion describes this star (so its coadd may be used).
///
/// Refused only when nothing matches and the companion is not positively of the same star (an
/// apStar of another star, an allVisit without this star's visits): the message names both sides.
fn attach_companion(
    data: &mut Dataset,
    path: &Path,
    table: &survey_rv::VelocityTable,
) -> Result<bool, LoadError> {
    let is_apstar = table.kind == crate::model::VelocityKind::ApStar;
    let fname = file_label(path);
    let matches = table.match_visits(&data.visits);
    let n_matched = matches.iter().filter(|m| m.is_some()).count();
    let objects = objects_by_count(&data.visits);
    let same_object = |o: &str| {
        objects
            .iter()
            .any(|(s, _)| s.eq_ignore_ascii_case(o.trim()))
    };
    // Rows of the visits' star (all rows when the companion does not say whose they are).
    let of_star = |r: &survey_rv::VisitVelocity| {
        r.object
            .as_deref()
            .or(table.star.as_deref())
            .is_none_or(same_object)
    };
    let same_star = table.star.as_deref().is_some_and(same_object)
        || table
            .rows
            .iter()
            .any(|r| r.object.as_deref().is_some_and(same_object));
    if n_matched == 0 && !same_star {
        let listed: Vec<String> = table.rows.iter().map(|r| r.label()).collect();
        let companion = match (&table.star, is_apstar) {
            (Some(s), _) => format!("it is the apStar of {s}"),
            (None, true) => "it names no star (no OBJID card)".to_owned(),
            (None, false) => {
                let mut ids: Vec<&str> = table
                    .rows
                    .iter()
                    .filter_map(|r| r.object.as_deref())
                    .collect();
                ids.dedup();
                if ids.is_empty() {
                    "its rows name no star".to_owned()
                } else {
                    format!(
                        "its rows are of {}",
                        ids.iter().take(4).copied().collect::<Vec<_>>().join(", ")
                    )
                }
            }
        };
        let given: Vec<String> = data.visits.iter().map(|v| visit_label(v)).collect();
        let of = if objects.is_empty() {
            "no object given".to_owned()
        } else {
            objects
                .iter()
                .map(|(o, _)| o.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(LoadError::new(
            path,
            LoadErrorKind::Unrecognised(format!(
                "lists visit files ({}) none of which was given: {companion}; the visits given are \
                 of {of}: {}",
                short_list(&listed, 8),
                short_list(&given, 8)
            )),
        ));
    }
    table.store(data, &matches);
    let what = if is_apstar { "the apStar" } else { "the table" };
    let unmatched: Vec<String> = data
        .visits
        .iter()
        .zip(&matches)
        .filter(|(_, m)| m.is_none())
        .map(|(v, _)| visit_label(v))
        .collect();
    if !unmatched.is_empty() {
        let why = if is_apstar {
            "the pipeline left them out of its combination (or they are another star's), so \
             they have no apStar velocity"
        } else {
            "they have no velocity from it"
        };
        data.load_warnings.push(format!(
            "{fname} does not list {} of the {} visits given: {}; {why}",
            unmatched.len(),
            data.visits.len(),
            short_list(&unmatched, 20)
        ));
    }
    let mut used = vec![false; table.rows.len()];
    for (i, _) in matches.iter().flatten() {
        if let Some(u) = used.get_mut(*i) {
            *u = true;
        }
    }
    let missing: Vec<String> = table
        .rows
        .iter()
        .zip(&used)
        .filter(|(r, u)| !**u && of_star(r))
        .map(|(r, _)| match &r.identity {
            Some(id) if !r.file.is_empty() => format!("{} ({})", r.file, id.label()),
            _ => r.label(),
        })
        .collect();
    if !missing.is_empty() {
        data.load_warnings.push(format!(
            "{fname} lists {} visit(s) of this star that were not given (matched by telescope, \
             plate, MJD and fibre, then by file name): {}; {what}'s figures include them",
            missing.len(),
            short_list(&missing, 20)
        ));
    }
    Ok(same_star || n_matched > 0)
}

/// Refuse visits of different objects unless forced; when forced, name in a load warning each
/// visit whose object differs from the majority's (the first-seen object among equals).
fn check_objects(data: &mut Dataset, first: &Path, opts: &LoadOptions) -> Result<(), LoadError> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for v in &data.visits {
        if let Some(o) = &v.meta.object {
            let o = o.trim().to_owned();
            if !seen.iter().any(|(s, _)| *s == o) {
                let src = v
                    .meta
                    .source
                    .as_ref()
                    .map_or_else(|| v.meta.name.clone(), |p| p.display().to_string());
                seen.push((o, src));
            }
        }
    }
    if seen.len() <= 1 {
        return Ok(());
    }
    if !opts.force {
        let list = seen
            .iter()
            .map(|(o, s)| format!("{o} ({s})"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(LoadError::new(first, LoadErrorKind::MixedObjects(list)));
    }
    let objects = objects_by_count(&data.visits);
    let Some((major, n_major)) = objects.first().cloned() else {
        return Ok(());
    };
    let n_with = objects.iter().map(|(_, n)| n).sum::<usize>();
    for v in &data.visits {
        if let Some(o) = v.meta.object.as_deref().map(str::trim)
            && o != major
        {
            data.load_warnings.push(format!(
                "visit {} is of object {o}, not {major} like {n_major} of the {n_with} visits: \
                 combined anyway (objects may be mixed); its lines are another star's",
                visit_label(v)
            ));
        }
    }
    Ok(())
}
