//! A structural check of a FITS file before cfitsio sees it.
//!
//! cfitsio trusts the header cards that size each HDU. A corrupt card can make it loop: a negative
//! `PCOUNT` puts the next HDU *before* the current one, and `fits_get_num_hdus` then walks the same
//! headers forever while its HDU table grows. This module walks the HDUs itself, from the cards
//! that fix the data size (FITS standard 4.0, §4.4.1 and §7): `BITPIX`, `NAXIS`, `NAXISn`, `PCOUNT`
//! and `GCOUNT`, with checked arithmetic, and refuses the file with a message naming the HDU and the
//! card when any of them is impossible or the data run past the end of the file.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::error::LoadError;

/// The FITS block size in bytes.
const BLOCK: u64 = 2880;
/// One header card in bytes.
const CARD: usize = 80;

/// A header card's integer value, if it has one.
fn int_value(card: &[u8]) -> Option<i128> {
    if card.get(8..10) != Some(b"= ") {
        return None;
    }
    let text = std::str::from_utf8(&card[10..]).ok()?;
    let value = text.split('/').next()?.trim();
    value.parse().ok()
}

/// A header card's string value ('...'), if it has one.
fn string_value(card: &[u8]) -> Option<String> {
    if card.get(8..10) != Some(b"= ") {
        return None;
    }
    let text = String::from_utf8_lossy(&card[10..]);
    let text = text.trim_start();
    let rest = text.strip_prefix('\'')?;
    let end = rest.find('\'')?;
    Some(rest[..end].trim().to_owned())
}

/// A string value read as leniently as cfitsio reads a corrupt one: a value that lacks its
/// closing quote runs to the end of the card. Used where refusing more is the safe side.
fn lenient_string_value(card: &[u8]) -> Option<String> {
    string_value(card).or_else(|| {
        if card.get(8..10) != Some(b"= ") {
            return None;
        }
        let text = String::from_utf8_lossy(&card[10..]);
        let rest = text.trim_start().strip_prefix('\'')?;
        Some(rest.trim().to_owned())
    })
}

/// A card value fit for a message: at most 20 characters, anything but printable ASCII as `?`.
fn printable(v: &str) -> String {
    v.chars()
        .take(20)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The keyword of a card (trailing blanks removed).
fn keyword(card: &[u8]) -> &[u8] {
    let k = &card[..8.min(card.len())];
    let end = k.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &k[..end]
}

/// The cards of one header that size its data.
#[derive(Default)]
struct Sizing {
    bitpix: Option<i128>,
    naxis: Option<i128>,
    axes: Vec<(usize, i128)>,
    pcount: Option<i128>,
    gcount: Option<i128>,
    name: String,
    /// XTENSION value ("BINTABLE", "IMAGE", ...).
    xtension: String,
    /// (n, value) of each TFORMn card.
    tforms: Vec<(usize, String)>,
}

impl Sizing {
    fn take(&mut self, card: &[u8]) {
        let key = keyword(card);
        match key {
            b"BITPIX" => self.bitpix = int_value(card),
            b"NAXIS" => self.naxis = int_value(card),
            b"PCOUNT" => self.pcount = int_value(card),
            b"GCOUNT" => self.gcount = int_value(card),
            b"EXTNAME" => self.name = string_value(card).unwrap_or_default(),
            b"XTENSION" => self.xtension = string_value(card).unwrap_or_default(),
            _ => {
                if let Some(n) = key.strip_prefix(b"TFORM")
                    && let Some(n) = std::str::from_utf8(n).ok().and_then(|s| s.parse().ok())
                    && let Some(v) = lenient_string_value(card)
                {
                    self.tforms.push((n, v));
                }
                if let Some(n) = key.strip_prefix(b"NAXIS")
                    && let Some(n) = std::str::from_utf8(n).ok().and_then(|s| s.parse().ok())
                    && let Some(v) = int_value(card)
                {
                    self.axes.push((n, v));
                }
            }
        }
    }

    /// Refuse binary-table columns that `fitsio` cannot describe. Its column description panics
    /// on any type code it does not know, complex (`C`, `M`) and variable-length (`P`, `Q`)
    /// columns among them, and on a TFORM with no code at all; so only the other codes of the
    /// FITS standard (§7.3.1, table 18) pass.
    fn unreadable_column(&self) -> Option<String> {
        if !self.xtension.trim().eq_ignore_ascii_case("BINTABLE") {
            return None;
        }
        self.tforms.iter().find_map(|(n, v)| {
            let code = v.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
            match code.chars().next().map(|c| c.to_ascii_uppercase()) {
                Some('L' | 'X' | 'B' | 'I' | 'J' | 'K' | 'A' | 'E' | 'D') => None,
                Some('C' | 'M' | 'P' | 'Q') => Some(format!(
                    "TFORM{n} = '{}' is a complex or variable-length column, which frizzview \
                     cannot read",
                    printable(v)
                )),
                _ => Some(format!(
                    "TFORM{n} = '{}' has no FITS column type code, so frizzview cannot read it",
                    printable(v)
                )),
            }
        })
    }

    /// The declared data size in bytes, or why it is impossible.
    fn data_bytes(&self, primary: bool) -> Result<u64, String> {
        let bitpix = self.bitpix.ok_or("the BITPIX card is missing")?;
        if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
            return Err(format!("BITPIX = {bitpix} is not a FITS data type"));
        }
        let naxis = self.naxis.ok_or("the NAXIS card is missing")?;
        if !(0..=999).contains(&naxis) {
            return Err(format!("NAXIS = {naxis} is outside 0..999"));
        }
        let pcount = self.pcount.unwrap_or(0);
        if pcount < 0 {
            return Err(format!("PCOUNT = {pcount} is negative"));
        }
        let gcount = self.gcount.unwrap_or(1);
        if gcount < 0 {
            return Err(format!("GCOUNT = {gcount} is negative"));
        }
        if naxis == 0 {
            return Ok(0);
        }
        let too_big = || "its declared data size overflows".to_owned();
        let mut elements: u64 = 1;
        for n in 1..=naxis as usize {
            let v = self
                .axes
                .iter()
                .find(|(k, _)| *k == n)
                .map(|&(_, v)| v)
                .ok_or_else(|| format!("the NAXIS{n} card is missing"))?;
            if v < 0 {
                return Err(format!("NAXIS{n} = {v} is negative"));
            }
            // Random groups (primary HDU, NAXIS1 = 0): NAXIS1 does not count.
            if primary && n == 1 && v == 0 {
                continue;
            }
            elements = u64::try_from(v)
                .ok()
                .and_then(|v| elements.checked_mul(v))
                .ok_or_else(too_big)?;
        }
        let bytes_per = bitpix.unsigned_abs() as u64 / 8;
        u64::try_from(pcount)
            .ok()
            .and_then(|p| elements.checked_add(p))
            .and_then(|e| e.checked_mul(u64::try_from(gcount).ok()?))
            .and_then(|e| e.checked_mul(bytes_per))
            .ok_or_else(too_big)
    }
}

/// Walk the HDUs of `path` and check that every one of them is sized consistently and lies inside
/// the file. Bytes after the last HDU that do not start an extension are ignored, as cfitsio does.
pub(crate) fn check(path: &Path) -> Result<(), LoadError> {
    let mut file = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let len = file.metadata().map_err(|e| LoadError::io(path, e))?.len();
    check_content(&mut file, len, path)
}

/// [`check`] on FITS content held in memory (a decompressed `.gz`); errors name `path`.
pub(crate) fn check_bytes(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    check_content(&mut std::io::Cursor::new(bytes), bytes.len() as u64, path)
}

/// Walk the HDUs of `len` bytes of content read from `file`.
fn check_content(file: &mut (impl Read + Seek), len: u64, path: &Path) -> Result<(), LoadError> {
    let mut pos = 0u64;
    let mut index = 0;
    while pos < len {
        let primary = index == 0;
        let Some((sizing, data_start)) = read_header(file, path, pos, index)? else {
            return Ok(());
        };
        let hdu = || super::fits::label(index, &sizing.name);
        let data_bytes = sizing
            .data_bytes(primary)
            .map_err(|why| LoadError::invalid(path, hdu(), why))?;
        if let Some(why) = sizing.unreadable_column() {
            return Err(LoadError::invalid(path, hdu(), why));
        }
        if data_start.checked_add(data_bytes).is_none_or(|e| e > len) {
            return Err(LoadError::invalid(
                path,
                hdu(),
                format!(
                    "its header declares {data_bytes} bytes of data but the file ends {} bytes \
                     after the header (truncated, or a corrupt NAXIS/PCOUNT card)",
                    len.saturating_sub(data_start)
                ),
            ));
        }
        let padded = data_bytes.div_ceil(BLOCK).saturating_mul(BLOCK);
        pos = data_start.saturating_add(padded);
        index += 1;
    }
    Ok(())
}

/// Read the header of HDU `index` starting at byte `pos`: its sizing cards and the offset of its
/// first data byte. `None` when the bytes there do not start an extension (the end of the HDUs).
fn read_header(
    file: &mut (impl Read + Seek),
    path: &Path,
    pos: u64,
    index: usize,
) -> Result<Option<(Sizing, u64)>, LoadError> {
    let primary = index == 0;
    let opening: &[u8] = if primary { b"SIMPLE  =" } else { b"XTENSION=" };
    file.seek(SeekFrom::Start(pos))
        .map_err(|e| LoadError::io(path, e))?;
    let mut block = vec![0u8; BLOCK as usize];
    let mut sizing = Sizing::default();
    let mut at = pos;
    loop {
        let got = read_full(file, &mut block).map_err(|e| LoadError::io(path, e))?;
        let first = at == pos;
        if first && !block[..got].starts_with(opening) {
            if primary {
                return Err(LoadError::invalid(
                    path,
                    "the FITS file",
                    "does not start with a SIMPLE card",
                ));
            }
            // Not an extension: whatever follows the last HDU is ignored.
            return Ok(None);
        }
        if got < BLOCK as usize {
            return Err(LoadError::invalid(
                path,
                super::fits::label(index, &sizing.name),
                "the header has no END card before the end of the file (truncated?)",
            ));
        }
        at += BLOCK;
        for card in block.chunks_exact(CARD) {
            if keyword(card) == b"END" {
                return Ok(Some((sizing, at)));
            }
            sizing.take(card);
        }
    }
}

/// Read until `buf` is full or the file ends; the number of bytes read.
pub(crate) fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = file.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(text: &str) -> Vec<u8> {
        let mut c = text.as_bytes().to_vec();
        c.resize(CARD, b' ');
        c
    }

    #[test]
    fn values_are_parsed_from_cards() {
        assert_eq!(
            int_value(&card("NAXIS1  =                 4096 / x")),
            Some(4096)
        );
        assert_eq!(
            int_value(&card("PCOUNT  =               -58482")),
            Some(-58482)
        );
        assert_eq!(int_value(&card("COMMENT   NAXIS1 = 3")), None);
        assert_eq!(
            string_value(&card("EXTNAME = 'FLUX    '           / x")),
            Some("FLUX".into())
        );
        assert_eq!(keyword(&card("END")), b"END");
    }

    #[test]
    fn complex_and_variable_length_columns_are_refused() {
        let mut s = Sizing::default();
        for c in [
            "XTENSION= 'BINTABLE'",
            "TFORM1  = '1E      '",
            "TFORM2  = '4096I   '",
        ] {
            s.take(&card(c));
        }
        assert_eq!(s.unreadable_column(), None);
        // A value that lost its closing quote is read to the end of the card, as cfitsio does.
        let mut t = Sizing::default();
        t.take(&card("XTENSION= 'BINTABLE'"));
        t.take(&card("TFORM9  = '1PV garbage with no closing quote"));
        assert!(t.unreadable_column().is_some_and(|w| w.contains("TFORM9")));
        for bad in [
            "1M",
            "2C",
            "1PE(100)",
            "QD",
            "m",
            "20",
            "1Z",
            "1PV\u{1e}\u{ae}",
        ] {
            let mut t = Sizing::default();
            t.take(&card("XTENSION= 'BINTABLE'"));
            t.take(&card(&format!("TFORM3  = '{bad}'")));
            let why = t.unreadable_column().unwrap_or_default();
            assert!(
                why.contains("TFORM3") && why.contains("cannot read"),
                "{bad}: {why}"
            );
        }
    }

    #[test]
    fn sizes_follow_the_standard() {
        let mut s = Sizing::default();
        for c in [
            "BITPIX  =                  -32",
            "NAXIS   =                    2",
            "NAXIS1  =                 4096",
            "NAXIS2  =                    3",
        ] {
            s.take(&card(c));
        }
        assert_eq!(s.data_bytes(false), Ok(4096 * 3 * 4));
        s.take(&card("PCOUNT  =                   -1"));
        let e = s.data_bytes(false).err().unwrap_or_default();
        assert!(e.contains("PCOUNT = -1"), "{e}");
        let mut s = Sizing::default();
        for c in [
            "BITPIX  =                    8",
            "NAXIS   =                    2",
            "NAXIS1  =  9223372036854775807",
            "NAXIS2  =  9223372036854775807",
        ] {
            s.take(&card(c));
        }
        let e = s.data_bytes(false).err().unwrap_or_default();
        assert!(e.contains("overflows"), "{e}");
    }
}
