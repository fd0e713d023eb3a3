//! The molecular reference: 12C16O second-overtone (Delta v = 3) lines in the H band, computed from
//! the published isotopically invariant Dunham parameters of Farrenq, Guelachvili, Sauval,
//! Grevesse & Farmer 1991 (J. Mol. Spectrosc. 149, 375, "Improved Dunham coefficients for CO from
//! infrared solar lines of high rotational excitation", Table IV: U_ik and the Born-Oppenheimer
//! breakdown terms Delta_ik^C, Delta_ik^O; atomic masses of their Table III).
//!
//! Y_ik = U_ik mu^-(i/2 + k) (1 + m_e (Delta_ik^C / m_C + Delta_ik^O / m_O)), and a level's energy is
//! E(v, J) = sum_ik Y_ik (v + 1/2)^i [J (J + 1)]^k (cm^-1). A line's vacuum wavelength is
//! 1e8 / (E(v', J') - E(v'', J'')) A. The unit tests check the computed 1-0 lines against the
//! measured wavenumbers of Maki & Wells (1991, NIST Special Publication 821, as tabulated in the
//! CRC Handbook's "Infrared and far-infrared absorption frequency standards").

use std::sync::OnceLock;

use super::lines::{ListId, ReferenceLine};

/// What the molecular list is made of (what [`super::RestFrameFit::reference`] says when it
/// gives the frame).
pub const CO_REFERENCE: &str = "frizzview molecular line list: 12C16O second overtone (Delta v = 3, \
     bands 3-0 to 8-5, P and R branches) computed from the Dunham parameters of Farrenq et al. 1991 \
     (J. Mol. Spectrosc. 149, 375, Tables III-IV), vacuum";

/// Atomic masses (u) of 12C and 16O (Farrenq et al. 1991, Table III).
const M_C: f64 = 12.0;
const M_O: f64 = 15.994_915_02;
/// Electron mass (u), as used with the Table IV terms.
const M_E: f64 = 0.548_580_228e-3;

/// U_ik (Farrenq et al. 1991, Table IV), as (i, k, value), cm^-1 u^(i/2 + k).
const U: [(usize, usize, f64); 32] = [
    (1, 0, 5_681.367_616_6),
    (2, 0, -91.105_514_9),
    (3, 0, 0.187_032_87),
    (4, 0, 0.326_074_8e-2),
    (5, 0, 0.206_71e-4),
    (6, 0, 0.663_7e-6),
    (7, 0, -0.716_32e-6),
    (8, 0, 0.273_954e-7),
    (9, 0, -0.476_404e-9),
    (0, 1, 13.243_473_898),
    (1, 1, -0.314_298_856_1),
    (2, 1, 0.337_229e-4),
    (3, 1, -0.264_19e-5),
    (4, 1, 0.142_950e-5),
    (5, 1, -0.114_861e-6),
    (6, 1, 0.275_28e-8),
    (7, 1, -0.122_960e-9),
    (0, 2, -0.287_845_847_1e-3),
    (1, 2, 0.127_384_9e-6),
    (2, 2, -0.596_168_6e-7),
    (3, 2, 0.205_163e-8),
    (4, 2, -0.230_581e-9),
    (0, 3, 0.189_666_901e-8),
    (1, 3, -0.120_564_92e-9),
    (2, 3, -0.270_763e-11),
    (0, 4, -0.798_985_33e-13),
    (1, 4, -0.428_499_4e-14),
    (2, 4, -0.765_8e-16),
    (0, 5, -0.690_139_7e-18),
    (1, 5, -0.234_94e-18),
    (0, 6, -0.157_85e-21),
    (0, 0, 0.0),
];

/// Born-Oppenheimer breakdown terms (Table IV): (i, k, Delta^C, Delta^O); zero elsewhere.
const DELTA: [(usize, usize, f64, f64); 6] = [
    (1, 0, 0.700_930, -0.171_324),
    (2, 0, 0.428_15, -0.910_35),
    (3, 0, -12.286_8, -3.534),
    (0, 1, -2.057_208, -2.119_921),
    (1, 1, -1.245_2, -3.020_6),
    (0, 2, -7.353, 1.350),
];

/// The term value E(v, J) of 12C16O X 1Sigma+ (cm^-1, without the constant Y_00).
#[must_use]
pub fn co_energy(v: u32, j: u32) -> f64 {
    let mu = M_C * M_O / (M_C + M_O);
    let x = f64::from(v) + 0.5;
    let jj = f64::from(j) * (f64::from(j) + 1.0);
    U.iter()
        .map(|&(i, k, u)| {
            let (dc, d_o) = DELTA
                .iter()
                .find(|d| d.0 == i && d.1 == k)
                .map_or((0.0, 0.0), |d| (d.2, d.3));
            let y =
                u * mu.powf(-(i as f64 / 2.0 + k as f64)) * (1.0 + M_E * (dc / M_C + d_o / M_O));
            y * x.powi(i as i32) * jj.powi(k as i32)
        })
        .sum()
}

/// The wavenumber (cm^-1) of the 12C16O line v' - v'' with lower J `j_lo`: R branch
/// (J' = J'' + 1) when `r_branch`, else P (J' = J'' - 1; `None` for J'' = 0).
#[must_use]
pub fn co_wavenumber(v_up: u32, v_lo: u32, j_lo: u32, r_branch: bool) -> Option<f64> {
    let j_up = if r_branch {
        j_lo + 1
    } else {
        j_lo.checked_sub(1)?
    };
    Some(co_energy(v_up, j_up) - co_energy(v_lo, j_lo))
}

/// The highest lower-state J in the list, per branch: R lines beyond J'' = 40 crowd into the band
/// heads (several lines per resolution element); P lines to J'' = 60 (populated at 3000-4500 K).
const J_MAX_R: u32 = 40;
const J_MAX_P: u32 = 60;

/// The 12C16O second-overtone lines (bands 3-0 to 8-5) in the APOGEE range 15100-17000 A, vacuum,
/// weight 1 each (list [`ListId::HBand`], species `12C16O`, source `F91`).
#[must_use]
pub fn co_second_overtone_lines() -> &'static [ReferenceLine] {
    static LINES: OnceLock<Vec<ReferenceLine>> = OnceLock::new();
    LINES.get_or_init(|| {
        let mut out = Vec::new();
        for v_lo in 0..=5u32 {
            let v_up = v_lo + 3;
            for (r, jmax) in [(true, J_MAX_R), (false, J_MAX_P)] {
                for j in 0..=jmax {
                    let Some(wn) = co_wavenumber(v_up, v_lo, j, r) else {
                        continue;
                    };
                    let aa = 1e8 / wn;
                    if (15100.0..17000.0).contains(&aa) {
                        out.push(ReferenceLine {
                            list: ListId::HBand,
                            species: "12C16O",
                            published_aa: aa,
                            air: false,
                            vacuum_aa: aa,
                            weight: 1.0,
                            source: "F91",
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.vacuum_aa.total_cmp(&b.vacuum_aa));
        out
    })
}
