//! Reading many files and folders into one dataset: the readers of [`crate::io::registry`] for the
//! visits, companion files (an apStar, an allVisit table) matched to them, and the check that the
//! visits are of one object.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::error::{LoadError, LoadErrorKind};
use crate::io::reader::{CompanionTable, Format, Reader};
use crate::io::readers::apcframe;
use crate::io::registry::Registry;
use crate::io::survey::survey_rv;
use crate::model::{Dataset, Survey};

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
    Registry::builtin().load_paths(paths, opts)
}

impl Registry {
    /// [`load_paths`] with this registry's readers.
    pub fn load_paths(&self, paths: &[PathBuf], opts: &LoadOptions) -> Result<Dataset, LoadError> {
        load_paths_with(self, paths, opts)
    }
}

fn load_paths_with(
    reg: &Registry,
    paths: &[PathBuf],
    opts: &LoadOptions,
) -> Result<Dataset, LoadError> {
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
    let formats = reg.detect_all(&files)?;
    let is_companion = |r: &dyn Reader| r.is_companion();
    let plain_single = files.len() == 1 && opts.exposures.is_none() && opts.star.is_none();
    if plain_single || formats.iter().all(|r| is_companion(*r)) {
        return match files
            .iter()
            .zip(&formats)
            .find(|(_, r)| r.format() == Format::ApStar)
        {
            Some((p, _)) if files.len() > 1 => Err(LoadError::new(
                p,
                LoadErrorKind::Unrecognised(
                    "an apStar file with no apVisit file beside it: open it alone to inspect its \
                     resampled visits, or give it with its apVisit files"
                        .into(),
                ),
            )),
            _ => reg.load_file(&first),
        };
    }
    // apCframe files are chips of exposures: read together, for one star. With `--exposures`,
    // each visit file is replaced by the raw exposures behind it.
    let is_cframe =
        |p: &PathBuf, r: &dyn Reader| !is_companion(r) && apcframe::parse_name(p).is_some();
    let cframes: Vec<PathBuf> = files
        .iter()
        .zip(&formats)
        .filter(|(p, r)| is_cframe(p, **r))
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
            None => reg.load_file(f),
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
            if !fmt.is_companion() {
                continue;
            }
            let CompanionTable {
                velocities: table,
                coadd,
            } = fmt.read_companion(f)?;
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
