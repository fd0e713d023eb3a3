//! The one PNG writer: the window's "Save PNG", its command-line screenshot, the teaching panel's
//! figures and the bench's scaling plot all save through it. Atomic (written beside the
//! destination and renamed into place, see [`crate::io::atomic`]), so a failed or interrupted
//! save never leaves a truncated picture, and it never replaces one of `inputs`. Here (below
//! `cli` and `app`) rather than in the core because only the window and the command line may use
//! the `image` crate.

use std::path::{Path, PathBuf};

use crate::io::atomic::write_atomic;
use crate::io::error::SaveError;

/// Write `width` x `height` pixels of RGBA (`rgba.len() == 4 * width * height`) or RGB
/// (`3 * width * height`) bytes as a PNG at `path`, atomically.
pub fn write_png(
    path: &Path,
    width: usize,
    height: usize,
    pixels: &[u8],
    inputs: &[PathBuf],
) -> Result<(), SaveError> {
    let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(SaveError::new(
            path,
            format!("an image of {width} x {height} px is too large"),
        ));
    };
    let n = width.saturating_mul(height);
    let colour = if pixels.len() == n.saturating_mul(4) {
        image::ColorType::Rgba8
    } else if pixels.len() == n.saturating_mul(3) {
        image::ColorType::Rgb8
    } else {
        return Err(SaveError::new(
            path,
            format!(
                "{} bytes are not an RGB or RGBA image of {width} x {height} px",
                pixels.len()
            ),
        ));
    };
    if width == 0 || height == 0 {
        return Err(SaveError::new(path, "the image is empty"));
    }
    write_atomic(path, inputs, |tmp| {
        image::save_buffer_with_format(tmp, pixels, w, h, colour, image::ImageFormat::Png)
            .map_err(|e| SaveError::new(path, format!("cannot write the PNG: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_and_a_failure_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("a.png");
        let px: Vec<u8> = (0..4 * 3 * 2).map(|i| i as u8).collect();
        write_png(&out, 3, 2, &px, &[]).expect("written");
        let img = image::open(&out).expect("a PNG").to_rgba8();
        assert_eq!((img.width(), img.height()), (3, 2));
        assert_eq!(img.as_raw(), &px);
        let before = std::fs::read(&out).expect("read");
        // A bad buffer is refused before anything is written; the old picture is untouched.
        assert!(write_png(&out, 3, 2, &px[..5], &[]).is_err());
        assert_eq!(std::fs::read(&out).expect("read"), before);
        // An input is never replaced, and nothing is left beside it.
        let err = write_png(&out, 3, 2, &px, std::slice::from_ref(&out)).expect_err("refused");
        assert!(err.to_string().contains("input"), "{err}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.png")]);
        // A folder that does not exist: an error naming the file, no panic.
        let missing = dir.path().join("no/such/dir/b.png");
        let err = write_png(&missing, 3, 2, &px, &[]).expect_err("no folder");
        assert!(err.to_string().contains("b.png"), "{err}");
    }
}
