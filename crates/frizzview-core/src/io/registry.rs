//! The one list of readers. A file's format is the one whose reader claims its content most
//! confidently ([`Registry::detect`]); reading a file is that reader's [`Reader::read`].
//!
//! Adding a format: a module in [`crate::io::readers`] with a type implementing [`Reader`], and
//! one line in [`BUILTIN`]. Order matters only among equally confident claims (the first wins).

use std::path::{Path, PathBuf};

use crate::io::error::{LoadError, LoadErrorKind};
use crate::io::fits;
use crate::io::reader::{Confidence, Format, Probe, Reader};
use crate::io::readers::{
    allvisit, apcframe, apstar, apvisit, boss, frizzview_result, lamost, mwm, npz, table,
};
use crate::model::Dataset;

/// The built-in readers, in the order their claims are asked. frizzview's own results are refused
/// before anything else reads them; the generic FITS and text readers claim what no specific
/// reader does.
pub static BUILTIN: &[&dyn Reader] = &[
    &frizzview_result::FrizzviewResultReader,
    &npz::NpzReader,
    &mwm::READER,
    &lamost::READER,
    &apcframe::READER,
    &boss::READER,
    &apvisit::READER,
    &apstar::READER,
    &allvisit::READER,
    &table::FitsTableReader,
    &table::TextReader,
];

/// The names of the built-in formats.
#[allow(non_upper_case_globals)]
impl Format {
    /// A NumPy `.npz` bundle (reference or frizzview dataset layout).
    pub const Npz: Self = Self::new("npz");
    /// An APOGEE apVisit file.
    pub const ApVisit: Self = Self::new("apVisit");
    /// An APOGEE apStar/asStar file (combined; rows 2.. resampled visits).
    pub const ApStar: Self = Self::new("apStar");
    /// An APOGEE allVisit summary table (per-visit velocities, no spectra).
    pub const AllVisit: Self = Self::new("allVisit");
    /// A BOSS spec file (COADD table plus, in full files, per-exposure camera HDUs).
    pub const BossSpec: Self = Self::new("BOSS spec");
    /// An APOGEE apCframe (one chip of one raw exposure, all fibres).
    pub const ApCframe: Self = Self::new("apCframe");
    /// An astra mwmVisit file (resampled visits of one source, APOGEE and BOSS).
    pub const MwmVisit: Self = Self::new("mwmVisit");
    /// A LAMOST medium-resolution (MRS) file: per-exposure blue/red tables and the pipeline's
    /// coadds.
    pub const LamostMrs: Self = Self::new("LAMOST MRS");
    /// Any other FITS file: a binary table or images with wavelength/flux columns.
    pub const FitsTable: Self = Self::new("FITS table");
    /// CSV or TSV text with a header line.
    pub const Text: Self = Self::new("text");
}

/// A list of readers.
#[derive(Clone)]
pub struct Registry {
    readers: Vec<&'static dyn Reader>,
}

static BUILTIN_REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(|| Registry {
    readers: BUILTIN.to_vec(),
});

impl Registry {
    /// The built-in readers ([`BUILTIN`]).
    #[must_use]
    pub fn builtin() -> &'static Self {
        &BUILTIN_REGISTRY
    }

    /// No reader at all.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            readers: Vec::new(),
        }
    }

    /// This list with `reader` added after the others.
    #[must_use]
    pub fn with(mut self, reader: &'static dyn Reader) -> Self {
        self.readers.push(reader);
        self
    }

    /// The readers, in order.
    #[must_use]
    pub fn readers(&self) -> &[&'static dyn Reader] {
        &self.readers
    }

    /// The reader of `path`: the most confident claim of its content (the first among equals).
    /// A file no reader claims is refused with what its content is.
    pub fn detect(&self, path: &Path) -> Result<&'static dyn Reader, LoadError> {
        let mut probe = Probe::new(path)?;
        fits::guard(path, || {
            let mut best: Option<(Confidence, &'static dyn Reader)> = None;
            for &r in &self.readers {
                if let Some(c) = r.claim(&mut probe)?
                    && best.is_none_or(|(b, _)| c > b)
                {
                    best = Some((c, r));
                    if c >= Confidence::CERTAIN {
                        break;
                    }
                }
            }
            match best {
                Some((_, r)) => Ok(r),
                None => Err(unclaimed(&probe)),
            }
        })
    }

    /// The format of `path` (see [`Registry::detect`]).
    pub fn detect_format(&self, path: &Path) -> Result<Format, LoadError> {
        self.detect(path).map(|r| r.format())
    }

    /// Read one file with the reader that claims it.
    pub fn load_file(&self, path: &Path) -> Result<Dataset, LoadError> {
        self.detect(path)?.read(path)
    }

    /// The readers of `files`, in order (the first file no reader claims is the error).
    pub(crate) fn detect_all(
        &self,
        files: &[PathBuf],
    ) -> Result<Vec<&'static dyn Reader>, LoadError> {
        files.iter().map(|f| self.detect(f)).collect()
    }
}

/// Why no reader claims a file: what its content is.
fn unclaimed(probe: &Probe<'_>) -> LoadError {
    let why = if probe.is_gzip() {
        "gzip-compressed content that is not FITS (only FITS files are read compressed; \
         decompress it with gunzip first)"
    } else if probe.head().is_empty() {
        "the file is empty"
    } else {
        "binary content that is neither FITS nor .npz"
    };
    LoadError::new(probe.path(), LoadErrorKind::Unrecognised(why.into()))
}

/// Detect the format of `path` from its content with the built-in readers. A gzip-compressed FITS
/// file (`.fits.gz`) is detected from its decompressed content; other compressed formats are
/// refused.
pub fn detect_format(path: &Path) -> Result<Format, LoadError> {
    Registry::builtin().detect_format(path)
}

/// Read one file (any supported format).
pub fn load_file(path: &Path) -> Result<Dataset, LoadError> {
    Registry::builtin().load_file(path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Survey, Visit, VisitArrays, VisitMeta};

    /// A toy format: text files starting with `TOY`, then wavelength/flux pairs, one a line.
    struct ToyReader;

    impl Reader for ToyReader {
        fn format(&self) -> Format {
            Format::new("toy")
        }
        fn claim(&self, probe: &mut Probe<'_>) -> Result<Option<Confidence>, LoadError> {
            Ok(probe
                .head()
                .starts_with(b"TOY\n")
                .then_some(Confidence::CERTAIN))
        }
        fn read(&self, path: &Path) -> Result<Dataset, LoadError> {
            let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
            let (mut wave, mut flux) = (Vec::new(), Vec::new());
            for line in text.lines().skip(1) {
                let mut it = line.split_whitespace().map(str::parse::<f64>);
                match (it.next(), it.next()) {
                    (Some(Ok(w)), Some(Ok(f))) => {
                        wave.push(w);
                        flux.push(f);
                    }
                    _ => return Err(LoadError::invalid(path, "a line", "is not two numbers")),
                }
            }
            let arrays = VisitArrays {
                ivar: vec![1.0; wave.len()],
                wavelength_aa: wave,
                flux,
                ..VisitArrays::default()
            };
            let meta = VisitMeta {
                name: "toy".into(),
                ..VisitMeta::default()
            };
            let visit = Visit::new(meta, arrays).map_err(|e| LoadError::invalid(path, "toy", e))?;
            Ok(Dataset {
                survey: Survey::Generic,
                visits: vec![Arc::new(visit)],
                ..Dataset::default()
            })
        }
    }

    static TOY: ToyReader = ToyReader;

    /// Adding a reader is one type implementing `Reader` plus one registration: a file of the new
    /// format loads through the registry that has it, and the built-in list does not claim it as
    /// the toy format.
    #[test]
    fn a_registered_toy_reader_loads_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("spectrum.toy");
        std::fs::write(&p, "TOY\n5000 1.0\n5001 2.0\n5002 3.0\n").expect("write");
        let reg = Registry::builtin().clone().with(&TOY);
        assert_eq!(reg.detect_format(&p).expect("detect").name(), "toy");
        let d = reg.load_file(&p).expect("load");
        assert_eq!(d.visits.len(), 1);
        assert_eq!(d.visits[0].flux(), &[1.0, 2.0, 3.0]);
        assert_eq!(d.visits[0].wavelength_aa(), &[5000.0, 5001.0, 5002.0]);
        // Without the registration the same file is (some other format's) text, not toy.
        assert_eq!(detect_format(&p).expect("detect"), Format::Text);
        // A registry of the toy reader alone refuses what it does not claim, saying what it is.
        let only = Registry::empty().with(&TOY);
        let csv = dir.path().join("s.csv");
        std::fs::write(&csv, "wave,flux\n1,2\n").expect("write");
        assert!(only.load_file(&csv).is_err());
        assert!(only.load_file(&p).is_ok());
    }
}
