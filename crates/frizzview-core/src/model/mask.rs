//! Pixel bitmask definitions: APOGEE_PIXMASK and BOSS SPPIXMASK, with "bad" presets.

/// How serious a bit is by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitLevel {
    /// The survey treats the pixel as unusable.
    Bad,
    /// A warning: usable, but worth knowing.
    Warning,
    /// Informational only.
    Info,
}

/// One named bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitDef {
    /// Bit number.
    pub bit: u32,
    /// Survey name of the bit.
    pub name: &'static str,
    /// Default level.
    pub level: BitLevel,
    /// One-line meaning.
    pub meaning: &'static str,
}

const fn b(bit: u32, name: &'static str, level: BitLevel, meaning: &'static str) -> BitDef {
    BitDef {
        bit,
        name,
        level,
        meaning,
    }
}

/// APOGEE_PIXMASK (sdss/apogee_drp `PixelBitMask`).
pub const APOGEE_PIXMASK: &[BitDef] = &[
    b(
        0,
        "BADPIX",
        BitLevel::Bad,
        "bad in bad-pixel mask or strong persistence jump",
    ),
    b(1, "CRPIX", BitLevel::Bad, "cosmic ray"),
    b(2, "SATPIX", BitLevel::Bad, "saturated"),
    b(3, "UNFIXABLE", BitLevel::Bad, "unfixable"),
    b(4, "BADDARK", BitLevel::Bad, "bad from dark frame"),
    b(5, "BADFLAT", BitLevel::Bad, "bad from flat frame"),
    b(6, "BADERR", BitLevel::Bad, "very high error"),
    b(7, "NOSKY", BitLevel::Bad, "no sky available"),
    b(8, "LITTROW_GHOST", BitLevel::Warning, "Littrow ghost"),
    b(
        9,
        "PERSIST_HIGH",
        BitLevel::Warning,
        "high persistence region",
    ),
    b(
        10,
        "PERSIST_MED",
        BitLevel::Warning,
        "medium persistence region",
    ),
    b(
        11,
        "PERSIST_LOW",
        BitLevel::Warning,
        "low persistence region",
    ),
    b(
        12,
        "SIG_SKYLINE",
        BitLevel::Warning,
        "near a significant sky line",
    ),
    b(
        13,
        "SIG_TELLURIC",
        BitLevel::Warning,
        "near significant telluric absorption",
    ),
    b(
        14,
        "NOT_ENOUGH_PSF",
        BitLevel::Bad,
        "less than 50% of the PSF in good pixels",
    ),
    b(16, "FERRE_MASK", BitLevel::Info, "FERRE mask < 0.001"),
];

/// BOSS SPPIXMASK pixel-level bits (16-31) and the fibre-level bits (0-11).
pub const BOSS_SPPIXMASK: &[BitDef] = &[
    b(0, "NOPLUG", BitLevel::Bad, "fibre not listed in plugmap"),
    b(1, "BADTRACE", BitLevel::Bad, "bad trace"),
    b(2, "BADFLAT", BitLevel::Bad, "low counts in fibreflat"),
    b(3, "BADARC", BitLevel::Bad, "bad arc solution"),
    b(
        4,
        "MANYBADCOLUMNS",
        BitLevel::Warning,
        "more than 10% bad columns",
    ),
    b(
        5,
        "MANYREJECTED",
        BitLevel::Warning,
        "more than 10% rejected in extraction",
    ),
    b(
        6,
        "LARGESHIFT",
        BitLevel::Warning,
        "large spatial shift between flat and object",
    ),
    b(
        7,
        "BADSKYFIBER",
        BitLevel::Warning,
        "sky fibre shows extreme residuals",
    ),
    b(
        8,
        "NEARWHOPPER",
        BitLevel::Warning,
        "within 2 fibres of a whopping fibre",
    ),
    b(9, "WHOPPER", BitLevel::Warning, "whopping fibre"),
    b(
        10,
        "SMEARIMAGE",
        BitLevel::Info,
        "smear available for red and blue cameras",
    ),
    b(
        11,
        "SMEARHIGHSN",
        BitLevel::Info,
        "S/N sufficient for full smear fit",
    ),
    b(
        16,
        "NEARBADPIXEL",
        BitLevel::Warning,
        "bad pixel within 3 pixels of the trace",
    ),
    b(17, "LOWFLAT", BitLevel::Warning, "flat-field less than 0.5"),
    b(
        18,
        "FULLREJECT",
        BitLevel::Bad,
        "pixel fully rejected in extraction",
    ),
    b(
        19,
        "PARTIALREJECT",
        BitLevel::Warning,
        "some pixels rejected in extraction",
    ),
    b(
        20,
        "SCATTEREDLIGHT",
        BitLevel::Warning,
        "scattered light significant",
    ),
    b(21, "CROSSTALK", BitLevel::Warning, "cross-talk significant"),
    b(
        22,
        "NOSKY",
        BitLevel::Bad,
        "sky level unknown at this wavelength",
    ),
    b(
        23,
        "BRIGHTSKY",
        BitLevel::Warning,
        "sky level > flux + 10 sigma",
    ),
    b(
        24,
        "NODATA",
        BitLevel::Bad,
        "no data available in combine B-spline",
    ),
    b(
        25,
        "COMBINEREJ",
        BitLevel::Bad,
        "rejected in combine B-spline",
    ),
    b(
        26,
        "BADFLUXFACTOR",
        BitLevel::Warning,
        "low flux-calibration or flux-correction factor",
    ),
    b(
        27,
        "BADSKYCHI",
        BitLevel::Warning,
        "relative chi^2 > 3 in sky residuals",
    ),
    b(
        28,
        "REDMONSTER",
        BitLevel::Warning,
        "contiguous region of bad chi^2 in sky residuals",
    ),
    b(30, "EMLINE", BitLevel::Info, "emission line detected here"),
];

/// The APOGEE "bad" bits: {0-7, 14} = 16639 (the value Doppler and the DRP use).
pub const APOGEE_BAD_BITS: u64 = 16639;

/// The BOSS bits that make a pixel unusable by default.
pub const BOSS_BAD_BITS: u64 =
    (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 18) | (1 << 22) | (1 << 24) | (1 << 25);

/// The bit a generic table or bundle uses for "bad pixel" (bit 0).
pub const GENERIC_BAD_BITS: u64 = 1;

/// Names of the bits set in `value`, using `defs` (unknown bits as `BIT<n>`).
#[must_use]
pub fn bit_names(value: u64, defs: &[BitDef]) -> Vec<String> {
    (0..64)
        .filter(|bit| value & (1u64 << bit) != 0)
        .map(|bit| {
            defs.iter()
                .find(|d| d.bit == bit)
                .map_or_else(|| format!("BIT{bit}"), |d| d.name.to_owned())
        })
        .collect()
}

/// The mask of all bits at `level` in `defs`.
#[must_use]
pub fn bits_at_level(defs: &[BitDef], level: BitLevel) -> u64 {
    defs.iter()
        .filter(|d| d.level == level)
        .fold(0, |acc, d| acc | (1u64 << d.bit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apogee_bad_preset_is_the_bad_level() {
        assert_eq!(
            bits_at_level(APOGEE_PIXMASK, BitLevel::Bad),
            APOGEE_BAD_BITS
        );
    }

    #[test]
    fn names() {
        assert_eq!(bit_names(0b11, APOGEE_PIXMASK), vec!["BADPIX", "CRPIX"]);
        assert_eq!(bit_names(1 << 15, APOGEE_PIXMASK), vec!["BIT15"]);
    }
}
