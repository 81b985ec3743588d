"""The test suite's own support code: PostgreSQL discovery must find whatever major version the
machine has installed, not one hard-coded release (issue 16)."""

from __future__ import annotations

from pathlib import Path

from registry_helpers import find_postgres_bin


def _install(root: Path, *majors: str) -> None:
    for major in majors:
        bin_dir = root / major / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "initdb").write_text("#!/bin/sh\n", encoding="utf-8")


def test_the_newest_installed_major_is_used(tmp_path) -> None:
    _install(tmp_path, "9.6", "15", "16")
    (tmp_path / "17").mkdir()  # a half-removed major without its programs is skipped
    assert find_postgres_bin(tmp_path, env={}) == tmp_path / "16" / "bin"


def test_majors_compare_as_numbers_not_as_text(tmp_path) -> None:
    _install(tmp_path, "9.6", "10")  # as text "9.6" > "10"
    assert find_postgres_bin(tmp_path, env={}) == tmp_path / "10" / "bin"


def test_the_environment_overrides_discovery(tmp_path) -> None:
    _install(tmp_path, "16")
    chosen = tmp_path / "elsewhere"
    assert find_postgres_bin(tmp_path, env={"CRYONEURO_PG_BIN": str(chosen)}) == chosen
