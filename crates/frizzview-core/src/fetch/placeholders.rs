//! The placeholders of the SAS path templates, with what each stands for.

/// What each placeholder means (for `--help` and error messages).
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    (
        "apogee_id",
        "2MASS-style APOGEE id, e.g. 2M00005143+5615568",
    ),
    (
        "telescope",
        "apo25m, lco25m or apo1m (default apo25m; from allVisit TELESCOPE)",
    ),
    ("field", "field name, e.g. N7789 (allVisit FIELD)"),
    (
        "location_id",
        "DR13 numeric field id, e.g. 4264 (LOCID card)",
    ),
    ("plate", "plate (DR19: configuration id)"),
    ("mjd", "MJD of the visit"),
    ("fiber", "fibre number 1-300 (BOSS: 1-1000)"),
    (
        "prefix",
        "'ap', or 'as' for lco25m in DR17 (derived from telescope)",
    ),
    ("apred", "APOGEE reduction: r6 (DR13), dr17, 1.3 (DR19)"),
    (
        "healpix",
        "DR19 apStar folder: HEALPix RING nside 128 of the id's RA/Dec (derived)",
    ),
    ("healpix_group", "healpix // 1000 (derived)"),
    ("chip", "apCframe chip a, b or c"),
    ("frame", "apCframe exposure number (apVisit FRAMEn)"),
    ("run2d", "BOSS reduction: v5_13_2 (DR17), v6_1_3 (DR19)"),
    ("catalogid", "SDSS-V catalog id (BOSS DR19 file names)"),
    (
        "aspcap",
        "DR17 ASPCAP run of the allVisit file: synspec_rev1",
    ),
    ("v_astra", "astra version: 0.6.0 (DR19)"),
    ("sdss_id", "SDSS-V source id (mwmVisit)"),
    (
        "sdss_id_hi",
        "(sdss_id // 100) % 100 (derived; mwmVisit folder)",
    ),
    ("sdss_id_lo", "sdss_id % 100 (derived; mwmVisit folder)"),
];
