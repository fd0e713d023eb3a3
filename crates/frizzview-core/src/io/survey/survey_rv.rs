//! Per-visit velocities from the survey's other files: an apStar file's per-visit cards, an
//! allVisit summary table, or (through [`VelocityTable`]) any other source such as an mwmVisit
//! file. Each becomes its own shift source ([`crate::settings::ShiftSource`]).
//!
//! The velocity names changed meaning between releases (`sdss/apogee_drp`
//! `python/apogee_drp/apred/rv.py`; DR17 and DR19 data-model pages):
//!
//! | release | topocentric (shift to the star's rest frame) | barycentric |
//! |---|---|---|
//! | DR13-DR17 | apStar `VRADn`, allVisit `VREL`, apVisit `VRAD` | `VHELIOn`, `VHELIO` = VRAD + BC |
//! | DR19, DR20 | apStar `VRELn`, allVisit `vrel` | apStar `VRADn`, allVisit `vrad` = vrel + bc |
//!
//! The release is read from the `APRED` card or the file name's apred token
//! ([`super::apogee_names`]), else from which cards exist (`VRELn` only in SDSS-V apStar files,
//! `VHELIOn` only in SDSS-IV ones). What is stored on each visit is always the topocentric velocity,
//! under the source's own [`VelocityKind`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::apogee_names::{self, Release};
use crate::io::error::LoadError;
use crate::io::fits::{self, HduDesc};
use crate::model::{Dataset, VelocityKind, Visit, VisitIdentity};

/// One visit's velocity from a survey file.
#[derive(Clone, Debug, PartialEq)]
pub struct VisitVelocity {
    /// The visit file's name as the source lists it (matched by [`apogee_names::same_file`]).
    pub file: String,
    /// The star's velocity relative to the observer (topocentric), km/s.
    pub vrel_kms: f64,
    /// The barycentric correction, km/s, when the source gives it.
    pub bc_kms: Option<f64>,
    /// Which card or column the velocity came from (e.g. "VRAD2", "vrel").
    pub from: String,
    /// For sources that list no file name (mwmVisit): the visit's (plate, MJD, fibre), matched
    /// against the visit file's name.
    pub visit_key: Option<(String, u32, u32)>,
    /// What identifies the visit the row describes (telescope, plate or field, MJD, fibre: from the
    /// table's columns, or parsed from the file name an apStar lists), matched against each
    /// visit's [`crate::model::VisitMeta::identity`] before any file name.
    pub identity: Option<VisitIdentity>,
    /// The object the row belongs to (allVisit `APOGEE_ID`, the apStar's `OBJID`), when known.
    pub object: Option<String>,
}

impl VisitVelocity {
    /// How the row is named in messages: its file name, else its identity.
    #[must_use]
    pub fn label(&self) -> String {
        if !self.file.is_empty() {
            return self.file.clone();
        }
        self.identity
            .as_ref()
            .map_or_else(|| self.from.clone(), VisitIdentity::label)
    }
}

/// How a companion row was matched to a visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchedBy {
    /// By what identifies the visit (telescope, plate or field, MJD, fibre).
    Identity,
    /// By the visit file's name (the identity being unknown on one side, not different).
    FileName,
}

/// The identity an APOGEE visit file name states (plate, MJD, fibre; the telescope from the name,
/// else `telescope`), `None` for names that state no MJD.
#[must_use]
pub fn identity_from_name(file: &str, telescope: Option<&str>) -> Option<VisitIdentity> {
    let n = apogee_names::parse(file)?;
    if !n.product.eq_ignore_ascii_case("visit") {
        return None;
    }
    n.mjd?;
    Some(VisitIdentity::new(
        n.telescope.as_deref().or(telescope),
        None,
        n.plate.as_deref(),
        n.mjd,
        n.fiber,
    ))
}

/// Whether a row designates the visit file called `file`.
fn row_matches(r: &VisitVelocity, file: &str) -> bool {
    if !r.file.is_empty() {
        return apogee_names::same_file(&r.file, file);
    }
    let (Some((plate, mjd, fiber)), Some(n)) = (&r.visit_key, apogee_names::parse(file)) else {
        return false;
    };
    n.mjd == Some(*mjd)
        && n.fiber == Some(*fiber)
        && n.plate.as_deref().map(|p| p.trim_start_matches('0'))
            == Some(plate.trim_start_matches('0'))
}

/// Per-visit velocities from one file.
#[derive(Clone, Debug, PartialEq)]
pub struct VelocityTable {
    /// The kind the velocities are stored under on the visits.
    pub kind: VelocityKind,
    /// The file they were read from.
    pub source: PathBuf,
    /// The release whose convention was applied.
    pub release: Release,
    /// Why that release (e.g. "APRED card '1.3'").
    pub release_from: String,
    /// The rows.
    pub rows: Vec<VisitVelocity>,
    /// The star the file is of (an apStar's `OBJID`), when it says.
    pub star: Option<String>,
}

/// The header card that records, on each matched visit, where its velocity of `kind` came from.
#[must_use]
pub fn provenance_card(kind: VelocityKind) -> String {
    format!("FV_V_{kind:?}").to_ascii_uppercase()
}

/// The file name a visit was read from.
fn visit_file(v: &Visit) -> Option<String> {
    v.meta
        .source
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|f| f.to_string_lossy().into_owned())
}

impl VelocityTable {
    /// Which row describes each visit (aligned with `visits`), and how it was matched: by identity
    /// ([`crate::model::VisitMeta::identity`] against the row's) first, then by file name where
    /// the identity is unknown on either side (never where both sides know it and it differs:
    /// a renamed file is matched by what it holds, not by the name it was given). Each row
    /// describes at most one visit.
    #[must_use]
    pub fn match_visits(&self, visits: &[Arc<Visit>]) -> Vec<Option<(usize, MatchedBy)>> {
        let mut out: Vec<Option<(usize, MatchedBy)>> = vec![None; visits.len()];
        let mut used = vec![false; self.rows.len()];
        let same = |v: &Visit, r: &VisitVelocity| match (&v.meta.identity, &r.identity) {
            (Some(a), Some(b)) => a.same_visit(b),
            _ => None,
        };
        for (k, v) in visits.iter().enumerate() {
            if let Some(i) =
                (0..self.rows.len()).find(|&i| !used[i] && same(v, &self.rows[i]) == Some(true))
            {
                used[i] = true;
                out[k] = Some((i, MatchedBy::Identity));
            }
        }
        for (k, v) in visits.iter().enumerate() {
            if out[k].is_some() {
                continue;
            }
            let Some(file) = visit_file(v) else {
                continue;
            };
            if let Some(i) = (0..self.rows.len()).find(|&i| {
                !used[i]
                    && same(v, &self.rows[i]) != Some(false)
                    && row_matches(&self.rows[i], &file)
            }) {
                used[i] = true;
                out[k] = Some((i, MatchedBy::FileName));
            }
        }
        out
    }

    /// Store the velocities on the matching visits of `data` ([`Self::match_visits`]: by
    /// identity, then by file name); returns how many visits matched. Visits are immutable, so
    /// matched ones are replaced by copies with the new metadata.
    pub fn apply(&self, data: &mut Dataset) -> usize {
        let matches = self.match_visits(&data.visits);
        self.store(data, &matches)
    }

    /// Store the velocities of the rows `matches` assigns ([`Self::match_visits`] of the same
    /// visits); returns how many visits got one.
    pub fn store(&self, data: &mut Dataset, matches: &[Option<(usize, MatchedBy)>]) -> usize {
        let mut n = 0;
        let src = self
            .source
            .file_name()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        for (v, m) in data.visits.iter_mut().zip(matches) {
            let Some((i, by)) = *m else {
                continue;
            };
            let Some(row) = self.rows.get(i) else {
                continue;
            };
            let mut meta = v.meta.clone();
            meta.set_velocity(self.kind, row.vrel_kms);
            meta.header
                .retain(|(k, _)| *k != provenance_card(self.kind));
            meta.header.push((
                provenance_card(self.kind),
                format!(
                    "{src} {}: {:.4} km/s topocentric ({} convention, {}; matched by {})",
                    row.from,
                    row.vrel_kms,
                    self.release.label(),
                    self.release_from,
                    match by {
                        MatchedBy::Identity => "telescope, plate, MJD and fibre",
                        MatchedBy::FileName => "file name",
                    }
                ),
            ));
            *v = Arc::new(v.with_meta(meta));
            n += 1;
        }
        n
    }
}

/// The release of a file: its APRED card, else its name's apred token.
fn release_of(
    f: &mut fitsio::FitsFile,
    prim: &fitsio::hdu::FitsHdu,
    path: &Path,
) -> Option<(Release, String)> {
    if let Some(a) = fits::key_string(f, prim, "APRED")
        && let Some(r) = Release::from_apred(&a)
    {
        return Some((r, format!("APRED card '{a}'")));
    }
    let name = path.file_name()?.to_string_lossy().into_owned();
    let apred = apogee_names::parse(&name)
        .map(|n| n.apred)
        .or_else(|| allvisit_apred(&name))?;
    Release::from_apred(&apred).map(|r| (r, format!("file name token '{apred}'")))
}

/// The apred token of an allVisit file name (`allVisit-dr17-synspec_rev1`, `allVisit-1.3-apo25m`).
fn allvisit_apred(name: &str) -> Option<String> {
    let s = apogee_names::stem(name);
    let rest = s
        .strip_prefix("allVisit-")
        .or_else(|| s.strip_prefix("allvisit-"))?;
    Some(rest.split_once('-').map_or(rest, |(a, _)| a).to_owned())
}

/// The per-visit velocities of an apStar file (its primary header's `SFILEn` with `VRADn`/`VRELn`,
/// `BCn`, `VHELIOn`), under [`VelocityKind::ApStar`].
pub(crate) fn apstar_velocities(
    f: &mut fitsio::FitsFile,
    path: &Path,
    hdus: &[HduDesc],
) -> Result<VelocityTable, LoadError> {
    let prim = &hdus
        .first()
        .ok_or_else(|| LoadError::missing(path, "HDU 0"))?
        .hdu;
    let nvisits = fits::key_f64(f, prim, "NVISITS")
        .ok_or_else(|| LoadError::missing(path, "card NVISITS of HDU 0"))?;
    if !(nvisits.is_finite() && nvisits >= 0.0 && nvisits.fract() == 0.0 && nvisits < 100_000.0) {
        return Err(LoadError::invalid(
            path,
            "card NVISITS of HDU 0",
            format!("holds {nvisits}, expected a visit count"),
        ));
    }
    let n = nvisits as usize;
    let by_cards = if fits::key_f64(f, prim, "VREL1").is_some() {
        Some((Release::SdssV, "a VREL1 card (SDSS-V only)".to_owned()))
    } else if fits::key_f64(f, prim, "VHELIO1").is_some() {
        Some((Release::SdssIv, "a VHELIO1 card (SDSS-IV only)".to_owned()))
    } else {
        None
    };
    let (release, release_from) = release_of(f, prim, path).or(by_cards).ok_or_else(|| {
        LoadError::invalid(
            path,
            "HDU 0",
            "no APRED card, no release in the file name and neither VREL1 nor VHELIO1: \
             cannot tell whether VRADn is topocentric (DR13-DR17) or barycentric (DR19+)",
        )
    })?;
    // The telescope of the visits the SFILEn name without one: the apStar's own name, else (only
    // before SDSS-V, whose writer puts apo25m in TELESCOP at every site) its TELESCOP card.
    let star_telescope = path
        .file_name()
        .and_then(|n| apogee_names::parse(&n.to_string_lossy()))
        .and_then(|n| n.telescope)
        .or_else(|| match release {
            Release::SdssIv => fits::key_string(f, prim, "TELESCOP").filter(|t| !t.is_empty()),
            Release::SdssV => None,
        });
    let star = fits::key_string(f, prim, "OBJID").filter(|s| !s.is_empty());
    let mut rows = Vec::with_capacity(n);
    for i in 1..=n {
        let card = |k: &str| format!("{k}{i}");
        let file = fits::key_string(f, prim, &card("SFILE"))
            .ok_or_else(|| LoadError::missing(path, format!("card {} of HDU 0", card("SFILE"))))?;
        let mut identity = identity_from_name(&file, star_telescope.as_deref());
        if let Some(id) = &mut identity
            && id.fiber.is_none()
            && let Some(fb) = fits::key_f64(f, prim, &card("FIBER"))
                .filter(|v| v.is_finite() && *v >= 0.0 && v.fract() == 0.0 && *v < 1e6)
        {
            id.fiber = Some(fb as u32);
        }
        let get = |f: &mut fitsio::FitsFile, k: &str| {
            fits::key_f64(f, prim, &card(k)).filter(|v| v.is_finite())
        };
        let bc = get(f, "BC");
        let (vrel, from) = match release {
            Release::SdssIv => match (get(f, "VRAD"), get(f, "VHELIO"), bc) {
                (Some(v), _, _) => (v, card("VRAD")),
                (None, Some(h), Some(b)) => (h - b, format!("{} - {}", card("VHELIO"), card("BC"))),
                _ => {
                    return Err(LoadError::missing(
                        path,
                        format!("card {} of HDU 0", card("VRAD")),
                    ));
                }
            },
            Release::SdssV => match (get(f, "VREL"), get(f, "VRAD"), bc) {
                (Some(v), _, _) => (v, card("VREL")),
                (None, Some(r), Some(b)) => (r - b, format!("{} - {}", card("VRAD"), card("BC"))),
                _ => {
                    return Err(LoadError::missing(
                        path,
                        format!("card {} of HDU 0", card("VREL")),
                    ));
                }
            },
        };
        rows.push(VisitVelocity {
            file,
            vrel_kms: vrel,
            bc_kms: bc,
            from,
            visit_key: None,
            identity,
            object: star.clone(),
        });
    }
    Ok(VelocityTable {
        kind: VelocityKind::ApStar,
        source: path.to_path_buf(),
        release,
        release_from,
        rows,
        star,
    })
}

/// Whether a FITS table's columns look like an allVisit summary (`FILE` and `VREL`, any case).
pub(crate) fn looks_like_allvisit(hdus: &[HduDesc]) -> bool {
    hdus.iter().skip(1).any(|d| {
        d.table().is_some_and(|(cols, _)| {
            let has = |n: &str| cols.iter().any(|c| c.0.eq_ignore_ascii_case(n));
            has("FILE") && has("VREL") && (has("APOGEE_ID") || has("MJD"))
        })
    })
}

/// Read an allVisit summary (DR17 upper-case or DR19 lower-case columns) into velocities under
/// [`VelocityKind::AllVisit`], one row per table row (matched to visits by `FILE`).
pub fn read_allvisit(path: &Path) -> Result<VelocityTable, LoadError> {
    fits::guard(path, || {
        let mut f = fits::open(path)?;
        let hdus = fits::hdus(&mut f, path)?;
        let Some(d) = hdus.iter().skip(1).find(|d| {
            d.table()
                .is_some_and(|(c, _)| c.iter().any(|c| c.0.eq_ignore_ascii_case("FILE")))
        }) else {
            return Err(LoadError::missing(
                path,
                "a table HDU with a FILE column (allVisit layout)",
            ));
        };
        let (cols, nrows) = d.table().unwrap_or_default();
        let col = |n: &str| {
            cols.iter()
                .find(|c| c.0.eq_ignore_ascii_case(n))
                .map(|c| c.0.clone())
        };
        let prim = &hdus[0].hdu;
        let lower = cols.iter().any(|c| c.0 == "file");
        let by_cols = if col("VHELIO").is_some() {
            Some((Release::SdssIv, "a VHELIO column (SDSS-IV only)".to_owned()))
        } else if lower {
            Some((
                Release::SdssV,
                "lower-case column names (SDSS-V)".to_owned(),
            ))
        } else {
            None
        };
        let (release, release_from) =
            release_of(&mut f, prim, path).or(by_cols).ok_or_else(|| {
                LoadError::invalid(
                    path,
                    d.label(),
                    "no APRED card, no release in the file name and no VHELIO column: cannot tell \
                 which release's velocity convention applies",
                )
            })?;
        let file_col = col("FILE").ok_or_else(|| LoadError::missing(path, "column FILE"))?;
        if nrows > 0 {
            fits::check_rows(&mut f, path, d)?;
        }
        let files: Vec<String> = d.hdu.read_col(&mut f, &file_col).map_err(|e| {
            LoadError::invalid(path, format!("column '{file_col}' of {}", d.label()), e)
        })?;
        let read = |f: &mut fitsio::FitsFile,
                    name: Option<String>|
         -> Result<Option<Vec<f64>>, LoadError> {
            name.map(|n| fits::column_f64(f, path, d, &n)).transpose()
        };
        let vrel = read(&mut f, col("VREL"))?;
        let bc = read(&mut f, col("BC"))?;
        let bary_name = match release {
            Release::SdssIv => col("VHELIO"),
            Release::SdssV => col("VRAD"),
        };
        let bary = read(&mut f, bary_name.clone())?;
        let vrel_name = col("VREL").unwrap_or_default();
        // What identifies each row's visit (allVisit TELESCOPE, FIELD, PLATE, MJD, FIBERID) and
        // whose it is (APOGEE_ID); columns a table lacks stay unknown.
        let text = |f: &mut fitsio::FitsFile, n: &str| super::allvisit::text_column(f, path, d, n);
        let (tel_c, field_c, plate_c) = (
            text(&mut f, "TELESCOPE")?,
            text(&mut f, "FIELD")?,
            text(&mut f, "PLATE")?,
        );
        let (mjd_c, fiber_c, id_c) = (
            text(&mut f, "MJD")?,
            text(&mut f, "FIBERID")?,
            text(&mut f, "APOGEE_ID")?,
        );
        let at = |c: &Option<Vec<String>>, i: usize| {
            c.as_ref()
                .and_then(|c| c.get(i))
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let whole = |s: Option<String>| -> Option<u32> {
            let v: f64 = s?.parse().ok()?;
            // 0 is a placeholder (MJD, fibre), not a value: the file name may say more.
            (v.is_finite() && v > 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX))
                .then_some(v as u32)
        };
        let mut rows = Vec::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            let b = bc
                .as_ref()
                .and_then(|c| c.get(i))
                .copied()
                .filter(|v| v.is_finite());
            let v = vrel
                .as_ref()
                .and_then(|c| c.get(i))
                .copied()
                .filter(|v| v.is_finite());
            let h = bary
                .as_ref()
                .and_then(|c| c.get(i))
                .copied()
                .filter(|v| v.is_finite());
            let (vrel_kms, from) = match (v, h, b) {
                (Some(v), _, _) => (v, vrel_name.clone()),
                (None, Some(h), Some(b)) => (
                    h - b,
                    format!("{} - BC", bary_name.clone().unwrap_or_default()),
                ),
                _ => continue,
            };
            let file = file.trim().to_owned();
            let named = identity_from_name(&file, None);
            let identity = VisitIdentity::new(
                at(&tel_c, i)
                    .as_deref()
                    .or(named.as_ref().and_then(|n| n.telescope.as_deref())),
                at(&field_c, i).as_deref(),
                at(&plate_c, i)
                    .as_deref()
                    .or(named.as_ref().and_then(|n| n.plate.as_deref())),
                whole(at(&mjd_c, i)).or(named.as_ref().and_then(|n| n.mjd)),
                whole(at(&fiber_c, i)).or(named.as_ref().and_then(|n| n.fiber)),
            );
            rows.push(VisitVelocity {
                file,
                vrel_kms,
                bc_kms: b,
                from: format!("{from} (row {i})"),
                visit_key: None,
                identity: (identity != VisitIdentity::default()).then_some(identity),
                object: at(&id_c, i),
            });
        }
        Ok(VelocityTable {
            kind: VelocityKind::AllVisit,
            source: path.to_path_buf(),
            release,
            release_from,
            rows,
            star: None,
        })
    })
}

/// The HDU names of an astra mwmVisit file's APOGEE tables (`sdss/astra`
/// `python/astra/products/mwm.py`: HDU3 APOGEE/APO, HDU4 APOGEE/LCO).
const MWM_APOGEE_HDUS: [&str; 2] = ["APOGEE/APO", "APOGEE/LCO"];

/// Whether a FITS file is an mwmVisit/mwmStar (an HDU named APOGEE/APO or APOGEE/LCO).
pub(crate) fn looks_like_mwm(hdus: &[HduDesc]) -> bool {
    hdus.iter().any(|d| {
        MWM_APOGEE_HDUS
            .iter()
            .any(|n| d.name.eq_ignore_ascii_case(n))
    })
}

/// The per-visit velocities of an astra mwmVisit file's APOGEE rows (only the velocities: the
/// resampled spectra are not read here), under [`VelocityKind::MwmVisit`], matched to apVisit files
/// by (plate, MJD, fibre). astra's `v_rel` is topocentric and `v_rad = v_rel + bc` barycentric in
/// every release it covers.
pub fn read_mwmvisit_velocities(path: &Path) -> Result<VelocityTable, LoadError> {
    fits::guard(path, || {
        let mut f = fits::open(path)?;
        let hdus = fits::hdus(&mut f, path)?;
        let mut rows = Vec::new();
        let mut seen = false;
        for d in hdus.iter().filter(|d| {
            MWM_APOGEE_HDUS
                .iter()
                .any(|n| d.name.eq_ignore_ascii_case(n))
        }) {
            seen = true;
            let Some((cols, nrows)) = d.table() else {
                continue;
            };
            if nrows == 0 {
                continue;
            }
            fits::check_rows(&mut f, path, d)?;
            let col = |n: &str| -> Result<String, LoadError> {
                cols.iter()
                    .find(|c| c.0.eq_ignore_ascii_case(n))
                    .map(|c| c.0.clone())
                    .ok_or_else(|| LoadError::missing(path, format!("column {n} of {}", d.label())))
            };
            let num = |f: &mut fitsio::FitsFile, n: &str| -> Result<Vec<f64>, LoadError> {
                fits::column_f64(f, path, d, &col(n)?)
            };
            let mjd = num(&mut f, "mjd")?;
            let fiber = num(&mut f, "fiber")?;
            let bc = num(&mut f, "bc").ok();
            let v_rel = num(&mut f, "v_rel").ok();
            let v_rad = num(&mut f, "v_rad").ok();
            if v_rel.is_none() && (v_rad.is_none() || bc.is_none()) {
                return Err(LoadError::missing(
                    path,
                    format!("column v_rel of {}", d.label()),
                ));
            }
            let pc = col("plate")?;
            let plate: Vec<String> =
                match crate::io::fits::disk::read_str_col(&mut f, &d.hdu, &pc, 0, None) {
                    Ok(v)
                        if cols.iter().any(|c| {
                            c.0 == pc
                                && matches!(
                                    c.1,
                                    fitsio::tables::ColumnDataType::Text
                                        | fitsio::tables::ColumnDataType::String
                                )
                        }) =>
                    {
                        v.into_iter().map(|s| s.trim().to_owned()).collect()
                    }
                    _ => num(&mut f, "plate")?
                        .iter()
                        .map(|p| format!("{}", *p as i64))
                        .collect(),
                };
            let at = |c: &Option<Vec<f64>>, i: usize| {
                c.as_ref()
                    .and_then(|c| c.get(i))
                    .copied()
                    .filter(|v| v.is_finite())
            };
            let telescope = super::allvisit::text_column(&mut f, path, d, "telescope")?;
            let hdu_site = d.name.to_ascii_uppercase().ends_with("/LCO");
            for i in 0..mjd.len() {
                let b = at(&bc, i);
                let (vrel_kms, from) = match (at(&v_rel, i), at(&v_rad, i), b) {
                    (Some(v), _, _) => (v, "v_rel"),
                    (None, Some(r), Some(b)) => (r - b, "v_rad - bc"),
                    _ => continue,
                };
                let (m, fb) = (mjd[i], fiber.get(i).copied().unwrap_or(f64::NAN));
                if !(m.is_finite() && m >= 0.0 && fb.is_finite() && fb >= 0.0) {
                    continue;
                }
                let tel = telescope
                    .as_ref()
                    .and_then(|t| t.get(i))
                    .filter(|t| !t.is_empty())
                    .cloned()
                    .or_else(|| Some(if hdu_site { "lco25m" } else { "apo25m" }.to_owned()));
                let p = plate.get(i).cloned().unwrap_or_default();
                rows.push(VisitVelocity {
                    file: String::new(),
                    vrel_kms,
                    bc_kms: b,
                    from: format!("{from} ({} row {i})", d.name),
                    identity: Some(VisitIdentity::new(
                        tel.as_deref(),
                        None,
                        Some(p.as_str()),
                        Some(m as u32),
                        Some(fb as u32),
                    )),
                    visit_key: Some((p, m as u32, fb as u32)),
                    object: None,
                });
            }
        }
        if !seen {
            return Err(LoadError::missing(
                path,
                "HDU APOGEE/APO or APOGEE/LCO (mwmVisit layout)",
            ));
        }
        Ok(VelocityTable {
            kind: VelocityKind::MwmVisit,
            source: path.to_path_buf(),
            release: Release::SdssV,
            release_from: "astra v_rel".into(),
            rows,
            star: None,
        })
    })
}

/// Read a `--visits-table` file: an allVisit summary, or an mwmVisit file's APOGEE rows.
pub fn read_visits_table(path: &Path) -> Result<VelocityTable, LoadError> {
    let mwm = fits::guard(path, || {
        let mut f = fits::open(path)?;
        Ok(looks_like_mwm(&fits::hdus(&mut f, path)?))
    })?;
    if mwm {
        read_mwmvisit_velocities(path)
    } else {
        read_allvisit(path)
    }
}
