"""Two trial data sets for the MMRM check against R (run once; outputs committed beside it).

Four post-baseline visits, two arms of 45, three sites, a baseline covariate and an
unstructured within-participant covariance (SDs 1.0, 1.3, 1.6, 2.0; correlations 0.7^|j−k|
raised by 0.1). Set A is complete; set B loses participants after a visit with a probability
that rises with the last observed change (missing at random: depends on observed data only).
Run: python make_mmrm_data.py  (numpy only).
"""

import csv

import numpy as np

VISITS = ["w2", "m1", "m3", "m6"]
SD = np.array([1.0, 1.3, 1.6, 2.0])
LAG = np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
CORR = np.minimum(1.0, 0.7**LAG + 0.1 * (LAG > 0))
SIGMA = np.outer(SD, SD) * CORR
EFFECT = np.array([-0.5, -1.0, -1.5, -1.2])


def make(seed: int, dropout: bool) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(90):
        arm = "cryo" if i % 2 else "sham"
        site = ["S1", "S2", "S3"][int(rng.integers(0, 3))]
        baseline = float(np.round(rng.normal(7, 1.2), 1))
        mean = (
            -1.0
            + 0.3 * (baseline - 7)
            + {"S1": 0.0, "S2": 0.4, "S3": -0.3}[site]
            + (EFFECT if arm == "cryo" else np.zeros(4))
        )
        y = rng.multivariate_normal(mean, SIGMA)
        for j, visit in enumerate(VISITS):
            rows.append(
                {
                    "id": f"P{i:03d}",
                    "arm": arm,
                    "site": site,
                    "visit": visit,
                    "vnum": j + 1,
                    "baseline": baseline,
                    "change": round(float(y[j]), 4),
                }
            )
            if dropout and j < 3 and rng.random() < 1 / (1 + np.exp(-(-2.2 + 0.6 * y[j]))):
                break
    return rows


for name, seed, dropout in (
    ("mmrm_data_complete.csv", 101, False),
    ("mmrm_data_dropout.csv", 202, True),
):
    data = make(seed, dropout)
    with open(name, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    print(name, len(data), "rows")
