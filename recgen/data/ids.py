"""Stable id order: numeric when every raw id is a decimal integer, else lexicographic."""

from __future__ import annotations

from collections.abc import Iterable


def _is_decimal(s: str) -> bool:
    return s.isascii() and s.isdigit()


def sort_ids(ids: Iterable[str]) -> list[str]:
    """Unique raw ids in the project's stable order (position = integer id).

    Numeric order (ties such as '01' vs '1' broken by the string) when every id is a
    decimal integer, else plain lexicographic (code point) order.
    """
    unique = set(ids)
    if unique and all(_is_decimal(s) for s in unique):
        return sorted(unique, key=lambda s: (int(s), s))
    return sorted(unique)
