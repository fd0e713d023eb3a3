//! The cool-star reference: a BT-Settl M-dwarf model spectrum (Teff 3000 K, log g 5.0, [M/H] 0;
//! Allard, Homeier & Freytag 2012) at APOGEE's resolution, normalised, as a cross-correlation
//! template (`mdwarf_template.tsv`, embedded; its header gives the file, the method and the check of
//! its zero point against laboratory K I and Al I lines; `make_mdwarf_template.py` rebuilds it).
//!
//! M dwarfs' H band is dominated by molecules (H2O, FeH, OH, CO) that the atomic list does not
//! describe; a model spectrum does, blend by blend, at the resolution the data have. Most features
//! are blends at R = 22500, so the template is correlated as a whole (not as a list of lines).
//!
//! A second template of the same grid, Teff 2500 K (`mdwarf_template_2500.tsv`, built by the same
//! script), for the latest M dwarfs: [`mdwarf_templates`] gives both; the search keeps the one whose
//! CCF peak is higher (`super::rest_frame_velocity_with`).

use std::sync::OnceLock;

/// The template as shipped (`#` lines are comments; `ln_start`, `ln_step`, then one depth a row).
pub const MDWARF_TEMPLATE_TSV: &str = include_str!("mdwarf_template.tsv");

/// What the cool-star template is (what [`super::RestFrameFit::reference`] says when it gives
/// the frame).
pub const MDWARF_REFERENCE: &str = "frizzview cool-star template: the BT-Settl model spectrum of \
     Teff 3000 K, log g 5.0, [M/H] 0 (Allard, Homeier & Freytag 2012, Phil. Trans. R. Soc. A 370, \
     2765) at R = 22500, vacuum; zero point checked on K I and Al I (NIST ASD) within 1 km/s";

/// The cooler template as shipped (same format; BT-Settl 2500 K, log g 5.0, [M/H] 0).
pub const MDWARF_2500_TEMPLATE_TSV: &str = include_str!("mdwarf_template_2500.tsv");

/// What the 2500 K cool-star template is.
pub const MDWARF_2500_REFERENCE: &str = "frizzview cool-star template: the BT-Settl model spectrum \
     of Teff 2500 K, log g 5.0, [M/H] 0 (Allard, Homeier & Freytag 2012, Phil. Trans. R. Soc. A \
     370, 2765) at R = 22500, vacuum; zero point checked against the 3000 K template within 0.1 km/s";

/// A spectrum template sampled uniformly in ln lambda: line depth `1 - f/c` at
/// `ln_start + i ln_step` (ln of the vacuum wavelength in A).
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// ln lambda of the first sample.
    pub ln_start: f64,
    /// Step in ln lambda (> 0).
    pub ln_step: f64,
    /// Depth per sample.
    pub depth: Vec<f64>,
}

impl Template {
    /// The depth at `x` (ln lambda) by linear interpolation; `None` outside the template.
    #[must_use]
    pub fn at(&self, x: f64) -> Option<f64> {
        let u = (x - self.ln_start) / self.ln_step;
        if !(u >= 0.0) {
            return None;
        }
        let i = u.floor() as usize;
        let f = u - i as f64;
        let a = *self.depth.get(i)?;
        let b = *self.depth.get(i + 1)?;
        Some(a + (b - a) * f)
    }

    /// The ln-lambda range covered.
    #[must_use]
    pub fn range(&self) -> (f64, f64) {
        (
            self.ln_start,
            self.ln_start + self.depth.len().saturating_sub(1) as f64 * self.ln_step,
        )
    }
}

/// Parse a template in the shipped format; `None` when `ln_start`/`ln_step` are missing or bad,
/// a row is not a finite number, or fewer than 100 samples.
#[must_use]
pub fn parse_template(text: &str) -> Option<Template> {
    let (mut start, mut step, mut depth) = (None, None, Vec::new());
    for row in text.lines() {
        let row = row.trim_end_matches('\r');
        if row.trim().is_empty() || row.starts_with('#') {
            continue;
        }
        if let Some(v) = row.strip_prefix("ln_start\t") {
            start = v.trim().parse::<f64>().ok();
        } else if let Some(v) = row.strip_prefix("ln_step\t") {
            step = v.trim().parse::<f64>().ok();
        } else {
            let d: f64 = row.trim().parse().ok()?;
            if !d.is_finite() {
                return None;
            }
            depth.push(d);
        }
    }
    let (ln_start, ln_step) = (start?, step?);
    (ln_start.is_finite() && ln_step.is_finite() && ln_step > 0.0 && depth.len() >= 100).then_some(
        Template {
            ln_start,
            ln_step,
            depth,
        },
    )
}

/// The shipped cool-star template (parsed once); `None` only if the shipped file were malformed
/// (the unit test `the_mdwarf_template_parses` makes sure it is not).
#[must_use]
pub fn mdwarf_template() -> Option<&'static Template> {
    static T: OnceLock<Option<Template>> = OnceLock::new();
    T.get_or_init(|| parse_template(MDWARF_TEMPLATE_TSV))
        .as_ref()
}

/// Every shipped cool-star template with what it cites: BT-Settl 3000 K ([`mdwarf_template`],
/// [`MDWARF_REFERENCE`]) and 2500 K ([`MDWARF_2500_REFERENCE`]), parsed once; a malformed one is
/// left out (the unit test `the_mdwarf_template_parses` makes sure none is).
#[must_use]
pub fn mdwarf_templates() -> &'static [(Template, &'static str)] {
    static T: OnceLock<Vec<(Template, &'static str)>> = OnceLock::new();
    T.get_or_init(|| {
        [
            (MDWARF_TEMPLATE_TSV, MDWARF_REFERENCE),
            (MDWARF_2500_TEMPLATE_TSV, MDWARF_2500_REFERENCE),
        ]
        .into_iter()
        .filter_map(|(text, r)| parse_template(text).map(|t| (t, r)))
        .collect()
    })
}
