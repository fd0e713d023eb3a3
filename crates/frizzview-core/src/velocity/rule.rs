//! The shift rule, in one place: which velocity a visit is shifted by.
//!
//! A manual velocity (the visit's own setting) wins; then, when the settings check external
//! velocities against the data, the check's decision (the data's velocity, or the external one
//! of a visit too faint to measure); then the shift source's velocity; else the velocity is
//! missing. The combination (`combine::prepare`) shifts by it; the window's visit table and
//! plots show it.

use crate::model::VisitMeta;
use crate::settings::Settings;
use crate::velocity::VisitVelocity;

/// Where the velocity of one visit comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VelocityChoice<'a> {
    /// The visit's manual velocity (km/s).
    Manual(f64),
    /// The velocity check's decision for the visit.
    Checked(&'a VisitVelocity),
    /// The shift source's velocity (km/s).
    Source(f64),
    /// The shift source has no velocity for the visit.
    Missing,
}

impl VelocityChoice<'_> {
    /// The velocity (km/s), `None` when missing.
    #[must_use]
    pub fn kms(&self) -> Option<f64> {
        match self {
            Self::Manual(v) | Self::Source(v) => Some(*v),
            Self::Checked(c) => Some(c.used_kms),
            Self::Missing => None,
        }
    }
}

/// The velocity visit `index` (with metadata `meta`) is shifted by under `settings`; `checked`
/// is the velocity check's entry for the visit when the settings check velocities.
#[must_use]
pub fn choose<'a>(
    settings: &Settings,
    index: usize,
    meta: &VisitMeta,
    checked: Option<&'a VisitVelocity>,
) -> VelocityChoice<'a> {
    if let Some(v) = settings.visit(index).shift_kms {
        return VelocityChoice::Manual(v);
    }
    if let Some(c) = checked {
        return VelocityChoice::Checked(c);
    }
    match settings.shift.velocity(meta) {
        Some(v) => VelocityChoice::Source(v),
        None => VelocityChoice::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VelocityKind;
    use crate::settings::{ShiftSource, VisitSetting};
    use crate::velocity::{Quality, VelocityStatus};

    fn meta_with_vrad(v: f64) -> VisitMeta {
        let mut m = VisitMeta::default();
        m.set_velocity(VelocityKind::Vrel, v);
        m
    }

    fn checked(used: f64) -> VisitVelocity {
        VisitVelocity {
            name: "a".into(),
            status: VelocityStatus::Measured,
            data_kms: used,
            err_kms: 0.1,
            formal_err_kms: 0.1,
            quality: Quality {
                peak_height: 0.9,
                peak_ratio: 3.0,
                width_kms: 20.0,
            },
            external_kms: None,
            replaced: false,
            used_kms: used,
            used_source: "data".into(),
            bc_kms: None,
            v_bary_kms: None,
            snr: 50.0,
        }
    }

    #[test]
    fn manual_then_checked_then_source_then_missing() {
        let mut s = Settings {
            shift: ShiftSource::Vrel,
            ..Settings::default()
        };
        let meta = meta_with_vrad(12.5);
        let c = checked(-3.0);
        assert_eq!(choose(&s, 0, &meta, None), VelocityChoice::Source(12.5));
        assert_eq!(choose(&s, 0, &meta, Some(&c)), VelocityChoice::Checked(&c));
        assert_eq!(choose(&s, 0, &meta, Some(&c)).kms(), Some(-3.0));
        s.visits = vec![VisitSetting {
            shift_kms: Some(7.0),
            ..VisitSetting::default()
        }];
        assert_eq!(choose(&s, 0, &meta, Some(&c)), VelocityChoice::Manual(7.0));
        // Visit 1 has no setting of its own: the source, or nothing.
        assert_eq!(
            choose(&s, 1, &VisitMeta::default(), None),
            VelocityChoice::Missing
        );
        assert_eq!(choose(&s, 1, &VisitMeta::default(), None).kms(), None);
    }
}
