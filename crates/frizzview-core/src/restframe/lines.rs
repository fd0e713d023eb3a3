//! The shipped line list (`lines.tsv`, embedded): parsing, air-to-vacuum conversion, citations.

use std::sync::OnceLock;

/// The list as shipped (tab-separated; `#` lines are comments and carry the sources).
pub const LINES_TSV: &str = include_str!("lines.tsv");

/// Which part of the shipped list a line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListId {
    /// The APOGEE H band, 15100-17000 A.
    HBand,
    /// The optical, 3600-10000 A (BOSS; LAMOST MRS 4950-5350 and 6300-6800 A).
    Optical,
}

impl ListId {
    /// The citation of this part of the list (what [`super::RestFrameFit::reference`] says).
    #[must_use]
    pub fn citation(self) -> &'static str {
        match self {
            Self::HBand => HBAND_REFERENCE,
            Self::Optical => OPTICAL_REFERENCE,
        }
    }
}

/// What the H-band part of the list is made of.
pub const HBAND_REFERENCE: &str = "frizzview H-band line list: Fe I, Mg I, Al I, Si I, K I, Ca I, \
     Ti I, Cr I, Ni I from Smith et al. 2013 (ApJ 765, 16, Tables 2 and 5) and the NIST ASD, air \
     to vacuum by Morton (2000); H I Brackett 11-20 from the Rydberg formula (vacuum)";

/// What the optical part of the list is made of.
pub const OPTICAL_REFERENCE: &str = "frizzview optical line list: Ca II H&K and triplet, Ca I, \
     Fe I (Nave et al. 1994), Mg I b, Na I D from the NIST ASD, air to vacuum by Morton (2000); \
     H I Balmer, NIST ASD vacuum";

/// One reference line.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceLine {
    /// Which part of the list.
    pub list: ListId,
    /// Species (and line name), e.g. `Fe I`, `Na I D2`, `H I Br11`.
    pub species: &'static str,
    /// The wavelength as published (A), in air or vacuum as `air` says.
    pub published_aa: f64,
    /// Whether the published value is in standard air.
    pub air: bool,
    /// The vacuum wavelength (A) used by the mask.
    pub vacuum_aa: f64,
    /// Relative weight in the mask.
    pub weight: f64,
    /// Source key (explained in the list's header: `S13`, `NIST`, `HI`).
    pub source: &'static str,
}

/// Air to vacuum wavelength (A): the IAU standard of Morton (2000, ApJS 130, 403, eq. 8) in the
/// inverse form N. Piskunov derived for VALD (the formula SDSS and VALD use). Valid above 2000 A.
#[must_use]
pub fn air_to_vacuum(air_aa: f64) -> f64 {
    let s = 1e4 / air_aa;
    let s2 = s * s;
    let n = 1.0
        + 8.336_624_212_083e-5
        + 2.408_926_869_968e-2 / (130.106_592_452_2 - s2)
        + 1.599_740_894_897e-4 / (38.925_687_932_93 - s2);
    air_aa * n
}

/// Parse one data row; `None` for comments, blank lines and malformed rows.
pub(crate) fn parse_row(row: &'static str) -> Option<ReferenceLine> {
    let row = row.trim_end_matches('\r');
    if row.trim().is_empty() || row.starts_with('#') {
        return None;
    }
    let f: Vec<&'static str> = row.split('\t').collect();
    if f.len() != 6 {
        return None;
    }
    let list = match f[0] {
        "hband" => ListId::HBand,
        "optical" => ListId::Optical,
        _ => return None,
    };
    let published_aa: f64 = f[2].trim().parse().ok()?;
    let air = match f[3] {
        "air" => true,
        "vac" => false,
        _ => return None,
    };
    let weight: f64 = f[4].trim().parse().ok()?;
    if !(published_aa > 2000.0 && published_aa.is_finite() && weight > 0.0 && weight.is_finite()) {
        return None;
    }
    Some(ReferenceLine {
        list,
        species: f[1],
        published_aa,
        air,
        vacuum_aa: if air {
            air_to_vacuum(published_aa)
        } else {
            published_aa
        },
        weight,
        source: f[5].trim(),
    })
}

/// Every line of the shipped list (parsed once). A malformed row is skipped here; the unit test
/// `every_row_parses` makes sure the shipped file has none.
#[must_use]
pub fn reference_lines() -> &'static [ReferenceLine] {
    static LINES: OnceLock<Vec<ReferenceLine>> = OnceLock::new();
    LINES.get_or_init(|| LINES_TSV.lines().filter_map(parse_row).collect())
}
