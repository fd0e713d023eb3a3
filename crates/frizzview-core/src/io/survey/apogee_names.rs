//! APOGEE file names and data releases.
//!
//! Name forms (sdss-tree path templates for DR17/DR19; `sdss/astra`
//! `python/astra/models/apogee.py` `get_path_template`):
//!
//! - SDSS-V (apred 1.x): `apVisit-{apred}-{telescope}-{plate}-{mjd}-{fiber:03d}.fits`,
//!   `apStar-{apred}-{telescope}-{apogee_id}.fits`, `allVisit-{apred}-{telescope}.fits`. The prefix
//!   is `ap` even at LCO.
//! - DR17: `{ap|as}Visit-dr17-{plate}-{mjd}-{fiber:03d}.fits` (`as` = the du Pont telescope at LCO),
//!   `{ap|as}Star-dr17-{apogee_id}.fits`.
//! - DR13-DR16 (apred r6...r12, l33...): `apVisit-r13-{plate}-{mjd}-{fiber}.fits`.
//! - APO 1-m: `apVisit-{apred}-{mjd}-{reduction}.fits`, where the reduction is a star name that
//!   may hold `+` and `-`.
//!
//! Star names hold `+`/`-`, so names are never split on every `-`: the apred token is read up to
//! the first `-`, then a telescope token, then numbers from the left, and whatever remains is the
//! star name.

use std::path::Path;

/// Which generation of the APOGEE reduction a file comes from; the velocity names changed meaning
/// between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// SDSS-III/IV (DR13-DR17; apred `r6`...`r13`, `l31`...`l33`, `dr17`): VRAD (apVisit header,
    /// apStar `VRADn`) and VREL (allVisit) are topocentric; VHELIO = VRAD + BC is barycentric.
    SdssIv,
    /// SDSS-V (DR19, DR20; apred `1.x`): VREL is topocentric and VRAD is barycentric
    /// (`sdss/apogee_drp` `python/apogee_drp/apred/rv.py`: `vrad = vrel + bc`).
    SdssV,
}

impl Release {
    /// The release of an apred token (`r6`, `dr17`, `1.3`...): SDSS-V tokens start with a digit.
    #[must_use]
    pub fn from_apred(apred: &str) -> Option<Self> {
        let a = apred.trim().to_ascii_lowercase();
        let first = a.chars().next()?;
        if first.is_ascii_digit() {
            Some(Self::SdssV)
        } else if first == 'r' || first == 'l' || a.starts_with("dr") || first == 't' {
            Some(Self::SdssIv)
        } else {
            None
        }
    }

    /// Short label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::SdssIv => "SDSS-IV (DR13-DR17)",
            Self::SdssV => "SDSS-V (DR19+)",
        }
    }
}

/// What an APOGEE file name says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApogeeName {
    /// `ap` or `as` (LCO in DR17).
    pub prefix: String,
    /// `Visit`, `Star`, `Cframe`...
    pub product: String,
    /// The reduction version token (`r6`, `dr17`, `1.3`).
    pub apred: String,
    /// `apo25m`, `lco25m` or `apo1m`, when the name says it (or the `as` prefix implies LCO).
    pub telescope: Option<String>,
    /// Plate (SDSS-V: FPS configuration id).
    pub plate: Option<String>,
    /// MJD.
    pub mjd: Option<u32>,
    /// Fibre number.
    pub fiber: Option<u32>,
    /// The star name: the APO-1m reduction id, or the apStar's APOGEE id.
    pub star: Option<String>,
}

impl ApogeeName {
    /// The release the apred token implies.
    #[must_use]
    pub fn release(&self) -> Option<Release> {
        Release::from_apred(&self.apred)
    }
}

const TELESCOPES: [&str; 3] = ["apo25m", "lco25m", "apo1m"];

/// The file name without folders and without `.fits`/`.fits.gz`/`.fit`/`.fts`.
#[must_use]
pub fn stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let lower = base.to_ascii_lowercase();
    for ext in [
        ".fits.gz", ".fit.gz", ".fts.gz", ".fits", ".fit", ".fts", ".gz",
    ] {
        if lower.ends_with(ext) {
            return &base[..base.len() - ext.len()];
        }
    }
    base
}

/// Split off the leading token up to the first `-`.
fn token(s: &str) -> (&str, Option<&str>) {
    match s.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parse an APOGEE product file name (`apVisit-...`, `asVisit-...`, `apStar-...`, `asStar-...`);
/// `None` when the name is not one of the forms in the module documentation.
#[must_use]
pub fn parse(file_name: &str) -> Option<ApogeeName> {
    let s = stem(file_name);
    let lower = s.to_ascii_lowercase();
    let prefix = if lower.starts_with("ap") {
        "ap"
    } else if lower.starts_with("as") {
        "as"
    } else {
        return None;
    };
    let (head, rest) = token(&s[2..]);
    let product = head.to_owned();
    if !matches!(
        product.to_ascii_lowercase().as_str(),
        "visit" | "star" | "cframe"
    ) {
        return None;
    }
    let (apred, rest) = token(rest?);
    let mut out = ApogeeName {
        prefix: prefix.to_owned(),
        product,
        apred: apred.to_owned(),
        telescope: (prefix == "as").then(|| "lco25m".to_owned()),
        ..ApogeeName::default()
    };
    let mut rest = rest?;
    let (t, after) = token(rest);
    if let Some(tel) = TELESCOPES.iter().find(|x| t.eq_ignore_ascii_case(x)) {
        out.telescope = Some((*tel).to_owned());
        rest = after?;
    }
    if out.product.eq_ignore_ascii_case("star") {
        out.star = Some(rest.to_owned());
        return Some(out);
    }
    // plate-mjd-fiber (all numbers), else the APO-1m form mjd-reduction.
    let parts: Vec<&str> = rest.splitn(3, '-').collect();
    if parts.len() == 3 && parts.iter().all(|p| all_digits(p)) {
        out.plate = Some(parts[0].to_owned());
        out.mjd = parts[1].parse().ok();
        out.fiber = parts[2].parse().ok();
        return Some(out);
    }
    let (mjd, reduction) = token(rest);
    if all_digits(mjd) && reduction.is_some_and(|r| !r.is_empty()) {
        out.mjd = mjd.parse().ok();
        out.star = reduction.map(str::to_owned);
        if out.telescope.is_none() {
            out.telescope = Some("apo1m".to_owned());
        }
        return Some(out);
    }
    None
}

/// Whether two file names (with or without folders, `.gz`) name the same file.
#[must_use]
pub fn same_file(a: &str, b: &str) -> bool {
    let (a, b) = (stem(a.trim()), stem(b.trim()));
    !a.is_empty() && a == b
}

/// One visit of a star: where its apVisit file is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VisitRef {
    /// Plate (DR19: configuration id).
    pub plate: String,
    /// MJD.
    pub mjd: String,
    /// Fibre.
    pub fiber: String,
    /// Telescope, when it differs from the star's.
    pub telescope: Option<String>,
    /// Field, when it differs from the star's.
    pub field: Option<String>,
}

impl VisitRef {
    /// The visit named by an apVisit file name: the last three numeric `-` tokens are plate, MJD
    /// and fibre (`apVisit-r6-5094-55874-088.fits`, `apVisit-1.3-apo25m-6340-59804-145.fits`;
    /// in the latter the token before the plate is the telescope). APO-1m names
    /// (`apVisit-{apred}-{mjd}-{star}.fits`) have no plate and give `None`.
    #[must_use]
    pub fn from_file_name(name: &str) -> Option<Self> {
        let base = Path::new(name.trim()).file_name()?.to_str()?;
        let stem = base.strip_suffix(".gz").unwrap_or(base);
        let stem = stem.strip_suffix(".fits")?;
        let tokens: Vec<&str> = stem.split('-').collect();
        let n = tokens.len();
        if n < 5 || !tokens[0].ends_with("Visit") {
            return None;
        }
        let (plate, mjd, fiber) = (tokens[n - 3], tokens[n - 2], tokens[n - 1]);
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !(numeric(plate) && numeric(mjd) && numeric(fiber)) {
            return None;
        }
        let telescope = (n >= 6)
            .then(|| tokens[n - 4])
            .filter(|t| t.starts_with("apo") || t.starts_with("lco"))
            .map(str::to_owned);
        Some(Self {
            plate: plate.to_owned(),
            mjd: mjd.to_owned(),
            fiber: fiber.to_owned(),
            telescope,
            field: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_form_without_splitting_star_names() {
        let v = parse("apVisit-1.3-apo25m-6340-59804-145.fits").expect("parses");
        assert_eq!(
            (v.apred.as_str(), v.telescope.as_deref(), v.plate.as_deref()),
            ("1.3", Some("apo25m"), Some("6340"))
        );
        assert_eq!(
            (v.mjd, v.fiber, v.release()),
            (Some(59804), Some(145), Some(Release::SdssV))
        );
        let v = parse("asVisit-dr17-12345-59000-007.fits.gz").expect("parses");
        assert_eq!(
            (v.telescope.as_deref(), v.fiber, v.release()),
            (Some("lco25m"), Some(7), Some(Release::SdssIv))
        );
        let v = parse("/x/apVisit-r6-5094-55874-088.fits").expect("parses");
        assert_eq!((v.telescope, v.mjd, v.fiber), (None, Some(55874), Some(88)));
        let v = parse("apVisit-dr17-58100-2M00005143+5615568.fits").expect("parses");
        assert_eq!(
            (v.telescope.as_deref(), v.mjd, v.star.as_deref()),
            (Some("apo1m"), Some(58100), Some("2M00005143+5615568"))
        );
        let v = parse("apVisit-r13-57000-HD-12-3.fits").expect("parses");
        assert_eq!(v.star.as_deref(), Some("HD-12-3"));
        let s = parse("apStar-1.3-lco25m-2M00005143-5615568.fits").expect("parses");
        assert_eq!(
            (s.telescope.as_deref(), s.star.as_deref()),
            (Some("lco25m"), Some("2M00005143-5615568"))
        );
        let s = parse("asStar-dr17-2M1+2.fits").expect("parses");
        assert_eq!(s.telescope.as_deref(), Some("lco25m"));
        assert!(parse("spec-3586-55181-0500.fits").is_none());
        assert!(parse("apVisit.fits").is_none());
        assert!(same_file("a/apVisit-x.fits.gz", "apVisit-x.fits"));
        assert!(!same_file("apVisit-x.fits", "apVisit-y.fits"));
    }
}
