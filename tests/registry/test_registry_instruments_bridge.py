"""Answers are validated by the registry; scores come from cryoneuro.instruments if present."""

from __future__ import annotations

import sys
import types

import pytest

from cryoneuro.errors import InputError
from cryoneuro.registry.errors import RegistryInputError
from cryoneuro.registry.instruments_bridge import score_answers, validate_answers


def test_validation_names_the_item() -> None:
    with pytest.raises(RegistryInputError) as info:
        validate_answers({"eq5d5l": {"mobility": 6}})
    assert info.value.field == "answers.eq5d5l.mobility"
    with pytest.raises(RegistryInputError) as info:
        validate_answers({"bpi": {"worst": 5, "least": 1, "average": 3, "now": 2, "mood": 4}})
    assert info.value.field == "answers.bpi.general_activity"
    assert validate_answers({"nrs": {"pain": "7"}}) == {"nrs": {"pain": 7}}
    with pytest.raises(RegistryInputError):
        validate_answers({"nrs": {"pain": True}})
    with pytest.raises(RegistryInputError):
        validate_answers({"nrs": {"pain": 3.5}})


def test_scores_from_the_instruments_package_when_importable(monkeypatch) -> None:
    fake = types.ModuleType("cryoneuro.instruments")

    def score(code: str, answers: dict) -> dict:
        if code == "vas":
            raise InputError("VAS out of range for this scorer")
        if code == "eq5d5l":
            raise RuntimeError("scorer bug")
        return {"total": sum(answers.values())}

    fake.score = score  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cryoneuro.instruments", fake)
    assert score_answers({"nrs": {"pain": 4}}) == {"nrs": {"total": 4}}
    assert score_answers({"eq5d5l": {"mobility": 1}}) == {}  # a scorer bug keeps the answers
    with pytest.raises(RegistryInputError) as info:
        score_answers({"vas": {"pain": 40}})
    assert info.value.field == "answers.vas"


def test_no_scores_without_the_package(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cryoneuro.instruments", None)
    assert score_answers({"nrs": {"pain": 4}}) == {}
