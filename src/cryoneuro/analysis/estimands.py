"""Estimands and sensitivity analyses for the primary comparison (ICH E9(R1), 2019).

Why: the MMRM answers a hypothetical question — the effect had everyone stayed on their
allocated treatment with missing data missing at random — and a trial statistician must say so
and show how much the answer depends on it.

Estimands reported (treated − control, primary visit):

* **primary** (hypothetical strategy for withdrawal and loss; treatment-policy for
  re-intervention, i.e. values after a re-intervention are used as observed): the MMRM of
  :func:`cryoneuro.analysis.rct.mmrm`;
* **responders, composite strategy**: a participant is a responder at a visit only with an
  observed ≥ 30 % pain reduction *and* no re-intervention on or before that visit; missing
  means non-responder (non-responder imputation), denominators are all randomised
  participants of the arm;
* **multiple imputation with a tipping point** (delta adjustment; Ratitch, O'Kelly & Tosiello
  2013, Pharm Stat 12:337): the primary-visit change is imputed M times within arm from the
  Bayesian linear regression on baseline (the "norm" method: σ*² = RSS/χ²ₙ₋ₚ,
  β* ~ N(β̂, σ*²(XᵀX)⁻¹), y* = xβ* + N(0, σ*²); Rubin 1987, van Buuren 2018 §3.2) with a
  seeded generator; δ ≥ 0 is added to the imputed values of the treated arm in the direction
  that worsens them (MNAR: dropouts of the treated arm did worse); each completed data
  set is analysed by ANCOVA (change ~ baseline + treated) and the M results combined by
  Rubin's rules with the Barnard & Rubin (1999, Biometrika 86:948) degrees of freedom. The
  tipping point is the smallest δ (in steps) at which the 95 % CI reaches 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from cryoneuro.analysis import outcomes as oc
from cryoneuro.analysis import rct
from cryoneuro.analysis.effects import odds_ratio, risk_difference
from cryoneuro.analysis.tidy import TidyData
from cryoneuro.errors import InputError


def rubin(estimates: np.ndarray, variances: np.ndarray, df_complete: float) -> dict[str, float]:
    """Rubin's rules: Q̄, T = Ū + (1 + 1/M)B, Barnard–Rubin df, 95 % CI and p."""
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = len(q)
    qbar, ubar = float(q.mean()), float(u.mean())
    b = float(q.var(ddof=1)) if m > 1 else 0.0
    t = ubar + (1 + 1 / m) * b
    if b == 0:
        df = df_complete
    else:
        gamma = (1 + 1 / m) * b / t
        df_old = (m - 1) / gamma**2
        df_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - gamma)
        df = 1 / (1 / df_old + 1 / df_obs)
    se = math.sqrt(t)
    half = stats.t.ppf(0.975, df) * se
    return {
        "estimate": qbar,
        "se": se,
        "df": df,
        "ci_lower": qbar - half,
        "ci_upper": qbar + half,
        "p": float(2 * stats.t.sf(abs(qbar / se), df)),
        "within_variance": ubar,
        "between_variance": b,
        "imputations": m,
    }


def _ancova(y: np.ndarray, base: np.ndarray, treated: np.ndarray) -> tuple[float, float, int]:
    X = np.column_stack([np.ones_like(y), base, treated])
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    df = len(y) - 3
    sigma2 = float(np.sum((y - X @ beta) ** 2)) / df
    cov = sigma2 * np.linalg.inv(X.T @ X)
    return float(beta[2]), float(cov[2, 2]), df


def _draw(rng: np.random.Generator, y: np.ndarray, X: np.ndarray, X_new: np.ndarray) -> np.ndarray:
    """One proper imputation by Bayesian linear regression (the "norm" method)."""
    n, p = X.shape
    xtx_inv = np.linalg.inv(X.T @ X)
    beta = xtx_inv @ X.T @ y
    rss = float(np.sum((y - X @ beta) ** 2))
    sigma2 = rss / rng.chisquare(n - p)
    beta_star = rng.multivariate_normal(beta, sigma2 * xtx_inv)
    return X_new @ beta_star + rng.normal(0.0, math.sqrt(sigma2), len(X_new))


def tipping_point(
    data: TidyData,
    scores: pd.DataFrame,
    control: str | None,
    visit: str,
    outcome: str = "pain",
    deltas: np.ndarray | None = None,
    imputations: int = 50,
    seed: int = 1,
) -> pd.DataFrame:
    """MI (within arm, on baseline) with δ added to the treated arm's imputed values."""
    treated_arm, control_arm = rct.arms(data, control)
    people = data.participants[
        (data.participants["status"].fillna("") != "screen_failed")
        & data.participants["arm"].isin([treated_arm, control_arm])
    ]
    values = oc.outcome_values(data, outcome, scores)
    base = values.dropna(subset=["baseline"]).groupby("participant_id")["baseline"].first()
    primary = values[values["visit_code"] == visit].set_index("participant_id")["change"]
    frame = pd.DataFrame(
        {
            "participant_id": people["participant_id"].to_numpy(),
            "treated": (people["arm"] == treated_arm).to_numpy(float),
        }
    )
    frame["baseline"] = frame["participant_id"].map(base)
    frame["change"] = frame["participant_id"].map(primary)
    frame = frame.dropna(subset=["baseline"]).reset_index(drop=True)
    missing = frame["change"].isna().to_numpy()
    if frame["change"].notna().groupby(frame["treated"]).sum().min() < 3:
        raise InputError(f"multiple imputation needs at least 3 observed '{visit}' values per arm")
    if deltas is None:
        step = float(np.nanstd(frame["change"])) / 4 or 0.25
        deltas = np.round(np.arange(0, 21) * step, 4)
    rng = np.random.default_rng(seed)
    y = frame["change"].to_numpy(float)
    b = frame["baseline"].to_numpy(float)
    t = frame["treated"].to_numpy(float)
    completed = []  # M imputed vectors (δ = 0), reused for every δ
    for _ in range(imputations if missing.any() else 1):  # nothing missing: the data as is
        filled = y.copy()
        for arm in (0.0, 1.0):
            obs = (t == arm) & ~missing
            mis = (t == arm) & missing
            if mis.any():
                X = np.column_stack([np.ones(obs.sum()), b[obs]])
                Xn = np.column_stack([np.ones(mis.sum()), b[mis]])
                filled[mis] = _draw(rng, y[obs], X, Xn)
        completed.append(filled)
    # δ ≥ 0 worsens the treated arm's imputed values: up for "higher is worse" outcomes
    direction = -1.0 if oc.OUTCOMES[outcome].higher_is_better else 1.0
    shift = direction * ((t == 1) & missing)
    rows = []
    for delta in deltas:
        est, var = [], []
        for filled in completed:
            e, v, df = _ancova(filled + delta * shift, b, t)
            est.append(e)
            var.append(v)
        combined = rubin(np.array(est), np.array(var), df)
        rows.append(
            {
                "delta": float(delta),
                **combined,
                "n_imputed_treated": int(((t == 1) & missing).sum()),
                "n_imputed_control": int(((t == 0) & missing).sum()),
            }
        )
    table = pd.DataFrame(rows)
    crosses = (table["ci_lower"] <= 0) & (table["ci_upper"] >= 0)
    # no tipping point when the CI already includes 0 at δ = 0, or never within the grid
    table["tipping_point"] = (
        float(table.loc[crosses, "delta"].iloc[0])
        if crosses.any() and not crosses.iloc[0]
        else math.nan
    )
    return table


def composite_responders(
    data: TidyData,
    scores: pd.DataFrame,
    control: str | None,
    outcome: str = "pain",
    threshold: float = 0.3,
) -> pd.DataFrame:
    """Responders with non-responder imputation and re-intervention as failure, per visit."""
    treated_arm, control_arm = rct.arms(data, control)
    people = data.participants[
        (data.participants["status"].fillna("") != "screen_failed")
        & data.participants["arm"].isin([treated_arm, control_arm])
    ]
    values = oc.outcome_values(data, outcome, scores).dropna(subset=["baseline"])
    values = values[values["baseline"] > 0]
    sign = 1.0 if oc.OUTCOMES[outcome].higher_is_better else -1.0
    values = values.assign(
        responder=sign * values["change"] / values["baseline"] >= threshold - 1e-9
    )
    first_reint = data.reinterventions.groupby("participant_id")["days_since_procedure"].min()
    order = oc.visit_order(data)
    rows = []
    for visit in [v for v in order["visit_code"] if v != "baseline"]:
        at = values[values["visit_code"] == visit].set_index("participant_id")
        counts = {}
        for arm in (treated_arm, control_arm):
            ids = people.loc[people["arm"] == arm, "participant_id"]
            k = 0
            for pid in ids:
                if pid not in at.index or not bool(at.loc[pid, "responder"]):
                    continue
                reint = first_reint.get(pid, math.nan)
                if pd.notna(reint) and reint <= at.loc[pid, "day"]:
                    continue  # intercurrent event: composite strategy, counted as failure
                k += 1
            counts[arm] = (k, len(ids))
        (k1, n1), (k2, n2) = counts[treated_arm], counts[control_arm]
        if n1 == 0 or n2 == 0:
            continue
        rd, lo, hi = risk_difference(k1, n1, k2, n2)
        or_, or_lo, or_hi, p = odds_ratio(k1, n1, k2, n2)
        rows.append(
            {
                "visit": visit,
                "threshold_percent": round(threshold * 100),
                "responders_treated": f"{k1}/{n1}",
                "responders_control": f"{k2}/{n2}",
                "risk_difference": rd,
                "rd_ci_lower": lo,
                "rd_ci_upper": hi,
                "odds_ratio": or_,
                "or_ci_lower": or_lo,
                "or_ci_upper": or_hi,
                "fisher_p": p,
            }
        )
    return pd.DataFrame(rows)
