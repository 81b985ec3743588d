"""Within-trial cost-utility analysis for NICE: QALYs, costs, ICER, net monetary benefit, CEAC.

Why: NICE HTG652 asks for research; a trial that will inform a NICE decision needs the
reference case — costs to the NHS and QALYs from EQ-5D (NICE manual PMG36, 2022, §4.2–4.3) —
and a cost-effectiveness threshold of £20,000–£30,000 per QALY.

QALYs: area under the EQ-5D-5L index curve (England value set) by the trapezoidal rule, time
in years (days / 365.25) on each participant's own visit days, the baseline value placed at day
0 and the curve ending at the participant's visit of the horizon code (default: the last visit
code). Participants without an index at baseline and at every follow-up visit up to the horizon
are left out (complete cases, listed; NICE prefers multiple imputation, which is not done
here). The incremental QALY is baseline-adjusted: the treatment coefficient of the OLS
regression QALY ~ treated + baseline index (Manca, Hawkins & Sculpher 2005, Health Econ
14:487), because a chance baseline imbalance in utility carries straight into the AUC.

Costs (GBP, NHS perspective) from a user unit-cost table (CSV: ``item, unit_cost_gbp,
source``; NHS reference-cost style): ``procedure`` per ``procedures`` row
(``procedure:<arm>`` per participant of an arm whose treatment is not recorded in
``procedures``, e.g. surgery, or to price an arm's procedure differently), ``visit`` per
follow-up visit, ``reintervention`` (or ``reintervention:<kind>``) per re-intervention,
``adverse_event`` (or ``adverse_event:<category>``) per adverse event — each up to the horizon
day. An item that the data use but the table does not price is refused; nothing is priced at
0 silently. The incremental cost is the difference of arm means.

ICER = ΔC/ΔQ; net monetary benefit NMB(λ) = λ·ΔQ − ΔC at λ = £20,000 and £30,000 per QALY.
Uncertainty: a non-parametric bootstrap resampling participants within arm (Briggs, Wonderling
& Mooney 1997, Health Econ 6:327), seeded, giving the cost-effectiveness plane and the
acceptability curve P(NMB(λ) > 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryoneuro.analysis.tidy import TidyData
from cryoneuro.errors import InputError

THRESHOLDS = (20000.0, 30000.0)
DAYS_PER_YEAR = 365.25
EQ5D = ("eq5d5l", "index_england")


def load_unit_costs(path: str | Path) -> dict[str, float]:
    """item → unit cost (GBP) from a CSV with columns item, unit_cost_gbp (and source)."""
    source = Path(path)
    if not source.is_file():
        raise InputError(
            f"{source}: no such file; --economics needs a unit-cost CSV with "
            "columns item, unit_cost_gbp, source"
        )
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(
            f"{source}: not a readable CSV ({str(exc).splitlines()[0][:80]})"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in ("item", "unit_cost_gbp"):
        if column not in frame.columns:
            raise InputError(
                f"{source}: missing column '{column}'; columns are item, unit_cost_gbp, source"
            )
    costs: dict[str, float] = {}
    for i, (item, text) in enumerate(zip(frame["item"], frame["unit_cost_gbp"], strict=True)):
        row = i + 2
        item = item.strip()
        base = item.split(":", 1)[0]
        if base not in ("procedure", "visit", "reintervention", "adverse_event"):
            raise InputError(
                f"{source}, row {row}, column item: '{item}' is not priced by the "
                "analysis; use procedure[:arm], visit, reintervention[:kind] or "
                "adverse_event[:category]"
            )
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise InputError(
                f"{source}, row {row}, column unit_cost_gbp: '{text}' is not a cost ≥ 0 in pounds"
            )
        if item in costs:
            raise InputError(f"{source}, row {row}, column item: '{item}' is priced twice")
        costs[item] = value
    return costs


def _price(costs: dict[str, float], item: str, specific: str | None, what: str) -> float:
    if specific is not None and f"{item}:{specific}" in costs:
        return costs[f"{item}:{specific}"]
    if item in costs:
        return costs[item]
    raise InputError(
        f"the data have {what} but the unit-cost table prices neither '{item}' "
        f"nor '{item}:{specific}'; add a row"
    )


def participant_costs(
    data: TidyData, people: pd.DataFrame, costs: dict[str, float], horizon_day: float
) -> pd.Series:
    """Total NHS cost per participant up to the horizon day (index: participant_id)."""
    total = pd.Series(0.0, index=people["participant_id"])
    arm_of = people.set_index("participant_id")["arm"]
    procedures = data.procedures[data.procedures["participant_id"].isin(total.index)]
    recorded_arms = set(arm_of[procedures["participant_id"].unique()])
    for pid in procedures["participant_id"]:
        total[pid] += _price(costs, "procedure", arm_of[pid], "procedures")
    for pid, arm in arm_of.items():
        if arm not in recorded_arms:
            if f"procedure:{arm}" not in costs:
                raise InputError(
                    f"arm '{arm}' has no procedures rows; price its treatment "
                    f"with a 'procedure:{arm}' row in the unit-cost table"
                )
            total[pid] += costs[f"procedure:{arm}"]
    for table, item, specific in (
        ("visits", "visit", None),
        ("reinterventions", "reintervention", "kind"),
        ("adverse_events", "adverse_event", "category"),
    ):
        frame = data.table(table)
        frame = frame[
            frame["participant_id"].isin(total.index)
            & (frame["days_since_procedure"].astype("Float64") <= horizon_day).fillna(False)
        ]
        if table == "visits":
            frame = frame[frame["visit_code"] != "baseline"]
        for _, row in frame.iterrows():
            total[row["participant_id"]] += _price(
                costs, item, row[specific] if specific else None, table.replace("_", " ")
            )
    return total


def qalys(
    data: TidyData, scores: pd.DataFrame, horizon: str | None = None
) -> tuple[pd.DataFrame, list[dict], str, float]:
    """Per participant: baseline index and QALY (AUC) to the horizon visit; exclusions listed."""
    from cryoneuro.analysis.outcomes import visit_order

    rows = scores[(scores["instrument"] == EQ5D[0]) & (scores["measure"] == EQ5D[1])]
    rows = rows.assign(value=pd.to_numeric(rows["value"], errors="coerce")).dropna(subset=["value"])
    order = visit_order(data)
    codes = [c for c in order["visit_code"] if c != "baseline" and c in set(rows["visit_code"])]
    if not codes:
        raise InputError(
            "cost-utility needs EQ-5D-5L index values (eq5d5l/index_england) at "
            "baseline and follow-up"
        )
    horizon = horizon or codes[-1]
    if horizon not in codes:
        raise InputError(
            f"horizon visit '{horizon}' has no EQ-5D-5L values; visits are {', '.join(codes)}"
        )
    needed = codes[: codes.index(horizon) + 1]
    horizon_day = float(order.set_index("visit_code").loc[horizon, "median_day"])
    people = data.participants[data.participants["status"].fillna("") != "screen_failed"]
    out, excluded = [], []
    for pid, arm in zip(
        people["participant_id"], people["arm"].fillna("").replace("", "all"), strict=True
    ):
        mine = rows[rows["participant_id"] == pid].set_index("visit_code")
        missing = [c for c in ["baseline", *needed] if c not in mine.index]
        if missing:
            excluded.append(
                {
                    "participant_id": pid,
                    "arm": arm,
                    "reason": f"no EQ-5D-5L index at {', '.join(missing)} (complete-case QALY)",
                }
            )
            continue
        days = np.r_[0.0, mine.loc[needed, "days_since_procedure"].astype(float).to_numpy()]
        values = np.r_[mine.loc["baseline", "value"], mine.loc[needed, "value"].to_numpy(float)]
        auc = float(np.sum(np.diff(days / DAYS_PER_YEAR) * (values[1:] + values[:-1]) / 2))
        out.append(
            {
                "participant_id": pid,
                "arm": arm,
                "baseline_utility": float(values[0]),
                "qaly": auc,
                "years": float(days[-1] / DAYS_PER_YEAR),
            }
        )
    return pd.DataFrame(out), excluded, horizon, horizon_day


def _increments(
    qaly: np.ndarray, base: np.ndarray, cost: np.ndarray, treated: np.ndarray
) -> tuple[float, float]:
    """(ΔQ baseline-adjusted by OLS, ΔC difference of means)."""
    X = np.column_stack([np.ones_like(qaly), treated, base])
    dq = float(np.linalg.lstsq(X, qaly, rcond=None)[0][1])
    dc = float(cost[treated == 1].mean() - cost[treated == 0].mean())
    return dq, dc


@dataclass
class CostUtility:
    per_participant: pd.DataFrame
    summary: dict[str, float | str | int]
    bootstrap: pd.DataFrame
    ceac: pd.DataFrame
    excluded: list[dict] = field(default_factory=list)


def cost_utility(
    data: TidyData,
    scores: pd.DataFrame,
    costs: dict[str, float],
    treated_arm: str,
    control_arm: str,
    *,
    horizon: str | None = None,
    n_bootstrap: int = 2000,
    seed: int = 1,
    thresholds: tuple[float, ...] = THRESHOLDS,
) -> CostUtility:
    """QALYs, costs, ICER, NMB and a seeded bootstrap CEAC (treated vs control)."""
    q, excluded, horizon, horizon_day = qalys(data, scores, horizon)
    q = q[q["arm"].isin([treated_arm, control_arm])].reset_index(drop=True)
    if (q["arm"] == treated_arm).sum() < 2 or (q["arm"] == control_arm).sum() < 2:
        raise InputError(
            "cost-utility needs at least 2 participants per arm with complete EQ-5D-5L data"
        )
    q["cost_gbp"] = participant_costs(
        data, q[["participant_id", "arm"]], costs, horizon_day
    ).to_numpy()
    treated = (q["arm"] == treated_arm).to_numpy(float)
    qaly, base, cost = (q[c].to_numpy(float) for c in ("qaly", "baseline_utility", "cost_gbp"))
    dq, dc = _increments(qaly, base, cost, treated)
    summary: dict[str, float | str | int] = {
        "comparison": f"{treated_arm} vs {control_arm}",
        "horizon_visit": horizon,
        "n_treated": int(treated.sum()),
        "n_control": int((1 - treated).sum()),
        "mean_qaly_treated": float(qaly[treated == 1].mean()),
        "mean_qaly_control": float(qaly[treated == 0].mean()),
        "mean_cost_treated": float(cost[treated == 1].mean()),
        "mean_cost_control": float(cost[treated == 0].mean()),
        "incremental_qaly_adjusted": dq,
        "incremental_qaly_unadjusted": float(qaly[treated == 1].mean() - qaly[treated == 0].mean()),
        "incremental_cost": dc,
        "icer": dc / dq if dq != 0 else math.nan,
        "quadrant": (
            "dominant"
            if dq > 0 and dc <= 0
            else "dominated"
            if dq < 0 and dc >= 0
            else "more effective, more costly"
            if dq > 0
            else "less effective, less costly"
        ),
        "bootstrap_replicates": n_bootstrap,
        "seed": seed,
    }
    for lam in thresholds:
        summary[f"nmb_at_{int(lam)}"] = lam * dq - dc
    rng = np.random.default_rng(seed)
    t_idx, c_idx = np.flatnonzero(treated == 1), np.flatnonzero(treated == 0)
    draws = np.empty((n_bootstrap, 2))
    for b in range(n_bootstrap):
        idx = np.r_[rng.choice(t_idx, len(t_idx)), rng.choice(c_idx, len(c_idx))]
        draws[b] = _increments(qaly[idx], base[idx], cost[idx], treated[idx])
    boot = pd.DataFrame(draws, columns=["incremental_qaly", "incremental_cost"])
    grid = np.unique(np.r_[np.linspace(0, 50000, 51), thresholds])
    ceac = pd.DataFrame(
        {
            "wtp_gbp_per_qaly": grid,
            "probability_cost_effective": [
                float(np.mean(lam * boot["incremental_qaly"] - boot["incremental_cost"] > 0))
                for lam in grid
            ],
        }
    )
    for lam in thresholds:
        summary[f"probability_cost_effective_at_{int(lam)}"] = float(
            ceac.loc[ceac["wtp_gbp_per_qaly"] == lam, "probability_cost_effective"].iloc[0]
        )
        nmb = lam * boot["incremental_qaly"] - boot["incremental_cost"]
        summary[f"nmb_at_{int(lam)}_ci_lower"] = float(np.percentile(nmb, 2.5))
        summary[f"nmb_at_{int(lam)}_ci_upper"] = float(np.percentile(nmb, 97.5))
    return CostUtility(q, summary, boot, ceac, excluded)


def figures(result: CostUtility, thresholds: tuple[float, ...] = THRESHOLDS, axes=None):
    """The cost-effectiveness plane and the acceptability curve, on ``axes`` (two Axes; default
    one new pyplot-free Figure each). Returns the two figures (the same one when both axes are
    on it)."""
    from cryoneuro.plotting import figure_and_axes

    ax_plane, ax_curve = (None, None) if axes is None else axes
    plane, ax = figure_and_axes(ax_plane, (6.0, 4.6), layout="tight")
    boot = result.bootstrap
    ax.scatter(
        boot["incremental_qaly"],
        boot["incremental_cost"],
        s=4,
        alpha=0.3,
        color="#0057b8",
        label="bootstrap replicates",
    )
    ax.scatter(
        [result.summary["incremental_qaly_adjusted"]],
        [result.summary["incremental_cost"]],
        color="#c62828",
        zorder=3,
        label="estimate",
    )
    span = float(np.max(np.abs(boot["incremental_qaly"]))) * 1.1 or 0.1
    for n, lam in enumerate(thresholds):  # every threshold drawn, styles alternating
        style = ("--", ":")[n % 2]
        ax.plot(
            [-span, span],
            [-lam * span, lam * span],
            style,
            color="0.4",
            label=f"£{lam:,.0f} per QALY",
        )
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_xlabel("incremental QALYs (baseline-adjusted)")
    ax.set_ylabel("incremental cost, £")
    ax.legend(frameon=False, fontsize=8)
    curve, ax2 = figure_and_axes(ax_curve, (6.0, 3.8), layout="tight")
    ax2.plot(
        result.ceac["wtp_gbp_per_qaly"], result.ceac["probability_cost_effective"], color="#0057b8"
    )
    for lam in thresholds:
        ax2.axvline(lam, color="0.5", ls=":", lw=0.8)
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("willingness to pay, £ per QALY")
    ax2.set_ylabel("probability cost-effective")
    ax2.grid(alpha=0.3)
    return plane, curve
