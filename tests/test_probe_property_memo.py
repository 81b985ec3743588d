"""The per-user memo of CoolProp's answers (probe._PropertyMemo; issue 17 item 4): a second
process answers from the file without importing CoolProp, bit for bit what CoolProp gave; a
damaged file is ignored; errors are not remembered; ``CRYONEURO_COOLPROP_CACHE=0`` turns it
off. Each check runs in fresh processes (the memo is per process, the file per user).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: tip states of two gases (the planner's argon; CO2, whose solid exhaust takes other calls),
#: the choked flux, and with "fail" a call CoolProp refuses
SCRIPT = r"""
import json, sys
from cryoneuro import probe
out = {gas: probe.tip_state(gas).to_dict() for gas in ("argon", "carbon-dioxide")}
out["choked"] = probe.choked_mass_flux("argon")
if "fail" in sys.argv:
    try:
        probe._cp("H", "T", 10.0, "P", 1e5, "Argon")  # below the melting line: ValueError
    except Exception as exc:
        out["error"] = type(exc).__name__
out["coolprop_imported"] = "CoolProp" in sys.modules
print(json.dumps(out))
"""


def _run(cache_dir: Path, *args: str, **env: str) -> dict:
    full = {**os.environ, "CRYONEURO_CACHE_DIR": str(cache_dir)}
    full.pop("CRYONEURO_COOLPROP_CACHE", None)
    full.update(env)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], env=full, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _file(cache_dir: Path) -> Path:
    files = list((cache_dir / "coolprop").glob("coolprop-*.json"))
    assert len(files) == 1, files
    return files[0]


@pytest.fixture(scope="module")
def cold_and_warm(tmp_path_factory):
    root = tmp_path_factory.mktemp("memo")
    return root, _run(root), _run(root)


@pytest.mark.slow
def test_a_second_process_answers_from_the_file_without_coolprop(cold_and_warm):
    _, cold, warm = cold_and_warm
    assert cold["coolprop_imported"]
    assert not warm["coolprop_imported"]
    # JSON floats round-trip exactly: the same bits
    assert {**warm, "coolprop_imported": None} == {**cold, "coolprop_imported": None}


@pytest.mark.slow
def test_a_refused_call_is_not_remembered(cold_and_warm):
    root, _, _ = cold_and_warm
    again = _run(root, "fail")
    # refused (PhysicsError) and answered by CoolProp itself: only that call needed it
    assert again["error"] == "PhysicsError"
    assert again["coolprop_imported"]
    memo = json.loads(_file(root).read_text(encoding="utf-8"))
    assert not any(key.startswith('["PropsSI", "H", "T", 10.0,') for key in memo)
    assert all(isinstance(v, float) for v in memo.values())


@pytest.mark.slow
def test_a_damaged_file_is_ignored_and_rewritten(cold_and_warm, tmp_path):
    root, cold, _ = cold_and_warm
    good = _file(root)
    damaged = tmp_path / "coolprop" / good.name
    damaged.parent.mkdir(parents=True)
    damaged.write_text(good.read_text(encoding="utf-8")[:-40], encoding="utf-8")  # truncated
    again = _run(tmp_path)
    assert again.pop("coolprop_imported")  # nothing usable in the file: CoolProp asked
    assert again == {k: v for k, v in cold.items() if k != "coolprop_imported"}
    assert json.loads(damaged.read_text(encoding="utf-8"))  # whole again


@pytest.mark.slow
def test_the_memo_can_be_turned_off(tmp_path):
    out = _run(tmp_path, CRYONEURO_COOLPROP_CACHE="0")
    assert out["coolprop_imported"]
    assert not (tmp_path / "coolprop").exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_answers_round_trip(value, tmp_path, monkeypatch):
    """CoolProp can answer NaN or inf without raising; the file keeps them as they were
    (the caller refuses them: probe._cp raises PhysicsError)."""
    from cryoneuro import probe

    monkeypatch.setenv("CRYONEURO_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CRYONEURO_COOLPROP_CACHE", raising=False)
    memo = probe._PropertyMemo()
    memo.get("k", lambda: value)
    memo.flush()
    fresh = probe._PropertyMemo()
    got = fresh.get("k", lambda: pytest.fail("answered from the file, not recomputed"))
    assert (got != got) if value != value else got == value


def test_numpy_scalars_are_keys_like_floats(tmp_path, monkeypatch):
    """A NumPy scalar argument (float32 has no JSON form of its own) is asked and remembered
    like the float it stands for, not refused with a serialisation error."""
    import numpy as np

    from cryoneuro import probe

    monkeypatch.setenv("CRYONEURO_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CRYONEURO_COOLPROP_CACHE", raising=False)
    monkeypatch.setattr(probe, "_MEMO", probe._PropertyMemo())
    as_float = probe._cp("H", "T", 300.0, "P", 1e5, "Argon")
    assert probe._cp("H", "T", np.float32(300.0), "P", np.float64(1e5), "Argon") == as_float


def test_an_entry_that_is_not_a_number_is_asked_again(tmp_path, monkeypatch):
    """A hand-edited file with a string where a number belongs: the entry is ignored and
    CoolProp is asked, instead of failing (or answering) with the edited value."""
    from cryoneuro import probe

    monkeypatch.setenv("CRYONEURO_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CRYONEURO_COOLPROP_CACHE", raising=False)
    key = json.dumps(["PropsSI", "H", "T", 300.0, "P", 1e5, "Argon"])
    path = probe._PropertyMemo.path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({key: "not a number", "other": True}), encoding="utf-8")
    monkeypatch.setattr(probe, "_MEMO", probe._PropertyMemo())
    value = probe._cp("H", "T", 300.0, "P", 1e5, "Argon")
    monkeypatch.setenv("CRYONEURO_COOLPROP_CACHE", "0")
    monkeypatch.setattr(probe, "_MEMO", probe._PropertyMemo())
    assert value == probe._cp("H", "T", 300.0, "P", 1e5, "Argon")  # straight from CoolProp
