//! What a reader is: a format that says, from a file's content, whether it can read the file
//! ([`Reader::claim`]), and reads it ([`Reader::read`]). The list of readers is
//! [`crate::io::registry`]; the readers themselves are in [`crate::io::readers`].

use std::path::Path;

use fitsio::FitsFile;

use crate::io::error::LoadError;
use crate::io::fits::{self, HduDesc, OpenFits};
use crate::io::survey::survey_rv::VelocityTable;
use crate::model::{Dataset, Spectrum};

/// The name of a format (what [`crate::io::detect_format`] returns): each reader has one. The
/// built-in ones are associated constants (`Format::ApVisit`, ...); a new reader makes its own
/// with [`Format::new`], no list to edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Format(&'static str);

impl Format {
    /// A format called `name` (shown in messages; unique among the registered readers).
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// The format's name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// How sure a reader is that a file is its format. The registry picks the most confident claim;
/// among equal claims the reader registered first; a [`Confidence::CERTAIN`] claim ends the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Confidence(pub u8);

impl Confidence {
    /// The content is this format (a signature, the HDUs and cards only it has).
    pub const CERTAIN: Self = Self(100);
    /// The content is of the kind this reader reads when no specific reader claims it (any FITS
    /// file: the generic table reader).
    pub const FALLBACK: Self = Self(10);
    /// Nothing else claims it (any text: the CSV/TSV reader).
    pub const LAST_RESORT: Self = Self(1);
}

/// A companion file's contribution (an apStar, an allVisit table given with the visits): the
/// velocities of the visits it describes and, if it has one, the pipeline's combination.
pub struct CompanionTable {
    /// Per-visit velocities, matched to the visits by identity, then file name.
    pub velocities: VelocityTable,
    /// The pipeline's coadd, used when the companion is of the visits' star.
    pub coadd: Option<Spectrum>,
}

/// A file's content as the readers see it while claiming it: the first bytes (decompressed when
/// the file is gzip), and for FITS content the open file and its HDUs (opened once, on demand,
/// through the FITS safety layer).
pub struct Probe<'a> {
    path: &'a Path,
    head: Vec<u8>,
    gzip: bool,
    fits: Option<(OpenFits, Vec<HduDesc>)>,
}

impl<'a> Probe<'a> {
    /// How many bytes of the content [`Probe::head`] holds (at most).
    pub const HEAD_BYTES: usize = 2880;

    /// Read the first bytes of `path`.
    pub fn new(path: &'a Path) -> Result<Self, LoadError> {
        Ok(Self {
            path,
            head: fits::gz::head(path, Self::HEAD_BYTES)?,
            gzip: fits::gz::file_is_gzip(path)?,
            fits: None,
        })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The first [`Probe::HEAD_BYTES`] bytes of the content (decompressed if gzip).
    #[must_use]
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Whether the file is gzip-compressed (only FITS content is read compressed).
    #[must_use]
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Whether the content is FITS (starts with the `SIMPLE` card).
    #[must_use]
    pub fn is_fits(&self) -> bool {
        self.head.starts_with(b"SIMPLE  =")
    }

    /// The open FITS file and its HDUs, or `None` when the content is not FITS. Opened on the
    /// first call; an error (a corrupt file) names the file.
    pub(crate) fn fits(&mut self) -> Result<Option<(&mut FitsFile, &[HduDesc])>, LoadError> {
        if !self.is_fits() {
            return Ok(None);
        }
        if self.fits.is_none() {
            let mut f = fits::open(self.path)?;
            let hdus = fits::hdus(&mut f, self.path)?;
            self.fits = Some((f, hdus));
        }
        Ok(self.fits.as_mut().map(|(f, h)| (&mut **f, h.as_slice())))
    }
}

/// How a companion format is read ([`FitsFormat::companion`]).
pub(crate) type ReadCompanion = fn(&Path) -> Result<CompanionTable, LoadError>;

/// A FITS format recognised from its HDUs and header cards alone: a reader made of two functions
/// (most FITS readers are one of these).
pub(crate) struct FitsFormat {
    /// The format's name.
    pub format: Format,
    /// Whether the open file (its HDUs, its cards, its name) is this format.
    pub looks_like: fn(&mut FitsFile, &Path, &[HduDesc]) -> bool,
    /// Read a file of this format.
    pub read: fn(&Path) -> Result<Dataset, LoadError>,
    /// For a companion format ([`Reader::is_companion`]): read it as one.
    pub companion: Option<ReadCompanion>,
}

impl Reader for FitsFormat {
    fn format(&self) -> Format {
        self.format
    }
    fn claim(&self, probe: &mut Probe<'_>) -> Result<Option<Confidence>, LoadError> {
        let path = probe.path();
        let Some((f, hdus)) = probe.fits()? else {
            return Ok(None);
        };
        Ok((self.looks_like)(f, path, hdus).then_some(Confidence::CERTAIN))
    }
    fn read(&self, path: &Path) -> Result<Dataset, LoadError> {
        (self.read)(path)
    }
    fn is_companion(&self) -> bool {
        self.companion.is_some()
    }
    fn read_companion(&self, path: &Path) -> Result<CompanionTable, LoadError> {
        match self.companion {
            Some(read) => read(path),
            None => Err(not_a_companion(self.format, path)),
        }
    }
}

/// The error of [`Reader::read_companion`] on a format that describes no other files.
fn not_a_companion(format: Format, path: &Path) -> LoadError {
    LoadError::new(
        path,
        crate::io::error::LoadErrorKind::Unrecognised(format!(
            "a {format} file does not describe other files"
        )),
    )
}

/// One input format. Implement it in a module of [`crate::io::readers`] and add the reader to the
/// list in [`crate::io::registry`]: nothing else names formats.
pub trait Reader: Sync {
    /// The format's name.
    fn format(&self) -> Format;

    /// Whether this reader reads the file, from its content: `None` when it does not; an error
    /// when the file is recognised and refused (the message names the file and why).
    fn claim(&self, probe: &mut Probe<'_>) -> Result<Option<Confidence>, LoadError>;

    /// Read the file (one the reader claimed) into a dataset.
    fn read(&self, path: &Path) -> Result<Dataset, LoadError>;

    /// Whether files of this format describe visits given beside them (velocities, a reference
    /// curve) instead of adding visits: then [`Reader::read_companion`] reads them.
    fn is_companion(&self) -> bool {
        false
    }

    /// Read a companion file (only called when [`Reader::is_companion`]).
    fn read_companion(&self, path: &Path) -> Result<CompanionTable, LoadError> {
        Err(not_a_companion(self.format(), path))
    }
}
