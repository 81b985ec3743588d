"""cox_data.csv for effects_R.R (run once; output committed): 60 participants alternating
treated/control, exponential times with mean 300 (treated) and 150 days, uniform censoring
100–500 days, whole days (so that there are ties). Run: python make_cox_data.py"""

import csv

import numpy as np

rng = np.random.default_rng(15)
rows = []
for i in range(60):
    treated = i % 2
    t = rng.exponential(300 if treated else 150)
    c = rng.uniform(100, 500)
    rows.append(
        {
            "id": i,
            "treated": treated,
            "duration": round(float(min(t, c)), 0) + 1,
            "event": int(t <= c),
        }
    )
with open("cox_data.csv", "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
