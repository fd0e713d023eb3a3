#!/usr/bin/env python3
"""Rebuild `mdwarf_template.tsv` (the cool-star rest-frame template) from the model it is made of.

Usage: make_mdwarf_template.py MODEL.txt > mdwarf_template.tsv
(and the same for the 2500 K model of the same grid, `btsettl08_t2500_g5.00_z-0.00_en0.00_APOGEE-RAW.txt`,
into `mdwarf_template_2500.tsv`; the `#` header of each .tsv is written by hand)

MODEL.txt: `libraries/BTSETTL/APOGEE/btsettl08_t3000_g5.00_z-0.00_en0.00_APOGEE-RAW.txt` of the
public repository jbirky/apogee_tools (MIT licence, commit 246bf53), two columns: vacuum wavelength
(micron, 0.1 A steps, 15000-17050 A) and flux of the BT-Settl model (Allard, Homeier & Freytag
2012, Phil. Trans. R. Soc. A 370, 2765) of Teff 3000 K, log g 5.0, [M/H] 0.

Steps (numpy only): resample onto a uniform ln-lambda grid of 0.5 km/s; convolve with a Gaussian
of FWHM c/22500 (APOGEE's resolution); normalise by the running 90th percentile over +-0.004 in
ln lambda, as `mod.rs` step 1 normalises a spectrum (knots every 0.002, linear between); write the
depth 1 - f/c every 2 km/s (4 grid points) from 15100 to 17000 A, 3 decimals.
"""
import sys

import numpy as np

C_KMS = 299792.458
STEP_KMS = 2.0


def normalise(x, f):
    knots_x, knots_c = [], []
    nk = max(1, int(np.ceil((x[-1] - x[0]) / 0.002)))
    for k in range(nk + 1):
        xk = x[0] + (x[-1] - x[0]) * k / nk
        lo, hi = np.searchsorted(x, xk - 0.004), np.searchsorted(x, xk + 0.004, "right")
        if hi - lo < 10:
            continue
        knots_x.append(xk)
        knots_c.append(np.sort(f[lo:hi])[int(round((hi - lo - 1) * 0.9))])
    return 1.0 - f / np.interp(x, knots_x, knots_c)


def main():
    model = np.loadtxt(sys.argv[1])
    x = np.log(model[:, 0] * 1e4)
    dx = np.log1p(0.5 / C_KMS)
    xg = np.arange(x[0], x[-1], dx)
    fg = np.interp(xg, x, model[:, 1])
    sig = 1.0 / 22500.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    k = np.arange(-5.0 * sig, 5.0 * sig + dx, dx)
    g = np.exp(-0.5 * (k / sig) ** 2)
    fs = np.convolve(fg, g / g.sum(), "same")[len(k) : -len(k)]
    xg = xg[len(k) : -len(k)]
    d = normalise(xg, fs)
    step = np.log1p(STEP_KMS / C_KMS)
    out_x = np.arange(np.log(15100.0), np.log(17000.0), step)
    out_d = np.interp(out_x, xg, d)
    print("ln_start\t%.12f" % out_x[0])
    print("ln_step\t%.12e" % step)
    for v in out_d:
        print("%.3f" % v)


if __name__ == "__main__":
    main()
