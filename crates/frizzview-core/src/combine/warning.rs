//! What a combination tells the user without stopping: [`Warning`] and the thresholds of
//! [`Warning::PoorFit`].

/// Something worth telling the user that did not stop the combination.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Warning {
    #[error("visit {visit}: no usable pixel (all masked, zero weight or outside the grid)")]
    NoUsablePixels { visit: String },
    #[error("visit {visit}: no velocity for shift source '{source_name}', using 0 km/s")]
    MissingVelocity { visit: String, source_name: String },
    #[error("visit {visit}: {n} pixels had NaN/inf flux or NaN/inf/negative ivar and were masked")]
    InvalidPixels { visit: String, n: usize },
    #[error("visit {visit}: {n} pixels with selection factor below {min} got zero weight")]
    TinySelection { visit: String, n: usize, min: f64 },
    #[error("visit {visit}: no selection factor, treated as S = 1")]
    NoSelection { visit: String },
    #[error("{what}: condition number {cond:.3e} exceeds 1e8; the result may be unreliable")]
    IllConditioned { what: String, cond: f64 },
    #[error("only one visit is included: the result is a change of basis, noise stays correlated")]
    SingleVisit,
    #[error(
        "{n} visits shifted by -BC only (barycentric frame): the star's own velocity is unknown, so \
         lines of visits whose velocities differ are averaged apart. Supply it with an apStar file \
         given with the visits, --visits-table allVisit.fits, or --velocity NAME=KMS (the window: \
         open them together, or set each visit's velocity), or fit it with --fit-shifts"
    )]
    StarVelocityUnknown { n: usize },
    #[error(
        "{n} visit(s) already resampled by the pipeline, not native pixels ({example}): shown for \
         inspection; forward-modelling them again is not Frizzle (it does not undo that \
         interpolation, and their noise is correlated): open the native-pixel files (apVisit, \
         apCframe) instead"
    )]
    Resampled { n: usize, example: String },
    #[error("{}", poor_fit_text(*.chi2_nu, .outliers, .ranked, *.loo))]
    PoorFit {
        /// chi^2/nu over the included visits' used pixels.
        chi2_nu: f64,
        /// Visits whose score is far above the others' ([`OUTLIER_LOO_CHI2_NU`],
        /// [`OUTLIER_LOO_FACTOR`]), worst first, with their scores.
        outliers: Vec<(String, f64)>,
        /// The included visits with the highest scores (up to 3), worst first.
        ranked: Vec<(String, f64)>,
        /// True when the scores are leave-one-out chi^2/nu; false while they are still to come
        /// (the first stage of [`crate::combine::combine_staged`]) and the in-sample chi^2/nu is used.
        loo: bool,
    },
    #[error(
        "visit {visit}: its {source_name} velocity {external_kms:.2} km/s disagrees with the data's \
         {data_kms:.2} +- {err_kms:.2} km/s (relative velocities compared): replaced by the data's"
    )]
    VelocityReplaced {
        visit: String,
        source_name: String,
        external_kms: f64,
        data_kms: f64,
        err_kms: f64,
    },
    #[error(
        "visit {visit}: too faint for a velocity from the data; its {source_name} velocity \
         {external_kms:.2} km/s is used unchecked"
    )]
    VelocityUnchecked {
        visit: String,
        source_name: String,
        external_kms: f64,
    },
    #[error(
        "the star looks RV-variable: barycentric velocities scatter by {scatter_kms:.2} km/s, \
         chi^2 = {chi2:.1} for {dof} degrees of freedom of a constant velocity; each visit is \
         combined at its own velocity"
    )]
    RvVariable {
        scatter_kms: f64,
        chi2: f64,
        dof: usize,
    },
    /// The combined spectrum's rest frame: the files' common zero point contradicted by the
    /// lines and replaced, or an absolute frame nothing verifies (`crate::velocity::frame_warning`).
    #[error("{0}")]
    RestFrame(String),
    #[error("{0}")]
    Other(String),
}

/// The chi^2/nu of a combination above which [`Warning::PoorFit`] is raised.
///
/// Chosen from the real stars (`tests/integration/multistar.rs`, forward model, default
/// settings, the pipeline's velocities): the four multi-visit DR13 stars of
/// `../shared/data/apogee_multistar` combined with their apStar's velocities give chi^2/nu 0.78,
/// 1.13, 1.04 and (`2M03442721+3220288` without its S/N 3.3 visit) 1.27; with it 41.4. A
/// combination with wrong errors or velocities lands far higher (measured on real stars: 25 for a 12-visit star with
/// header velocities off by hundreds of km/s). With ~10^4 pixels the statistical spread of
/// chi^2/nu is ~0.01, so what separates good from bad is the systematics floor of real data
/// (sky and telluric residuals, LSF mismatch), which stays below 1.3 on every good star seen:
/// 3 leaves more than twice that and still flags every bad case.
pub const POOR_FIT_CHI2_NU: f64 = 3.0;

/// A visit is named as an outlier when its leave-one-out chi^2/nu is above this ...
///
/// The good real stars' leave-one-out scores are 0.8-2.0 (every visit), so 5 is never reached
/// by a good visit; the S/N 3.3 visit of `2M03442721+3220288` scores 682.
pub const OUTLIER_LOO_CHI2_NU: f64 = 5.0;

/// ... and above this many times the median score of the included visits: one bad visit inflates
/// every other visit's score too (the good visits of `2M03442721+3220288` score 2-20, median 8.7,
/// beside it), and the factor keeps the ranking about the one that stands out.
pub const OUTLIER_LOO_FACTOR: f64 = 5.0;

fn poor_fit_text(
    chi2_nu: f64,
    outliers: &[(String, f64)],
    ranked: &[(String, f64)],
    loo: bool,
) -> String {
    let score = if loo {
        "leave-one-out chi2/nu"
    } else {
        "chi2/nu (leave-one-out scores to come)"
    };
    let list = |v: &[(String, f64)]| {
        v.iter()
            .map(|(n, x)| format!("{n} {x:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!("poor fit: chi2/nu {chi2_nu:.3}");
    if chi2_nu > POOR_FIT_CHI2_NU {
        s.push_str(&format!(
            " is far above what the data allow (about 1; warned above {POOR_FIT_CHI2_NU})"
        ));
    }
    if outliers.is_empty() {
        s.push_str(&format!(
            "; likely causes: wrong velocities (check the shift source), wrong errors or units, or \
             bad visits; highest {score}: {}",
            list(ranked)
        ));
    } else {
        s.push_str(&format!(
            "; {} visit(s) stand out by {score}: {} (likely a bad visit: low S/N, another star, a \
             wrong velocity; exclude it to see the others' fit); other likely causes: wrong \
             velocities, wrong errors or units; highest: {}",
            outliers.len(),
            list(outliers),
            list(ranked)
        ));
    }
    s
}
