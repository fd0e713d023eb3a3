//! Where a star's visits are, from the survey's own tables: the rows of an allVisit summary file
//! (`allVisit-dr17-synspec_rev1.fits`: upper-case columns `APOGEE_ID, FIELD, PLATE, MJD,
//! TELESCOPE, FIBERID`, DR13 also `LOCATION_ID`; DR19 `allVisit-1.3-apo25m.fits`: the same in
//! lower case), and the visit list of an apStar file (its `SFILEn` cards, `FIELD`, `LOCID`).
//! Sources: the SDSS data model pages of allVisit (DR17, DR19) and apStar; apogee_drp
//! `apstar_output.pro`.

use std::path::Path;

use fitsio::FitsFile;
use fitsio::tables::ColumnDataType;

use super::apogee_names::VisitRef;
use crate::io::error::LoadError;
use crate::io::fits::{self, HduDesc};

/// One allVisit row of a star.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllVisitRow {
    /// TELESCOPE.
    pub telescope: Option<String>,
    /// FIELD.
    pub field: Option<String>,
    /// LOCATION_ID (DR13-DR16 files).
    pub location_id: Option<String>,
    /// PLATE.
    pub plate: String,
    /// MJD.
    pub mjd: String,
    /// FIBERID.
    pub fiber: String,
}

/// The rows of `path` (the first binary table) whose APOGEE_ID is `apogee_id`.
pub fn read_rows(path: &Path, apogee_id: &str) -> Result<Vec<AllVisitRow>, LoadError> {
    fits::guard(path, || {
        let mut f = fits::open(path)?;
        let hdus = fits::hdus(&mut f, path)?;
        let table = hdus
            .iter()
            .find(|d| d.table().is_some_and(|(_, rows)| rows > 0))
            .ok_or_else(|| LoadError::missing(path, "a binary table with rows"))?;
        let ids = text_column(&mut f, path, table, "APOGEE_ID")?.ok_or_else(|| {
            LoadError::missing(path, format!("column APOGEE_ID of {}", table.label()))
        })?;
        let need = |f: &mut FitsFile, name: &str| {
            text_column(f, path, table, name)?.ok_or_else(|| {
                LoadError::missing(path, format!("column {name} of {}", table.label()))
            })
        };
        let plate = need(&mut f, "PLATE")?;
        let mjd = need(&mut f, "MJD")?;
        let fiber = need(&mut f, "FIBERID")?;
        let telescope = text_column(&mut f, path, table, "TELESCOPE")?;
        let field = text_column(&mut f, path, table, "FIELD")?;
        let location = text_column(&mut f, path, table, "LOCATION_ID")?;
        let want = apogee_id.trim();
        let at = |c: &Option<Vec<String>>, i: usize| {
            c.as_ref()
                .and_then(|c| c.get(i).cloned())
                .filter(|s| !s.is_empty())
        };
        Ok(ids
            .iter()
            .enumerate()
            .filter(|(_, id)| id.trim() == want)
            .map(|(i, _)| AllVisitRow {
                telescope: at(&telescope, i),
                field: at(&field, i),
                location_id: at(&location, i),
                plate: plate.get(i).cloned().unwrap_or_default(),
                mjd: mjd.get(i).cloned().unwrap_or_default(),
                fiber: fiber.get(i).cloned().unwrap_or_default(),
            })
            .collect())
    })
}

/// A column as text (numbers written as integers when whole), found by name in any case;
/// `None` when the table has no such column.
pub(crate) fn text_column(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
    name: &str,
) -> Result<Option<Vec<String>>, LoadError> {
    let Some((cols, _)) = d.table() else {
        return Ok(None);
    };
    let Some((actual, typ, _)) = cols.iter().find(|c| c.0.eq_ignore_ascii_case(name)) else {
        return Ok(None);
    };
    let what = || format!("column '{actual}' of {}", d.label());
    if matches!(typ, ColumnDataType::Text | ColumnDataType::String) {
        let v: Vec<String> = d
            .hdu
            .read_col(f, actual)
            .map_err(|e| LoadError::invalid(path, what(), e))?;
        return Ok(Some(v.into_iter().map(|s| s.trim().to_owned()).collect()));
    }
    let v = fits::column_f64(f, path, d, actual)?;
    Ok(Some(
        v.into_iter()
            .map(|x| {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    format!("{}", x as i64)
                } else {
                    x.to_string()
                }
            })
            .collect(),
    ))
}

/// The visits an apStar file lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApStarVisits {
    /// The visits named by SFILEn (in order).
    pub visits: Vec<VisitRef>,
    /// SFILEn values that name no plate visit (APO-1m names).
    pub skipped: Vec<String>,
    /// FIELD card.
    pub field: Option<String>,
    /// LOCID card (DR13-DR16).
    pub location_id: Option<String>,
}

/// The visits listed in the primary header of an apStar file (`NVISITS`, `SFILE1..n`).
pub fn apstar_visits(path: &Path) -> Result<ApStarVisits, LoadError> {
    fits::guard(path, || {
        let mut f = fits::open(path)?;
        let hdu = f
            .primary_hdu()
            .map_err(|e| LoadError::invalid(path, "HDU 0", e))?;
        let n = fits::key_f64(&mut f, &hdu, "NVISITS")
            .ok_or_else(|| LoadError::missing(path, "card NVISITS of HDU 0"))?;
        if !(0.0..=100_000.0).contains(&n) {
            return Err(LoadError::invalid(
                path,
                "card NVISITS of HDU 0",
                format!("{n} visits"),
            ));
        }
        let mut out = ApStarVisits {
            field: fits::key_string(&mut f, &hdu, "FIELD").filter(|s| !s.is_empty()),
            location_id: fits::key_string(&mut f, &hdu, "LOCID").filter(|s| !s.is_empty()),
            ..ApStarVisits::default()
        };
        let telescope = fits::key_string(&mut f, &hdu, "TELESCOP");
        for i in 1..=(n as usize) {
            let key = format!("SFILE{i}");
            let name = fits::key_string(&mut f, &hdu, &key)
                .ok_or_else(|| LoadError::missing(path, format!("card {key} of HDU 0")))?;
            match VisitRef::from_file_name(&name) {
                Some(mut v) => {
                    if v.telescope.is_none() {
                        v.telescope.clone_from(&telescope);
                    }
                    out.visits.push(v);
                }
                None => out.skipped.push(name),
            }
        }
        Ok(out)
    })
}
