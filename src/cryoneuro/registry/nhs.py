"""NHS number validation (modulus 11, NHS Data Dictionary; docs/domain-facts.md).

Ten digits; weights 10..2 on digits 1–9; check = 11 − (sum mod 11), 11 → 0, 10 → invalid.
943 476 5919 is valid; 999 000 0000–999 999 9999 are reserved test numbers.
"""

from __future__ import annotations

import re

from cryoneuro.registry.errors import RegistryInputError

_SEPARATORS = re.compile(r"[\s-]")


def nhs_check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits, or None when the number cannot be valid (10)."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def normalise_nhs_number(value: str, field: str = "nhs_number") -> str:
    """Strip spaces/hyphens and validate; raise :class:`RegistryInputError` naming ``field``."""
    if not isinstance(value, str):
        raise RegistryInputError("NHS number must be text of 10 digits", field)
    digits = _SEPARATORS.sub("", value)
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        raise RegistryInputError("NHS number must be exactly 10 digits", field)
    check = nhs_check_digit(digits[:9])
    if check is None or check != int(digits[9]):
        raise RegistryInputError("NHS number fails the modulus-11 check digit", field)
    return digits


def is_test_nhs_number(digits: str) -> bool:
    """True for the reserved test range 999 000 0000 – 999 999 9999 and for 0000000000
    (which passes the check digit but is no one's number)."""
    return digits.startswith("999") or digits == "0000000000"
