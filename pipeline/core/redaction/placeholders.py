"""Consistent placeholders: within one trajectory the same value always becomes the same
placeholder (`<EMAIL_1>`, `<PERSON_2>`, ...), so a redacted dialogue stays coherent.

Use a fresh map per trajectory: numbering restarts and nothing links two trajectories.
Values are compared after a per-type normalisation, so "4111 1111 1111 1111" and
"4111-1111-1111-1111" are one card, "Maria.Keller@x.com" and "maria.keller@x.com" one
email, and a bare first or last name reuses the placeholder of the full name it belongs to.
The map holds original values in memory only; it is never part of a result.
"""

from __future__ import annotations

import re
from collections import Counter

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")
_SPACES = re.compile(r"\s+")


def normalize(entity_type: str, value: str) -> str:
    """The identity of a value for placeholder purposes."""
    v = value.strip()
    if entity_type in ("CREDIT_CARD", "NATIONAL_ID", "IBAN"):
        return _NON_ALNUM.sub("", v).upper()
    if entity_type == "PHONE":
        digits = re.sub(r"\D", "", v)
        if digits.startswith("00"):
            digits = digits[2:]
        # +1 415 555 0123 and (415) 555-0123 are the same North American number.
        return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
    if entity_type in ("EMAIL", "IP_ADDRESS"):
        return v.lower()
    if entity_type in ("PERSON", "STREET_ADDRESS"):
        return _SPACES.sub(" ", v).casefold().strip(" .,")
    return v


class PlaceholderMap:
    """value → placeholder for one trajectory."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: Counter[str] = Counter()
        self._person_parts: dict[str, str] = {}  # name token → placeholder of the full name

    def prepare(self, found: object) -> None:
        """Placeholders are numbered in order of appearance: nothing to prepare."""

    def replacement(self, entity_type: str, value: str) -> str:
        key = (entity_type, normalize(entity_type, value))
        found = self._by_value.get(key)
        if found is not None:
            return found
        if entity_type == "PERSON" and " " not in key[1] and key[1] in self._person_parts:
            found = self._person_parts[key[1]]
            self._by_value[key] = found
            return found
        self._counts[entity_type] += 1
        found = f"<{entity_type}_{self._counts[entity_type]}>"
        self._by_value[key] = found
        if entity_type == "PERSON":
            for part in key[1].split(" "):
                if len(part) >= 2:
                    self._person_parts.setdefault(part, found)
        return found

    def __len__(self) -> int:
        return len(self._by_value)

    def counts(self) -> dict[str, int]:
        """Distinct values per entity type seen so far."""
        return dict(self._counts)
