"""Randomised comparison (intention to treat) and the participant flow (CONSORT / PROCESS).

Primary analysis — a mixed model for repeated measures (MMRM) of the change from baseline
(:mod:`cryoneuro.analysis.mmrm`):

    change_ij = Σ_v γ_v·[visit=v] + β_base·baseline_i + Σ_s α_s·[site_i=s]
                + Σ_v δ_v·[visit=v]·[arm_i=treated] + ε_ij,     ε_i ~ N(0, Σ)

with an unstructured T × T covariance Σ across visits by default (compound symmetry or AR(1)
on request), fitted by REML; if it does not converge, AR(1) and then compound symmetry are
fitted instead (a pre-specified fallback, named in the table's method and note). δ_v is the
treatment effect at visit v, with a t-based 95 % CI on
Satterthwaite degrees of freedom. Every randomised participant with a baseline and at least one
follow-up value is analysed in the arm allocated (intention to treat); missing visits are
handled by the likelihood under missing at random (Mallinckrodt et al. 2008, Drug Inf J
42:303). Site, the stratification factor, is a covariate when there is more than one (EMA
Guideline on adjustment for baseline covariates, 2015). An ANCOVA at each visit (OLS,
change ~ baseline + arm; Vickers & Altman 2001 BMJ 323:1123) is reported beside it.

Flow: counts for the CONSORT 2025 diagram (assessed, excluded, randomised, allocated,
received, lost, discontinued, analysed) or, for a case series, the PROCESS 2023 equivalent.
"""

from __future__ import annotations

import re

import pandas as pd

from cryoneuro.analysis.outcomes import outcome_values
from cryoneuro.analysis.tidy import TidyData
from cryoneuro.errors import InputError

#: Covariance structures tried, in order, when the requested one does not converge.
FALLBACK = ("us", "ar1", "cs")

_CONTROL = re.compile(
    r"sham|control|placebo|usual|standard|steroid|injection|surgery|waitlist", re.IGNORECASE
)


def arms(data: TidyData, control: str | None = None) -> tuple[str, str]:
    """(treated, control) arm codes; the control is named or recognised by its name."""
    present = sorted(set(data.participants["arm"].dropna()) - {""})
    if len(present) != 2:
        raise InputError(
            f"an RCT analysis needs exactly two arms in participants.arm, found "
            f"{len(present)} ({', '.join(present) or 'none'})"
        )
    if control is None:
        named = [a for a in present if _CONTROL.search(a)]
        if len(named) != 1:
            raise InputError(
                f"cannot tell the control arm among {', '.join(present)}; "
                "give it with --control ARM"
            )
        control = named[0]
    if control not in present:
        raise InputError(f"--control '{control}' is not an arm; arms are {', '.join(present)}")
    return next(a for a in present if a != control), control


def _itt_frame(data: TidyData, outcome: str, control: str, score_rows=None) -> pd.DataFrame:
    frame = outcome_values(data, outcome, score_rows).dropna(subset=["baseline", "change"])
    frame = frame[frame["arm"] != "all"].copy()
    frame["treated"] = (frame["arm"] != control).astype(float)
    frame["visit"] = frame["visit_code"].astype(str)
    return frame


def mmrm(
    data: TidyData,
    outcome: str = "pain",
    control: str | None = None,
    score_rows: pd.DataFrame | None = None,
    covariance: str = "us",
    df_method: str = "satterthwaite",
) -> pd.DataFrame:
    """Treatment effect (treated − control) on the change from baseline at every visit.

    :func:`cryoneuro.analysis.mmrm.fit_mmrm` with fixed effects visit, visit × arm, baseline and
    site (when there is more than one), the within-participant covariance ``covariance`` (us,
    cs or ar1), REML, and per-visit contrasts with Satterthwaite degrees of freedom.
    """
    import numpy as np

    from cryoneuro.analysis.mmrm import STRUCTURES, fit_mmrm

    treated_arm, control = arms(data, control)
    frame = _itt_frame(data, outcome, control, score_rows)
    visits = [
        v
        for v in frame.groupby("visit")["day"].median().sort_values().index
        if frame.loc[frame["visit"] == v, "treated"].nunique() == 2
    ]
    frame = frame[frame["visit"].isin(visits)].reset_index(drop=True)
    if frame["participant_id"].nunique() < 4 or not visits:
        raise InputError(
            f"too few randomised participants with baseline and follow-up "
            f"'{outcome}' values for a mixed model"
        )
    site = (
        frame["participant_id"]
        .map(data.participants.set_index("participant_id")["site"])
        .fillna("")
    )
    sites = sorted(set(site) - {""})
    columns: dict[str, np.ndarray] = {
        "(Intercept)": np.ones(len(frame)),
        "baseline": frame["baseline"].to_numpy(float),
    }
    for name in sites[1:]:
        columns[f"site {name}"] = (site == name).to_numpy(float)
    for visit in visits[1:]:
        columns[f"visit {visit}"] = (frame["visit"] == visit).to_numpy(float)
    for visit in visits:
        columns[f"{treated_arm} at {visit}"] = (
            (frame["visit"] == visit) & (frame["treated"] == 1)
        ).to_numpy(float)
    rank = {v: i for i, v in enumerate(visits)}
    # pre-specified fallback (stated in the report): when the requested covariance does not
    # converge, the next simpler one in FALLBACK is fitted, and the note says so
    tried: list[str] = []
    for structure in [covariance, *[s for s in FALLBACK if s != covariance]]:
        fit = fit_mmrm(
            frame["change"].to_numpy(float),
            np.column_stack(list(columns.values())),
            frame["participant_id"].to_numpy(),
            frame["visit"].map(rank).to_numpy(),
            len(visits),
            list(columns),
            structure,
        )  # type: ignore[arg-type]
        if fit.converged:
            break
        tried.append(f"{STRUCTURES[structure]} did not converge ({fit.message})")
    note = "; ".join(
        tried + ([f"fallback: {STRUCTURES[fit.structure]}"] if tried and fit.converged else [])
    )
    rows = []
    for visit in visits:
        if df_method == "kenward-roger" and fit.structure == "ar1":
            raise InputError(
                "Kenward–Roger is available for the us and cs covariances; use "
                "--df satterthwaite with ar1"
            )
        c = fit.contrast(f"{treated_arm} at {visit}", df_method=df_method)
        n_visit = frame[frame["visit"] == visit].groupby("treated").size()
        rows.append(
            {
                "outcome": outcome,
                "visit": visit,
                "months": round(
                    float(frame.loc[frame["visit"] == visit, "day"].median()) / 30.4375, 1
                ),
                "comparison": f"{treated_arm} − {control}",
                "method": f"MMRM ({STRUCTURES[fit.structure]}"
                f"{', Kenward–Roger' if df_method == 'kenward-roger' else ''})",
                "n_treated": int(n_visit.get(1.0, 0)),
                "n_control": int(n_visit.get(0.0, 0)),
                "effect": c.estimate,
                "se": c.se,
                "df": c.df,
                "ci_lower": c.ci_lower,
                "ci_upper": c.ci_upper,
                "p_value": c.p,
                "converged": fit.converged,
                "note": note,
                "sites_adjusted": len(sites) > 1,
                "participants": int(frame["participant_id"].nunique()),
            }
        )
    return pd.DataFrame(rows)


def ancova(
    data: TidyData,
    outcome: str = "pain",
    control: str | None = None,
    score_rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Second method: OLS of change on baseline and arm, separately at each visit."""
    import statsmodels.formula.api as smf

    treated_arm, control = arms(data, control)
    frame = _itt_frame(data, outcome, control, score_rows)
    rows = []
    for visit, group in sorted(frame.groupby("visit"), key=lambda g: g[1]["day"].median()):
        if group["treated"].nunique() < 2 or len(group) < 4:
            continue
        fit = smf.ols("change ~ baseline + treated", group).fit()
        lo, hi = fit.conf_int().loc["treated"]
        rows.append(
            {
                "outcome": outcome,
                "visit": visit,
                "months": round(float(group["day"].median()) / 30.4375, 1),
                "comparison": f"{treated_arm} − {control}",
                "method": "ANCOVA",
                "n_treated": int((group["treated"] == 1).sum()),
                "n_control": int((group["treated"] == 0).sum()),
                "effect": float(fit.params["treated"]),
                "ci_lower": float(lo),
                "ci_upper": float(hi),
                "p_value": float(fit.pvalues["treated"]),
            }
        )
    return pd.DataFrame(rows)


def flow(
    data: TidyData,
    primary_visit: str | None,
    outcome: str = "pain",
    score_rows: pd.DataFrame | None = None,
) -> dict:
    """Participant-flow counts for the CONSORT (RCT) or PROCESS (case series) diagram."""
    people = data.participants
    status = people["status"].fillna("enrolled")
    values = outcome_values(data, outcome, score_rows)
    with_baseline = set(values.dropna(subset=["baseline"])["participant_id"])
    followed = set(values.dropna(subset=["baseline", "value"])["participant_id"])
    at_primary = (
        set(
            values[(values["visit_code"] == primary_visit)].dropna(subset=["baseline", "value"])[
                "participant_id"
            ]
        )
        if primary_visit
        else set()
    )
    treated = set(data.procedures["participant_id"])
    reason = people["status_reason"].fillna("").str.strip().replace("", "reason not given")

    def reasons(mask: pd.Series) -> dict[str, int]:
        return {str(k): int(v) for k, v in reason[mask].value_counts().items()}

    counts = {
        "assessed": len(people),
        "excluded": int((status == "screen_failed").sum()),
        "excluded_reasons": reasons(status == "screen_failed"),
        "primary_visit": primary_visit,
        "arms": {},
    }
    included = people[status != "screen_failed"]
    counts["enrolled"] = len(included)
    for arm, group in included.groupby(included["arm"].fillna("").replace("", "all")):
        ids = set(group["participant_id"])
        s = status.loc[group.index]
        # an arm without any procedures rows (e.g. surgery) has its treatment unrecorded here:
        # "received" is unknown (None), not 0
        received = len(ids & treated) if ids & treated else (None if treated else len(ids))
        counts["arms"][arm] = {
            "allocated": len(ids),
            "received": received,
            "lost_to_follow_up": int((s == "lost_to_follow_up").sum()),
            "lost_reasons": reasons(
                status.index.isin(group.index) & (status == "lost_to_follow_up")
            ),
            "discontinued": int((s == "withdrawn").sum()),
            "discontinued_reasons": reasons(
                status.index.isin(group.index) & (status == "withdrawn")
            ),
            "analysed_itt": len(ids & followed & with_baseline),
            "with_primary_visit": len(ids & at_primary),
        }
    # why the others have no primary value: visit not done, item coded missing, or unrecorded
    from cryoneuro.analysis.missing import flow_reasons
    from cryoneuro.analysis.outcomes import OUTCOMES

    for arm, why in flow_reasons(
        data, primary_visit, OUTCOMES[outcome].instrument, at_primary
    ).items():
        if arm in counts["arms"]:
            counts["arms"][arm].update(why)
    return counts


def flow_figure(counts: dict, rct: bool, ax=None):
    """The CONSORT 2025 (or PROCESS) flow diagram drawn with matplotlib, on ``ax`` (default a
    new pyplot-free Figure). Returns the figure."""
    from cryoneuro.plotting import figure_and_axes

    arms = list(counts["arms"])
    width = max(len(arms), 1)
    fig, ax = figure_and_axes(ax, (4.2 + 3.2 * width, 6.4), layout="tight")
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(0, 5)

    def box(x: float, y: float, text: str, colour: str = "#f2f5fa") -> None:
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=8.5,
            wrap=True,
            bbox={"boxstyle": "round,pad=0.5", "fc": colour, "ec": "#0057b8"},
        )

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": "0.3"})

    mid = width / 2
    box(mid, 4.6, f"Assessed for eligibility (n = {counts['assessed']})")
    side = mid + 0.3 * width
    arrow(mid, 4.05, side - 0.12 * width, 4.05)
    box(
        side,
        4.05,
        f"Excluded (n = {counts['excluded']})" + _reason_lines(counts.get("excluded_reasons", {})),
        "#fff8e1",
    )
    arrow(mid, 4.45, mid, 3.75)
    box(
        mid, 3.6, ("Randomised" if rct else "Enrolled and treated") + f" (n = {counts['enrolled']})"
    )
    for i, arm in enumerate(arms):
        a = counts["arms"][arm]
        x = i + 0.5
        arrow(mid, 3.45, x, 2.95)
        box(
            x,
            2.7,
            (
                f"Allocated to {arm} (n = {a['allocated']})\n"
                if rct
                else f"{arm}: enrolled (n = {a['allocated']})\n"
            )
            + (
                f"received the procedure (n = {a['received']})"
                if a["received"] is not None
                else "treatment not recorded in procedures"
            ),
        )
        arrow(x, 2.45, x, 1.95)
        box(
            x,
            1.7,
            f"Lost to follow-up (n = {a['lost_to_follow_up']})"
            + _reason_lines(a.get("lost_reasons", {}))
            + f"\nDiscontinued (n = {a['discontinued']})"
            + _reason_lines(a.get("discontinued_reasons", {})),
        )
        arrow(x, 1.45, x, 0.95)
        primary = counts["primary_visit"] or "primary visit"
        if "primary_not_done" in a:  # reasons for a missing primary value (analysis/missing.py)
            box(
                x + 0.36,
                1.05,
                f"{primary} not done (n = {a['primary_not_done']})"
                + _reason_lines(a["primary_not_done_reasons"])
                + (
                    f"\n{primary} item coded missing (n = {a['primary_item_missing']})"
                    + _reason_lines(a["primary_item_missing_codes"])
                    if a["primary_item_missing"]
                    else ""
                )
                + (
                    f"\nwithdrawn or lost, see above (n = {sum(a['primary_by_status'].values())})"
                    if a["primary_by_status"]
                    else ""
                )
                + f"\nno {primary} value, no reason recorded (n = {a['primary_no_reason']})",
                "#fff8e1",
            )
        box(
            x,
            0.6,
            f"Analysed, ITT mixed model (n = {a['analysed_itt']})\n"
            f"with {primary} outcome (n = {a['with_primary_visit']})",
        )
    return fig


def _reason_lines(reasons: dict[str, int], most: int = 3) -> str:
    """Up to ``most`` reasons as indented lines ("  • lost contact: 3"), the rest summed."""
    items = sorted(reasons.items(), key=lambda kv: -kv[1])
    lines = [f"\n  • {name.replace('_', ' ')[:34]}: {n}" for name, n in items[:most]]
    if len(items) > most:
        lines.append(f"\n  • other reasons: {sum(n for _, n in items[most:])}")
    return "".join(lines)


def effect_figure(tables: list[pd.DataFrame], label: str, ax=None):
    """Treatment effect with 95 % CI per visit, both methods side by side; on ``ax`` (default a
    new pyplot-free Figure). Returns the figure."""
    from cryoneuro.plotting import figure_and_axes

    fig, ax = figure_and_axes(ax, (6.4, 3.6), layout="tight")
    for offset, table in zip((-0.15, 0.15), tables, strict=True):
        if table.empty:
            continue
        ax.errorbar(
            table["months"] + offset,
            table["effect"],
            yerr=[table["effect"] - table["ci_lower"], table["ci_upper"] - table["effect"]],
            marker="o",
            capsize=3,
            ls="none",
            label=table["method"].iloc[0],
        )
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("months after cryoablation")
    ax.set_ylabel(f"difference in change, {label}")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return fig


def primary_visit(data: TidyData, requested: str | None = None) -> str | None:
    """The requested visit, else the 3-month visit, else the first at or after 1 month."""
    from cryoneuro.analysis.outcomes import visit_order

    order = visit_order(data)
    codes = list(order["visit_code"])
    if requested is not None:
        if requested not in codes:
            raise InputError(
                f"--primary-visit '{requested}' is not a visit code in the data "
                f"({', '.join(codes)})"
            )
        return requested
    if "m3" in codes:
        return "m3"
    later = order[order["median_day"] >= 28]
    return str(later["visit_code"].iloc[0]) if len(later) else (codes[-1] if codes else None)
