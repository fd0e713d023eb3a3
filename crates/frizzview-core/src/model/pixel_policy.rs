//! Per-bit pixel policy: what a mask bit does to a pixel before any method sees it.
//!
//! Each bit is *bad* (the pixel gets zero weight), *inflate* (its sigma is multiplied by a factor,
//! so its inverse variance is divided by the factor squared) or *ignore* (no effect). Where
//! several inflating bits are set on one pixel the largest factor applies: the APOGEE DRP's
//! persistence factors are exclusive (HIGH, else MED, else LOW). (It multiplies SIG_SKYLINE's on
//! top of a persistence factor; the largest-factor rule gives such rare pixels sigma x 10 instead
//! of x 22, weights 1 % and 0.2 % of a clean pixel's.) A bad bit wins over an inflating one.
//!
//! A policy is stored as the bad-bit set (`Settings::bad_bits`, unchanged from the earlier
//! "bad bits" behaviour) plus a list of inflating bits (`Settings::inflate_bits`, empty by
//! default so that a session saved before the policy existed reproduces its result).
//!
//! Presets:
//! - **APOGEE pipeline**: what the APOGEE DRP's visit combination does (sdss/apogee_drp,
//!   `python/apogee_drp/apred/rv.py`, `visitcomb`): the `PixelBitMask` bad level {0-7, 14} =
//!   16639 gets zero weight; after resampling it multiplies the error of PERSIST_HIGH pixels by
//!   sqrt(5), PERSIST_MED by sqrt(4), PERSIST_LOW by sqrt(3) and SIG_SKYLINE by sqrt(100) = 10.
//!   SIG_TELLURIC (13) is left as the pipeline leaves it there: neither dropped nor inflated (the
//!   apVisit FLUX is already divided by the telluric model, whose error is in ERROR;
//!   `pro/apogeereduce/sky/aptelluric.pro`). LITTROW_GHOST (8) is ignored, as in `visitcomb`.
//! - **BOSS pipeline**: the SPPIXMASK bits that make a pixel unusable get zero weight
//!   (fibre-level NOPLUG, BADTRACE, BADFLAT, BADARC; pixel-level FULLREJECT, NOSKY, NODATA,
//!   COMBINEREJ); idlspec2d's combination sets the inverse variance of such pixels to zero and
//!   scales no error by a mask bit, so nothing is inflated.
//! - **bad bits**: the survey's bad set, nothing inflated (the behaviour before policies).

use super::mask::{self, BitDef};

/// One bit whose pixels get their sigma multiplied by `factor`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InflateBit {
    /// Bit number.
    pub bit: u32,
    /// Factor on sigma (> 0; > 1 down-weights).
    pub factor: f64,
}

/// What one bit does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BitAction {
    /// Zero weight.
    Bad,
    /// Sigma times this factor.
    Inflate(f64),
    /// No effect.
    Ignore,
}

impl BitAction {
    /// Short text: `bad`, `inflate:F`, `ignore`.
    #[must_use]
    pub fn label(self) -> String {
        match self {
            Self::Bad => "bad".into(),
            Self::Inflate(f) => format!("inflate:{f:.4}"),
            Self::Ignore => "ignore".into(),
        }
    }

    /// Parse `bad`, `ignore`, `inflate:F` (also `xF` or a bare number F).
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let factor = |f: &str| -> Result<Self, String> {
            let v: f64 = f
                .parse()
                .map_err(|_| format!("'{s}': the factor '{f}' is not a number"))?;
            if v.is_finite() && v > 0.0 {
                Ok(Self::Inflate(v))
            } else {
                Err(format!(
                    "'{s}': the factor must be a positive finite number"
                ))
            }
        };
        match t.as_str() {
            "bad" => Ok(Self::Bad),
            "ignore" | "none" | "warn" => Ok(Self::Ignore),
            _ => {
                if let Some(f) = t.strip_prefix("inflate:") {
                    factor(f)
                } else if let Some(f) = t.strip_prefix('x') {
                    factor(f)
                } else if t.parse::<f64>().is_ok() {
                    factor(&t)
                } else {
                    Err(format!("'{s}': expected bad, ignore or inflate:FACTOR"))
                }
            }
        }
    }
}

/// The named policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The APOGEE DRP's visit combination (see the module documentation).
    ApogeePipeline,
    /// idlspec2d's treatment of SPPIXMASK: the bad set, nothing inflated.
    BossPipeline,
    /// The APOGEE bad set 16639, nothing inflated (the behaviour before policies).
    ApogeeBadBits,
}

impl Preset {
    /// Every preset, in menu order.
    pub const ALL: [Self; 3] = [
        Self::ApogeePipeline,
        Self::ApogeeBadBits,
        Self::BossPipeline,
    ];

    /// Display name.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::ApogeePipeline => "APOGEE pipeline",
            Self::BossPipeline => "BOSS pipeline",
            Self::ApogeeBadBits => "bad bits (16639)",
        }
    }

    /// The policy: (bad bits, inflating bits).
    #[must_use]
    pub fn policy(self) -> (u64, Vec<InflateBit>) {
        match self {
            Self::ApogeePipeline => (mask::APOGEE_BAD_BITS, apogee_pipeline_inflation()),
            Self::BossPipeline => (mask::BOSS_BAD_BITS, Vec::new()),
            Self::ApogeeBadBits => (mask::APOGEE_BAD_BITS, Vec::new()),
        }
    }
}

/// The APOGEE DRP's error inflation in its visit combination (`rv.py` `visitcomb`):
/// PERSIST_HIGH sqrt 5, PERSIST_MED sqrt 4, PERSIST_LOW sqrt 3, SIG_SKYLINE sqrt 100.
#[must_use]
pub fn apogee_pipeline_inflation() -> Vec<InflateBit> {
    vec![
        InflateBit {
            bit: 9,
            factor: 5f64.sqrt(),
        },
        InflateBit {
            bit: 10,
            factor: 2.0,
        },
        InflateBit {
            bit: 11,
            factor: 3f64.sqrt(),
        },
        InflateBit {
            bit: 12,
            factor: 10.0,
        },
    ]
}

/// What `bit` does under the policy (`bad_bits`, `inflate`).
#[must_use]
pub fn action(bad_bits: u64, inflate: &[InflateBit], bit: u32) -> BitAction {
    if bit < 64 && bad_bits & (1u64 << bit) != 0 {
        return BitAction::Bad;
    }
    inflate
        .iter()
        .find(|b| b.bit == bit)
        .map_or(BitAction::Ignore, |b| BitAction::Inflate(b.factor))
}

/// Make `bit` do `what` (bits >= 64 cannot be set and are left alone).
pub fn set_action(bad_bits: &mut u64, inflate: &mut Vec<InflateBit>, bit: u32, what: BitAction) {
    if bit >= 64 {
        return;
    }
    *bad_bits &= !(1u64 << bit);
    inflate.retain(|b| b.bit != bit);
    match what {
        BitAction::Bad => *bad_bits |= 1u64 << bit,
        BitAction::Inflate(factor) => {
            inflate.push(InflateBit { bit, factor });
            inflate.sort_by_key(|b| b.bit);
        }
        BitAction::Ignore => {}
    }
}

/// The factor on sigma for a pixel with `flags`: the largest factor of its inflating bits (1 when
/// none is set).
#[must_use]
pub fn sigma_factor(flags: u64, inflate: &[InflateBit]) -> f64 {
    inflate
        .iter()
        .filter(|b| b.bit < 64 && flags & (1u64 << b.bit) != 0)
        .map(|b| b.factor)
        .fold(1.0, f64::max)
}

/// The preset this policy equals, if any (`None` = custom).
#[must_use]
pub fn matching_preset(bad_bits: u64, inflate: &[InflateBit]) -> Option<Preset> {
    let mut sorted = inflate.to_vec();
    sorted.sort_by_key(|b| b.bit);
    Preset::ALL.into_iter().find(|p| {
        let (b, i) = p.policy();
        b == bad_bits && i == sorted
    })
}

/// One line per bit that does something, e.g. `SIG_SKYLINE (12): inflate x10`.
#[must_use]
pub fn describe(bad_bits: u64, inflate: &[InflateBit], defs: &[BitDef]) -> Vec<String> {
    let name = |bit: u32| {
        defs.iter()
            .find(|d| d.bit == bit)
            .map_or_else(|| format!("BIT{bit}"), |d| d.name.to_owned())
    };
    let mut out = Vec::new();
    for bit in 0..64u32 {
        match action(bad_bits, inflate, bit) {
            BitAction::Bad => out.push(format!("{} ({bit}): bad", name(bit))),
            BitAction::Inflate(f) => out.push(format!("{} ({bit}): sigma x {f:.3}", name(bit))),
            BitAction::Ignore => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_and_bad_wins() {
        let (mut bad, mut inf) = Preset::ApogeePipeline.policy();
        assert_eq!(action(bad, &inf, 0), BitAction::Bad);
        assert_eq!(action(bad, &inf, 12), BitAction::Inflate(10.0));
        assert_eq!(action(bad, &inf, 13), BitAction::Ignore);
        set_action(&mut bad, &mut inf, 13, BitAction::Inflate(3.0));
        assert_eq!(action(bad, &inf, 13), BitAction::Inflate(3.0));
        assert_eq!(matching_preset(bad, &inf), None);
        set_action(&mut bad, &mut inf, 13, BitAction::Ignore);
        assert_eq!(matching_preset(bad, &inf), Some(Preset::ApogeePipeline));
        // Bad wins where a bit is in both lists.
        inf.push(InflateBit {
            bit: 0,
            factor: 2.0,
        });
        assert_eq!(action(bad, &inf, 0), BitAction::Bad);
    }

    #[test]
    fn the_largest_factor_applies() {
        let inf = apogee_pipeline_inflation();
        assert_eq!(sigma_factor((1 << 9) | (1 << 12), &inf), 10.0);
        assert_eq!(sigma_factor((1 << 9) | (1 << 11), &inf), 5f64.sqrt());
        assert_eq!(sigma_factor(1 << 13, &inf), 1.0);
    }

    #[test]
    fn parse_actions() {
        assert_eq!(BitAction::parse("bad"), Ok(BitAction::Bad));
        assert_eq!(BitAction::parse("inflate:10"), Ok(BitAction::Inflate(10.0)));
        assert_eq!(BitAction::parse("x2.5"), Ok(BitAction::Inflate(2.5)));
        assert_eq!(BitAction::parse("ignore"), Ok(BitAction::Ignore));
        assert!(BitAction::parse("inflate:-1").is_err());
        assert!(BitAction::parse("sometimes").is_err());
    }
}
