//! One star's files: which paths to get (from an APOGEE id and a release, explicit visits, the
//! rows of an allVisit table, or the visit list of the star's apStar file) and getting them.

use std::path::{Path, PathBuf};

use super::config::{Event, FetchConfig, Fetched, FileRequest, Progress};
use super::error::FetchError;
use super::get::get_file;
use super::templates::{Product, Release, Templates, Values};

pub use crate::io::survey::apogee_names::VisitRef;

/// What only fetching needs of a visit: parsing it from the command line, its template values.
impl VisitRef {
    /// Parse `PLATE-MJD-FIBER` (e.g. `5094-55874-088`).
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let parts: Vec<&str> = text.trim().split(['-', '/', ',']).collect();
        match parts.as_slice() {
            [p, m, f] if [p, m, f].iter().all(|s| !s.is_empty()) => Ok(Self {
                plate: (*p).to_owned(),
                mjd: (*m).to_owned(),
                fiber: (*f).to_owned(),
                ..Self::default()
            }),
            _ => Err(FetchError::Usage(format!(
                "'{text}' is not a visit PLATE-MJD-FIBER (e.g. 5094-55874-088)"
            ))),
        }
    }

    fn values(&self, base: &Values) -> Values {
        let mut v = base.clone();
        v.set("plate", &self.plate)
            .set("mjd", &self.mjd)
            .set("fiber", self.fiber.trim_start_matches('0'));
        if self.fiber.trim_start_matches('0').is_empty() {
            v.set("fiber", "0");
        }
        if let Some(t) = &self.telescope {
            v.set("telescope", t);
        }
        if let Some(f) = &self.field {
            v.set("field", f);
        }
        v
    }
}

/// What to get for one star.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StarQuery {
    /// The release whose layout to use.
    pub release: Release,
    /// Placeholder values common to all files: `apogee_id`, `telescope`, `field`,
    /// `location_id`, `frame`, `sdss_id`... (anything a template names).
    pub values: Values,
    /// The visits. Empty with [`Product::ApVisit`] requested: taken from the apStar's SFILEn.
    pub visits: Vec<VisitRef>,
    /// The products to get, in order.
    pub products: Vec<Product>,
}

impl StarQuery {
    /// A query for `apogee_id` in `release`, for apVisit and apStar files.
    #[must_use]
    pub fn new(release: Release, apogee_id: &str) -> Self {
        Self {
            release,
            values: Values::new().with("apogee_id", apogee_id),
            visits: Vec::new(),
            products: vec![Product::ApStar, Product::ApVisit],
        }
    }

    /// Add the visits of this star listed in an allVisit table (its rows whose APOGEE_ID is the
    /// query's id); the star's field, telescope and location id are taken from the first row
    /// unless already set.
    pub fn add_all_visit_rows(&mut self, all_visit: &Path) -> Result<usize, FetchError> {
        let id = self.values.get("apogee_id").ok_or_else(|| {
            FetchError::Usage("an allVisit selection needs the APOGEE id".to_owned())
        })?;
        let rows = crate::io::allvisit::read_rows(all_visit, id).map_err(|e| FetchError::Io {
            path: all_visit.display().to_string(),
            reason: e.kind.to_string(),
        })?;
        if rows.is_empty() {
            return Err(FetchError::Usage(format!(
                "{}: no row has APOGEE_ID {id}",
                all_visit.display()
            )));
        }
        if let Some(first) = rows.first() {
            for (k, v) in [
                ("telescope", &first.telescope),
                ("field", &first.field),
                ("location_id", &first.location_id),
            ] {
                if let Some(v) = v
                    && self.values.get(k).is_none()
                {
                    self.values.set(k, v);
                }
            }
        }
        let n = rows.len();
        self.visits.extend(rows.into_iter().map(|r| VisitRef {
            plate: r.plate,
            mjd: r.mjd,
            fiber: r.fiber,
            telescope: r.telescope,
            field: r.field,
        }));
        Ok(n)
    }

    /// The files of one product (apVisit: one per visit; apCframe: per visit, exposure `frame`
    /// (comma-separated list) and chip a, b, c unless `chip` is set).
    pub fn requests(
        &self,
        product: Product,
        templates: &Templates,
    ) -> Result<Vec<FileRequest>, FetchError> {
        let path = |v: &Values| templates.path(self.release, product, v);
        let req = |rel: String| FileRequest { product, rel };
        match product {
            Product::ApVisit => self
                .visits
                .iter()
                .map(|vis| path(&vis.values(&self.values)).map(req))
                .collect(),
            Product::ApCframe => {
                let frames: Vec<String> = self
                    .values
                    .get("frame")
                    .map(|f| {
                        f.split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                if frames.is_empty() {
                    return Err(FetchError::Missing {
                        what: format!("{} apCframe", self.release),
                        name: "frame".to_owned(),
                        known: true,
                    });
                }
                let chips: Vec<String> = self.values.get("chip").map_or_else(
                    || vec!["a".into(), "b".into(), "c".into()],
                    |c| c.split(',').map(|s| s.trim().to_owned()).collect(),
                );
                let visits = if self.visits.is_empty() {
                    vec![None]
                } else {
                    self.visits.iter().map(Some).collect()
                };
                let mut out = Vec::new();
                for vis in visits {
                    let base = vis.map_or_else(|| self.values.clone(), |v| v.values(&self.values));
                    for frame in &frames {
                        for chip in &chips {
                            let v = base.clone().with("frame", frame).with("chip", chip);
                            out.push(req(path(&v)?));
                        }
                    }
                }
                Ok(out)
            }
            _ => Ok(vec![req(path(&self.values)?)]),
        }
    }
}

/// The files got for one star.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StarFiles {
    /// Every file, in the order of the query's products.
    pub files: Vec<Fetched>,
    /// Things the user should know (visits found in the apStar, ...).
    pub notes: Vec<String>,
}

impl StarFiles {
    /// The local files of one product.
    #[must_use]
    pub fn paths(&self, product: Product) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|f| f.request.product == product)
            .map(|f| f.path.clone())
            .collect()
    }
}

/// Get every file of `query`. When apVisit files are asked for without visits, the apStar is got
/// first and its SFILEn cards name the visits (its FIELD and LOCID cards fill `field` and
/// `location_id` when missing). Stops at the first file that cannot be got.
pub fn fetch_star(
    query: &StarQuery,
    templates: &Templates,
    cfg: &FetchConfig,
    progress: Progress<'_>,
) -> Result<StarFiles, FetchError> {
    let mut query = query.clone();
    let mut out = StarFiles::default();
    let discover = query.visits.is_empty() && query.products.contains(&Product::ApVisit);
    let mut products = query.products.clone();
    if discover {
        // The apStar first: it lists the visits.
        products.retain(|p| *p != Product::ApStar);
        products.insert(0, Product::ApStar);
    }
    let mut planned = 0usize;
    for product in products {
        if product == Product::ApVisit && query.visits.is_empty() {
            let apstar = out.paths(Product::ApStar);
            let Some(apstar) = apstar.first() else {
                return Err(FetchError::Usage(
                    "no visits given: list them with --visit PLATE-MJD-FIBER or --all-visit FILE"
                        .to_owned(),
                ));
            };
            let listed =
                crate::io::allvisit::apstar_visits(apstar).map_err(|e| FetchError::Io {
                    path: apstar.display().to_string(),
                    reason: e.kind.to_string(),
                })?;
            for (k, v) in [
                ("field", &listed.field),
                ("location_id", &listed.location_id),
            ] {
                if let Some(v) = v
                    && query.values.get(k).is_none()
                {
                    query.values.set(k, v);
                }
            }
            out.notes.push(format!(
                "{} visit(s) listed in {} (SFILEn){}",
                listed.visits.len(),
                apstar.file_name().unwrap_or_default().to_string_lossy(),
                if listed.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; not understood: {}", listed.skipped.join(", "))
                }
            ));
            query.visits = listed.visits;
        }
        let reqs = query.requests(product, templates)?;
        let count = planned + reqs.len();
        for r in reqs {
            progress(Event::Start {
                rel: &r.rel,
                index: planned,
                count,
            });
            planned += 1;
            out.files.push(get_file(&r, cfg, progress)?);
        }
    }
    Ok(out)
}

/// Read a star's files as one data set: its apVisit files, with its apStar beside them when the
/// loader accepts that (the apStar is the pipeline's combination: a reference, not an input).
/// When the loader refuses the apStar, the visits are read alone and a note says so. Returns the
/// data set, the files it was read from, and notes.
pub fn load_star(
    files: &StarFiles,
) -> Result<(crate::model::Dataset, Vec<PathBuf>, Vec<String>), crate::io::LoadError> {
    let visits = files.paths(Product::ApVisit);
    let apstar = files.paths(Product::ApStar);
    let opts = crate::io::LoadOptions::default();
    let mut notes = Vec::new();
    if !visits.is_empty() && !apstar.is_empty() {
        let mut all = visits.clone();
        all.extend(apstar.iter().cloned());
        match crate::io::load_paths(&all, &opts) {
            Ok(d) => return Ok((d, all, notes)),
            Err(e) => {
                log::info!(
                    "the apStar is not read with the visits ({e}); reading the visits alone"
                );
                notes.push(format!(
                    "the apStar file was not read with the visits ({}); the visits alone are open",
                    e.kind
                ));
            }
        }
    }
    let chosen = if visits.is_empty() { apstar } else { visits };
    let d = crate::io::load_paths(&chosen, &opts)?;
    Ok((d, chosen, notes))
}

/// The real APOGEE star of the `apogee-real` demo: 2M00005143+5615568 in the open cluster
/// NGC 7789, SDSS DR13 (reduction r6), three visits on plate 5094 at APO and the pipeline's
/// apStar of them (values from the files' headers: LOCID 4264, FIELD N7789, FIBERID, MJD5).
#[must_use]
pub fn real_demo_query() -> StarQuery {
    let mut q = StarQuery::new(Release::Dr13, REAL_DEMO_ID);
    q.values
        .set("telescope", "apo25m")
        .set("field", "N7789")
        .set("location_id", 4264);
    q.visits = ["5094-55874-088", "5094-56643-088", "5094-56651-082"]
        .iter()
        .filter_map(|v| VisitRef::parse(v).ok())
        .collect();
    q
}

/// The APOGEE id of the real demo star.
pub const REAL_DEMO_ID: &str = "2M00005143+5615568";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visit_names_are_parsed_from_the_end() {
        let v = VisitRef::from_file_name("apVisit-r6-5094-55874-088.fits");
        assert_eq!(
            v.as_ref()
                .map(|v| (v.plate.as_str(), v.mjd.as_str(), v.fiber.as_str())),
            Some(("5094", "55874", "088"))
        );
        let v = VisitRef::from_file_name("apVisit-1.3-lco25m-6340-59804-145.fits");
        assert_eq!(v.and_then(|v| v.telescope), Some("lco25m".to_owned()));
        assert!(VisitRef::from_file_name("apVisit-dr17-59000-2M00005143+5615568.fits").is_none());
        assert!(VisitRef::from_file_name("apStar-r6-2M00005143+5615568.fits").is_none());
    }

    #[test]
    fn the_demo_plan_names_the_real_files() -> Result<(), FetchError> {
        let q = real_demo_query();
        let t = Templates::builtin();
        let visits = q.requests(Product::ApVisit, &t)?;
        let names: Vec<&str> = visits
            .iter()
            .filter_map(|r| r.rel.rsplit('/').next())
            .collect();
        assert_eq!(
            names,
            [
                "apVisit-r6-5094-55874-088.fits",
                "apVisit-r6-5094-56643-088.fits",
                "apVisit-r6-5094-56651-082.fits"
            ]
        );
        let star = q.requests(Product::ApStar, &t)?;
        assert_eq!(
            star.first().map(|r| r.rel.as_str()),
            Some(
                "dr13/apogee/spectro/redux/r6/stars/apo25m/4264/apStar-r6-2M00005143+5615568.fits"
            )
        );
        Ok(())
    }

    #[test]
    fn apcframe_requests_cover_frames_and_chips() -> Result<(), FetchError> {
        let mut q = real_demo_query();
        q.visits.truncate(1);
        q.values.set("frame", "1234,1235");
        let r = q.requests(Product::ApCframe, &Templates::builtin())?;
        assert_eq!(r.len(), 6);
        assert!(
            r[0].rel.ends_with("/5094/55874/apCframe-a-00001234.fits"),
            "{}",
            r[0].rel
        );
        q.values = Values::new();
        assert!(
            q.requests(Product::ApCframe, &Templates::builtin())
                .is_err()
        );
        Ok(())
    }
}
