"""`cryoneuro score INSTRUMENT ...`: score one questionnaire (owner: instruments).

- ``cryoneuro score eq5d5l 11235 [--value-set england|uk-2026|uk-crosswalk] [vas=70]``
- ``cryoneuro score moxfq q1=2 q2=3 ...`` (any instrument: ``item=value`` pairs)
- ``cryoneuro score --list``

With ``--json`` one JSON object goes to stdout. For EQ-5D-5L with ``--value-set`` it has the
contract key ``index`` (docs/contracts.md); every result also carries ``scores``, the flat
measure → value dict of :func:`cryoneuro.instruments.score`.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from cryoneuro.cli._app import app, emit_json, out, user_errors
from cryoneuro.errors import InputError


def _parse_answers(code: str, tokens: list[str]) -> dict[str, str]:
    """``item=value`` tokens → dict; for eq5d5l a bare token is the profile."""
    answers: dict[str, str] = {}
    for token in tokens:
        name, sep, value = token.partition("=")
        if not sep:
            if code == "eq5d5l" and "profile" not in answers:
                name, value = "profile", token
            else:
                raise InputError(
                    f"{code}: answer '{token[:40]}' must be item=value (e.g. {_example(code)})"
                )
        name = name.strip()
        if name in answers:
            raise InputError(f"{code}: item '{name[:40]}' is given twice")
        answers[name] = value
    return answers


def _example(code: str) -> str:
    from cryoneuro.instruments import get_instrument

    item = get_instrument(code).items[0]
    return f"{item.name}={int(item.min) if item.min is not None else 'x'}"


def _list(json_output: bool) -> None:
    from cryoneuro.instruments import INSTRUMENTS, VALUE_SETS

    if json_output:
        emit_json(
            {
                "instruments": [i.to_dict() for i in INSTRUMENTS.values()],
                "value_sets": [v.to_dict() for v in VALUE_SETS.values()],
            }
        )
        return
    table = Table(title="Instruments (cryoneuro score INSTRUMENT item=value ...)")
    table.add_column("code", no_wrap=True)
    table.add_column("instrument")
    table.add_column("items")
    table.add_column("measures")
    for ins in INSTRUMENTS.values():
        items = ", ".join(f"{i.name}{'' if i.required else '?'}" for i in ins.items)
        table.add_row(ins.code, ins.label, items, ", ".join(m.name for m in ins.measures))
    out.print(table)
    out.print(
        "[dim]? = optional. EQ-5D-5L value sets: "
        + ", ".join(VALUE_SETS)
        + ". Details: cryoneuro score --list --json[/dim]"
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:g}"
    return str(value)


@app.command("score")
@user_errors
def score_cmd(
    instrument: str = typer.Argument(None, help="Instrument code (see --list), e.g. eq5d5l."),
    answers: list[str] = typer.Argument(
        None, help="Answers as item=value; for eq5d5l the 5-digit profile may be given bare."
    ),
    value_set: str = typer.Option(
        None,
        "--value-set",
        help="EQ-5D-5L value set: england, uk-2026 or uk-crosswalk (default: all).",
    ),
    list_instruments: bool = typer.Option(False, "--list", help="List the instruments."),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout and nothing else."
    ),
) -> None:
    """Score a questionnaire (NRS, VAS, EQ-5D-5L, MOXFQ, BPI, stump, mobility)."""
    from cryoneuro.instruments import get_instrument, get_value_set, score
    from cryoneuro.instruments.eq5d import measure_name

    if list_instruments:
        _list(json_output)
        return
    if instrument is None:
        raise InputError("INSTRUMENT: give an instrument code (e.g. eq5d5l, moxfq) or --list")
    ins = get_instrument(instrument)
    parsed = _parse_answers(ins.code, list(answers or []))
    options: dict[str, Any] = {}
    vs = None
    if value_set is not None:
        if ins.code != "eq5d5l":
            raise InputError(f"--value-set applies to eq5d5l only (not {ins.code})")
        vs = get_value_set(value_set)
        options["value_sets"] = [vs.name]
    scores = score(ins.code, parsed, **options)

    payload: dict[str, Any] = {"instrument": ins.code}
    if ins.code == "eq5d5l":
        payload["profile"] = scores["profile"]
        if vs is not None:
            payload.update(
                value_set=vs.name,
                index=scores[measure_name(vs.name)],
                version=vs.version,
                citation=vs.citation,
                doi=vs.doi,
            )
        else:
            from cryoneuro.instruments import VALUE_SETS

            payload["indices"] = {name: scores[measure_name(name)] for name in VALUE_SETS}
        if "vas" in scores:
            payload["vas"] = scores["vas"]
    payload["scores"] = scores
    if json_output:
        emit_json(payload)
        return

    table = Table(title=ins.label)
    table.add_column("measure", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("meaning")
    meaning = {m.name: m.description for m in ins.measures}
    for name, value in scores.items():
        table.add_row(name, _fmt(value), meaning.get(name, ""))
    out.print(table)
    if vs is not None:
        out.print(f"[dim]value set: {vs.label}; {vs.citation} doi:{vs.doi}[/dim]")
