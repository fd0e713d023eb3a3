//! The real binary under Xvfb: it opens the demo, saves its own frame and exits.
//! Prints SKIP and passes when `xvfb-run` is not installed.

use std::process::Command;

fn has_xvfb() -> bool {
    Command::new("sh")
        .args(["-c", "command -v xvfb-run"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn smoke_window_saves_a_screenshot_of_the_demo() {
    if !has_xvfb() {
        println!("SKIP: xvfb-run is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let png = dir.path().join("shot.png");
    let runtime = dir.path().join("xdg");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1600x1000x24"])
        .arg(env!("CARGO_BIN_EXE_frizzview"))
        .arg("--screenshot")
        .arg(&png)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", &runtime)
        // A test must not read or write the user's remembered layout.
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .output()
        .expect("run xvfb-run");
    assert!(
        out.status.success(),
        "the window failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(&png).expect("a PNG").to_rgba8();
    assert_eq!((img.width(), img.height()), (1400, 900));
    // Not blank: a drawn window has many colours (text, curves of 12 visits).
    let mut colours: Vec<[u8; 4]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 200, "only {} colours", colours.len());
}
