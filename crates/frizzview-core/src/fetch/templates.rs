//! SAS path templates: where each SDSS product lives, per data release, relative to the root of
//! the Science Archive Server (`https://data.sdss.org/sas`) or of a local mirror (`SAS_BASE_DIR`).
//!
//! Sources of the default layouts:
//! - DR13 (APOGEE reduction r6): `dr13/apogee/spectro/redux/r6/{telescope}/{plate}/{mjd}/apVisit-…`
//!   and `…/r6/stars/{telescope}/{location_id}/apStar-r6-{apogee_id}.fits`, as used by astroNN
//!   (`astroNN/apogee/downloader.py`, `visit_spectra` and `combined_spectra` for `dr == 13`) and
//!   by the sdss/astra luigi example (`$APOGEE_REDUX/{apred}/{telescope}/{plate}/{mjd}/…`); the
//!   DR13 allVisit file `allVisit-l30e.2.fits` as downloaded in `thejoker`'s scripts.
//! - DR17 and DR19: the sdss-tree path configuration (`dr17.cfg`, `dr19.cfg`), sdss-access
//!   `path.py`, and sdss/astra `models/apogee.py` `get_path_template`.
//!
//! None of the layouts could be checked against the live server from here, so every template can
//! be replaced (see [`Templates::set`]).
//!
//! A template is text with placeholders `{name}`, optionally zero-padded: `{fiber:03}` (or the
//! Python form `{fiber:0>3}`) writes fibre 88 as `088`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::error::FetchError;
use super::healpix;

/// A data release whose layout frizzview knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Release {
    /// SDSS DR13 (APOGEE reduction r6).
    Dr13,
    /// SDSS DR17 (APOGEE reduction dr17, BOSS v5_13_2).
    Dr17,
    /// SDSS DR19 (APOGEE apred 1.3, BOSS v6_1_3, astra 0.6.0).
    Dr19,
}

impl Release {
    /// Every known release.
    pub const ALL: [Self; 3] = [Self::Dr13, Self::Dr17, Self::Dr19];

    /// Parse `dr13`, `DR17`, `19`...
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        match text.trim().to_ascii_lowercase().trim_start_matches("dr") {
            "13" => Ok(Self::Dr13),
            "17" => Ok(Self::Dr17),
            "19" => Ok(Self::Dr19),
            _ => Err(FetchError::Usage(format!(
                "unknown release '{text}': use dr13, dr17 or dr19"
            ))),
        }
    }

    /// The lower-case name (`dr17`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Dr13 => "dr13",
            Self::Dr17 => "dr17",
            Self::Dr19 => "dr19",
        }
    }

    /// Values every template of this release may use unless the user sets them.
    fn default_values(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Dr13 => &[("apred", "r6"), ("telescope", "apo25m")],
            Self::Dr17 => &[
                ("apred", "dr17"),
                ("telescope", "apo25m"),
                ("run2d", "v5_13_2"),
                ("aspcap", "synspec_rev1"),
            ],
            Self::Dr19 => &[
                ("apred", "1.3"),
                ("telescope", "apo25m"),
                ("run2d", "v6_1_3"),
                ("v_astra", "0.6.0"),
            ],
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A file product on the SAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Product {
    /// APOGEE visit spectrum (one fibre of one plate/configuration on one night).
    ApVisit,
    /// APOGEE combined star spectrum (the pipeline's coadd, with the visits resampled).
    ApStar,
    /// APOGEE summary table of every visit of a release.
    AllVisit,
    /// APOGEE sky-subtracted, telluric-corrected exposure of one chip (all 300 fibres).
    ApCframe,
    /// BOSS spectrum with its per-exposure HDUs (the "full" spec file).
    SpecFull,
    /// astra's per-source file of every visit (SDSS-V).
    MwmVisit,
}

impl Product {
    /// Every product.
    pub const ALL: [Self; 6] = [
        Self::ApVisit,
        Self::ApStar,
        Self::AllVisit,
        Self::ApCframe,
        Self::SpecFull,
        Self::MwmVisit,
    ];

    /// The product's name as written in templates and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::ApVisit => "apVisit",
            Self::ApStar => "apStar",
            Self::AllVisit => "allVisit",
            Self::ApCframe => "apCframe",
            Self::SpecFull => "specFull",
            Self::MwmVisit => "mwmVisit",
        }
    }

    /// Parse a product name (any case; `spec-full` and `spec` are accepted for `specFull`).
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let t = text.trim().to_ascii_lowercase().replace(['-', '_'], "");
        Self::ALL
            .into_iter()
            .find(|p| p.name().to_ascii_lowercase() == t)
            .or_else(|| (t == "spec").then_some(Self::SpecFull))
            .ok_or_else(|| {
                FetchError::Usage(format!(
                    "unknown product '{text}': use {}",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The built-in templates: (release, product, template).
const DEFAULTS: &[(Release, Product, &str)] = &[
    (
        Release::Dr13,
        Product::ApVisit,
        "dr13/apogee/spectro/redux/{apred}/{telescope}/{plate}/{mjd}/apVisit-{apred}-{plate}-{mjd}-{fiber:03}.fits",
    ),
    (
        Release::Dr13,
        Product::ApStar,
        "dr13/apogee/spectro/redux/{apred}/stars/{telescope}/{location_id}/apStar-{apred}-{apogee_id}.fits",
    ),
    (
        Release::Dr13,
        Product::AllVisit,
        "dr13/apogee/spectro/redux/{apred}/allVisit-l30e.2.fits",
    ),
    (
        Release::Dr13,
        Product::ApCframe,
        "dr13/apogee/spectro/redux/{apred}/{telescope}/{plate}/{mjd}/apCframe-{chip}-{frame:08}.fits",
    ),
    (
        Release::Dr17,
        Product::ApVisit,
        "dr17/apogee/spectro/redux/{apred}/visit/{telescope}/{field}/{plate}/{mjd}/{prefix}Visit-{apred}-{plate}-{mjd}-{fiber:03}.fits",
    ),
    (
        Release::Dr17,
        Product::ApStar,
        "dr17/apogee/spectro/redux/{apred}/stars/{telescope}/{field}/{prefix}Star-{apred}-{apogee_id}.fits",
    ),
    (
        Release::Dr17,
        Product::AllVisit,
        "dr17/apogee/spectro/aspcap/{apred}/{aspcap}/allVisit-{apred}-{aspcap}.fits",
    ),
    (
        Release::Dr17,
        Product::ApCframe,
        "dr17/apogee/spectro/redux/{apred}/visit/{telescope}/{field}/{plate}/{mjd}/{prefix}Cframe-{chip}-{frame:08}.fits",
    ),
    (
        Release::Dr17,
        Product::SpecFull,
        "dr17/eboss/spectro/redux/{run2d}/spectra/full/{plate}/spec-{plate:04}-{mjd}-{fiber:04}.fits",
    ),
    (
        Release::Dr19,
        Product::ApVisit,
        "dr19/spectro/apogee/redux/{apred}/visit/{telescope}/{field}/{plate}/{mjd}/apVisit-{apred}-{telescope}-{plate}-{mjd}-{fiber:03}.fits",
    ),
    (
        Release::Dr19,
        Product::ApStar,
        "dr19/spectro/apogee/redux/{apred}/stars/{telescope}/{healpix_group}/{healpix}/apStar-{apred}-{telescope}-{apogee_id}.fits",
    ),
    (
        Release::Dr19,
        Product::AllVisit,
        "dr19/spectro/apogee/redux/{apred}/summary/allVisit-{apred}-{telescope}.fits",
    ),
    (
        Release::Dr19,
        Product::ApCframe,
        "dr19/spectro/apogee/redux/{apred}/visit/{telescope}/{field}/{plate}/{mjd}/apCframe-{chip}-{frame:08}.fits",
    ),
    (
        Release::Dr19,
        Product::SpecFull,
        "dr19/spectro/boss/redux/{run2d}/spectra/full/{field:06}/{mjd}/spec-{field:06}-{mjd}-{catalogid}.fits",
    ),
    (
        Release::Dr19,
        Product::MwmVisit,
        "dr19/spectro/astra/{v_astra}/spectra/visit/{sdss_id_hi:02}/{sdss_id_lo:02}/mwmVisit-{v_astra}-{sdss_id}.fits",
    ),
];

pub use super::placeholders::PLACEHOLDERS;

/// Placeholder values for one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values(BTreeMap<String, String>);

impl Values {
    /// No values.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `name` to `value` (trimmed).
    pub fn set(&mut self, name: &str, value: impl fmt::Display) -> &mut Self {
        self.0
            .insert(name.to_owned(), value.to_string().trim().to_owned());
        self
    }

    /// `self` with `name` set.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl fmt::Display) -> Self {
        self.set(name, value);
        self
    }

    /// The value of `name`, if set.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Parse `name=value`.
    pub fn set_pair(&mut self, pair: &str) -> Result<(), FetchError> {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| FetchError::Usage(format!("'{pair}' is not NAME=VALUE")))?;
        self.set(k.trim(), v);
        Ok(())
    }

    /// These values completed with the release's defaults and the derived placeholders.
    #[must_use]
    pub fn completed(&self, release: Release) -> Self {
        let mut v = self.clone();
        for (k, d) in release.default_values() {
            v.0.entry((*k).to_owned())
                .or_insert_with(|| (*d).to_owned());
        }
        if !v.0.contains_key("prefix") {
            let lco = v.get("telescope").is_some_and(|t| t.starts_with("lco"));
            let prefix = if lco && release == Release::Dr17 {
                "as"
            } else {
                "ap"
            };
            v.set("prefix", prefix);
        }
        if !v.0.contains_key("healpix")
            && let Some(id) = v.get("apogee_id")
            && let Some((ra, dec)) = healpix::radec_from_2mass_id(id)
        {
            let pix = healpix::ang2pix_ring(128, ra, dec);
            v.set("healpix", pix);
        }
        if !v.0.contains_key("healpix_group")
            && let Some(pix) = v.get("healpix").and_then(|s| s.parse::<u64>().ok())
        {
            v.set("healpix_group", pix / 1000);
        }
        if let Some(id) = v.get("sdss_id").and_then(|s| s.parse::<u64>().ok()) {
            if !v.0.contains_key("sdss_id_hi") {
                v.set("sdss_id_hi", (id / 100) % 100);
            }
            if !v.0.contains_key("sdss_id_lo") {
                v.set("sdss_id_lo", id % 100);
            }
        }
        v
    }
}

/// Fill the placeholders of `template` from `values`. `what` names the template in errors.
pub fn render(template: &str, values: &Values, what: &str) -> Result<String, FetchError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| {
            FetchError::Template(format!("{what}: '{{' without '}}' in '{template}'"))
        })?;
        let inner = &after[..close];
        let (name, spec) = inner.split_once(':').unwrap_or((inner, ""));
        let name = name.trim();
        let value = values.get(name).ok_or_else(|| {
            let known = PLACEHOLDERS.iter().any(|(k, _)| *k == name);
            FetchError::Missing {
                what: what.to_owned(),
                name: name.to_owned(),
                known,
            }
        })?;
        out.push_str(&pad(value, spec).map_err(|why| {
            FetchError::Template(format!("{what}: '{{{inner}}}' in '{template}': {why}"))
        })?);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(FetchError::Template(format!(
            "{what}: '}}' without '{{' in '{template}'"
        )));
    }
    out.push_str(rest);
    Ok(out)
}

/// Apply a format spec: empty, `0N` or `0>N` (zero-pad to N characters).
fn pad(value: &str, spec: &str) -> Result<String, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok(value.to_owned());
    }
    let width = spec
        .strip_prefix("0>")
        .or_else(|| spec.strip_prefix('0'))
        .and_then(|w| w.parse::<usize>().ok())
        .ok_or_else(|| format!("unknown format '{spec}' (use 0N, e.g. 03)"))?;
    if width > 32 {
        return Err(format!("width {width} is too large"));
    }
    Ok(format!("{value:0>width$}"))
}

/// The templates in force: the built-in ones with the user's replacements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Templates {
    map: BTreeMap<(Release, Product), String>,
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            map: DEFAULTS
                .iter()
                .map(|(r, p, t)| ((*r, *p), (*t).to_owned()))
                .collect(),
        }
    }
}

/// Environment variable naming a templates file.
pub const TEMPLATES_FILE_ENV: &str = "FRIZZVIEW_SAS_TEMPLATES";
/// Prefix of the per-product environment variables (`FRIZZVIEW_TEMPLATE_APVISIT`, ...).
pub const TEMPLATE_ENV_PREFIX: &str = "FRIZZVIEW_TEMPLATE_";

impl Templates {
    /// The built-in templates.
    #[must_use]
    pub fn builtin() -> Self {
        Self::default()
    }

    /// The built-in templates, then the file named by `FRIZZVIEW_SAS_TEMPLATES`, then the
    /// variables `FRIZZVIEW_TEMPLATE_<PRODUCT>` (e.g. `FRIZZVIEW_TEMPLATE_APVISIT`), which replace
    /// the product's template in every release.
    pub fn from_env() -> Result<Self, FetchError> {
        let mut t = Self::default();
        if let Some(file) = std::env::var_os(TEMPLATES_FILE_ENV) {
            t.read_file(Path::new(&file))?;
        }
        for p in Product::ALL {
            let var = format!("{TEMPLATE_ENV_PREFIX}{}", p.name().to_ascii_uppercase());
            if let Ok(v) = std::env::var(&var) {
                for r in Release::ALL {
                    t.map.insert((r, p), v.clone());
                }
            }
        }
        Ok(t)
    }

    /// Replace templates from `[release.]product = template` pairs: `apVisit=...` replaces the
    /// product in every release, `dr17.apVisit=...` in one.
    pub fn set(&mut self, pair: &str) -> Result<(), FetchError> {
        let (key, template) = pair.split_once('=').ok_or_else(|| {
            FetchError::Usage(format!(
                "'{pair}' is not [RELEASE.]PRODUCT=TEMPLATE (e.g. dr17.apVisit=dr17/...)"
            ))
        })?;
        let key = key.trim();
        let template = template.trim();
        if template.is_empty() {
            return Err(FetchError::Usage(format!(
                "the template of '{key}' is empty"
            )));
        }
        let (releases, product) = match key.split_once(['.', ':']) {
            Some((r, p)) => (vec![Release::parse(r)?], Product::parse(p)?),
            None => (Release::ALL.to_vec(), Product::parse(key)?),
        };
        for r in releases {
            self.map.insert((r, product), template.to_owned());
        }
        Ok(())
    }

    /// Read a templates file: one `[release.]product = template` per line; `#` starts a comment.
    pub fn read_file(&mut self, path: &Path) -> Result<(), FetchError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            FetchError::Usage(format!(
                "cannot read the templates file {}: {e}",
                path.display()
            ))
        })?;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            self.set(line).map_err(|e| {
                FetchError::Usage(format!("{} line {}: {e}", path.display(), i + 1))
            })?;
        }
        Ok(())
    }

    /// The template of `product` in `release`, if there is one.
    #[must_use]
    pub fn get(&self, release: Release, product: Product) -> Option<&str> {
        self.map.get(&(release, product)).map(String::as_str)
    }

    /// The path of one file relative to the SAS root.
    pub fn path(
        &self,
        release: Release,
        product: Product,
        values: &Values,
    ) -> Result<String, FetchError> {
        let template = self.get(release, product).ok_or_else(|| {
            FetchError::Template(format!(
                "no {product} template for {release}; give one with --template {release}.{product}=..."
            ))
        })?;
        render(
            template,
            &values.completed(release),
            &format!("{release} {product}"),
        )
    }

    /// Every template, for `--help` and `fetch --list-templates`.
    pub fn iter(&self) -> impl Iterator<Item = (Release, Product, &str)> {
        self.map.iter().map(|((r, p), t)| (*r, *p, t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn star() -> Values {
        Values::new()
            .with("apogee_id", "2M00005143+5615568")
            .with("plate", 5094)
            .with("mjd", 55874)
            .with("fiber", 88)
            .with("location_id", 4264)
            .with("field", "N7789")
    }

    #[test]
    fn dr13_paths_match_the_real_file_names() -> Result<(), FetchError> {
        let t = Templates::builtin();
        assert_eq!(
            t.path(Release::Dr13, Product::ApVisit, &star())?,
            "dr13/apogee/spectro/redux/r6/apo25m/5094/55874/apVisit-r6-5094-55874-088.fits"
        );
        assert_eq!(
            t.path(Release::Dr13, Product::ApStar, &star())?,
            "dr13/apogee/spectro/redux/r6/stars/apo25m/4264/apStar-r6-2M00005143+5615568.fits"
        );
        Ok(())
    }

    #[test]
    fn dr17_lco_uses_the_as_prefix() -> Result<(), FetchError> {
        let t = Templates::builtin();
        let v = star().with("telescope", "lco25m");
        let p = t.path(Release::Dr17, Product::ApVisit, &v)?;
        assert!(
            p.ends_with("/lco25m/N7789/5094/55874/asVisit-dr17-5094-55874-088.fits"),
            "{p}"
        );
        let p = t.path(Release::Dr19, Product::ApVisit, &v)?;
        assert!(
            p.ends_with("/apVisit-1.3-lco25m-5094-55874-088.fits"),
            "{p}"
        );
        Ok(())
    }

    #[test]
    fn mwmvisit_folders_come_from_the_sdss_id() -> Result<(), FetchError> {
        let t = Templates::builtin();
        let v = Values::new().with("sdss_id", 12_345_607);
        assert_eq!(
            t.path(Release::Dr19, Product::MwmVisit, &v)?,
            "dr19/spectro/astra/0.6.0/spectra/visit/56/07/mwmVisit-0.6.0-12345607.fits"
        );
        Ok(())
    }

    #[test]
    fn missing_values_and_bad_templates_are_named() {
        let t = Templates::builtin();
        let v = Values::new().with("apogee_id", "2M00005143+5615568");
        let e = t.path(Release::Dr17, Product::ApStar, &v).err();
        assert!(
            matches!(&e, Some(FetchError::Missing { name, .. }) if name == "field"),
            "{e:?}"
        );
        let e = render("a/{plate:x3}", &star(), "t").err();
        assert!(matches!(e, Some(FetchError::Template(_))), "{e:?}");
        let e = render("a/{plate", &star(), "t").err();
        assert!(matches!(e, Some(FetchError::Template(_))), "{e:?}");
        assert!(t.path(Release::Dr13, Product::MwmVisit, &v).is_err());
    }

    #[test]
    fn overrides_replace_one_release_or_all() -> Result<(), FetchError> {
        let mut t = Templates::builtin();
        t.set("dr17.apStar = x/{apogee_id}.fits")?;
        assert_eq!(
            t.path(Release::Dr17, Product::ApStar, &star())?,
            "x/2M00005143+5615568.fits"
        );
        assert!(
            t.path(Release::Dr19, Product::ApStar, &star())?
                .starts_with("dr19/")
        );
        t.set("apvisit=v/{plate}-{mjd}-{fiber:0>4}.fits")?;
        for r in Release::ALL {
            assert_eq!(
                t.path(r, Product::ApVisit, &star())?,
                "v/5094-55874-0088.fits"
            );
        }
        assert!(t.set("nonsense=x").is_err());
        assert!(t.set("dr99.apStar=x").is_err());
        assert!(t.set("apStar").is_err());
        Ok(())
    }
}
