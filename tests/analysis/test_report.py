"""Report: every table row reaches the PDF text, wide tables are split not cut, readable headings,
and Table 1 holds the baseline value of every outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryoneuro.analysis.report import PDF_WIDTH, _format_frame, _pdf_table, column_label


def test_a_wide_long_table_is_printed_whole_within_the_page_width():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "study": [f"S{i:02d}" for i in range(40)],
            **{f"column_with_a_long_name_{j}": rng.normal(size=40) for j in range(12)},
        }
    )
    lines = _pdf_table(frame)
    assert max(len(line) for line in lines) <= PDF_WIDTH
    text = "\n".join(lines)
    for i in range(40):  # every row, in every column block
        assert text.count(f"S{i:02d}") >= 2
    for j in range(12):
        assert column_label(f"column_with_a_long_name_{j}") in text


def test_html_headings_are_readable_and_csv_names_stay():
    frame = pd.DataFrame({"ci_lower": [0.1], "n_treated": [3]})
    html = _format_frame(frame)
    assert "95 % CI lower" in html
    assert "n (treated)" in html
    assert "ci_lower" not in html


def test_table_one_has_baseline_outcomes():
    from cryoneuro.analysis.outcomes import scored
    from cryoneuro.analysis.study import characteristics
    from cryoneuro.analysis.synthetic import SyntheticStudy, generate

    data = generate(SyntheticStudy(n_per_arm=12, screen_failures=0, seed=4))
    scores = scored(data)
    table = characteristics(data, scores).set_index("characteristic")
    row = table.loc["baseline Pain NRS (0–10): mean (SD), n"]
    base = scores[(scores["visit_code"] == "baseline") & (scores["instrument"] == "nrs")]
    arms = data.participants.set_index("participant_id")["arm"]
    sham = pd.to_numeric(base[base["participant_id"].map(arms) == "sham"]["value"])
    assert row["sham"] == f"{sham.mean():.2f} ({sham.std(ddof=1):.2f}), {len(sham)}"
