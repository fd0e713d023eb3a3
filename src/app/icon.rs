//! The window icon.

use eframe::egui;

/// The window icon, drawn here so the binary needs no image file: three noisy exposures (thin,
/// coloured) and their sharp combination (white) across one absorption line.
#[must_use]
pub fn icon() -> egui::IconData {
    const N: usize = 64;
    let mut rgba = vec![0u8; N * N * 4];
    let mut put = |x: usize, y: usize, c: [u8; 4]| {
        if x < N && y < N {
            rgba[(y * N + x) * 4..(y * N + x) * 4 + 4].copy_from_slice(&c);
        }
    };
    for y in 0..N {
        for x in 0..N {
            // Rounded dark-blue tile.
            let (dx, dy) = (x.abs_diff(N / 2) as f64, y.abs_diff(N / 2) as f64);
            if dx.max(dy) < 30.0 || dx.hypot(dy) < 38.0 {
                put(x, y, [22, 34, 60, 255]);
            }
        }
    }
    let line = |x: f64, depth: f64, shift: f64| {
        let t = (x - 32.0 - shift) / 5.0;
        20.0 + depth * (-0.5 * t * t).exp() * 26.0
    };
    let colours = [
        [230, 120, 30, 255],
        [90, 200, 120, 255],
        [200, 90, 200, 255],
    ];
    for (k, c) in colours.iter().enumerate() {
        let shift = (k as f64 - 1.0) * 4.0;
        for x in 6..58 {
            let wiggle = ((x * (7 + 3 * k)) % 5) as f64 * 0.6 - 1.2;
            put(x, (line(x as f64, 0.9, shift) + wiggle) as usize, *c);
        }
    }
    for x in 6..58 {
        let y = line(x as f64, 1.0, 0.0);
        put(x, y as usize, [255, 255, 255, 255]);
        put(x, y as usize + 1, [255, 255, 255, 255]);
    }
    egui::IconData {
        rgba,
        width: N as u32,
        height: N as u32,
    }
}
