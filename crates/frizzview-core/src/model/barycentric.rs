//! Barycentric velocity correction from the sky position, the time and the observatory.
//!
//! The rule for APOGEE visits: use the header's BC when present (the SDSS-IV IDL RV step,
//! sdss/apogee_drp `pro/apogeereduce/rv/aprv.pro`, wrote BC into the apVisit header), else compute
//! it from RA/DEC and JD-MID at APO or LCO. SDSS-V apVisit files keep their velocities in the pipeline's
//! database, not in the header, so without this a barycentric shift would be impossible.
//!
//! The observer's velocity relative to the solar-system barycentre is the sum of
//! - the Earth-Moon barycentre's heliocentric orbit (Keplerian, with JPL's approximate mean
//!   elements for 1800-2050, Standish 1992 / Table 1 of "Keplerian Elements for Approximate
//!   Positions of the Major Planets"),
//! - the Earth about the Earth-Moon barycentre (the Moon's mean motion on a circular orbit),
//! - the Sun about the barycentre (Jupiter and Saturn on circular orbits),
//! - the Earth's rotation at the observatory.
//!
//! Terms left out (the eccentricity of the Moon's and the giant planets' orbits, the other planets,
//! precession between J2000 and the date in the diurnal term, UTC vs TDB) are each below about 3 m/s;
//! the test compares with the pipeline's own BC of two real visits.
//!
//! Convention (APOGEE's): `v_barycentric = v_measured + BC`, so BC is the component of the
//! observer's barycentric velocity towards the star.

use std::f64::consts::PI;

/// Astronomical unit, km.
const AU_KM: f64 = 149_597_870.7;
/// Seconds per day.
const DAY_S: f64 = 86_400.0;
/// Obliquity of the ecliptic at J2000, degrees.
const OBLIQUITY_J2000_DEG: f64 = 23.439_291_1;
/// Earth's rotation rate, rad/s.
const EARTH_OMEGA: f64 = 7.292_115_9e-5;
/// WGS84 equatorial radius (km) and flattening.
const WGS84_A_KM: f64 = 6378.137;
const WGS84_F: f64 = 1.0 / 298.257_223_563;

/// An observatory: geodetic latitude and east longitude (degrees), height (m).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observatory {
    /// Short name.
    pub name: &'static str,
    /// Geodetic latitude, degrees north.
    pub lat_deg: f64,
    /// Longitude, degrees east.
    pub lon_deg: f64,
    /// Height above the ellipsoid, metres.
    pub height_m: f64,
}

/// Apache Point Observatory (SDSS 2.5 m and NMSU 1 m; astropy's site registry).
pub const APO: Observatory = Observatory {
    name: "APO",
    lat_deg: 32.780_278,
    lon_deg: -105.820_278,
    height_m: 2788.0,
};

/// Las Campanas Observatory (du Pont 2.5 m; astropy's site registry).
pub const LCO: Observatory = Observatory {
    name: "LCO",
    lat_deg: -29.015_833,
    lon_deg: -70.692_500,
    height_m: 2380.0,
};

impl Observatory {
    /// The observatory of an SDSS `TELESCOP` card (`apo25m`, `apo1m`, `lco25m`), if known.
    #[must_use]
    pub fn from_telescope(telescope: &str) -> Option<Self> {
        let t = telescope.trim().to_ascii_lowercase();
        if t.starts_with("apo") {
            Some(APO)
        } else if t.starts_with("lco") || t.contains("dupont") || t.contains("du pont") {
            Some(LCO)
        } else {
            None
        }
    }
}

type Vec3 = [f64; 3];

fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn scale(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// Ecliptic (J2000) to equatorial (J2000) coordinates.
fn ecliptic_to_equatorial(v: Vec3) -> Vec3 {
    let (s, c) = OBLIQUITY_J2000_DEG.to_radians().sin_cos();
    [v[0], c * v[1] - s * v[2], s * v[1] + c * v[2]]
}

/// Heliocentric ecliptic velocity (km/s) of a body on a Keplerian orbit with semi-major axis `a`
/// (AU), eccentricity `e`, mean longitude `l` and longitude of perihelion `varpi` (radians), mean
/// motion `n` (rad/day), in the ecliptic plane (the inclinations that matter here are < 2.5 deg).
fn kepler_velocity(a: f64, e: f64, l: f64, varpi: f64, n: f64) -> Vec3 {
    let m = (l - varpi).rem_euclid(2.0 * PI);
    let mut ea = m + e * m.sin();
    for _ in 0..10 {
        ea -= (ea - e * ea.sin() - m) / (1.0 - e * ea.cos());
    }
    let de_dt = n / (1.0 - e * ea.cos()) / DAY_S; // rad/s
    let vx = -a * AU_KM * ea.sin() * de_dt;
    let vy = a * AU_KM * (1.0 - e * e).sqrt() * ea.cos() * de_dt;
    let (s, c) = varpi.sin_cos();
    [c * vx - s * vy, s * vx + c * vy, 0.0]
}

/// Velocity (km/s, J2000 equatorial) of a body on a circular orbit of radius `a` (km) at mean
/// longitude `l` (ecliptic, radians) with mean motion `n` (rad/day).
fn circular_velocity(a_km: f64, l: f64, n: f64) -> Vec3 {
    let v = a_km * n / DAY_S;
    ecliptic_to_equatorial([-v * l.sin(), v * l.cos(), 0.0])
}

/// The geocentre's velocity relative to the solar-system barycentre (km/s, J2000 equatorial) at
/// Julian date `jd`.
#[must_use]
pub fn earth_barycentric_velocity(jd: f64) -> Vec3 {
    let t = (jd - 2_451_545.0) / 36_525.0;
    let deg = f64::to_radians;
    // Earth-Moon barycentre (Standish's elements, valid 1800-2050).
    let e = 0.016_711_23 - 0.000_043_92 * t;
    let l = deg(100.464_571_66 + 35_999.372_449_81 * t);
    let varpi = deg(102.937_681_93 + 0.323_273_64 * t);
    let n_emb = deg(35_999.372_449_81) / 36_525.0;
    let emb = ecliptic_to_equatorial(kepler_velocity(1.000_002_61, e, l, varpi, n_emb));
    // Earth about the Earth-Moon barycentre: -m_moon/(m_earth+m_moon) times the Moon's
    // geocentric velocity (mean distance 384 400 km, mean longitude and motion).
    let l_moon = deg(218.316_447_7 + 481_267.881_234_21 * t);
    let n_moon = deg(481_267.881_234_21) / 36_525.0;
    let moon = circular_velocity(384_400.0, l_moon, n_moon);
    let earth_about_emb = scale(moon, -1.0 / 82.300_568);
    // The Sun about the barycentre: -m/(M_sun) times Jupiter's and Saturn's heliocentric velocity.
    let l_jup = deg(34.396_440_51 + 3_034.746_127_75 * t);
    let n_jup = deg(3_034.746_127_75) / 36_525.0;
    let jup = circular_velocity(5.202_887 * AU_KM, l_jup, n_jup);
    let l_sat = deg(49.954_244_23 + 1_222.493_622_01 * t);
    let n_sat = deg(1_222.493_622_01) / 36_525.0;
    let sat = circular_velocity(9.536_675_94 * AU_KM, l_sat, n_sat);
    let sun = add(scale(jup, -1.0 / 1_047.348_6), scale(sat, -1.0 / 3_497.898));
    add(add(emb, earth_about_emb), sun)
}

/// Greenwich mean sidereal time (radians) at UT Julian date `jd`.
fn gmst(jd: f64) -> f64 {
    let d = jd - 2_451_545.0;
    let t = d / 36_525.0;
    let deg = 280.460_618_37 + 360.985_647_366_29 * d + 0.000_387_933 * t * t;
    deg.to_radians().rem_euclid(2.0 * PI)
}

/// The observer's velocity from the Earth's rotation (km/s, equatorial of date ~ J2000).
fn diurnal_velocity(jd: f64, site: &Observatory) -> Vec3 {
    // Distance from the rotation axis: geodetic latitude to the geocentric cylinder radius.
    let phi = site.lat_deg.to_radians();
    let b_over_a = 1.0 - WGS84_F;
    let u = (b_over_a * phi.tan()).atan();
    let rho_cos = WGS84_A_KM * u.cos() + site.height_m / 1000.0 * phi.cos();
    let lst = gmst(jd) + site.lon_deg.to_radians();
    let v = EARTH_OMEGA * rho_cos;
    [-v * lst.sin(), v * lst.cos(), 0.0]
}

/// The barycentric correction (km/s) for a star at `ra_deg`, `dec_deg` (ICRS) observed at Julian
/// date `jd` (UTC) from `site`: the observer's barycentric velocity towards the star, so that
/// `v_barycentric = v_measured + bc`.
#[must_use]
pub fn barycentric_correction(ra_deg: f64, dec_deg: f64, jd: f64, site: &Observatory) -> f64 {
    let (sa, ca) = ra_deg.to_radians().sin_cos();
    let (sd, cd) = dec_deg.to_radians().sin_cos();
    let n = [cd * ca, cd * sa, sd];
    let v = add(earth_barycentric_velocity(jd), diurnal_velocity(jd, site));
    v[0] * n[0] + v[1] * n[1] + v[2] * n[2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earth_speed_and_direction_follow_the_seasons() {
        // Near the March equinox the Sun is at RA 0: the Earth moves towards RA ~ 270 deg
        // (ecliptic longitude 270), at 29.8-30.3 km/s over the year.
        let v = earth_barycentric_velocity(2_460_390.0); // 2024-03-20
        let speed = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        assert!((29.2..30.4).contains(&speed), "speed {speed}");
        let ra = v[1].atan2(v[0]).to_degrees().rem_euclid(360.0);
        assert!((ra - 270.0).abs() < 3.0, "apex RA {ra}");
        // Perihelion (early January) is faster than aphelion (early July).
        let s = |jd: f64| {
            let v = earth_barycentric_velocity(jd);
            (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
        };
        assert!(s(2_460_314.5) - s(2_460_496.5) > 0.9);
    }

    #[test]
    fn diurnal_term_is_the_rotation_speed_at_the_site_towards_the_east() {
        let jd = 2_460_000.3;
        let v = diurnal_velocity(jd, &APO);
        let speed = (v[0] * v[0] + v[1] * v[1]).sqrt();
        // 2 pi R_earth / sidereal day x cos(latitude), a little less for the flattening.
        let expected = EARTH_OMEGA * WGS84_A_KM * APO.lat_deg.to_radians().cos();
        assert!(
            (speed / expected - 1.0).abs() < 0.005,
            "{speed} vs {expected}"
        );
        // A star on the meridian (RA = LST) gets no diurnal term; one rising in the east
        // (hour angle -6 h) gets the full speed times cos(dec), positive (approached).
        let lst = (gmst(jd) + APO.lon_deg.to_radians()).to_degrees();
        let orbital = |ra: f64, dec: f64| {
            let e = earth_barycentric_velocity(jd);
            let (sa, ca) = ra.to_radians().sin_cos();
            let (sd, cd) = dec.to_radians().sin_cos();
            e[0] * cd * ca + e[1] * cd * sa + e[2] * sd
        };
        let on_meridian = barycentric_correction(lst, 20.0, jd, &APO) - orbital(lst, 20.0);
        assert!(on_meridian.abs() < 1e-9, "{on_meridian}");
        let rising = barycentric_correction(lst + 90.0, 20.0, jd, &APO) - orbital(lst + 90.0, 20.0);
        assert!(
            (rising - speed * 20f64.to_radians().cos()).abs() < 1e-9,
            "{rising}"
        );
    }

    #[test]
    fn telescopes_map_to_sites() {
        assert_eq!(Observatory::from_telescope("apo25m"), Some(APO));
        assert_eq!(Observatory::from_telescope("lco25m"), Some(LCO));
        assert_eq!(Observatory::from_telescope("keck"), None);
    }
}
