"""Text and HTML summaries of datasets and results (Jupyter calls ``_repr_html_``) and
``Result.plot`` (matplotlib, optional: imported only when plotting)."""

from __future__ import annotations

import html
from typing import List

import numpy as np


def _snr(v) -> str:
    s = v.meta.get("snr")
    if s is None:
        iv = np.asarray(v.ivar)
        ok = iv > 0
        if not ok.any():
            return "-"
        s = float(np.median(np.abs(np.asarray(v.flux)[ok]) * np.sqrt(iv[ok])))
    return f"{float(s):.1f}"


def _table(head: List[str], rows: List[List[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def dataset_text(d) -> str:
    n = [np.asarray(v.flux).size for v in d.visits]
    return (
        f"<frizzview.Dataset {d.name or '(unnamed)'}: {len(d.visits)} visits ({d.survey}), "
        f"{min(n) if n else 0}-{max(n) if n else 0} px per visit>"
    )


def dataset_html(d) -> str:
    rows = []
    for i, v in enumerate(d.visits):
        w = np.asarray(v.wavelength_aa)
        rows.append([
            i, v.name, np.asarray(v.flux).size, len(v.segments),
            f"{np.nanmin(w):.1f}-{np.nanmax(w):.1f}" if w.size else "-", _snr(v),
            ", ".join(f"{k} {x:.2f}" for k, x in v.velocities.items()) or "-",
        ])
    return (
        f"<b>frizzview.Dataset</b> {html.escape(d.name or '(unnamed)')}: {len(d.visits)} visits, "
        f"survey {html.escape(d.survey)}"
        + _table(["#", "visit", "pixels", "chips", "λ (Å)", "S/N", "velocities (km/s)"], rows)
    )


def _visit_rows(r) -> List[List[str]]:
    f = r.forward or r.standard
    rows = []
    for i, v in enumerate(r.visits):
        def at(a):
            if f is None or a is None or i >= len(a) or not np.isfinite(a[i]):
                return "-"
            return f"{a[i]:.3f}"
        rows.append([
            i, v.get("name", ""), "yes" if v.get("included", True) else "no",
            "-" if v.get("v_kms") is None else f"{v['v_kms']:.2f}",
            v.get("n_used", "-"), at(None if f is None else f.visit_chi2_nu),
            at(None if f is None else f.visit_loo_chi2_nu),
        ])
    return rows


def result_html(r) -> str:
    out = [f"<b>frizzview.Result</b>: {len(r.visits)} visits → {r.wavelength_aa.size} px"]
    for name in ("forward", "standard"):
        m = getattr(r, name)
        if m is None:
            continue
        ok = np.isfinite(m.flux) & np.isfinite(m.var) & (m.var > 0)
        snr = np.median(np.abs(m.flux[ok]) / np.sqrt(m.var[ok])) if ok.any() else float("nan")
        cond = "" if m.condition is None else f", condition {m.condition:.2e}"
        out.append(
            f"<br>{name}: median S/N {snr:.1f}, {int((~ok).sum())} px without data{cond}"
        )
    out.append(_table(
        ["#", "visit", "included", "v (km/s)", "pixels used", "χ²/ν", "leave-one-out χ²/ν"],
        _visit_rows(r),
    ))
    if r.warnings:
        out.append("<b>warnings</b><ul>" + "".join(
            f"<li>{html.escape(w)}</li>" for w in r.warnings) + "</ul>")
    return "".join(out)


def result_text(r) -> str:
    methods = [m for m in ("forward", "standard") if getattr(r, m) is not None]
    lines = [
        f"<frizzview.Result {len(r.visits)} visits -> {r.wavelength_aa.size} px, "
        f"{' + '.join(methods)}, {len(r.warnings)} warnings>"
    ]
    for row in _visit_rows(r):
        lines.append(
            f"  {row[0]:>3} {row[1]:<40} included {row[2]:<3} v {row[3]:>8} "
            f"chi2/nu {row[5]:>7} loo {row[6]:>7}"
        )
    lines += [f"  warning: {w}" for w in r.warnings]
    return "\n".join(lines)


def plot(r, method: str = "forward", ax=None):
    """The combined spectrum with its 1-sigma band, and each visit's residuals (data minus the
    model at the visit's pixels, in sigma) offset below it. Returns the matplotlib Figure."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("Result.plot needs matplotlib (pip install matplotlib)") from e
    m = getattr(r, method)
    if m is None:
        raise ValueError(f"this result has no {method!r} combination")
    if ax is None:
        fig, (top, bottom) = plt.subplots(
            2, 1, sharex=True, figsize=(10, 6), gridspec_kw=dict(height_ratios=[1, 1.4])
        )
    else:
        top, bottom = ax
        fig = top.figure
    w = r.wavelength_aa
    s = np.sqrt(m.var)
    top.plot(w, m.flux, lw=0.7, color="k", label=f"combined ({method})")
    top.fill_between(w, m.flux - s, m.flux + s, color="C0", alpha=0.3, lw=0, label="±1σ")
    top.set_ylabel("flux")
    top.legend(loc="upper right", fontsize="small")
    for i, (v, pred) in enumerate(zip(r.visits, m.visit_prediction)):
        pred = np.asarray(pred)
        src = r._source
        if isinstance(src, list):  # file paths: read them once
            from . import _core

            src = r._source = _core.read(src, True)
        if isinstance(src, dict) and i < len(src.get("visits", [])):
            sv = src["visits"][i]
            wv, fv, iv = sv["wavelength_aa"], sv["flux"], sv["ivar"]
        else:
            continue
        if pred.size != np.asarray(fv).size:
            continue
        res = (np.asarray(fv) - pred) * np.sqrt(np.asarray(iv))
        res[~np.isfinite(res) | (np.asarray(iv) <= 0)] = np.nan
        bottom.plot(wv, res - 6 * i, lw=0.4, label=v.get("name", str(i)))
    bottom.set_ylabel("residual (σ), offset per visit")
    bottom.set_xlabel("wavelength (Å)")
    fig.tight_layout()
    return fig
