//! The words a user types, spelled once: the text names of every settings choice (as the command
//! line accepts them, aliases included), the output format chosen by a file's extension, and a
//! visit named by its name, file name or index.
//!
//! The command line, the window and the Python package parse and print through these, so a name
//! works the same everywhere. Parsing is case-insensitive; [`std::fmt::Display`] prints the first
//! (canonical) name, which parses back to the same value.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::model::{Dataset, mask, pixel_policy::Preset};
use crate::settings::{
    Basis, GridSpec, Interpolator, LsfMode, Robust, SelectionMode, ShiftSource, StandardMask,
    Weighting,
};

/// A text that names none of a choice's values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{given}': expected {expected}")]
pub struct UnknownName {
    /// The text as given.
    pub given: String,
    /// The accepted names, as a phrase ("fourier or local").
    pub expected: String,
}

/// A settings choice with text names.
pub trait Named: Sized + Copy + 'static {
    /// Each value with its names, the canonical one first.
    const TABLE: &'static [(Self, &'static [&'static str])];

    /// The canonical names, in the order they are listed to a user.
    #[must_use]
    fn names() -> Vec<&'static str> {
        Self::TABLE.iter().map(|(_, n)| n[0]).collect()
    }

    /// The canonical names as a phrase: `a, b or c` (`quote`: `'a', 'b' or 'c'`).
    #[must_use]
    fn expected(quote: bool) -> String {
        one_of(&Self::names(), quote)
    }

    /// The value `s` names (any of its names, case-insensitive).
    fn from_name(s: &str) -> Result<Self, UnknownName> {
        let low = s.trim().to_ascii_lowercase();
        Self::TABLE
            .iter()
            .find(|(_, names)| names.contains(&low.as_str()))
            .map(|(v, _)| *v)
            .ok_or_else(|| UnknownName {
                given: s.to_owned(),
                expected: Self::expected(false),
            })
    }
}

/// `a, b or c` (with `quote`: `'a', 'b' or 'c'`).
#[must_use]
pub fn one_of(names: &[&str], quote: bool) -> String {
    let q: Vec<String> = names
        .iter()
        .map(|n| {
            if quote {
                format!("'{n}'")
            } else {
                (*n).to_owned()
            }
        })
        .collect();
    match q.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn canonical<T: Named + PartialEq>(v: T) -> &'static str {
    T::TABLE
        .iter()
        .find(|(x, _)| *x == v)
        .map_or("?", |(_, n)| n[0])
}

macro_rules! named {
    ($t:ty, [$(($v:expr, [$($n:literal),+])),+ $(,)?]) => {
        impl Named for $t {
            const TABLE: &'static [(Self, &'static [&'static str])] = &[$(($v, &[$($n),+])),+];
        }
        impl FromStr for $t {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                <Self as Named>::from_name(s)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(canonical(*self))
            }
        }
    };
}

named!(
    ShiftSource,
    [
        (ShiftSource::None, ["none"]),
        (ShiftSource::Vrel, ["vrad", "vrel"]),
        (ShiftSource::MinusBc, ["-bc", "bc", "minus-bc"]),
        (ShiftSource::True, ["true"]),
        (ShiftSource::ApStar, ["apstar"]),
        (ShiftSource::AllVisit, ["allvisit", "visits-table"]),
        (ShiftSource::MwmVisit, ["mwmvisit"]),
    ]
);

named!(
    Weighting,
    [
        (Weighting::InverseVariance, ["ivar", "inverse-variance"]),
        (Weighting::Uniform, ["uniform"]),
        (Weighting::ApogeePipeline, ["apogee-pipeline", "pipeline"]),
    ]
);

named!(
    SelectionMode,
    [
        (SelectionMode::Ignore, ["ignore"]),
        (SelectionMode::Multiply, ["multiply"]),
        (SelectionMode::Divide, ["divide"]),
    ]
);

named!(
    Basis,
    [(Basis::Fourier, ["fourier"]), (Basis::Local, ["local"])]
);

named!(
    Interpolator,
    [
        (Interpolator::CubicSpline, ["cubic", "spline"]),
        (Interpolator::Linear, ["linear"]),
        (Interpolator::DampedSinc, ["sinc"]),
    ]
);

named!(
    StandardMask,
    [
        (StandardMask::Drop, ["drop"]),
        (StandardMask::Conservative, ["conservative"]),
    ]
);

named!(
    LsfMode,
    [
        (LsfMode::Off, ["off", "none"]),
        (LsfMode::FromVisits, ["visits", "from-visits"]),
    ]
);

named!(
    Preset,
    [
        (
            Preset::ApogeePipeline,
            ["apogee-pipeline", "apogee", "pipeline"]
        ),
        (Preset::ApogeeBadBits, ["bad-bits", "badbits"]),
        (Preset::BossPipeline, ["boss-pipeline", "boss"]),
    ]
);

/// Which methods run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Methods {
    /// The forward model (Frizzle) only.
    Forward,
    /// Standard practice only.
    Standard,
    /// Both (the default).
    Both,
}

impl Methods {
    /// Whether the forward model runs.
    #[must_use]
    pub fn forward(self) -> bool {
        matches!(self, Self::Forward | Self::Both)
    }

    /// Whether standard practice runs.
    #[must_use]
    pub fn standard(self) -> bool {
        matches!(self, Self::Standard | Self::Both)
    }
}

named!(
    Methods,
    [
        (Methods::Forward, ["forward", "frizzle"]),
        (Methods::Standard, ["standard"]),
        (Methods::Both, ["both"]),
    ]
);

/// The reference implementation `compat` reproduces: the only one is `frizzle` (0.2.8).
pub const COMPAT_FRIZZLE: &str = "frizzle";

/// `compat` by name: `frizzle` is the only reference (true).
pub fn compat_from_name(s: &str) -> Result<bool, UnknownName> {
    if s.trim().eq_ignore_ascii_case(COMPAT_FRIZZLE) {
        Ok(true)
    } else {
        Err(UnknownName {
            given: s.to_owned(),
            expected: COMPAT_FRIZZLE.to_owned(),
        })
    }
}

/// The names of [`GridSpec`]'s fixed grids, the canonical one first.
const GRID_NAMES: &[(GridSpec, &[&str])] = &[
    (GridSpec::Apogee, &["apogee"]),
    (GridSpec::Boss, &["boss"]),
    (GridSpec::Auto, &["auto"]),
    (GridSpec::FromInput, &["input", "from-input"]),
];

/// What a grid may be called: its fixed names and the explicit form.
pub const GRID_EXPECTED: &str = "apogee, boss, auto, input or LOG10START:LOG10STEP:N";

/// A grid text that is neither a name nor `LOG10START:LOG10STEP:N`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GridNameError {
    /// Neither a name nor three `:`-separated parts.
    #[error("'{0}': expected {GRID_EXPECTED}")]
    Unknown(String),
    /// One of the three parts is not a number.
    #[error("'{given}': the {part} '{value}' is not a number")]
    BadPart {
        /// The whole text.
        given: String,
        /// `start`, `step` or `size`.
        part: &'static str,
        /// The part as given.
        value: String,
    },
}

impl GridSpec {
    /// The fixed grid `s` names (`apogee`, `boss`, `auto`, `input`), not the explicit form.
    #[must_use]
    pub fn from_fixed_name(s: &str) -> Option<Self> {
        let low = s.trim().to_ascii_lowercase();
        GRID_NAMES
            .iter()
            .find(|(_, names)| names.contains(&low.as_str()))
            .map(|(g, _)| g.clone())
    }
}

impl FromStr for GridSpec {
    type Err = GridNameError;

    /// A fixed grid by name, or `LOG10START:LOG10STEP:N` (not checked for sense here:
    /// `Settings::validate` does).
    fn from_str(s: &str) -> Result<Self, GridNameError> {
        if let Some(g) = Self::from_fixed_name(s) {
            return Ok(g);
        }
        let parts: Vec<&str> = s.trim().split(':').collect();
        let [a, b, n] = parts.as_slice() else {
            return Err(GridNameError::Unknown(s.to_owned()));
        };
        let bad = |part: &'static str, value: &str| GridNameError::BadPart {
            given: s.to_owned(),
            part,
            value: value.to_owned(),
        };
        Ok(Self::LogLinear {
            log10_start: a.parse().map_err(|_| bad("start", a))?,
            log10_step: b.parse().map_err(|_| bad("step", b))?,
            n: n.parse().map_err(|_| bad("size", n))?,
        })
    }
}

impl fmt::Display for GridSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Self::LogLinear {
            log10_start,
            log10_step,
            n,
        } = self
        {
            return write!(f, "{log10_start}:{log10_step}:{n}");
        }
        let name = GRID_NAMES
            .iter()
            .find(|(g, _)| g == self)
            .map_or("?", |(_, names)| names[0]);
        f.write_str(name)
    }
}

/// A robust reweighting at a threshold.
type RobustKind = fn(f64) -> Robust;

/// The robust kinds, the canonical name first.
const ROBUST_KINDS: &[(&[&str], RobustKind)] = &[
    (&["huber"], Robust::Huber),
    (&["cauchy"], Robust::Cauchy),
    (&["clip", "sigmaclip"], Robust::SigmaClip),
];

/// What a robust setting may be called.
pub const ROBUST_EXPECTED: &str = "huber:T, cauchy:T or clip:T";

/// A robust text that is not `KIND:T`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RobustNameError {
    /// Not `KIND:T` with a known kind.
    #[error("'{0}': expected {ROBUST_EXPECTED}")]
    Unknown(String),
    /// The threshold is not a number.
    #[error("'{given}': threshold '{value}' is not a number")]
    BadThreshold {
        /// The whole text.
        given: String,
        /// The threshold as given.
        value: String,
    },
}

impl Robust {
    /// The reweighting of kind `kind` (`huber`, `cauchy`, `clip`) at threshold `t` sigma.
    #[must_use]
    pub fn from_kind(kind: &str, t: f64) -> Option<Self> {
        let low = kind.trim().to_ascii_lowercase();
        ROBUST_KINDS
            .iter()
            .find(|(names, _)| names.contains(&low.as_str()))
            .map(|(_, make)| make(t))
    }

    /// The canonical kind name and the threshold.
    #[must_use]
    pub fn parts(self) -> (&'static str, f64) {
        match self {
            Self::Huber(t) => ("huber", t),
            Self::Cauchy(t) => ("cauchy", t),
            Self::SigmaClip(t) => ("clip", t),
        }
    }
}

impl FromStr for Robust {
    type Err = RobustNameError;

    /// `KIND:T` (the threshold is not checked for sense here).
    fn from_str(s: &str) -> Result<Self, RobustNameError> {
        let (kind, t) = s
            .split_once(':')
            .ok_or_else(|| RobustNameError::Unknown(s.to_owned()))?;
        let t: f64 = t
            .trim()
            .parse()
            .map_err(|_| RobustNameError::BadThreshold {
                given: s.to_owned(),
                value: t.to_owned(),
            })?;
        Self::from_kind(kind, t).ok_or_else(|| RobustNameError::Unknown(s.to_owned()))
    }
}

impl fmt::Display for Robust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, t) = self.parts();
        write!(f, "{k}:{t}")
    }
}

/// The names of the bad-bit sets (besides a number).
const BAD_BIT_NAMES: &[(&str, u64)] = &[
    ("apogee", mask::APOGEE_BAD_BITS),
    ("boss", mask::BOSS_BAD_BITS),
    ("none", 0),
];

/// The bad-bit set `s` names: `apogee`, `boss` or `none`; `None` for any other text.
#[must_use]
pub fn bad_bits_by_name(s: &str) -> Option<u64> {
    let low = s.trim().to_ascii_lowercase();
    BAD_BIT_NAMES
        .iter()
        .find(|(n, _)| *n == low)
        .map(|(_, b)| *b)
}

/// A bad-bit mask: a name ([`bad_bits_by_name`]), a decimal number or `0x` hexadecimal.
pub fn bad_bits_from_str(s: &str) -> Result<u64, UnknownName> {
    if let Some(b) = bad_bits_by_name(s) {
        return Ok(b);
    }
    let low = s.trim().to_ascii_lowercase();
    let n = match low.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => low.parse(),
    };
    n.map_err(|_| UnknownName {
        given: s.to_owned(),
        expected: "a number, apogee, boss or none".to_owned(),
    })
}

/// The formats a result can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// apStar-like FITS (`.fits`, `.fit`, `.fts`).
    Fits,
    /// NumPy `.npz`.
    Npz,
    /// Comma- or tab-separated text (`.csv`, `.tsv`; the separator follows the extension).
    Csv,
}

/// The output extensions, each with its format.
const OUTPUT_EXTENSIONS: &[(&str, OutputFormat)] = &[
    ("fits", OutputFormat::Fits),
    ("fit", OutputFormat::Fits),
    ("fts", OutputFormat::Fits),
    ("npz", OutputFormat::Npz),
    ("csv", OutputFormat::Csv),
    ("tsv", OutputFormat::Csv),
];

/// A path whose extension names no output format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: unknown output format '.{ext}' (use .fits, .npz, .csv or .tsv)", path.display())]
pub struct UnknownFormat {
    /// The path.
    pub path: std::path::PathBuf,
    /// Its extension, lower case ("" when it has none).
    pub ext: String,
}

impl OutputFormat {
    /// The format of an extension (without the dot, any case): fits, fit, fts, npz, csv, tsv.
    #[must_use]
    pub fn from_extension(ext: &str) -> Option<Self> {
        let low = ext.to_ascii_lowercase();
        OUTPUT_EXTENSIONS
            .iter()
            .find(|(e, _)| *e == low)
            .map(|(_, f)| *f)
    }

    /// The format `path`'s extension names.
    pub fn from_path(path: &Path) -> Result<Self, UnknownFormat> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        Self::from_extension(&ext).ok_or_else(|| UnknownFormat {
            path: path.to_path_buf(),
            ext,
        })
    }

    /// Every extension the formats accept, in the order above.
    #[must_use]
    pub fn extensions() -> Vec<&'static str> {
        OUTPUT_EXTENSIONS.iter().map(|(e, _)| *e).collect()
    }
}

/// A name that designates no visit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no visit is called '{name}' (visits: {}; or use a 0-based index)", visits.join(", "))]
pub struct NoSuchVisit {
    /// The name as given.
    pub name: String,
    /// The dataset's visit names.
    pub visits: Vec<String>,
}

/// The visit indices that `name` designates: every visit whose display name, file name or file
/// stem is `name`; else `name` read as a 0-based index.
pub fn find_visits(data: &Dataset, name: &str) -> Result<Vec<usize>, NoSuchVisit> {
    let hits: Vec<usize> = data
        .visits
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            v.meta.name == name
                || v.meta.source.as_ref().is_some_and(|p| {
                    p.file_name().is_some_and(|f| f.to_string_lossy() == name)
                        || p.file_stem().is_some_and(|f| f.to_string_lossy() == name)
                })
        })
        .map(|(i, _)| i)
        .collect();
    if !hits.is_empty() {
        return Ok(hits);
    }
    if let Ok(i) = name.parse::<usize>()
        && i < data.visits.len()
    {
        return Ok(vec![i]);
    }
    Err(NoSuchVisit {
        name: name.to_owned(),
        visits: data.visits.iter().map(|v| v.meta.name.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Named + FromStr + fmt::Display + PartialEq + fmt::Debug>() {
        for (v, names) in T::TABLE {
            assert_eq!(v.to_string(), names[0]);
            for n in *names {
                assert_eq!(T::from_name(n).ok(), Some(*v), "{n}");
                assert_eq!(T::from_name(&n.to_ascii_uppercase()).ok(), Some(*v), "{n}");
            }
        }
        assert!(T::from_name("no-such-name").is_err());
    }

    #[test]
    fn every_choice_prints_a_name_that_parses_back() {
        round_trip::<ShiftSource>();
        round_trip::<Weighting>();
        round_trip::<SelectionMode>();
        round_trip::<Basis>();
        round_trip::<Interpolator>();
        round_trip::<StandardMask>();
        round_trip::<LsfMode>();
        round_trip::<Preset>();
        round_trip::<Methods>();
    }

    #[test]
    fn every_shift_source_has_a_name_equal_to_its_label() {
        for s in ShiftSource::ALL {
            assert_eq!(s.to_string(), s.label());
        }
        assert_eq!(ShiftSource::TABLE.len(), ShiftSource::ALL.len());
    }

    #[test]
    fn the_cli_spellings_parse() {
        assert_eq!("-bc".parse(), Ok(ShiftSource::MinusBc));
        assert_eq!("Visits-Table".parse(), Ok(ShiftSource::AllVisit));
        assert_eq!("spline".parse(), Ok(Interpolator::CubicSpline));
        assert_eq!("frizzle".parse(), Ok(Methods::Forward));
        assert_eq!(
            ShiftSource::expected(false),
            "none, vrad, -bc, true, apstar, allvisit or mwmvisit"
        );
        assert_eq!(Basis::expected(true), "'fourier' or 'local'");
        assert_eq!(
            "fourier".parse::<Interpolator>().map_err(|e| e.to_string()),
            Err("'fourier': expected cubic, linear or sinc".to_owned())
        );
        assert_eq!(compat_from_name("Frizzle"), Ok(true));
        assert!(compat_from_name("numpy").is_err());
    }

    #[test]
    fn grids_parse_and_print() {
        for g in ["apogee", "boss", "auto", "input"] {
            let x: GridSpec = g.parse().expect("a grid name");
            assert_eq!(x.to_string(), g);
        }
        assert_eq!("from-input".parse(), Ok(GridSpec::FromInput));
        let g: GridSpec = "3.5:0.0001:10".parse().expect("an explicit grid");
        assert_eq!(
            g,
            GridSpec::LogLinear {
                log10_start: 3.5,
                log10_step: 1e-4,
                n: 10
            }
        );
        assert_eq!(g.to_string().parse(), Ok(g));
        assert!(matches!(
            "nope".parse::<GridSpec>(),
            Err(GridNameError::Unknown(_))
        ));
        assert!(matches!(
            "3.5:x:10".parse::<GridSpec>(),
            Err(GridNameError::BadPart { part: "step", .. })
        ));
    }

    #[test]
    fn robust_parses_and_prints() {
        assert_eq!("huber:1.5".parse(), Ok(Robust::Huber(1.5)));
        assert_eq!("SigmaClip:3".parse(), Ok(Robust::SigmaClip(3.0)));
        assert_eq!(Robust::Cauchy(2.0).to_string(), "cauchy:2");
        assert_eq!(
            Robust::SigmaClip(2.5).to_string().parse(),
            Ok(Robust::SigmaClip(2.5))
        );
        assert!("tukey:2".parse::<Robust>().is_err());
        assert!(matches!(
            "huber:x".parse::<Robust>(),
            Err(RobustNameError::BadThreshold { .. })
        ));
    }

    #[test]
    fn bad_bits_by_name_or_number() {
        assert_eq!(bad_bits_from_str("APOGEE"), Ok(mask::APOGEE_BAD_BITS));
        assert_eq!(bad_bits_from_str("none"), Ok(0));
        assert_eq!(bad_bits_from_str("0x10"), Ok(16));
        assert_eq!(bad_bits_from_str("17"), Ok(17));
        assert!(bad_bits_from_str("-1").is_err());
    }

    #[test]
    fn output_formats_by_extension() {
        for (ext, f) in [
            ("FITS", OutputFormat::Fits),
            ("fts", OutputFormat::Fits),
            ("fit", OutputFormat::Fits),
            ("npz", OutputFormat::Npz),
            ("tsv", OutputFormat::Csv),
        ] {
            assert_eq!(
                OutputFormat::from_path(Path::new(&format!("a/b.{ext}"))),
                Ok(f)
            );
        }
        let e = OutputFormat::from_path(Path::new("out.hdf5")).expect_err("not a format");
        assert_eq!(
            e.to_string(),
            "out.hdf5: unknown output format '.hdf5' (use .fits, .npz, .csv or .tsv)"
        );
        assert!(OutputFormat::from_path(Path::new("noext")).is_err());
    }
}
