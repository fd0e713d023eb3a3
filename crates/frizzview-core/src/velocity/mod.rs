//! Velocities from the data, and external velocities checked against them.
//!
//! [`rule::choose`] is the shift rule (manual, else checked, else the source, else missing).
//! [`search`] measures every visit's velocity relative to the others by cross-correlation over a
//! wide window (default +-1000 km/s). [`check`] compares the velocities a survey file states
//! (apVisit VRAD, apStar, allVisit, mwmVisit, the synthetic truth: [`external_kind`]) with them:
//! only *differences* between visits are compared, because the data fix relative velocities and
//! not the zero point.
//!
//! **The consistency rule.** For every measured visit with an external velocity e_i and a data
//! velocity d_i (relative), the offset o_i = e_i - d_i. Their median is the external zero point.
//! A visit's external velocity disagrees with the data when |o_i - median| exceeds both
//! [`crate::settings::VelocitySettings::max_sigma`] (5) times the visit's stated error and
//! [`crate::settings::VelocitySettings::min_disagreement_kms`] (3 km/s: a few times the ~0.3-1
//! km/s by which header velocities of good DR13 visits differ from the pipeline's refits, far
//! below the 200-800 km/s failures). The median is robust while more than half the visits
//! agree; with two visits that disagree both are named. A visit this names is tested again
//! against the best common offset of the others that passed (their inverse-variance mean, with
//! its own error in quadrature; [`disagreements`]): at S/N 5-7 per visit the median of the
//! others is itself uncertain by several km/s, and the real faint star's most precise visit
//! (`2M12294016+2619567-4`, 0.87 km/s) was named for the others' scatter (its apStar velocity
//! 4.8 km/s off the median, 3.2 sigma off the others' best offset).
//!
//! **What the combination uses** (the default, `VelocitySettings::check`): every visit with a
//! measured velocity is shifted by its data velocity plus the zero point ([`decide_zero_point`]):
//! consistent external velocities agree with it within their tolerance, and the data's relative
//! velocities are several times more precise than any header's. A visit too faint for a
//! velocity keeps its external velocity (and says so); a visit without one gets the data's.
//!
//! **Errors.** Stated error = sqrt(formal^2 + floor^2): the formal error of the refinement
//! (template noise included) and the instrument's systematic floor
//! (`VelocitySettings::floor_kms`; for APOGEE [`APOGEE_FLOOR_KMS`], measured on the RV-stable
//! real stars, see its docs).

pub mod rule;
pub mod search;

use std::sync::{Arc, Mutex};

use crate::model::{C_KMS, Dataset, VelocityKind, Visit, velocity_from_shift};
use crate::settings::{Settings, ShiftSource};

pub use search::{Quality, SearchParams, SearchResult};

/// APOGEE's systematic velocity floor (km/s); defined with the settings whose APOGEE default
/// it is ([`crate::settings::APOGEE_FLOOR_KMS`]), where it is measured and explained.
pub use crate::settings::APOGEE_FLOOR_KMS;

/// Whether a visit's velocity was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VelocityStatus {
    /// The CCF peak passed the quality cuts: the velocity is the data's.
    Measured,
    /// Too faint (or no usable pixels) for a velocity: the external one is kept.
    TooFaint,
}

/// One visit's velocities, as checked.
#[derive(Clone, Debug, PartialEq)]
pub struct VisitVelocity {
    /// Visit name.
    pub name: String,
    /// Measured or not.
    pub status: VelocityStatus,
    /// The data's velocity (km/s, Vrel convention), with the zero point applied; NaN when not
    /// measured.
    pub data_kms: f64,
    /// Its stated error (formal and floor in quadrature), km/s; NaN when not measured.
    pub err_kms: f64,
    /// The formal error alone (km/s).
    pub formal_err_kms: f64,
    /// CCF quality.
    pub quality: Quality,
    /// The external velocity (km/s) of [`VelocityCheck::external_kind`], if the visit has one.
    pub external_kms: Option<f64>,
    /// The external velocity disagrees with the data (see the module docs); it was replaced.
    pub replaced: bool,
    /// The velocity the combination uses (km/s).
    pub used_kms: f64,
    /// Where `used_kms` came from, in words.
    pub used_source: String,
    /// The barycentric correction (km/s), when known.
    pub bc_kms: Option<f64>,
    /// Barycentric velocity `used_kms + bc_kms`.
    pub v_bary_kms: Option<f64>,
    /// S/N (as the search measured it, median sqrt(ivar) of the normalised signal).
    pub snr: f64,
}

/// How the zero point of the data's relative velocities was fixed.
#[derive(Clone, Debug, PartialEq)]
pub struct ZeroPoint {
    /// Added to the relative velocities (km/s).
    pub offset_kms: f64,
    /// Its 1-sigma uncertainty (km/s), NaN when unknown.
    pub err_kms: f64,
    /// In words.
    pub how: String,
    /// How many independent sources agree on it: the consistent external velocities (each
    /// checked against the data), or 1 for a single visit's file or the lines' rest frame alone;
    /// 0 when nothing fixes it.
    pub confirmed_by: usize,
}

/// An absolute velocity estimate for the zero point (the rest-frame module's result): the
/// offset to add to the data's relative velocities, and its error (km/s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AbsoluteEstimate {
    /// Offset (km/s).
    pub offset_kms: f64,
    /// Error (km/s).
    pub err_kms: f64,
}

/// The star-level figures the pipeline reports, from the used velocities.
#[derive(Clone, Debug, PartialEq)]
pub struct StarFigures {
    /// Weighted mean barycentric velocity (km/s).
    pub mean_bary_kms: f64,
    /// Standard deviation of the barycentric velocities over the visits (our VSCATTER), km/s.
    pub scatter_kms: f64,
    /// chi^2 of a constant velocity with the stated errors.
    pub chi2: f64,
    /// Degrees of freedom (visits - 1).
    pub dof: usize,
    /// The star looks RV-variable: chi^2/dof > 5 and scatter > 1 km/s.
    pub rv_variable: bool,
}

/// The whole outcome of the check.
#[derive(Clone, Debug, PartialEq)]
pub struct VelocityCheck {
    /// Per visit, aligned with the dataset.
    pub visits: Vec<VisitVelocity>,
    /// Which external velocities were checked (`None`: the visits have none).
    pub external_kind: Option<VelocityKind>,
    /// The zero point.
    pub zero_point: ZeroPoint,
    /// Star-level figures (barycentric), when every used visit has a BC and there are two.
    pub star: Option<StarFigures>,
    /// The star's absolute velocity from its lines against the shipped laboratory reference
    /// (`crate::restframe`), or why the rest frame is unverified.
    pub rest_frame: RestFrame,
    /// The external velocities' common zero point disagrees with the rest frame by more than
    /// [`REST_FRAME_TOLERANCE_KMS`] (and 5 sigma): (external zero point, rest-frame zero point),
    /// km/s. The rest frame's was used.
    pub zero_point_replaced: Option<(f64, f64)>,
}

/// What the lines of the spectra say about the rest frame.
#[derive(Clone, Debug, PartialEq)]
pub enum RestFrame {
    /// Measured: the offset to add to the data's relative velocities (km/s), its error, how many
    /// visits gave it, and the reference (cited line list).
    Measured {
        offset_kms: f64,
        err_kms: f64,
        n_visits: usize,
        reference: &'static str,
    },
    /// Not measured (no reference covers the data, or its lines were not found reliably: e.g.
    /// M dwarfs, whose H band is molecular); the reason.
    Unverified(String),
}

impl RestFrame {
    /// One line for summaries.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Measured {
                offset_kms,
                err_kms,
                n_visits,
                reference,
            } => format!(
                "rest frame from the lines of {n_visits} visit(s) against the {}: zero point \
                 {offset_kms:+.2} +- {err_kms:.2} km/s",
                reference.split(':').next().unwrap_or(reference)
            ),
            Self::Unverified(why) => format!("rest frame unverified: {why}"),
        }
    }
}

/// An external zero point further than this (and 5 sigma) from the rest frame's is replaced by
/// it. Lab wavelengths and the pipeline's templates differ by ~1 km/s (convective blueshift: the
/// real K giant's lines sit 0.6-0.8 km/s blueward of the pipeline's frame), so 2 km/s is
/// agreement; the failures this catches are hundreds of km/s (a DR13 star's three headers share
/// a 580 km/s error) and a few km/s (the M dwarf `2M03442721+3220288`'s consistent header
/// velocities sit 4.3 km/s below the pipeline's VHELIO, where the cool-star template's frame,
/// +-0.5 km/s, is within 1 km/s of it). 2 km/s is also what issue 17 asks of the frame.
pub const REST_FRAME_TOLERANCE_KMS: f64 = 2.0;

/// At most this many visits (the best by S/N among those measured) are measured against the
/// rest-frame reference (each costs 15-60 ms against the atomic list, about 200-300 ms more
/// against the two cool-star templates, in the opt-level-1 test build). Six, not three: the template's velocities scatter by about 1 km/s
/// from visit to visit (its floor), and the M dwarf `2M03442721+3220288`'s three best visits happen
/// to sit 0.9-2.6 km/s below the pipeline's; six bring the frame to within 1.2 km/s.
const REST_FRAME_VISITS: usize = 6;

/// The rest frame counts as measured only when the error of the visits' mean offset is at most
/// this (km/s): the frame is then right within 2 km/s at 2 sigma. Fainter stars (the M dwarf
/// `2M12294016+2619567`, S/N 6-7 per visit: 1.3 km/s from the three visits the template finds)
/// are reported unverified, with the figure.
pub const REST_FRAME_MAX_ERR_KMS: f64 = 2.0;

/// The last few rest-frame measurements, keyed as the searches are.
static REST_MEMO: Memo<RestFrame> = Memo::new();

/// The rest frame of a dataset from its best visits' lines, given the search's relative
/// velocities (memoised like [`search_dataset`]).
#[must_use]
pub fn rest_frame(data: &Dataset, p: &SearchParams, found: &[SearchResult]) -> RestFrame {
    REST_MEMO.get_or(data, p, || rest_frame_uncached(data, p, found))
}

fn rest_frame_uncached(data: &Dataset, p: &SearchParams, found: &[SearchResult]) -> RestFrame {
    let mut order: Vec<usize> = (0..found.len().min(data.visits.len()))
        .filter(|&i| found[i].measured)
        .collect();
    if order.is_empty() {
        return RestFrame::Unverified("no visit's velocity was measured".into());
    }
    order.sort_by(|&a, &b| found[b].snr.total_cmp(&found[a].snr));
    let opts = crate::restframe::RestFrameOptions {
        window_kms: p.window_kms,
        ..crate::restframe::RestFrameOptions::default()
    };
    let mut pts: Vec<(f64, f64)> = Vec::new();
    let mut reference = "";
    let mut why = String::from("no reference line list covers the data");
    for &i in order.iter().take(REST_FRAME_VISITS) {
        match crate::restframe::visit_rest_frame_velocity(&data.visits[i], p.bad_bits, &opts) {
            Some(fit) if fit.is_reliable() && fit.err_kms.is_finite() && fit.err_kms > 0.0 => {
                pts.push((fit.v_kms - velocity_from_shift(found[i].dx), fit.err_kms));
                reference = fit.reference;
            }
            Some(fit) => {
                let list = fit.reference.split(':').next().unwrap_or(fit.reference);
                let also = if fit.reference == crate::restframe::HBAND_REFERENCE {
                    ", nor the cool-star templates (BT-Settl 3000 K, 2500 K) with two of \
                     the better one's three independent thirds agreeing"
                } else {
                    ""
                };
                why = format!(
                    "the lines of the {list} are not found reliably in these spectra (peak over \
                     next peak {:.2}, {} lines){also}: a cool star's molecular bands, or too faint",
                    fit.quality, fit.n_lines
                );
            }
            None => {}
        }
    }
    if pts.is_empty() {
        return RestFrame::Unverified(why);
    }
    let sw: f64 = pts.iter().map(|(_, e)| 1.0 / (e * e)).sum();
    let mean = pts.iter().map(|(o, e)| o / (e * e)).sum::<f64>() / sw;
    // The stated error, or the visits' scatter about the mean where that is larger.
    let scatter = if pts.len() >= 2 {
        let n = pts.len() as f64;
        (pts.iter().map(|(o, _)| (o - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
    } else {
        0.0
    };
    let err = (1.0 / sw.sqrt()).max(scatter);
    if !(err <= REST_FRAME_MAX_ERR_KMS) {
        let list = reference.split(':').next().unwrap_or(reference);
        return RestFrame::Unverified(format!(
            "the lines of the {list} put the frame at {mean:+.2} +- {err:.2} km/s from {} \
             visit(s): too faint for the {REST_FRAME_MAX_ERR_KMS} km/s the frame needs",
            pts.len()
        ));
    }
    RestFrame::Measured {
        offset_kms: mean,
        err_kms: err,
        n_visits: pts.len(),
        reference,
    }
}

/// The external velocity kind a shift source stands for (the velocity that is checked); `None`
/// for sources that are not a stellar velocity (none, -BC).
#[must_use]
pub fn external_kind(source: ShiftSource) -> Option<VelocityKind> {
    match source {
        ShiftSource::Vrel => Some(VelocityKind::Vrel),
        ShiftSource::ApStar => Some(VelocityKind::ApStar),
        ShiftSource::AllVisit => Some(VelocityKind::AllVisit),
        ShiftSource::MwmVisit => Some(VelocityKind::MwmVisit),
        ShiftSource::True => Some(VelocityKind::True),
        ShiftSource::None | ShiftSource::MinusBc => None,
    }
}

/// **The one place the zero point is decided.** `rel_kms`: the data's relative velocities (NaN =
/// not measured); `external`: the external velocities; `consistent`: whether each agreed with the
/// data; `snr`: for choosing the best visit; `absolute`: an absolute estimate (the rest-frame
/// module's, hooked in by the lead), which wins when given.
///
/// Without it: the mean offset external - data over the consistent visits; with no consistent
/// visit, the best-S/N visit's offset; with no external velocity at all, 0 (the best-S/N visit's
/// frame: the rest frame is then unknown, and the result says so).
#[must_use]
pub fn decide_zero_point(
    rel_kms: &[f64],
    external: &[Option<f64>],
    consistent: &[bool],
    snr: &[f64],
    absolute: Option<AbsoluteEstimate>,
) -> ZeroPoint {
    if let Some(a) = absolute {
        return ZeroPoint {
            offset_kms: a.offset_kms,
            err_kms: a.err_kms,
            how: "absolute velocity from the spectrum".into(),
            confirmed_by: 1,
        };
    }
    let offsets: Vec<(usize, f64)> = (0..rel_kms.len())
        .filter_map(|i| match external[i] {
            Some(e) if rel_kms[i].is_finite() => Some((i, e - rel_kms[i])),
            _ => None,
        })
        .collect();
    let cons: Vec<f64> = offsets
        .iter()
        .filter(|(i, _)| consistent[*i])
        .map(|(_, o)| *o)
        .collect();
    if !cons.is_empty() {
        let n = cons.len() as f64;
        let mean = cons.iter().sum::<f64>() / n;
        let err = if cons.len() >= 2 {
            (cons.iter().map(|o| (o - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
        } else {
            f64::NAN
        };
        return ZeroPoint {
            offset_kms: mean,
            err_kms: err,
            how: format!(
                "mean offset of the {} consistent external velocities",
                cons.len()
            ),
            confirmed_by: cons.len(),
        };
    }
    if let Some(&(i, o)) = offsets.iter().max_by(|a, b| snr[a.0].total_cmp(&snr[b.0])) {
        return ZeroPoint {
            offset_kms: o,
            err_kms: f64::NAN,
            how: format!("the best-S/N visit's external velocity (visit {i})"),
            confirmed_by: 1,
        };
    }
    ZeroPoint {
        offset_kms: 0.0,
        err_kms: f64::NAN,
        how: ZERO_POINT_UNKNOWN.into(),
        confirmed_by: 0,
    }
}

/// A barycentric velocity beyond this (km/s) is almost never that of a Milky Way star (the escape
/// speed near the Sun is about 550 km/s: Piffl et al. 2014, A&A 562, A91; the fastest known
/// hypervelocity stars are rare exceptions).
pub const IMPLAUSIBLE_BARY_KMS: f64 = 500.0;

/// When the rest frame is unverified (the lines were not found), what the result cannot vouch
/// for: a zero point that rests on one visit's file (the files' velocities contradict each
/// other), or a star velocity beyond [`IMPLAUSIBLE_BARY_KMS`] (the files' velocities likely
/// share one error, which relative alignment cannot see). `None` when the frame is measured
/// or the files' velocities agree with each other and are plausible.
#[must_use]
pub fn frame_warning(c: &VelocityCheck) -> Option<String> {
    let RestFrame::Unverified(why) = &c.rest_frame else {
        return None;
    };
    if let Some(st) = &c.star
        && st.mean_bary_kms.abs() > IMPLAUSIBLE_BARY_KMS
    {
        return Some(format!(
            "the files' velocities put the star at a barycentric velocity of {:+.1} km/s, \
             where almost no Milky Way star is (the escape speed near the Sun is about 550 \
             km/s): they likely share one error that aligning the visits to each other cannot \
             see, and the rest frame is unverified ({why}); the visits are aligned, but the \
             combined spectrum's rest frame may be wrong by hundreds of km/s",
            st.mean_bary_kms
        ));
    }
    let external = c.visits.iter().filter(|v| v.external_kms.is_some()).count();
    if external >= 2 && c.zero_point.confirmed_by < 2 {
        let replaced = c.visits.iter().filter(|v| v.replaced).count();
        return Some(format!(
            "the absolute velocity is unverified: {replaced} of the {external} files' \
             velocities disagree with the data's relative velocities and no two of them agree \
             on a zero point, so it rests on {} alone; the rest frame is unverified ({why}); the \
             visits are aligned to each other, but the combined spectrum's rest frame may be \
             wrong",
            c.zero_point.how
        ));
    }
    None
}

/// APOGEE_PIXMASK SIG_SKYLINE (12) and SIG_TELLURIC (13): left out of the search.
pub const APOGEE_SEARCH_EXTRA_BITS: u64 = (1 << 12) | (1 << 13);

/// The search's parameters from the settings.
#[must_use]
pub fn params(data: &Dataset, settings: &Settings) -> SearchParams {
    let extra = if data.survey == crate::model::Survey::Apogee {
        APOGEE_SEARCH_EXTRA_BITS
    } else {
        0
    };
    SearchParams {
        window_kms: settings.velocity.window_kms,
        bad_bits: settings.bad_bits | extra,
    }
}

type MemoKey = (Vec<usize>, u64, u64);

/// The last few (4) results of a computation on a dataset's visits (the window recombines on
/// every settings change; the search and the rest frame depend only on the visits, the bad bits
/// and the window). Keys hold the visits' addresses, and the entries hold the visits themselves
/// so that an address cannot be re-used while its entry lives.
struct Memo<T>(Mutex<Vec<MemoEntry<T>>>);

/// A memo entry: key, the visits it holds alive, the value.
type MemoEntry<T> = (MemoKey, Vec<Arc<Visit>>, T);

impl<T: Clone> Memo<T> {
    const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// The memoised value for `data` and `p`, or `compute()`'s (then kept).
    fn get_or(&self, data: &Dataset, p: &SearchParams, compute: impl FnOnce() -> T) -> T {
        let key: MemoKey = (
            data.visits
                .iter()
                .map(|v| Arc::as_ptr(v) as usize)
                .collect(),
            p.bad_bits,
            p.window_kms.to_bits(),
        );
        if let Ok(m) = self.0.lock()
            && let Some((_, _, r)) = m.iter().find(|(k, _, _)| *k == key)
        {
            return r.clone();
        }
        let r = compute();
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= 4 {
                m.remove(0);
            }
            m.push((key, data.visits.clone(), r.clone()));
        }
        r
    }
}

/// The last few searches.
static MEMO: Memo<Arc<Vec<SearchResult>>> = Memo::new();

/// [`search::search`] on a dataset, memoised (the last 4 datasets).
///
/// When the search leaves out pixels the settings keep (APOGEE's sky-line and telluric bits,
/// [`APOGEE_SEARCH_EXTRA_BITS`]), it runs a second time with them, and each visit's shift
/// change between the two (relative to the other visits: the weighted mean change over the
/// visits measured both times is removed) is its `pixel_sensitivity_dx`, added to its error in
/// quadrature. Residuals of sky emission and telluric absorption are fixed in the observed frame
/// and pull relative velocities; at high S/N they are negligible against the star (changes of
/// 0.0x km/s), at S/N 5-7 (the faint real M dwarf 2M12294016+2619567) they move velocities by
/// several km/s, far beyond the formal error, and the stated error must say so.
#[must_use]
pub fn search_dataset(data: &Dataset, p: &SearchParams) -> Arc<Vec<SearchResult>> {
    MEMO.get_or(data, p, || {
        let visits: Vec<&Visit> = data.visits.iter().map(AsRef::as_ref).collect();
        let prior: Vec<Option<f64>> = data
            .visits
            .iter()
            .map(|v| v.meta.velocity(VelocityKind::Bc).map(|b| -b))
            .collect();
        let mut found = search::search_with_prior(&visits, p, &prior);
        let extra = if data.survey == crate::model::Survey::Apogee {
            APOGEE_SEARCH_EXTRA_BITS
        } else {
            0
        };
        if extra != 0 && p.bad_bits & extra != 0 {
            let with_all = SearchParams {
                bad_bits: p.bad_bits & !extra,
                ..p.clone()
            };
            let alt = search::search_with_prior(&visits, &with_all, &prior);
            add_pixel_sensitivity(&mut found, &alt);
        }
        Arc::new(found)
    })
}

/// Each visit's shift change from `found` to `alt` (the same search on other pixels), the
/// weighted mean change over the visits measured in both removed (relative velocities carry no
/// zero point), into `pixel_sensitivity_dx`, and in quadrature into `sigma_dx` for the visits
/// below [`LOW_SNR`].
fn add_pixel_sensitivity(found: &mut [SearchResult], alt: &[SearchResult]) {
    let both: Vec<usize> = (0..found.len().min(alt.len()))
        .filter(|&i| {
            found[i].measured && alt[i].measured && found[i].dx.is_finite() && alt[i].dx.is_finite()
        })
        .collect();
    if both.len() < 2 {
        return;
    }
    let weight = |i: usize| -> f64 {
        let s = found[i].sigma_dx;
        if s.is_finite() && s > 0.0 {
            1.0 / (s * s)
        } else {
            0.0
        }
    };
    let sw: f64 = both.iter().map(|&i| weight(i)).sum();
    if !(sw > 0.0) {
        return;
    }
    let mean = both
        .iter()
        .map(|&i| weight(i) * (alt[i].dx - found[i].dx))
        .sum::<f64>()
        / sw;
    for &i in &both {
        let d = (alt[i].dx - found[i].dx - mean).abs();
        found[i].pixel_sensitivity_dx = d;
        if found[i].snr < LOW_SNR {
            found[i].sigma_dx = found[i].sigma_dx.hypot(d);
        }
    }
}

/// Below this S/N (the search's, as `SearchResult::snr`; the APOGEE pipeline's low-S/N limit,
/// as in `search`) a visit's sensitivity to the sky and telluric pixels enters its stated error.
/// Above it the sensitivity is reported only: on the bright real M dwarfs it reaches 0.9 km/s
/// (2M00452143, S/N 40), within what the floor and the segment scale already allow for there
/// (their relative velocities match the apStar's within 0.52 km/s), while at S/N 5-7 it is
/// several km/s and the formal error alone (0.4-1.0 km/s) would be far too small.
pub const LOW_SNR: f64 = 10.0;

/// Check the external velocities of the settings' shift source against the data; `None` when
/// the check is off, or the shift source is not a stellar velocity (none, -BC).
#[must_use]
pub fn check(data: &Dataset, settings: &Settings) -> Option<VelocityCheck> {
    if !settings.velocity.check || data.visits.is_empty() {
        return None;
    }
    let kind = external_kind(settings.shift)?;
    let p = params(data, settings);
    let found = search_dataset(data, &p);
    let rf = rest_frame(data, &p, &found);
    let mut c = check_with(data, settings, kind, &found, None);
    if let RestFrame::Measured {
        offset_kms,
        err_kms,
        ..
    } = rf
    {
        let external = c.zero_point.offset_kms;
        let from_external = c.visits.iter().any(|v| v.external_kms.is_some())
            && c.zero_point.how != ZERO_POINT_UNKNOWN;
        let sigma = err_kms.hypot(if c.zero_point.err_kms.is_finite() {
            c.zero_point.err_kms
        } else {
            0.0
        });
        let d = (external - offset_kms).abs();
        let disagrees = d > REST_FRAME_TOLERANCE_KMS && d > 5.0 * sigma;
        if !from_external || disagrees {
            c = check_with(
                data,
                settings,
                kind,
                &found,
                Some(AbsoluteEstimate {
                    offset_kms,
                    err_kms,
                }),
            );
            if disagrees {
                c.zero_point_replaced = Some((external, offset_kms));
            }
        }
    }
    c.rest_frame = rf;
    Some(c)
}

/// The zero point's description when nothing fixes it.
pub const ZERO_POINT_UNKNOWN: &str =
    "no external velocity: relative to the best-S/N visit, rest frame unknown";

/// [`check`] from a search's results, with an optional absolute estimate for the zero point.
#[must_use]
pub fn check_with(
    data: &Dataset,
    settings: &Settings,
    kind: VelocityKind,
    found: &[SearchResult],
    absolute: Option<AbsoluteEstimate>,
) -> VelocityCheck {
    let vs = &settings.velocity;
    let n = data.visits.len();
    let rel: Vec<f64> = found
        .iter()
        .map(|r| {
            if r.measured {
                velocity_from_shift(r.dx)
            } else {
                f64::NAN
            }
        })
        .collect();
    let formal: Vec<f64> = found
        .iter()
        .map(|r| C_KMS * r.dx.exp() * r.sigma_dx)
        .collect();
    let err: Vec<f64> = formal
        .iter()
        .map(|f| (f * f + vs.floor_kms * vs.floor_kms).sqrt())
        .collect();
    let external: Vec<Option<f64>> = data.visits.iter().map(|v| v.meta.velocity(kind)).collect();
    let snr: Vec<f64> = found.iter().map(|r| r.snr).collect();
    let offsets: Vec<Option<f64>> = (0..n)
        .map(|i| external[i].map(|e| e - rel[i]).filter(|o| o.is_finite()))
        .collect();
    let disagree = disagreements(&offsets, &err, vs.max_sigma, vs.min_disagreement_kms);
    let consistent: Vec<bool> = (0..n)
        .map(|i| external[i].is_some() && rel[i].is_finite() && !disagree[i])
        .collect();
    let zero_point_from_lines = absolute.is_some();
    let zero_point = decide_zero_point(&rel, &external, &consistent, &snr, absolute);
    // The survey tables' velocities (the apStar's VRADn, allVisit, mwmVisit) are the pipeline's
    // refits against its combined spectrum: where they agree with the data they are used as they
    // are. A visit header's VRAD (the DR13 visit-level step, often hundreds of km/s off, and up
    // to ~1 km/s off where it "agrees") is only ever a claim to check: the data's velocity is used.
    let trust_consistent = matches!(
        kind,
        VelocityKind::ApStar | VelocityKind::AllVisit | VelocityKind::MwmVisit
    );
    let label = settings.shift.label();
    let visits: Vec<VisitVelocity> = (0..n)
        .map(|i| {
            let meta = &data.visits[i].meta;
            let measured = rel[i].is_finite();
            let data_kms = rel[i] + zero_point.offset_kms;
            let (used_kms, used_source) = if measured {
                match external[i] {
                    Some(e) if disagree[i] => (data_kms, format!("data ({label} {e:.2} replaced)")),
                    Some(e) if trust_consistent && !zero_point_from_lines => {
                        (e, format!("{label} (consistent with the data)"))
                    }
                    Some(_) => (data_kms, format!("data ({label} consistent)")),
                    None => (data_kms, format!("data (no {label})")),
                }
            } else {
                match (external[i], meta.velocity(VelocityKind::Vrel)) {
                    (Some(e), _) => (e, format!("{label} (too faint to check)")),
                    // No survey-file velocity and too faint: its own header's, unchecked.
                    (None, Some(h)) => (
                        h,
                        "vrad (no {label}, too faint to check)".replace("{label}", label),
                    ),
                    (None, None) => (0.0, format!("none (no {label}, too faint to measure)")),
                }
            };
            let bc = meta.velocity(VelocityKind::Bc);
            VisitVelocity {
                name: meta.name.clone(),
                status: if measured {
                    VelocityStatus::Measured
                } else {
                    VelocityStatus::TooFaint
                },
                data_kms: if measured { data_kms } else { f64::NAN },
                err_kms: if measured { err[i] } else { f64::NAN },
                formal_err_kms: if measured { formal[i] } else { f64::NAN },
                quality: found[i].quality,
                external_kms: external[i],
                replaced: disagree[i],
                used_kms,
                used_source,
                bc_kms: bc,
                v_bary_kms: bc.map(|b| used_kms + b),
                snr: snr[i],
            }
        })
        .collect();
    let star = star_figures(&visits);
    VelocityCheck {
        visits,
        external_kind: Some(kind),
        zero_point,
        star,
        rest_frame: RestFrame::Unverified("not measured".into()),
        zero_point_replaced: None,
    }
}

/// Which external velocities disagree with the data (the consistency rule of the module docs).
/// `offsets[i]`: external minus the data's relative velocity (km/s; `None` when the visit has no
/// external velocity or no measured one); `err[i]`: the data velocity's stated error.
///
/// 1. Against the median offset: disagreeing when |o_i - median| exceeds both `max_sigma`
///    `err_i` and `min_kms`. This catches the gross failures (hundreds of km/s) however many
///    there are, while more than half the visits agree.
/// 2. A visit step 1 rejects is tested again against the best common offset of the others that
///    passed (their inverse-variance mean, itself left out, from at least two visits), with that
///    offset's own error in quadrature: consistent when within `max_sigma` of the combined error
///    (or `min_kms`). Step 1 charges the whole difference to the visit's own error, as if the
///    median were exact; where the other visits are imprecise (S/N 5-7 per visit: errors of
///    2-14 km/s) the median is uncertain by several km/s, and the most precise visit was named
///    for the others' scatter. Step 2 never names a visit step 1 passed.
#[must_use]
pub fn disagreements(
    offsets: &[Option<f64>],
    err: &[f64],
    max_sigma: f64,
    min_kms: f64,
) -> Vec<bool> {
    let mut sorted: Vec<f64> = offsets.iter().flatten().copied().collect();
    if sorted.is_empty() {
        return vec![false; offsets.len()];
    }
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[m]
    } else {
        0.5 * (sorted[m - 1] + sorted[m])
    };
    let first: Vec<bool> = offsets
        .iter()
        .zip(err)
        .map(|(o, e)| {
            o.is_some_and(|o| {
                let d = (o - median).abs();
                d > max_sigma * e && d > min_kms
            })
        })
        .collect();
    let usable = |e: f64| e.is_finite() && e > 0.0;
    (0..offsets.len())
        .map(|i| {
            let (Some(oi), true) = (offsets[i], first[i]) else {
                return false;
            };
            let others: Vec<(f64, f64)> = (0..offsets.len())
                .filter(|&j| j != i && !first[j] && usable(err[j]))
                .filter_map(|j| offsets[j].map(|o| (o, err[j])))
                .collect();
            if others.len() < 2 || !usable(err[i]) {
                return true;
            }
            let sw: f64 = others.iter().map(|(_, e)| e.powi(-2)).sum();
            let z = others.iter().map(|(o, e)| o / (e * e)).sum::<f64>() / sw;
            let d = (oi - z).abs();
            d > max_sigma * err[i].hypot(1.0 / sw.sqrt()) && d > min_kms
        })
        .collect()
}

/// Mean, scatter and chi^2 of constancy of the measured visits' barycentric velocities.
#[must_use]
pub fn star_figures(visits: &[VisitVelocity]) -> Option<StarFigures> {
    let pts: Vec<(f64, f64)> = visits
        .iter()
        .filter(|v| v.status == VelocityStatus::Measured)
        .filter_map(|v| v.v_bary_kms.map(|b| (b, v.err_kms)))
        .filter(|(b, e)| b.is_finite() && *e > 0.0)
        .collect();
    star_figures_of(&pts)
}

/// [`star_figures`] of (barycentric velocity, error) pairs.
#[must_use]
pub fn star_figures_of(pts: &[(f64, f64)]) -> Option<StarFigures> {
    if pts.len() < 2 {
        return None;
    }
    let sw: f64 = pts.iter().map(|(_, e)| 1.0 / (e * e)).sum();
    let mean = pts.iter().map(|(b, e)| b / (e * e)).sum::<f64>() / sw;
    let n = pts.len() as f64;
    let plain = pts.iter().map(|(b, _)| b).sum::<f64>() / n;
    let scatter = (pts.iter().map(|(b, _)| (b - plain).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let chi2 = pts
        .iter()
        .map(|(b, e)| ((b - mean) / e).powi(2))
        .sum::<f64>();
    let dof = pts.len() - 1;
    Some(StarFigures {
        mean_bary_kms: mean,
        scatter_kms: scatter,
        chi2,
        dof,
        rv_variable: chi2 / dof as f64 > 5.0 && scatter > 1.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_point_prefers_the_consistent_mean_then_the_best_visit() {
        let rel = [0.0, 10.0, 20.0];
        let ext = [Some(100.0), Some(110.5), Some(-300.0)];
        let z = decide_zero_point(&rel, &ext, &[true, true, false], &[1.0, 2.0, 3.0], None);
        assert!((z.offset_kms - 100.25).abs() < 1e-12, "{z:?}");
        let z = decide_zero_point(&rel, &ext, &[false; 3], &[1.0, 2.0, 3.0], None);
        assert!((z.offset_kms - (-320.0)).abs() < 1e-12, "{z:?}");
        let z = decide_zero_point(&rel, &[None; 3], &[false; 3], &[1.0, 2.0, 3.0], None);
        assert_eq!(z.offset_kms, 0.0);
        let a = AbsoluteEstimate {
            offset_kms: 7.0,
            err_kms: 0.2,
        };
        let z = decide_zero_point(&rel, &ext, &[true; 3], &[1.0; 3], Some(a));
        assert_eq!(z.offset_kms, 7.0);
    }

    fn result(dx: f64, sigma_dx: f64, measured: bool) -> SearchResult {
        SearchResult {
            dx,
            sigma_dx,
            quality: Quality {
                peak_height: 0.5,
                peak_ratio: 2.0,
                width_kms: 20.0,
            },
            measured,
            snr: 6.0,
            error_scale: 1.0,
            pixel_sensitivity_dx: 0.0,
        }
    }

    /// A common change of every shift (a zero point) is no sensitivity; one visit moved by 5e-5
    /// against the others gets that much, less its share of the mean, in quadrature into its
    /// error; a visit measured only once keeps its error.
    #[test]
    fn pixel_sensitivity_is_the_relative_change_in_quadrature() {
        let mut found = vec![
            result(0.0, 1e-5, true),
            result(1e-4, 1e-5, true),
            result(2e-4, 1e-5, true),
            result(3e-4, 1e-5, true),
            result(f64::NAN, f64::NAN, false),
        ];
        let common = 7e-5;
        let mut alt: Vec<SearchResult> = found
            .iter()
            .map(|r| result(r.dx + common, r.sigma_dx, r.measured))
            .collect();
        let mut same = found.clone();
        add_pixel_sensitivity(&mut same, &alt);
        for (a, b) in same.iter().zip(&found).take(4) {
            assert!(a.pixel_sensitivity_dx < 1e-15, "{a:?}");
            assert!((a.sigma_dx - b.sigma_dx).abs() < 1e-15);
        }
        alt[3].dx += 5e-5;
        add_pixel_sensitivity(&mut found, &alt);
        // Equal weights: the mean change is common + 5e-5 / 4.
        let moved = 5e-5 * 0.75;
        assert!(
            (found[3].pixel_sensitivity_dx - moved).abs() < 1e-12,
            "{:?}",
            found[3]
        );
        assert!((found[3].sigma_dx - 1e-5_f64.hypot(moved)).abs() < 1e-12);
        assert!((found[0].pixel_sensitivity_dx - 5e-5 / 4.0).abs() < 1e-12);
        assert!(found[4].sigma_dx.is_nan() && found[4].pixel_sensitivity_dx == 0.0);
        // A bright visit: reported, not in its error.
        let mut bright: Vec<SearchResult> = alt
            .iter()
            .map(|r| SearchResult {
                snr: 40.0,
                dx: r.dx - 1e-4,
                ..r.clone()
            })
            .collect();
        bright[3].dx += 5e-5;
        let before = bright[3].sigma_dx;
        add_pixel_sensitivity(&mut bright, &alt);
        assert!(bright[3].pixel_sensitivity_dx > 3e-5 && bright[3].sigma_dx == before);
    }

    /// The faint star's case (offsets and errors as on `2M12294016+2619567` with its apStar):
    /// the precise visit 4.8 km/s off the median of imprecise ones is consistent with the others'
    /// best offset; the same visit 300 km/s off, or 4.8 km/s off precise others, is named; the
    /// gross failures are named whatever the others' errors.
    #[test]
    fn a_precise_visit_is_judged_against_the_others_best_offset() {
        let err = [14.2, 3.5, 0.87, 4.1, 5.9, 2.0];
        let faint = |o4: f64| {
            [
                Some(6.8),
                Some(0.3),
                Some(o4),
                Some(-4.0),
                Some(-3.8),
                Some(0.7),
            ]
        };
        assert_eq!(disagreements(&faint(5.3), &err, 5.0, 3.0), [false; 6]);
        let far = disagreements(&faint(300.0), &err, 5.0, 3.0);
        assert_eq!(far, [false, false, true, false, false, false]);
        let precise = [0.3; 6];
        let tight = [
            Some(0.2),
            Some(-0.1),
            Some(5.3),
            Some(0.0),
            Some(0.1),
            Some(-0.2),
        ];
        assert_eq!(
            disagreements(&tight, &precise, 5.0, 3.0),
            [false, false, true, false, false, false]
        );
        // Three headers hundreds of km/s off and three right, imprecise: the three named.
        let gross = [
            Some(0.0),
            Some(-261.0),
            Some(2.0),
            Some(455.0),
            Some(-1.0),
            Some(-97.0),
        ];
        assert_eq!(
            disagreements(&gross, &err, 5.0, 3.0),
            [false, true, false, true, false, true]
        );
        // Two visits that disagree: both named (no best offset of two others).
        assert_eq!(
            disagreements(&[Some(0.0), Some(50.0)], &[0.5, 0.5], 5.0, 3.0),
            [true, true]
        );
        assert_eq!(
            disagreements(&[None, None], &[0.5, 0.5], 5.0, 3.0),
            [false; 2]
        );
    }

    #[test]
    fn star_figures_flag_a_binary_not_a_constant_star() {
        let constant = [(10.0, 0.2), (10.1, 0.2), (9.9, 0.2)];
        let s = star_figures_of(&constant).expect("figures");
        assert!(!s.rv_variable && (s.mean_bary_kms - 10.0).abs() < 1e-9);
        let binary = [(10.0, 0.2), (25.0, 0.2), (-5.0, 0.2)];
        assert!(star_figures_of(&binary).expect("figures").rv_variable);
    }
}

#[cfg(test)]
mod synthetic_tests {
    use super::*;
    use crate::synth::apogee::{ApogeeParams, generate, visit_draw};

    /// Header velocities that failed as the real DR13 ones did (200-800 km/s on some visits,
    /// a common offset on all, a visit at S/N 3.3): the failed ones are named and replaced, and
    /// the data's relative velocities match the true ones.
    #[test]
    fn failed_headers_are_replaced_and_relative_velocities_are_right() {
        for (common, seed) in [(0.0, 3), (580.0, 4)] {
            let p = ApogeeParams {
                n_visits: 6,
                seed,
                snr_range: (40.0, 80.0),
                header_failure_fraction: if common == 0.0 { 0.5 } else { 0.0 },
                header_common_offset_kms: common,
                faint_visits: 1,
                ..ApogeeParams::default()
            };
            let data = generate(&p).expect("synthetic star");
            let s = crate::settings::survey_defaults(&data);
            assert!(s.velocity.check);
            let c = check(&data, &s).expect("checked");
            let truth: Vec<f64> = (0..6).map(|j| visit_draw(&p, j).v_true_kms).collect();
            let failed: Vec<bool> = (0..6).map(|j| visit_draw(&p, j).header_failed).collect();
            if common == 0.0 {
                assert!(
                    failed.iter().any(|&f| f),
                    "seed {seed}: no failed header drawn"
                );
            }
            let ref_i = 0;
            for (j, v) in c.visits.iter().enumerate() {
                let faint = j == 5;
                if v.status == VelocityStatus::Measured {
                    let d = (v.used_kms - c.visits[ref_i].used_kms) - (truth[j] - truth[ref_i]);
                    let tol = if faint { 5.0 } else { 0.3 };
                    assert!(d.abs() < tol, "common {common} visit {j}: {d:.3} km/s off");
                    assert_eq!(v.replaced, failed[j], "common {common} visit {j}");
                } else {
                    assert!(faint, "visit {j} not measured at S/N 40-80");
                }
            }
            // The zero point is the headers' (the consistent ones): with a common offset it
            // carries that offset, which only an absolute reference could detect.
            let zp = c.visits[ref_i].used_kms - truth[ref_i];
            assert!(
                (zp - common).abs() < 1.0,
                "common {common}: zero point off by {zp:.2}"
            );
        }
    }
}
