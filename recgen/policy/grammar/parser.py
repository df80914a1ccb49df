"""Text side of the grammar: tags, end markers, :func:`parse_output` and :func:`format_output`.

Pure string code (no tokenizer, no torch). The constrained decoder in
:mod:`recgen.policy.grammar.state` only ever produces text this parser accepts.

Unconstrained mode
------------------
Nothing to do in the grammar: the rollout passes no logits processor, decodes the
completion with ``tokenizer.decode(ids, skip_special_tokens=True)``, calls
:func:`parse_output` (or :func:`is_valid`) and takes the phases from
:func:`recgen.policy.grammar.phases.phase_masks_from_ids`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from recgen.errors import ConfigError

OPEN_SLATE = "<slate>"
CLOSE_SLATE = "</slate>"
OPEN_RANK = "<rank>"
CLOSE_RANK = "</rank>"
MID = CLOSE_SLATE + OPEN_RANK
SEPARATOR = " "

#: End-of-text markers :func:`parse_output` tolerates after ``</rank>`` (when a rollout
#: is decoded without ``skip_special_tokens``).
DEFAULT_END_MARKERS: tuple[str, ...] = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "</s>",
    "<eos>",
    "<end_of_turn>",
)

_TAG_RE = re.compile(r"</?(?:slate|rank)>")


def _check_sizes(n_candidates: int, slate_size: int, rank_size: int) -> None:
    for name, value in (
        ("n_candidates", n_candidates),
        ("slate_size", slate_size),
        ("rank_size", rank_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an int, got {value!r}.")
    if not 1 <= rank_size <= slate_size <= n_candidates:
        raise ConfigError(
            "need 1 <= rank_size <= slate_size <= n_candidates, got "
            f"rank_size={rank_size}, slate_size={slate_size}, n_candidates={n_candidates}."
        )


@dataclass(frozen=True)
class ParsedOutput:
    """Result of :func:`parse_output`.

    ``slate`` and ``ranking`` are lists of 1-based pool positions when the text is
    valid; on any error both are None and ``error`` says precisely what is wrong.
    """

    slate: list[int] | None
    ranking: list[int] | None
    error: str | None

    @property
    def valid(self) -> bool:
        """True when the text parsed without error."""
        return self.error is None


def format_output(slate: Sequence[int], ranking: Sequence[int]) -> str:
    """The canonical text of a slate and a ranking (no EOS)."""
    return (
        OPEN_SLATE
        + SEPARATOR.join(str(int(x)) for x in slate)
        + MID
        + SEPARATOR.join(str(int(x)) for x in ranking)
        + CLOSE_RANK
    )


def _parse_numbers(
    body: str, what: str, expected: int, lo: int, hi: int
) -> tuple[list[int] | None, str | None]:
    items = body.split()
    numbers: list[int] = []
    seen: set[int] = set()
    for item in items:
        if not (item.isascii() and item.isdigit()):
            return None, f"{what} item {item!r} is not a number"
        if len(item) > 1 and item[0] == "0":
            return None, f"{what} item {item!r} has a leading zero"
        value = int(item)
        if not lo <= value <= hi:
            return None, f"{what} number {value} is out of range {lo}..{hi}"
        if value in seen:
            return None, f"{what} number {value} appears more than once"
        seen.add(value)
        numbers.append(value)
    if len(numbers) != expected:
        return None, f"{what} has {len(numbers)} numbers, expected {expected}"
    return numbers, None


def parse_output(
    text: str,
    n_candidates: int,
    slate_size: int,
    rank_size: int,
    *,
    end_markers: Sequence[str] = DEFAULT_END_MARKERS,
) -> ParsedOutput:
    """Parse ``<slate>a b …</slate><rank>c d …</rank>`` into 1-based pool positions.

    Accepted leniently: whitespace around the whole output, around the numbers inside
    a tag and between ``</slate>`` and ``<rank>``; numbers separated by any run of
    whitespace; after ``</rank>``, any sequence of ``end_markers`` (end-of-text special
    token strings, for text decoded without ``skip_special_tokens``) and whitespace.
    Everything else is an error: a missing or repeated tag, tags out of order, any other
    text before ``<slate>`` / between the tags / after ``</rank>``, an item that is not
    a plain decimal number (signs, commas, leading zeros), a number outside 1..N, a
    duplicate, a wrong count (m in the slate, k in the ranking), or a ranked number that
    is not in the slate. The first error found is reported (slate before ranking).
    """
    _check_sizes(n_candidates, slate_size, rank_size)

    def fail(reason: str) -> ParsedOutput:
        return ParsedOutput(None, None, reason)

    s = text.strip()
    stripped = True
    while stripped and end_markers:
        stripped = False
        for marker in end_markers:
            if marker and s.endswith(marker):
                s = s[: -len(marker)].rstrip()
                stripped = True

    for tag in (OPEN_SLATE, CLOSE_SLATE, OPEN_RANK, CLOSE_RANK):
        count = s.count(tag)
        if count == 0:
            return fail(f"missing {tag} tag")
        if count > 1:
            return fail(f"tag {tag} appears {count} times, expected once")
    i_os, i_cs = s.index(OPEN_SLATE), s.index(CLOSE_SLATE)
    i_or, i_cr = s.index(OPEN_RANK), s.index(CLOSE_RANK)
    if not i_os < i_cs < i_or < i_cr:
        return fail("tags out of order: expected <slate>…</slate><rank>…</rank>")
    if i_os > 0:
        return fail(f"extra text before {OPEN_SLATE}: {s[:i_os]!r}")
    between = s[i_cs + len(CLOSE_SLATE) : i_or]
    if between.strip():
        return fail(f"extra text between {CLOSE_SLATE} and {OPEN_RANK}: {between.strip()!r}")
    after = s[i_cr + len(CLOSE_RANK) :]
    if after:
        return fail(f"extra text after {CLOSE_RANK}: {after!r}")
    slate_body = s[i_os + len(OPEN_SLATE) : i_cs]
    rank_body = s[i_or + len(OPEN_RANK) : i_cr]
    for body, what in ((slate_body, "slate"), (rank_body, "ranking")):
        stray = _TAG_RE.search(body)
        if stray:  # cannot happen after the count check, kept as a guard
            return fail(f"unexpected tag {stray.group(0)} inside the {what}")

    slate, err = _parse_numbers(slate_body, "slate", slate_size, 1, n_candidates)
    if err:
        return fail(err)
    ranking, err = _parse_numbers(rank_body, "ranking", rank_size, 1, n_candidates)
    if err:
        return fail(err)
    assert slate is not None and ranking is not None
    in_slate = set(slate)
    for r in ranking:
        if r not in in_slate:
            return fail(f"ranked number {r} is not in the slate")
    return ParsedOutput(slate, ranking, None)


def is_valid(
    text: str,
    n_candidates: int,
    slate_size: int,
    rank_size: int,
    *,
    end_markers: Sequence[str] = DEFAULT_END_MARKERS,
) -> bool:
    """True when :func:`parse_output` accepts ``text``."""
    return parse_output(text, n_candidates, slate_size, rank_size, end_markers=end_markers).valid
