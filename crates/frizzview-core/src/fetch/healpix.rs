//! The HEALPix pixel of a position, RING ordering (Górski et al. 2005, ApJ 622, 759, §4 and the
//! reference C code `ang2pix_ring` of the HEALPix library), and the position encoded in a
//! 2MASS-style APOGEE id. SDSS DR19 stores apStar files in folders named by the RING pixel at
//! nside 128 of the star's position (sdss-tree `dr19.cfg`, sdss-access `path.py` `healpix`).

use std::f64::consts::PI;

/// The RING-ordered HEALPix pixel of (RA, Dec) in degrees at resolution `nside`.
#[must_use]
pub fn ang2pix_ring(nside: u64, ra_deg: f64, dec_deg: f64) -> u64 {
    let n = nside as i64;
    let z = (dec_deg.to_radians()).sin(); // cos(colatitude)
    let za = z.abs();
    // phi / (pi/2) in [0, 4)
    let tt = (ra_deg.to_radians().rem_euclid(2.0 * PI)) / (0.5 * PI);
    let pix = if za <= 2.0 / 3.0 {
        // Equatorial belt.
        let nf = n as f64;
        let temp1 = nf * (0.5 + tt);
        let temp2 = nf * z * 0.75;
        let jp = (temp1 - temp2).floor() as i64;
        let jm = (temp1 + temp2).floor() as i64;
        let ir = n + 1 + jp - jm;
        let kshift = 1 - (ir & 1);
        let ip = (jp + jm - n + kshift + 1).div_euclid(2).rem_euclid(4 * n);
        let ncap = 2 * n * (n - 1);
        ncap + (ir - 1) * 4 * n + ip
    } else {
        // Polar caps.
        let tp = tt - tt.floor();
        let tmp = n as f64 * (3.0 * (1.0 - za)).sqrt();
        let jp = (tp * tmp).floor() as i64;
        let jm = ((1.0 - tp) * tmp).floor() as i64;
        let ir = jp + jm + 1;
        let ip = ((tt * ir as f64).floor() as i64).rem_euclid(4 * ir);
        if z > 0.0 {
            2 * ir * (ir - 1) + ip
        } else {
            12 * n * n - 2 * ir * (ir + 1) + ip
        }
    };
    pix.max(0) as u64
}

/// RA and Dec (degrees) from a 2MASS-style id `2MHHMMSSss+DDMMSSs` (the 2MASS designation,
/// J2000: RA hours, minutes, seconds with two decimals; Dec degrees, minutes, seconds with one).
#[must_use]
pub fn radec_from_2mass_id(id: &str) -> Option<(f64, f64)> {
    let s = id.trim();
    let s = s.strip_prefix("2M").or_else(|| s.strip_prefix("2m"))?;
    let sign_at = s.find(['+', '-'])?;
    let (ra, dec) = s.split_at(sign_at);
    let (sign, dec) = dec.split_at(1);
    if ra.len() != 8 || dec.len() != 7 || !ra.bytes().chain(dec.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let num = |t: &str| t.parse::<f64>().ok();
    let h = num(&ra[0..2])?;
    let m = num(&ra[2..4])?;
    let sec = num(&ra[4..8])? / 100.0;
    let d = num(&dec[0..2])?;
    let dm = num(&dec[2..4])?;
    let ds = num(&dec[4..7])? / 10.0;
    let ra_deg = 15.0 * (h + m / 60.0 + sec / 3600.0);
    let mut dec_deg = d + dm / 60.0 + ds / 3600.0;
    if sign == "-" {
        dec_deg = -dec_deg;
    }
    ((0.0..360.0).contains(&ra_deg) && dec_deg.abs() <= 90.0).then_some((ra_deg, dec_deg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_gives_the_targeting_position() {
        // The apVisit header of this star: RA 0.214312, DEC 56.265797.
        let (ra, dec) = radec_from_2mass_id("2M00005143+5615568").unwrap_or_default();
        assert!((ra - 0.214312).abs() < 1e-4, "{ra}");
        assert!((dec - 56.265797).abs() < 1e-4, "{dec}");
        let (_, dec) = radec_from_2mass_id("2M03174068-7748459").unwrap_or_default();
        assert!((dec + 77.81275).abs() < 1e-4, "{dec}");
        assert!(radec_from_2mass_id("AP17034211-3051020").is_none());
        assert!(radec_from_2mass_id("2M0000514+5615568").is_none());
    }

    #[test]
    fn ring_pixels_follow_the_healpix_layout() {
        // The DR19 apStar folder of 2M00002479+6025311 is healpix 12640 (nside 128).
        let (ra, dec) = radec_from_2mass_id("2M00002479+6025311").unwrap_or_default();
        assert_eq!(ang2pix_ring(128, ra, dec), 12640);
        // nside 1: the north pole is in pixel 0..3, the south in 8..11, the equator at RA 0 in 4.
        assert_eq!(ang2pix_ring(1, 10.0, 89.0), 0);
        assert_eq!(ang2pix_ring(1, 100.0, 89.0), 1);
        assert_eq!(ang2pix_ring(1, 10.0, -89.0), 8);
        assert_eq!(ang2pix_ring(1, 0.0, 0.0), 4);
        // Equal-area pixels: a grid uniform in sin(Dec) and RA (3600 points) puts about 19 points
        // in each of the 192 pixels at nside 4, and none outside 0..192.
        let mut count = vec![0usize; 12 * 16];
        for i in 0..60 {
            let dec = (-1.0 + (f64::from(i) + 0.5) / 30.0).asin().to_degrees();
            for j in 0..60 {
                let ra = (f64::from(j) + 0.5) * 6.0;
                let p = ang2pix_ring(4, ra, dec) as usize;
                assert!(p < count.len(), "{p}");
                count[p] += 1;
            }
        }
        let (lo, hi) = (count.iter().min(), count.iter().max());
        assert!(lo >= Some(&8) && hi <= Some(&32), "{lo:?}..{hi:?}");
    }
}
