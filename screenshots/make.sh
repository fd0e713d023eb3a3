#!/usr/bin/env bash
# Regenerate the screenshots in this folder: the real window under Xvfb saves its own frame
# (`frizzview --screenshot PNG`, after the first result has been drawn) and exits.
#
#   screenshots/make.sh                 # uses target/debug/frizzview (builds it if missing)
#   FRIZZVIEW_BIN=target/release/frizzview screenshots/make.sh
#
# Needs xvfb-run (Debian: apt-get install -y --no-install-recommends xvfb xauth).
# FRIZZVIEW_VIEW scripts the view: x=LO:HI (Angstrom), layout=stacked|overlaid|single, visit=N,
# frame=rest|observed, tab=spectra|noise|teaching, compare=overlay|difference; the images mode:
# mode=images, iview=exposure|frizzle|drizzle|difference|residuals|noise|coverage, scale=S,
# pixfrac=F, converge=on|off, sky=on|off, aperture=X:Y:R (output px), exposure=N, stretch=linear|asinh,
# pct=LO:HI.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
bin="${FRIZZVIEW_BIN:-$target/debug/frizzview}"
if [ ! -x "$bin" ]; then
  cargo build --bin frizzview
fi
command -v xvfb-run >/dev/null || { echo "xvfb-run is missing: apt-get install -y --no-install-recommends xvfb xauth" >&2; exit 1; }
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
unset WAYLAND_DISPLAY

shot() { # name, view spec, extra args...
  local name="$1" view="$2"; shift 2
  echo "screenshots/$name.png"
  FRIZZVIEW_VIEW="$view" xvfb-run -a -s "-screen 0 1600x1000x24" \
    "$bin" "$@" --screenshot "screenshots/$name.png"
}

shot main "" --demo apogee
shot boss "" --demo boss
shot zoom "layout=single,visit=4,x=15300:15340,compare=difference" --demo apogee
shot noise "tab=noise" --demo apogee
shot teaching "tab=teaching" --demo apogee
# Raw exposures behind one visit (synthetic apCframe files), each at its own dither position.
apcf="$(mktemp -d)"
"$bin" synth apcframe -o "$apcf" >/dev/null
shot apcframe "layout=overlaid,frame=observed,x=16200.4:16202.0" "$apcf"/apVisit-*.fits --exposures "$apcf"
rm -rf "$apcf"
# A real DR13 star with wrong header velocities and a visit the pipeline left out (needs
# ../shared/data beside the clone): the velocities from the data, the warnings and their buttons.
multi="../shared/data/apogee_multistar/2M03442721+3220288"
if [ -d "$multi" ]; then
  shot multistar "" "$multi"/apVisit-*.fits
else
  echo "skipped screenshots/multistar.png: $multi is absent"
fi
# The images mode (needs ../shared/data/images beside the clone). Real DECam (legacypipe
# testcase3, the three z-band exposures, TPV WCS): the forward model with an aperture on the
# galaxy. The bridge dither sequence (10 frames, exact shifts, x3; noise-free frames of one
# scene, no sky offsets to fit: sky=off): the live path, CG stopped at 300 iterations and labelled
# so (converge=on solves to convergence: the M/P trap, ~1750 iterations, ~20 min under load).
imgs="../shared/data/images"
if [ -d "$imgs/legacypipe" ] && [ -d "$imgs/bridge" ]; then
  cp3="$imgs/legacypipe/testcase3/images/decam/CP/V4.8.2a"
  shot images_decam "iview=frizzle,aperture=24:20:5" \
    "$cp3"/CP20140818/c4d_140818_232043_ooi_z_ls9.N12.fits \
    "$cp3"/CP20150411/c4d_150412_073257_ooi_z_ls9.N11.fits \
    "$cp3"/CP20180217/c4d_180218_090701_ooi_z_ls9.N10.fits
  shot images_dither "scale=3,converge=off,sky=off,stretch=linear,iview=frizzle" \
    "$imgs"/bridge/bridge_sequence_fig1.tif "$imgs"/bridge/shifts_fig1.txt
else
  echo "skipped screenshots/images_*.png: $imgs is absent"
fi
