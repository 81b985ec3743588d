"""JSON-safe values: what every ``--json`` output and results file passes through.

JSON has no NaN or infinity and no NumPy scalars; a consumer (jq, a browser, another
language) must be able to parse every file cryoneuro writes, so NaN/±inf become null and
NumPy/pandas scalars become Python numbers.
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """A copy of ``value`` with NaN/inf → None and NumPy/pandas scalars → Python values."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if (
        hasattr(value, "item")
        and not isinstance(value, str | bytes)
        and getattr(value, "ndim", 0) == 0
    ):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is not None and type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value
