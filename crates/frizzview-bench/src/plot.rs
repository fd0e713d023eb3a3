//! The scaling plot of `frizzview-bench --plot`: plain pixel drawing into a PNG (log-log axes,
//! a 5x7 bitmap font), so the README image needs no plotting dependency.

use std::path::Path;

use crate::point::ScalingPoint;

const W: u32 = 900;
const H: u32 = 560;
const LEFT: i64 = 90;
const RIGHT: i64 = 250;
const TOP: i64 = 50;
const BOTTOM: i64 = 70;

type Rgb = [u8; 3];

struct Canvas {
    img: image::RgbImage,
}

impl Canvas {
    fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && x < i64::from(W) && y < i64::from(H) {
            self.img.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
    }

    fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb, thick: i64) {
        let n = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for i in 0..=n {
            let x = x0 + (x1 - x0) * i / n;
            let y = y0 + (y1 - y0) * i / n;
            for dx in 0..thick {
                for dy in 0..thick {
                    self.put(x + dx - thick / 2, y + dy - thick / 2, c);
                }
            }
        }
    }

    fn dot(&mut self, x: i64, y: i64, c: Rgb) {
        for dx in -4..=4_i64 {
            for dy in -4..=4_i64 {
                if dx * dx + dy * dy <= 16 {
                    self.put(x + dx, y + dy, c);
                }
            }
        }
    }

    /// Text at (x, y) top-left, scale s (pixels per font dot).
    fn text(&mut self, x: i64, y: i64, s: i64, t: &str, c: Rgb) {
        let mut cx = x;
        for ch in t.chars() {
            let g = glyph(ch.to_ascii_uppercase());
            for (row, bits) in g.iter().enumerate() {
                for (col, b) in bits.bytes().enumerate() {
                    if b == b'#' {
                        for dx in 0..s {
                            for dy in 0..s {
                                self.put(cx + col as i64 * s + dx, y + row as i64 * s + dy, c);
                            }
                        }
                    }
                }
            }
            cx += 6 * s;
        }
    }

    fn text_width(t: &str, s: i64) -> i64 {
        t.chars().count() as i64 * 6 * s
    }
}

/// Write the scaling plot: live recompute and first call against total input pixels.
pub fn write_png(path: &Path, points: &[ScalingPoint]) -> anyhow::Result<()> {
    let mut cv = Canvas {
        img: image::RgbImage::from_pixel(W, H, image::Rgb([255, 255, 255])),
    };
    let pts: Vec<&ScalingPoint> = points
        .iter()
        .filter(|p| p.live_s > 0.0 && p.first_s > 0.0)
        .collect();
    if pts.is_empty() {
        anyhow::bail!("no scaling points to plot");
    }
    let xs: Vec<f64> = pts.iter().map(|p| (p.m() as f64).log10()).collect();
    let ys: Vec<f64> = pts
        .iter()
        .flat_map(|p| [p.live_s.log10(), p.first_s.log10(), p.live_cpu_s.log10()])
        .filter(|v| v.is_finite())
        .chain([(0.015_f64).log10()])
        .collect();
    let x_lo = xs.iter().copied().fold(f64::INFINITY, f64::min).floor();
    let x_hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max).ceil();
    let y_lo = ys.iter().copied().fold(f64::INFINITY, f64::min).floor();
    let y_hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max).ceil();
    let (x_hi, y_hi) = (x_hi.max(x_lo + 1.0), y_hi.max(y_lo + 1.0));
    let pw = i64::from(W) - LEFT - RIGHT;
    let ph = i64::from(H) - TOP - BOTTOM;
    let px = |lx: f64| LEFT + ((lx - x_lo) / (x_hi - x_lo) * pw as f64).round() as i64;
    let py = |ly: f64| TOP + ph - ((ly - y_lo) / (y_hi - y_lo) * ph as f64).round() as i64;
    let grey = [215, 215, 215];
    let black = [0, 0, 0];
    // Decade grid and tick labels.
    let mut d = x_lo;
    while d <= x_hi + 1e-9 {
        cv.line(px(d), TOP, px(d), TOP + ph, grey, 1);
        let lab = format!("1E{}", d as i64);
        cv.text(
            px(d) - Canvas::text_width(&lab, 2) / 2,
            TOP + ph + 10,
            2,
            &lab,
            black,
        );
        d += 1.0;
    }
    let mut d = y_lo;
    while d <= y_hi + 1e-9 {
        cv.line(LEFT, py(d), LEFT + pw, py(d), grey, 1);
        let lab = format!("1E{}", d as i64);
        cv.text(
            LEFT - 10 - Canvas::text_width(&lab, 2),
            py(d) - 7,
            2,
            &lab,
            black,
        );
        d += 1.0;
    }
    cv.line(LEFT, TOP, LEFT, TOP + ph, black, 2);
    cv.line(LEFT, TOP + ph, LEFT + pw, TOP + ph, black, 2);
    cv.line(LEFT + pw, TOP, LEFT + pw, TOP + ph, black, 1);
    cv.line(LEFT, TOP, LEFT + pw, TOP, black, 1);
    // The 15 ms live target.
    let target = [200, 60, 60];
    let yt = py(0.015_f64.log10());
    let mut x = LEFT;
    while x < LEFT + pw {
        cv.line(x, yt, (x + 8).min(LEFT + pw), yt, target, 2);
        x += 16;
    }
    // (series, what: 0 = live wall, 1 = first call wall, 2 = live CPU, colour, label)
    let series: [(&str, u8, Rgb, &str); 5] = [
        ("visits", 0, [31, 119, 180], "LIVE, 1-1000 VISITS"),
        ("visits", 2, [23, 190, 207], "LIVE CPU TIME, VISITS"),
        ("visits", 1, [255, 127, 14], "FIRST CALL, VISITS"),
        ("pixels", 0, [44, 160, 44], "LIVE, 30 VISITS, PX/VISIT"),
        ("pixels", 1, [148, 103, 189], "FIRST CALL, PX/VISIT"),
    ];
    for (k, (name, what, color, label)) in series.iter().enumerate() {
        let mut prev: Option<(i64, i64)> = None;
        for p in pts.iter().filter(|p| p.series == *name) {
            let t = match what {
                0 => p.live_s,
                1 => p.first_s,
                _ => p.live_cpu_s,
            };
            if !(t > 0.0) {
                continue;
            }
            let q = (px((p.m() as f64).log10()), py(t.log10()));
            if let Some(a) = prev {
                cv.line(a.0, a.1, q.0, q.1, *color, 2);
            }
            cv.dot(q.0, q.1, *color);
            prev = Some(q);
        }
        let ly = TOP + 10 + 26 * k as i64;
        cv.dot(LEFT + pw + 20, ly + 6, *color);
        cv.text(LEFT + pw + 32, ly + 2, 1, label, black);
    }
    let ly = TOP + 10 + 26 * 5;
    cv.line(LEFT + pw + 12, ly + 6, LEFT + pw + 28, ly + 6, target, 2);
    cv.text(LEFT + pw + 32, ly + 2, 1, "15 MS TARGET", black);
    let threads = rayon::current_num_threads();
    let title = format!("LOCAL BASIS, APOGEE-LIKE -> APSTAR GRID ({threads} THREADS)");
    cv.text(LEFT, 8, 2, &title, black);
    let xl = "TOTAL INPUT PIXELS M";
    cv.text(
        LEFT + pw / 2 - Canvas::text_width(xl, 2) / 2,
        TOP + ph + 40,
        2,
        xl,
        black,
    );
    cv.text(8, 28, 2, "SECONDS", black);
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let (w, h) = (cv.img.width() as usize, cv.img.height() as usize);
    frizzview::cli::png::write_png(path, w, h, cv.img.as_raw(), &[])?;
    Ok(())
}

/// 5x7 glyphs for the characters the plot uses (unknown characters draw as blank).
fn glyph(c: char) -> [&'static str; 7] {
    match c {
        '0' => [
            " ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### ",
        ],
        '1' => [
            "  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        '2' => [
            " ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####",
        ],
        '3' => [
            " ### ", "#   #", "    #", "  ## ", "    #", "#   #", " ### ",
        ],
        '4' => [
            "   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # ",
        ],
        '5' => [
            "#####", "#    ", "#### ", "    #", "    #", "#   #", " ### ",
        ],
        '6' => [
            " ### ", "#    ", "#    ", "#### ", "#   #", "#   #", " ### ",
        ],
        '7' => [
            "#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   ",
        ],
        '8' => [
            " ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### ",
        ],
        '9' => [
            " ### ", "#   #", "#   #", " ####", "    #", "    #", " ### ",
        ],
        'A' => [
            " ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #",
        ],
        'B' => [
            "#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### ",
        ],
        'C' => [
            " ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### ",
        ],
        'D' => [
            "#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### ",
        ],
        'E' => [
            "#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####",
        ],
        'F' => [
            "#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    ",
        ],
        'G' => [
            " ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####",
        ],
        'H' => [
            "#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #",
        ],
        'I' => [
            " ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        'J' => [
            "  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  ",
        ],
        'K' => [
            "#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #",
        ],
        'L' => [
            "#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####",
        ],
        'M' => [
            "#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #",
        ],
        'N' => [
            "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #", "#   #",
        ],
        'O' => [
            " ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### ",
        ],
        'P' => [
            "#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    ",
        ],
        'Q' => [
            " ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #",
        ],
        'R' => [
            "#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #",
        ],
        'S' => [
            " ####", "#    ", "#    ", " ### ", "    #", "    #", "#### ",
        ],
        'T' => [
            "#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ",
        ],
        'U' => [
            "#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### ",
        ],
        'V' => [
            "#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  ",
        ],
        'W' => [
            "#   #", "#   #", "#   #", "# # #", "# # #", "## ##", "#   #",
        ],
        'X' => [
            "#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #",
        ],
        'Y' => [
            "#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  ",
        ],
        'Z' => [
            "#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####",
        ],
        '-' => [
            "     ", "     ", "     ", "#####", "     ", "     ", "     ",
        ],
        '+' => [
            "     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     ",
        ],
        '.' => [
            "     ", "     ", "     ", "     ", "     ", " ##  ", " ##  ",
        ],
        ',' => [
            "     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   ",
        ],
        ':' => [
            "     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     ",
        ],
        '/' => [
            "    #", "    #", "   # ", "  #  ", " #   ", "#    ", "#    ",
        ],
        '>' => [
            " #   ", "  #  ", "   # ", "    #", "   # ", "  #  ", " #   ",
        ],
        '(' => [
            "   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # ",
        ],
        ')' => [
            " #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   ",
        ],
        '=' => [
            "     ", "     ", "#####", "     ", "#####", "     ", "     ",
        ],
        _ => ["     "; 7],
    }
}
