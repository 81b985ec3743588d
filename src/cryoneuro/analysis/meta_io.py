"""Evidence synthesis, reading and writing: generic effect files in (yi/vi, yi/sei or 2×2
counts) and the report out (HTML, PDF, tables and figures).

Why apart from the computation: a file's layout, its bad cells named by line and column, and
the report's sections change for reasons of their own; :mod:`cryoneuro.analysis.meta` stays
free of file handling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoneuro.analysis.evidence import load_evidence
from cryoneuro.analysis.meta import MetaResult, OutcomeResult, _eligible, effect_2x2, r_sensitivity
from cryoneuro.analysis.meta_plots import forest_plot, sensitivity_plot
from cryoneuro.analysis.meta_spec import MEASURES, METHOD_LABEL, METHODS, OUTCOMES, natural
from cryoneuro.errors import InputError

_GENERIC_LAYOUTS = (
    ("yi", "vi"),
    ("yi", "sei"),
    ("ai", "bi", "ci", "di"),
    ("ai", "n1i", "ci", "n2i"),
)


def is_generic(path: str | Path) -> bool:
    """True when a CSV's header holds yi/vi, yi/sei or 2×2 columns instead of the evidence
    layout."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return False
    cols = {str(c).strip() for c in header}
    return any(set(layout) <= cols for layout in _GENERIC_LAYOUTS)


def load_effects(path: str | Path, measure: str | None) -> tuple[pd.DataFrame, str]:
    """A generic effects CSV → (study, n, y, v, variance_from), and the measure.

    Columns: ``study`` and one of ``yi, vi`` | ``yi, sei`` (already on the analysis scale;
    ``--measure RR|OR`` says yi is a log ratio, otherwise GEN) | ``ai, bi, ci, di`` |
    ``ai, n1i, ci, n2i`` (2×2 counts, ``--measure RR|OR|RD`` required). Each bad cell is named
    by line and column.
    """
    source = Path(path)
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{source}: not a readable CSV ({str(exc).splitlines()[0][:80]})"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    layout = next((lay for lay in _GENERIC_LAYOUTS if set(lay) <= set(frame.columns)), None)
    if layout is None or "study" not in frame.columns:
        raise InputError(
            f"{source}: a generic effects file needs a 'study' column and yi+vi, "
            "yi+sei, ai+bi+ci+di or ai+n1i+ci+n2i"
        )
    numbers = {}
    for col in layout:
        values = pd.to_numeric(frame[col].str.strip(), errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{source}: line {i + 2}, column '{col}': '{frame[col].iloc[i]}' is not a number"
            )
        numbers[col] = values.to_numpy(float)
    counts = layout[0] == "ai"
    measure = (measure or ("" if counts else "GEN")).upper()
    if counts and measure not in ("RR", "OR", "RD"):
        raise InputError(f"{source}: 2×2 counts need --measure RR, OR or RD")
    if measure not in MEASURES:
        raise InputError(f"--measure '{measure}': use RR, OR, RD or GEN")
    if counts:
        a, c = numbers["ai"], numbers["ci"]
        b = numbers["bi"] if "bi" in numbers else numbers["n1i"] - a
        d = numbers["di"] if "di" in numbers else numbers["n2i"] - c
        cells = np.vstack([a, b, c, d])
        if (cells < 0).any() or (cells % 1 != 0).any():
            i = int(np.flatnonzero(((cells < 0) | (cells % 1 != 0)).any(axis=0))[0])
            raise InputError(
                f"{source}: line {i + 2}: counts must be whole numbers ≥ 0 (events ≤ total)"
            )
        y, v, zero = effect_2x2(a, b, c, d, measure)
        how = ["2×2 + 0.5 continuity correction" if z else "2×2" for z in zero]
        n = (a + b + c + d).astype(int)
    else:
        y = numbers["yi"]
        v = numbers["vi"] if "vi" in numbers else numbers["sei"] ** 2
        if (v <= 0).any():
            i = int(np.flatnonzero(v <= 0)[0])
            raise InputError(f"{source}: line {i + 2}, column '{layout[1]}': must be > 0")
        how = ["given (variance)" if "vi" in numbers else "given (SE²)"] * len(y)
        n = pd.to_numeric(frame.get("n", pd.Series([""] * len(y))), errors="coerce").fillna(0)
        n = n.astype(int).to_numpy()
    out = pd.DataFrame(
        {
            "study": frame["study"].str.strip(),
            "n": n,
            "y": y,
            "v": v,
            "variance_from": how,
            "verified": "yes",
        }
    )
    return out, measure


def _pooled_frame(res: OutcomeResult) -> pd.DataFrame:
    records = []
    for method, p in res.pooled.items():
        disp = res.display.get(method, {})
        rec = {"method": METHOD_LABEL[method], "k": p.k}
        for key in (
            "estimate",
            "ci_lower",
            "ci_upper",
            "hk_ci_lower",
            "hk_ci_upper",
            "pi_lower",
            "pi_upper",
        ):
            rec[key] = natural(disp, key, getattr(p, key))
        rec.update(
            {
                "tau2": p.tau2,
                "tau2_ci_lower": p.tau2_ci_lower,
                "tau2_ci_upper": p.tau2_ci_upper,
                "I2_percent": 100 * p.i2,
                "Q": p.q,
                "Q_df": p.q_df,
                "Q_p": p.q_p,
            }
        )
        if res.kind in ("proportion", "ratio"):
            rec["estimate_transformed"] = p.estimate
        records.append(rec)
    return pd.DataFrame(records)


def _study_frame(res: OutcomeResult) -> pd.DataFrame:
    cols = [
        "study",
        "year",
        "n",
        "population",
        "guidance",
        "timepoint_months",
        "verified",
        "events",
        "total",
        "y",
        "se",
        "estimate",
        "ci_lower",
        "ci_upper",
        "variance_from",
        "weight_fe",
        "weight_dl",
        "weight_pm",
    ]
    return res.studies[[c for c in cols if c in res.studies.columns]]


def build_sections(result: MetaResult) -> list[Any]:
    """Report sections (tables and figures) for :func:`cryoneuro.analysis.report.write_report`."""
    from cryoneuro.analysis.report import Figure, Section, Table

    c = result.counts
    generic = "effects" in result.outcomes
    overview = (
        (
            f"Data: {result.data} — {c['studies']} studies, effects on the "
            f"{result.transform} scale "
            f"(generic input). Random effects: {', '.join(METHOD_LABEL[m] for m in result.methods)}"
            "; fixed effect shown for reference. τ² CI by Q-profile (Viechtbauer 2007)."
        )
        if generic
        else (
            f"Data: {result.data} — {c['studies']} studies, {c['rows']} rows, {c['verified_rows']} "
            f"verified against the abstract. Pooled rows: "
            f"{'all' if result.include_unverified else 'verified only'}; one row per study "
            f"(the primary = last reported follow-up). Random effects: "
            f"{', '.join(METHOD_LABEL[m] for m in result.methods)} (τ² solved exactly, as "
            f"metafor); fixed effect "
            f"shown for reference. Missing SDs of a change imputed with r = {result.r:g} "
            f"(sensitivity r ∈ {{{', '.join(f'{v:g}' for v in result.r_grid)}}}). Proportions on "
            f"the {'logit' if result.transform == 'logit' else 'Freeman–Tukey'} scale. These "
            f"are small, "
            "uncontrolled case series: the pooled figures describe the published evidence, they do "
            "not establish efficacy (NICE HTG652: research only)."
        )
    )
    sections = [Section("Overview", overview)]
    all_excluded = []
    for name, res in result.outcomes.items():
        items: list[Any] = []
        if res.pooled:
            dl = res.pooled.get("dl") or next(iter(res.pooled.values()))
            text = (
                f"k = {res.k}; τ² (DL) = {dl.tau2:.3g} (95 % Q-profile CI "
                f"{dl.tau2_ci_lower:.3g} to {dl.tau2_ci_upper:.3g}), I² = {100 * dl.i2:.0f} %, "
                f"Q = {dl.q:.2f} (df {dl.q_df}, p = {dl.q_p:.3g})."
            )
            failed = [
                f"{METHOD_LABEL[m]}: {p.note}" for m, p in res.pooled.items() if not p.converged
            ]
            if failed:
                text += " Not converged (no estimate shown): " + "; ".join(failed) + "."
            items.append(
                Table(
                    f"{name}_pooled",
                    "Pooled estimates",
                    _pooled_frame(res),
                    "95 % CI (normal); HK = Hartung–Knapp CI; PI = 95 % prediction "
                    "interval (k ≥ 3)",
                )
            )
            items.append(
                Table(
                    f"{name}_studies",
                    "Studies in the analysis",
                    _study_frame(res),
                    "y and se on the analysis scale; estimate and CI on the natural scale",
                )
            )
            methods = [m for m in METHODS if m in res.pooled]
            cap = "; ".join(
                f"{METHOD_LABEL[m]}: τ² = {res.pooled[m].tau2:.3g}, "
                f"I² = {100 * res.pooled[m].i2:.0f} %"
                for m in methods
            )
            pi = (
                " Prediction interval shown as a bar under the diamond."
                if res.k >= 3
                else " No prediction interval (needs k ≥ 3)."
            )
            items.append(
                Figure(
                    f"forest_{name}",
                    f"Forest plot — {res.label}",
                    forest_plot(res),
                    f"Squares: study estimates sized by random-effects weight; "
                    f"diamonds: pooled estimates. {cap}.{pi}",
                )
            )
            if res.regression is not None:
                reg = res.regression
                items.append(
                    Table(
                        f"{name}_meta_regression",
                        "Meta-regression (REML)",
                        reg.table(),
                        f"residual τ² = {reg.tau2:.3g}; QE = {reg.qe:.2f} (df "
                        f"{reg.qe_df}, p = {reg.qe_p:.2g}); QM = {reg.qm:.2f} (df "
                        f"{reg.qm_df}, p = {reg.qm_p:.2g}); pseudo-R² = "
                        f"{100 * reg.r2:.0f} %",
                    )
                )
            if res.sensitivity is not None and not res.sensitivity.empty:
                items.append(
                    Table(
                        f"{name}_r_sensitivity",
                        "Sensitivity to the pre/post correlation r",
                        res.sensitivity,
                        "only studies whose SD of the change was imputed move",
                    )
                )
                sweep = r_sensitivity(
                    _candidates_for(result, name),
                    np.round(np.linspace(-0.2, 0.95, 24), 3).tolist(),
                    list(result.methods),
                )
                items.append(
                    Figure(
                        f"r_sensitivity_{name}",
                        "Pooled mean change against r",
                        sensitivity_plot(sweep, res.label, result.r_grid),
                        "Shaded: 95 % CI. Dotted lines: the configured r values.",
                    )
                )
        else:
            text = f"Not pooled: {res.reason}."
            if len(res.studies):
                items.append(Table(f"{name}_studies", "Studies (not pooled)", _study_frame(res)))
        sections.append(Section(res.label, text, items))
        for _, row in res.excluded.iterrows():
            all_excluded.append({"analysis": name, **row.to_dict()})
    if all_excluded:
        sections.append(
            Section(
                "Studies listed but not pooled",
                "Each with the reason.",
                [Table("excluded", "Excluded rows", pd.DataFrame(all_excluded))],
            )
        )
    if generic:
        return sections
    frame = load_evidence(None if result.data.startswith("bundled:") else result.data)
    data_cols = [
        "study",
        "year",
        "outcome",
        "timepoint_months",
        "primary",
        "n",
        "baseline_mean",
        "baseline_sd",
        "followup_mean",
        "followup_sd",
        "events",
        "total",
        "effect",
        "ci_lower",
        "ci_upper",
        "verified",
    ]
    sections.append(
        Section(
            "Data set",
            "Every row of the evidence file (source sentences and notes are in the CSV).",
            [Table("evidence", "Evidence rows", frame[data_cols])],
        )
    )
    return sections


def _candidates_for(result: MetaResult, outcome: str) -> pd.DataFrame:
    frame = load_evidence(None if result.data.startswith("bundled:") else result.data)
    cands, _ = _eligible(frame, OUTCOMES[outcome]["codes"], result.include_unverified)
    return cands


def write_meta_report(result: MetaResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``meta.html``, ``meta.pdf``, ``tables/*.csv`` and ``figures/*.png`` into out_dir."""
    from cryoneuro.analysis.report import write_report

    sections = build_sections(result)
    return write_report(
        out_dir,
        "Evidence synthesis: percutaneous cryoablation of peripheral neuromas",
        sections,
        subtitle=f"data: {result.data}",
        stem="meta",
    )
