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

use crate::io::error::LoadError;

/// The FITS block size in bytes.
const BLOCK: u64 = 2880;
/// One header card in bytes.
const CARD: usize = 80;

/// A card split as cfitsio splits it (`ffgknm`, `ffpsvc`): the keyword (the first 8 bytes up to a
/// blank or `=`, upper-cased) and the value text: after `= ` in columns 9-10, else after the first
/// `=` anywhere on the card. cfitsio reads a card as a C string, so a NUL byte ends it.
fn split_card(card: &[u8]) -> (String, Option<&[u8]>) {
    let card = &card[..card.iter().position(|&b| b == 0).unwrap_or(card.len())];
    let head = &card[..8.min(card.len())];
    let kend = head
        .iter()
        .position(|&b| b == b' ' || b == b'=')
        .unwrap_or(head.len());
    let key = String::from_utf8_lossy(&head[..kend]).to_ascii_uppercase();
    if card.len() < 9
        || matches!(
            key.as_str(),
            "" | "COMMENT" | "HISTORY" | "END" | "CONTINUE"
        )
    {
        return (key, None);
    }
    let value = if card.get(8..10) == Some(b"= ") {
        Some(&card[10..])
    } else {
        card.iter().position(|&b| b == b'=').map(|i| &card[i + 1..])
    };
    (key, value)
}

/// A card's value: a quoted string (quotes removed, `''` read as `'`; a value that lacks its
/// closing quote runs to the end of the card, as cfitsio reads a corrupt one), or anything else
/// as text (before a `/` comment).
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Other(String),
}

fn parse_value(v: &[u8]) -> Value {
    let text = String::from_utf8_lossy(v);
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        Value::Str(out.trim().to_owned())
    } else {
        Value::Other(text.split('/').next().unwrap_or("").trim().to_owned())
    }
}

/// A header card's integer value, if it has one.
#[cfg(test)]
fn int_value(card: &[u8]) -> Option<i128> {
    match split_card(card).1.map(parse_value) {
        Some(Value::Other(s)) => s.parse().ok(),
        _ => None,
    }
}

/// A header card's string value ('...'), if it has one.
#[cfg(test)]
fn string_value(card: &[u8]) -> Option<String> {
    match split_card(card).1.map(parse_value) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
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

/// Keywords whose value sizes the data or that cfitsio or `fitsio` parse, divide by or size an
/// allocation with: each may appear once per header.
fn structural(key: &str) -> bool {
    const FIXED: [&str; 13] = [
        "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "TFIELDS", "THEAP", "BLANK",
        "BZERO", "BSCALE", "ZIMAGE", "ZBITPIX",
    ];
    const INDEXED: [&str; 7] = [
        "NAXIS", "TFORM", "TDIM", "TBCOL", "TDISP", "ZNAXIS", "ZTILE",
    ];
    FIXED.contains(&key)
        || INDEXED.iter().any(|p| {
            key.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The cards of one header that size its data or describe its columns.
#[derive(Default)]
struct Sizing {
    /// (keyword, value) of every card with a value, in order.
    cards: Vec<(String, Value)>,
}

/// The byte width of one element of a binary-table column type (bits for `X` count as 1/8).
fn element_bytes(code: char, repeat: u64) -> Option<u64> {
    let per = match code {
        'L' | 'B' | 'A' => 1,
        'I' => 2,
        'J' | 'E' => 4,
        'K' | 'D' => 8,
        'X' => return Some(repeat.div_ceil(8)),
        _ => return None,
    };
    repeat.checked_mul(per)
}

/// A binary-table TFORM parsed as cfitsio's `ffbnfm` parses it: (repeat, type code, width of a
/// unit string for `A`), or why frizzview refuses it.
fn binary_tform(n: usize, v: &str) -> Result<(u64, char, u64), String> {
    let form = v.trim().to_ascii_uppercase();
    let digits = form.bytes().take_while(u8::is_ascii_digit).count();
    let repeat: u64 = if digits == 0 {
        1
    } else {
        form[..digits].parse().map_err(|_| {
            format!(
                "TFORM{n} = '{}' has a repeat count too large to read",
                printable(v)
            )
        })?
    };
    let rest = &form[digits..];
    let code = rest.chars().next();
    match code {
        Some('L' | 'X' | 'B' | 'I' | 'J' | 'K' | 'A' | 'E' | 'D') => {}
        Some('C' | 'M' | 'P' | 'Q') => {
            return Err(format!(
                "TFORM{n} = '{}' is a complex or variable-length column, which frizzview \
                 cannot read",
                printable(v)
            ));
        }
        _ => {
            return Err(format!(
                "TFORM{n} = '{}' has no FITS column type code, so frizzview cannot read it",
                printable(v)
            ));
        }
    }
    let code = code.unwrap_or('?');
    if repeat == 0 {
        return Err(format!(
            "TFORM{n} = '{}' declares a column of no elements (repeat 0), which frizzview \
             cannot read",
            printable(v)
        ));
    }
    if repeat > i32::MAX as u64 {
        return Err(format!(
            "TFORM{n} = '{}' declares {repeat} elements per row, more than frizzview reads",
            printable(v)
        ));
    }
    let mut width = 1;
    if code == 'A' {
        // The non-standard 'rAw' (w-character strings), read with sscanf("%ld") as cfitsio does.
        let after = rest[1..]
            .strip_prefix('(')
            .unwrap_or(&rest[1..])
            .trim_start();
        let sign = after.starts_with(['+', '-']) as usize;
        let end = sign + after[sign..].bytes().take_while(u8::is_ascii_digit).count();
        width = match after[..end].parse::<i64>() {
            Ok(w) if w > repeat as i64 => repeat as i64,
            Ok(w) => w,
            Err(_) => repeat as i64,
        }
        .try_into()
        .unwrap_or(0);
        if width == 0 {
            return Err(format!(
                "TFORM{n} = '{}' declares strings of no characters, which frizzview cannot \
                 read (the FITS library divides by the string width)",
                printable(v)
            ));
        }
    }
    Ok((repeat, code, width))
}

/// The dimensions of a TDIMn value "(d1,d2,...)".
fn tdim(v: &str) -> Option<Vec<i128>> {
    let inner = v.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner.split(',').map(|d| d.trim().parse().ok()).collect()
}

impl Sizing {
    fn take(&mut self, card: &[u8]) {
        let (key, value) = split_card(card);
        if let Some(v) = value {
            self.cards.push((key, parse_value(v)));
        }
    }

    fn value(&self, key: &str) -> Option<&Value> {
        self.cards.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// An integer card: `Ok(None)` if absent, `Err` if present but not an integer.
    fn int(&self, key: &str) -> Result<Option<i128>, String> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Other(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| format!("{key} = {} is not an integer", printable(s))),
            Some(Value::Str(s)) => Err(format!("{key} = '{}' is not an integer", printable(s))),
        }
    }

    /// A required integer card.
    fn required_int(&self, key: &str) -> Result<i128, String> {
        self.int(key)?
            .ok_or_else(|| format!("the {key} card is missing"))
    }

    /// A string card: `Ok(None)` if absent, `Err` if present but not a string.
    fn string(&self, key: &str) -> Result<Option<&str>, String> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(Value::Other(s)) => {
                Err(format!("{key} = {} is not a quoted string", printable(s)))
            }
        }
    }

    /// The EXTNAME, or "".
    fn name(&self) -> String {
        match self.value("EXTNAME") {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// The XTENSION value, upper-cased ("" if absent or not a string).
    fn xtension(&self) -> String {
        match self.value("XTENSION") {
            Some(Value::Str(s)) => s.trim().to_ascii_uppercase(),
            _ => String::new(),
        }
    }

    /// Refuse binary-table columns that `fitsio` cannot describe. Its column description panics
    /// on any type code it does not know, complex (`C`, `M`) and variable-length (`P`, `Q`)
    /// columns among them, and on a TFORM with no code at all; so only the other codes of the
    /// FITS standard (§7.3.1, table 18) pass.
    fn unreadable_column(&self) -> Option<String> {
        if self.xtension() != "BINTABLE" {
            return None;
        }
        self.cards.iter().find_map(|(k, v)| {
            let n: usize = k.strip_prefix("TFORM")?.parse().ok()?;
            match v {
                Value::Str(s) => binary_tform(n, s).err(),
                Value::Other(s) => Some(format!(
                    "TFORM{n} = {} is not a quoted column format, so frizzview cannot read it",
                    printable(s)
                )),
            }
        })
    }

    /// Every card that cfitsio or `fitsio` will parse, divide by or size an allocation with,
    /// checked against what they can take (FITS standard 4.0 and cfitsio's own parsers); the
    /// first problem found, naming the card.
    fn structure(&self, primary: bool) -> Result<(), String> {
        for (i, (k, _)) in self.cards.iter().enumerate() {
            if structural(k) && self.cards[..i].iter().any(|(p, _)| p == k) {
                return Err(format!("the {k} card appears twice"));
            }
        }
        if primary {
            return self.image(true);
        }
        match self.xtension().as_str() {
            "IMAGE" => self.image(false),
            "BINTABLE" => self.binary_table(),
            "TABLE" => self.ascii_table(),
            other => Err(format!(
                "XTENSION = '{}' is not an extension frizzview reads (IMAGE, BINTABLE or TABLE)",
                printable(other)
            )),
        }
    }

    /// PCOUNT 0 and GCOUNT 1, as every extension but a binary table's heap has them.
    fn no_groups(&self, pcount_zero: bool) -> Result<(), String> {
        if pcount_zero && let Some(p) = self.int("PCOUNT")?.filter(|&p| p != 0) {
            return Err(format!("PCOUNT = {p} where this extension must have 0"));
        }
        if let Some(g) = self.int("GCOUNT")?.filter(|&g| g != 1) {
            return Err(format!("GCOUNT = {g} where this extension must have 1"));
        }
        Ok(())
    }

    fn image(&self, primary: bool) -> Result<(), String> {
        if !primary {
            self.no_groups(true)?;
        }
        let bitpix = self.required_int("BITPIX")?;
        let naxis = self.required_int("NAXIS")?;
        for n in 1..=naxis {
            if self.int(&format!("NAXIS{n}"))? == Some(0) {
                return Err(format!(
                    "NAXIS{n} = 0 in an image of NAXIS = {naxis}: an image without pixels"
                ));
            }
        }
        if let Some(blank) = self.int("BLANK")? {
            let range = match bitpix {
                8 => 0..=255,
                16 => i128::from(i16::MIN)..=i128::from(i16::MAX),
                32 => i128::from(i32::MIN)..=i128::from(i32::MAX),
                64 => i128::from(i64::MIN)..=i128::from(i64::MAX),
                _ => {
                    return Err(format!(
                        "BLANK = {blank} on a floating-point image (BITPIX = {bitpix}); the FITS \
                         standard allows BLANK only for integer images"
                    ));
                }
            };
            if !range.contains(&blank) {
                return Err(format!(
                    "BLANK = {blank} is outside the values of BITPIX = {bitpix}"
                ));
            }
        }
        // cfitsio reports BITPIX 64 with BZERO 2^63 as unsigned 64-bit, a type `fitsio` cannot
        // describe (it panics).
        let real = |key: &str| match self.value(key) {
            Some(Value::Other(s)) => s.replace(['D', 'd'], "E").parse::<f64>().ok(),
            _ => None,
        };
        if bitpix == 64
            && real("BZERO").is_some_and(|z| z >= 9.0e18)
            && real("BSCALE").is_none_or(|s| s == 1.0)
        {
            return Err(
                "BZERO = 2^63 with BITPIX = 64 (unsigned 64-bit pixels), which frizzview cannot \
                 read"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// NAXIS 2, TFIELDS in 0..999: (TFIELDS, NAXIS1, NAXIS2).
    fn table_shape(&self) -> Result<(usize, u64, u64), String> {
        let naxis = self.required_int("NAXIS")?;
        if naxis != 2 {
            return Err(format!("NAXIS = {naxis} where a table must have 2"));
        }
        let tfields = self.required_int("TFIELDS")?;
        if !(0..=999).contains(&tfields) {
            return Err(format!("TFIELDS = {tfields} is outside 0..999"));
        }
        // Both are known non-negative here (`data_bytes` ran first).
        let axis = |k: &str| -> Result<u64, String> {
            u64::try_from(self.required_int(k)?).map_err(|_| format!("{k} is negative"))
        };
        Ok((tfields as usize, axis("NAXIS1")?, axis("NAXIS2")?))
    }

    fn binary_table(&self) -> Result<(), String> {
        self.no_groups(false)?;
        let (tfields, naxis1, naxis2) = self.table_shape()?;
        let mut row = 0u64;
        for n in 1..=tfields {
            let form = self
                .string(&format!("TFORM{n}"))?
                .ok_or_else(|| format!("the TFORM{n} card is missing (TFIELDS = {tfields})"))?;
            let (repeat, code, _) = binary_tform(n, form)?;
            row = element_bytes(code, repeat)
                .and_then(|b| row.checked_add(b))
                .ok_or_else(|| format!("TFORM{n}: the row width overflows"))?;
            if let Some(dim) = self.string(&format!("TDIM{n}"))? {
                let bad = |why: &str| format!("TDIM{n} = '{}' {why}", printable(dim));
                let dims =
                    tdim(dim).ok_or_else(|| bad("is not a list of dimensions (d1,d2,...)"))?;
                if dims.is_empty() || dims.iter().any(|&d| d < 1) {
                    return Err(bad(
                        "has a dimension below 1, which the FITS library divides by",
                    ));
                }
                let product = dims
                    .iter()
                    .try_fold(1i128, |a, &d| a.checked_mul(d))
                    .unwrap_or(i128::MAX);
                if product > i128::from(repeat) {
                    return Err(bad(&format!(
                        "holds more elements than TFORM{n} = '{}' declares ({repeat})",
                        printable(form)
                    )));
                }
            }
            if let Some(disp) = self.string(&format!("TDISP{n}"))? {
                // `fitsio` allocates this many bytes per row to read a text column.
                let w: u64 = disp
                    .trim_start()
                    .trim_start_matches(|c: char| !c.is_ascii_digit())
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .take(12)
                    .fold(0, |a, b| a * 10 + u64::from(b - b'0'));
                if w > 100_000 {
                    return Err(format!(
                        "TDISP{n} = '{}' declares a display width of {w} characters",
                        printable(disp)
                    ));
                }
            }
        }
        if row != naxis1 {
            return Err(format!(
                "NAXIS1 = {naxis1} but the TFORMn cards add up to {row} bytes per row"
            ));
        }
        let pcount = u64::try_from(self.int("PCOUNT")?.unwrap_or(0)).unwrap_or(0);
        if let Some(theap) = self.int("THEAP")? {
            let table = naxis1.saturating_mul(naxis2);
            let ok =
                u64::try_from(theap).is_ok_and(|t| t >= table && t <= table.saturating_add(pcount));
            if !ok {
                return Err(format!(
                    "THEAP = {theap} is outside the heap ({table}..{} bytes into the data)",
                    table.saturating_add(pcount)
                ));
            }
        }
        if matches!(self.value("ZIMAGE"), Some(Value::Other(t)) if t.eq_ignore_ascii_case("T")) {
            self.compressed_image()?;
        }
        Ok(())
    }

    /// A tile-compressed image (ZIMAGE = T): cfitsio divides by ZTILEn and sizes its tiles
    /// from ZNAXISn.
    fn compressed_image(&self) -> Result<(), String> {
        let zbitpix = self.required_int("ZBITPIX")?;
        if ![8, 16, 32, 64, -32, -64].contains(&zbitpix) {
            return Err(format!("ZBITPIX = {zbitpix} is not a FITS data type"));
        }
        let znaxis = self.required_int("ZNAXIS")?;
        if !(1..=6).contains(&znaxis) {
            return Err(format!("ZNAXIS = {znaxis} is outside 1..6"));
        }
        for n in 1..=znaxis {
            let z = self.required_int(&format!("ZNAXIS{n}"))?;
            if z < 1 {
                return Err(format!("ZNAXIS{n} = {z} is below 1"));
            }
            if let Some(t) = self.int(&format!("ZTILE{n}"))?
                && t < 1
            {
                return Err(format!(
                    "ZTILE{n} = {t} is below 1 (the FITS library divides by it)"
                ));
            }
        }
        Ok(())
    }

    fn ascii_table(&self) -> Result<(), String> {
        self.no_groups(true)?;
        let (tfields, naxis1, _) = self.table_shape()?;
        if tfields > 0 && naxis1 == 0 {
            return Err(
                "NAXIS1 = 0 in an ASCII table with columns (rows of no bytes, which the \
                        FITS library divides by)"
                    .to_owned(),
            );
        }
        for n in 1..=tfields {
            let form = self
                .string(&format!("TFORM{n}"))?
                .ok_or_else(|| format!("the TFORM{n} card is missing (TFIELDS = {tfields})"))?;
            let f = form.trim().to_ascii_uppercase();
            let width: u64 = match f.chars().next() {
                Some('A' | 'I' | 'J' | 'F' | 'E' | 'D') => f[1..]
                    .split('.')
                    .next()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(0),
                _ => 0,
            };
            if width == 0 {
                return Err(format!(
                    "TFORM{n} = '{}' is not an ASCII-table format (Aw, Iw, Fw.d, Ew.d, Dw.d)",
                    printable(form)
                ));
            }
            let tbcol = self
                .required_int(&format!("TBCOL{n}"))
                .map_err(|e| format!("{e} (TFIELDS = {tfields})"))?;
            if tbcol < 1 || (tbcol - 1).saturating_add(i128::from(width)) > i128::from(naxis1) {
                return Err(format!(
                    "TBCOL{n} = {tbcol} puts a {width}-character column outside the \
                     {naxis1}-byte rows"
                ));
            }
        }
        Ok(())
    }

    /// The declared data size in bytes, or why it is impossible.
    fn data_bytes(&self, primary: bool) -> Result<u64, String> {
        let bitpix = self.required_int("BITPIX")?;
        if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
            return Err(format!("BITPIX = {bitpix} is not a FITS data type"));
        }
        let naxis = self.required_int("NAXIS")?;
        if !(0..=999).contains(&naxis) {
            return Err(format!("NAXIS = {naxis} is outside 0..999"));
        }
        let pcount = self.int("PCOUNT")?.unwrap_or(0);
        if pcount < 0 {
            return Err(format!("PCOUNT = {pcount} is negative"));
        }
        let gcount = self.int("GCOUNT")?.unwrap_or(1);
        if gcount < 0 {
            return Err(format!("GCOUNT = {gcount} is negative"));
        }
        if naxis == 0 {
            return Ok(0);
        }
        let too_big = || "its declared data size overflows".to_owned();
        let mut elements: u64 = 1;
        for n in 1..=naxis as usize {
            let v = self.required_int(&format!("NAXIS{n}"))?;
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

/// Whether the column checks are switched off (`FRIZZVIEW_TEST_UNCHECKED_COLUMNS=1`): for tests
/// of the process-level containment only, which need a file that reaches the FITS library.
fn unchecked_columns() -> bool {
    std::env::var_os("FRIZZVIEW_TEST_UNCHECKED_COLUMNS").is_some_and(|v| v == "1")
}

/// Walk the HDUs of `path` and check that every one of them is sized consistently and lies inside
/// the file. Bytes after the last HDU that do not start an extension are ignored, as cfitsio does.
pub(crate) fn check(path: &Path) -> Result<(), LoadError> {
    let mut file = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let len = file.metadata().map_err(|e| LoadError::io(path, e))?.len();
    check_content(&mut file, len, path)
}

/// Check that `path` is structurally a FITS file: every HDU's header ends and its declared data lie
/// inside the file (used to verify downloads before they are cached).
pub fn check_fits_structure(path: &Path) -> Result<(), LoadError> {
    check(path)
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
        let name = sizing.name();
        let hdu = || super::hdu::label(index, &name);
        let data_bytes = sizing
            .data_bytes(primary)
            .map_err(|why| LoadError::invalid(path, hdu(), why))?;
        if !unchecked_columns() {
            if let Some(why) = sizing.unreadable_column() {
                return Err(LoadError::invalid(path, hdu(), why));
            }
            sizing
                .structure(primary)
                .map_err(|why| LoadError::invalid(path, hdu(), why))?;
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
                super::hdu::label(index, &sizing.name()),
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
