"""The slate-then-rank output grammar: constrained decoding, parsing and phase masks.

One rollout writes (defaults N = 20 candidates, m = 10 slate, k = 5 ranking)::

    <slate>4 17 2 9 11 3 20 8 5 13</slate><rank>17 4 9 2 11</rank><EOS>

m distinct 1-based pool positions, then k distinct positions taken from the slate.

Token level
-----------
The output is a concatenation of *pieces*, each forced to one canonical token sequence:
``"<slate>"``, every number ``str(n)`` for n in 1..N, the separator ``" "``,
``"</slate><rank>"`` and ``"</rank>"``, each encoded *as one unit* with
``tokenizer.encode(piece, add_special_tokens=False)``, followed by one EOS token. A
tokenizer may merge across a piece boundary (SmolLM2 writes ``"</slate><rank>"`` as
``</ sl ate >< rank >``); the grammar never lets a token span two pieces except inside
one constant piece. At every decision point the alternatives are "number n followed by
the next delimiter" (``" "``, ``"</slate><rank>"`` or ``"</rank>"``); these token
sequences are stored in a trie, so number prefixes are handled exactly (after ``1`` both
``7`` (-> 17) and the delimiter are legal when 1 and 17 are both still available). A
step is a dict lookup plus a loop over the children of one trie node, cached per
(node, available numbers) — microseconds per row, never a pass over the vocabulary.

For SmolLM2 (digits and ``" "`` are single tokens) the canonical token path of a text
equals ``tokenizer.encode(text)``, so a supervised target tokenised the ordinary way
matches what the grammar allows (:meth:`SlateRankGrammar.encode_output` builds it).

Phases
------
``gen`` covers the slate tokens from ``<slate>`` through ``</slate>``; ``rank`` covers
``<rank>`` through ``</rank>`` and the final EOS. A token that straddles the boundary
(SmolLM2's ``><``) belongs to ``gen``: the gen phase ends with the token whose decoding
*completes* the text ``</slate>``. :func:`phase_masks_from_ids` applies the same rule to
arbitrary (unconstrained) outputs by decoding prefixes, so both agree on constrained
outputs.

Unconstrained mode
------------------
Nothing to do here: the rollout passes no logits processor, decodes the completion with
``tokenizer.decode(ids, skip_special_tokens=True)``, calls :func:`parse_output` (or
:func:`is_valid`) and takes the phases from :func:`phase_masks_from_ids`.

Errors: bad sizes or a bad forced slate raise :class:`recgen.errors.ConfigError` (a
``ValueError``); a tokenizer the grammar cannot be built for, or an illegal token given
to :meth:`DecodeState.advance`, raises :class:`recgen.errors.GrammarError`.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor

from recgen.errors import ConfigError, GrammarError

logger = logging.getLogger(__name__)

__all__ = [
    "CLOSE_RANK",
    "DEFAULT_END_MARKERS",
    "MID",
    "OPEN_SLATE",
    "SEPARATOR",
    "DecodeState",
    "ParsedOutput",
    "SlateRankGrammar",
    "SlateRankLogitsProcessor",
    "apply_grammar_mask",
    "format_output",
    "gen_length_from_ids",
    "is_valid",
    "parse_output",
    "phase_masks_from_ids",
    "phase_masks_from_text",
]

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

_ALL = -1  # "every label available" for constant pieces (any mask & -1 != 0)
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


# --------------------------------------------------------------------------------------
# parsing (pure text)
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# phases of arbitrary token sequences
# --------------------------------------------------------------------------------------
def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def gen_length_from_ids(tokenizer: Any, completion_ids: Sequence[int] | torch.Tensor) -> int:
    """Number of leading tokens of a completion that belong to the gen phase.

    That is the index of the token whose decoding completes the first ``</slate>``,
    plus one; when no ``</slate>`` is ever completed, every token is gen (the length).
    Found by binary search over decoded prefixes (``skip_special_tokens=True``), which is
    valid because containing the ASCII text ``</slate>`` is monotone in the prefix
    length.
    """
    ids = (
        completion_ids.tolist()
        if isinstance(completion_ids, torch.Tensor)
        else list(completion_ids)
    )
    n = len(ids)
    if n == 0 or CLOSE_SLATE not in _decode(tokenizer, ids):
        return n
    lo, hi = 1, n  # smallest prefix length whose decoding contains </slate>
    while lo < hi:
        mid = (lo + hi) // 2
        if CLOSE_SLATE in _decode(tokenizer, ids[:mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


def phase_masks_from_ids(
    tokenizer: Any, completion_ids: Sequence[int] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (gen_mask, rank_mask) over the completion tokens.

    Tokens up to and including the one that completes ``</slate>`` are gen, all later
    positions are rank (see :func:`gen_length_from_ids`). ``completion_ids`` is one
    sequence (list or 1-D tensor → 1-D masks) or a 2-D tensor (one row per rollout → 2-D
    masks). Positions after EOS / padding are marked rank too: AND the masks with the
    completion mask. Works for constrained outputs as well, where it agrees with
    :attr:`DecodeState.phase`. ``tokenizer`` may also be a :class:`SlateRankGrammar`.
    """
    if isinstance(tokenizer, SlateRankGrammar):
        tokenizer = tokenizer.tokenizer
    if isinstance(completion_ids, torch.Tensor) and completion_ids.dim() == 2:
        rows, length = completion_ids.shape
        gen = torch.zeros(rows, length, dtype=torch.bool)
        for r, row in enumerate(completion_ids.tolist()):
            gen[r, : gen_length_from_ids(tokenizer, row)] = True
        return gen, ~gen
    ids = (
        completion_ids.tolist()
        if isinstance(completion_ids, torch.Tensor)
        else list(completion_ids)
    )
    gen = torch.zeros(len(ids), dtype=torch.bool)
    gen[: gen_length_from_ids(tokenizer, ids)] = True
    return gen, ~gen


#: The name docs/architecture.md uses for :func:`phase_masks_from_ids`.
phase_masks_from_text = phase_masks_from_ids


# --------------------------------------------------------------------------------------
# tries of canonical token sequences
# --------------------------------------------------------------------------------------
class _Trie:
    """Prefix-free token-sequence trie; each path carries an integer label.

    Node 0 is the root. ``mask[node]`` is the bitmask of labels whose path passes through
    the node; ``edges[node]`` lists (token, child, child_mask); ``commit[node]`` is the
    label fixed on entering the node (number tries: the first delimiter token after the
    number), else 0; ``terminal[node]`` marks path ends; ``phase[node]`` the phase of the
    token leaving the node, or None (→ the segment's phase).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.children: list[dict[int, int]] = [{}]
        self.mask: list[int] = [0]
        self.commit: list[int] = [0]
        self.terminal: list[bool] = [False]
        self.phase: list[str | None] = [None]
        self.edges: list[tuple[tuple[int, int, int], ...]] = []

    def insert(
        self,
        tokens: Sequence[int],
        label: int,
        bit: int,
        commit_at: int | None,
        phases: Sequence[str | None] | None,
        describe: str,
    ) -> None:
        if not tokens:
            raise GrammarError(f"{self.name}: {describe} encodes to no tokens.")
        node = 0
        self.mask[0] |= bit
        for pos, tok in enumerate(tokens):
            if self.terminal[node]:
                raise GrammarError(
                    f"{self.name}: the token sequence of {describe} extends another complete "
                    "sequence, so the grammar would be ambiguous for this tokenizer."
                )
            if phases is not None:
                self._set_phase(node, phases[pos], describe)
            child = self.children[node].get(tok)
            if child is None:
                child = len(self.children)
                self.children[node][tok] = child
                self.children.append({})
                self.mask.append(0)
                self.commit.append(0)
                self.terminal.append(False)
                self.phase.append(None)
            node = child
            self.mask[node] |= bit
            if commit_at is not None and pos + 1 == commit_at:
                self.commit[node] = label
        if self.children[node] or self.terminal[node]:
            raise GrammarError(
                f"{self.name}: the token sequence of {describe} is a prefix of another "
                "one, so the grammar would be ambiguous for this tokenizer."
            )
        self.terminal[node] = True

    def _set_phase(self, node: int, phase: str | None, describe: str) -> None:
        old = self.phase[node]
        if old is not None and phase is not None and old != phase:
            raise GrammarError(f"{self.name}: inconsistent phase at a node shared by {describe}.")
        self.phase[node] = phase if phase is not None else old

    def finalize(self) -> None:
        self.edges = [
            tuple((tok, child, self.mask[child]) for tok, child in kids.items())
            for kids in self.children
        ]
        for node, label in enumerate(self.commit):
            if label and self.mask[node] != (1 << label):
                raise GrammarError(
                    f"{self.name}: number {label} cannot be told apart from another number "
                    "after its delimiter token; the grammar cannot be built for this tokenizer."
                )


@dataclass
class _Tables:
    """Per-(tokenizer, N, m, k, eos) precomputed pieces, tries and allowed-set caches."""

    open_ids: list[int]
    sep_ids: list[int]
    mid_ids: list[int]
    close_ids: list[int]
    number_ids: dict[int, list[int]]
    mid_gen_len: int
    eos_ids: tuple[int, ...]
    pad_id: int | None
    t_open: _Trie
    t_sep: _Trie
    t_mid: _Trie
    t_close: _Trie
    t_eos: _Trie
    allowed_cache: dict[tuple[int, int, int], tuple[int, ...]]
    tensor_cache: dict[tuple[int, ...], torch.Tensor]
    max_new_tokens: int
    min_new_tokens: int


_CACHE_LIMIT = 200_000
_TABLES: dict[tuple[int, int, int, int, tuple[int, ...]], _Tables] = {}
_TABLES_LOCK = threading.Lock()


def _encode(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return [int(i) for i in ids]


def _eos_ids(tokenizer: Any, eos_token_id: int | Sequence[int] | None) -> tuple[int, ...]:
    if eos_token_id is None:
        eos_token_id = getattr(tokenizer, "eos_token_id", None)
    if eos_token_id is None:
        raise GrammarError(
            "the tokenizer has no eos_token_id; pass eos_token_id= to SlateRankGrammar."
        )
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    if not ids:
        raise GrammarError("eos_token_id is an empty list; give at least one EOS token id.")
    return tuple(dict.fromkeys(int(i) for i in ids))


def _build_tables(tokenizer: Any, n: int, m: int, k: int, eos: tuple[int, ...]) -> _Tables:
    def piece(text: str) -> list[int]:
        ids = _encode(tokenizer, text)
        if not ids:
            raise GrammarError(f"the tokenizer encodes {text!r} to no tokens.")
        back = _decode(tokenizer, ids)
        if back != text:
            raise GrammarError(
                f"the tokenizer does not round-trip {text!r} (decodes its tokens {ids} to "
                f"{back!r}); the grammar cannot be built for it."
            )
        if set(ids) & set(eos):
            raise GrammarError(f"the tokens of {text!r} include the EOS token.")
        return ids

    open_ids, sep_ids = piece(OPEN_SLATE), piece(SEPARATOR)
    mid_ids, close_ids = piece(MID), piece(CLOSE_RANK)
    number_ids = {x: piece(str(x)) for x in range(1, n + 1)}
    mid_gen_len = gen_length_from_ids(tokenizer, mid_ids)
    if not 1 <= mid_gen_len <= len(mid_ids):  # pragma: no cover - round-trip checked above
        raise GrammarError(f"cannot locate {CLOSE_SLATE} inside the tokens of {MID!r}.")

    t_open = _Trie("<slate> piece")
    t_open.insert(open_ids, 0, 1, None, None, repr(OPEN_SLATE))
    t_eos = _Trie("EOS")
    for e in eos:
        t_eos.insert([e], 0, 1, None, None, f"EOS token {e}")
    t_sep, t_mid, t_close = (
        _Trie("number+' '"),
        _Trie("number+</slate><rank>"),
        _Trie("number+</rank>"),
    )
    for x, ids in number_ids.items():
        bit = 1 << x
        commit = len(ids) + 1
        t_sep.insert(ids + sep_ids, x, bit, commit, None, f"number {x}")
        t_close.insert(ids + close_ids, x, bit, commit, None, f"number {x}")
        phases: list[str | None] = ["gen"] * len(ids) + [
            "gen" if d < mid_gen_len else "rank" for d in range(len(mid_ids))
        ]
        t_mid.insert(ids + mid_ids, x, bit, commit, phases, f"number {x}")
    for trie in (t_open, t_eos, t_sep, t_mid, t_close):
        trie.finalize()

    lengths = sorted((len(v) for v in number_ids.values()), reverse=True)
    shortest = sorted(len(v) for v in number_ids.values())
    fixed = len(open_ids) + (m - 1 + k - 1) * len(sep_ids) + len(mid_ids) + len(close_ids) + 1
    max_new = fixed + sum(lengths[:m]) + sum(lengths[:k])
    min_new = fixed + sum(shortest[:m]) + sum(shortest[:k])

    pad = getattr(tokenizer, "pad_token_id", None)
    sample_slate = list(range(n - m + 1, n + 1))
    sample_rank = sample_slate[::-1][:k]
    tables = _Tables(
        open_ids=open_ids,
        sep_ids=sep_ids,
        mid_ids=mid_ids,
        close_ids=close_ids,
        number_ids=number_ids,
        mid_gen_len=mid_gen_len,
        eos_ids=eos,
        pad_id=int(pad) if pad is not None else None,
        t_open=t_open,
        t_sep=t_sep,
        t_mid=t_mid,
        t_close=t_close,
        t_eos=t_eos,
        allowed_cache={},
        tensor_cache={},
        max_new_tokens=max_new,
        min_new_tokens=min_new,
    )
    # The concatenation of canonical pieces must decode to the canonical text.
    ids = _canonical_ids(tables, sample_slate, sample_rank)
    text = _decode(tokenizer, ids)
    if text != format_output(sample_slate, sample_rank):
        raise GrammarError(
            "the tokenizer does not decode a concatenation of canonical pieces to the "
            f"concatenated text ({text!r}); the grammar cannot be built for it."
        )
    logger.debug(
        "grammar tables for N=%d m=%d k=%d: %d/%d/%d trie nodes, max_new_tokens=%d",
        n,
        m,
        k,
        len(t_sep.mask),
        len(t_mid.mask),
        len(t_close.mask),
        max_new,
    )
    return tables


def _canonical_ids(t: _Tables, slate: Sequence[int], ranking: Sequence[int]) -> list[int]:
    out = list(t.open_ids)
    for i, x in enumerate(slate):
        if i:
            out += t.sep_ids
        out += t.number_ids[x]
    out += t.mid_ids
    for i, x in enumerate(ranking):
        if i:
            out += t.sep_ids
        out += t.number_ids[x]
    out += t.close_ids
    return out


def _get_tables(tokenizer: Any, n: int, m: int, k: int, eos: tuple[int, ...]) -> _Tables:
    key = (id(tokenizer), n, m, k, eos)
    with _TABLES_LOCK:
        hit = _TABLES.get(key)
    if hit is not None:
        return hit
    tables = _build_tables(tokenizer, n, m, k, eos)
    with _TABLES_LOCK:
        if key not in _TABLES:
            _TABLES[key] = tables
            try:  # drop the entry when the tokenizer is garbage-collected (id reuse)
                weakref.finalize(tokenizer, _TABLES.pop, key, None)
            except TypeError:  # pragma: no cover - not weak-referenceable
                pass
        return _TABLES[key]


# --------------------------------------------------------------------------------------
# grammar and per-row state
# --------------------------------------------------------------------------------------
_SLATE, _RANK, _CONST = 0, 1, 2


class SlateRankGrammar:
    """Token-level grammar of ``<slate>m numbers</slate><rank>k numbers</rank>EOS``.

    Args:
        tokenizer: any Hugging Face tokenizer (``encode`` / ``decode``).
        n_candidates: pool size N (numbers are 1..N).
        slate_size: m.
        rank_size: k.
        eos_token_id: the EOS id(s) that end a rollout; default ``tokenizer.eos_token_id``.
            Use the same id(s) as the model's ``generation_config.eos_token_id``, or
            ``generate`` will not stop on it (rows then emit EOS until max_new_tokens).

    Tables are built once per (tokenizer identity, N, m, k, EOS) and shared by every
    grammar object with the same key, so constructing a grammar again is cheap.
    """

    def __init__(
        self,
        tokenizer: Any,
        n_candidates: int = 20,
        slate_size: int = 10,
        rank_size: int = 5,
        *,
        eos_token_id: int | Sequence[int] | None = None,
    ) -> None:
        _check_sizes(n_candidates, slate_size, rank_size)
        self.tokenizer = tokenizer
        self.n_candidates = n_candidates
        self.slate_size = slate_size
        self.rank_size = rank_size
        eos = _eos_ids(tokenizer, eos_token_id)
        self._t = _get_tables(tokenizer, n_candidates, slate_size, rank_size, eos)
        t = self._t
        # segments: (trie, kind, default phase)
        segs: list[tuple[_Trie, int, str]] = [(t.t_open, _CONST, "gen")]
        segs += [(t.t_sep, _SLATE, "gen")] * (slate_size - 1) + [(t.t_mid, _SLATE, "gen")]
        segs += [(t.t_sep, _RANK, "rank")] * (rank_size - 1) + [(t.t_close, _RANK, "rank")]
        segs += [(t.t_eos, _CONST, "rank")]
        self._segments = tuple(segs)
        tries = (t.t_open, t.t_sep, t.t_mid, t.t_close, t.t_eos)
        self._seg_trie_index = tuple(tries.index(trie) for trie, _, _ in segs)
        self._pool_mask = ((1 << (n_candidates + 1)) - 1) & ~1
        done = list(t.eos_ids)
        if t.pad_id is not None and t.pad_id not in done:
            done.append(t.pad_id)
        self._done_allowed = tuple(done)

    # -- properties -------------------------------------------------------------------
    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """The EOS id(s) that end a rollout."""
        return self._t.eos_ids

    @property
    def max_new_tokens(self) -> int:
        """Length (EOS included) of the longest valid rollout: use as ``max_new_tokens``."""
        return self._t.max_new_tokens

    @property
    def min_new_tokens(self) -> int:
        """Length (EOS included) of the shortest valid rollout."""
        return self._t.min_new_tokens

    def piece_token_ids(self) -> dict[str, list[int]]:
        """Canonical token ids of the constant pieces and of every number (copies)."""
        t = self._t
        out = {OPEN_SLATE: list(t.open_ids), SEPARATOR: list(t.sep_ids), MID: list(t.mid_ids)}
        out[CLOSE_RANK] = list(t.close_ids)
        out.update({str(x): list(v) for x, v in t.number_ids.items()})
        return out

    def __repr__(self) -> str:
        return (
            f"SlateRankGrammar(N={self.n_candidates}, m={self.slate_size}, k={self.rank_size}, "
            f"eos={self.eos_token_ids}, max_new_tokens={self.max_new_tokens})"
        )

    # -- states -----------------------------------------------------------------------
    def new_state(self, forced_slate: Sequence[int] | None = None) -> DecodeState:
        """A fresh per-row state machine; ``forced_slate`` fixes the slate (m numbers)."""
        forced = None
        if forced_slate is not None:
            forced = self._check_slate(forced_slate, "forced_slate")
        return DecodeState(self, forced)

    def _check_slate(self, slate: Sequence[int], what: str) -> list[int]:
        values = [int(x) for x in slate]
        if len(values) != self.slate_size:
            raise ConfigError(f"{what} has {len(values)} numbers, expected {self.slate_size}.")
        for x in values:
            if not 1 <= x <= self.n_candidates:
                raise ConfigError(f"{what} number {x} is out of range 1..{self.n_candidates}.")
        if len(set(values)) != len(values):
            dup = next(x for x in values if values.count(x) > 1)
            raise ConfigError(f"{what} number {dup} appears more than once.")
        return values

    # -- helpers ----------------------------------------------------------------------
    def encode_output(
        self, slate: Sequence[int], ranking: Sequence[int], *, add_eos: bool = True
    ) -> list[int]:
        """Canonical token ids of a valid (slate, ranking): the only path the grammar allows.

        Raises ConfigError when the pair is not valid. Use for supervised targets and
        tests; for SmolLM2 it equals ``tokenizer.encode(format_output(slate, ranking))``.
        """
        s = self._check_slate(slate, "slate")
        r = [int(x) for x in ranking]
        if len(r) != self.rank_size:
            raise ConfigError(f"ranking has {len(r)} numbers, expected {self.rank_size}.")
        for x in r:
            if x not in s:
                raise ConfigError(f"ranked number {x} is not in the slate.")
        if len(set(r)) != len(r):
            raise ConfigError("ranking has a repeated number.")
        ids = _canonical_ids(self._t, s, r)
        return ids + [self._t.eos_ids[0]] if add_eos else ids

    def parse(self, text: str) -> ParsedOutput:
        """:func:`parse_output` with this grammar's N, m, k."""
        return parse_output(text, self.n_candidates, self.slate_size, self.rank_size)

    def phase_masks_from_ids(
        self, completion_ids: Sequence[int] | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`phase_masks_from_ids` with this grammar's tokenizer (any output)."""
        return phase_masks_from_ids(self.tokenizer, completion_ids)

    def token_phases(
        self, token_ids: Iterable[int], forced_slate: Sequence[int] | None = None
    ) -> list[str]:
        """Replay a constrained completion and return each token's phase ('gen'/'rank').

        Tokens after the rollout is done (EOS repeats, padding) get 'done'. Raises
        GrammarError on a token the grammar does not allow.
        """
        state = self.new_state(forced_slate)
        out = []
        for tok in token_ids:
            out.append(state.phase)
            state.advance(int(tok))
        return out

    def _allowed(self, seg: int, node: int, avail: int) -> tuple[int, ...]:
        trie = self._segments[seg][0]
        key = (self._seg_trie_index[seg], node, avail & trie.mask[node])
        cache = self._t.allowed_cache
        hit = cache.get(key)
        if hit is None:
            hit = tuple(tok for tok, _child, cm in trie.edges[node] if cm & avail)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = hit
        return hit

    def _as_tensor(self, allowed: tuple[int, ...]) -> torch.Tensor:
        cache = self._t.tensor_cache
        hit = cache.get(allowed)
        if hit is None:
            hit = torch.tensor(allowed, dtype=torch.long)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[allowed] = hit
        return hit


class DecodeState:
    """Where one row is in the grammar. Create with :meth:`SlateRankGrammar.new_state`.

    Drive it in any decoding loop: mask the logits to :meth:`allowed_token_ids`, pick a
    token, read :attr:`phase` (the phase of *that* token) if needed, then
    :meth:`advance` with it; stop when :attr:`done` (the last token advanced was EOS).
    """

    __slots__ = (
        "_g",
        "_seg",
        "_node",
        "_slate",
        "_ranking",
        "_slate_mask",
        "_ranked_mask",
        "_forced",
        "_n_tokens",
        "_committed",
    )

    def __init__(self, grammar: SlateRankGrammar, forced: list[int] | None) -> None:
        self._g = grammar
        self._seg = 0
        self._node = 0
        self._slate: list[int] = []
        self._ranking: list[int] = []
        self._slate_mask = 0
        self._ranked_mask = 0
        self._forced = forced
        self._n_tokens = 0
        self._committed = 0  # bit of the number committed in the current segment

    # -- read-only views --------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once EOS has been advanced."""
        return self._seg >= len(self._g._segments)

    @property
    def phase(self) -> str:
        """Phase of the next token: 'gen', 'rank', or 'done' after EOS."""
        if self.done:
            return "done"
        trie, _kind, default = self._g._segments[self._seg]
        return trie.phase[self._node] or default

    @property
    def slate(self) -> list[int]:
        """Slate numbers committed so far (a number is committed by its delimiter token)."""
        return list(self._slate)

    @property
    def ranking(self) -> list[int]:
        """Ranked numbers committed so far."""
        return list(self._ranking)

    @property
    def forced_slate(self) -> list[int] | None:
        """The forced slate, if any."""
        return list(self._forced) if self._forced is not None else None

    @property
    def num_tokens(self) -> int:
        """Tokens advanced so far (EOS included, post-EOS padding excluded)."""
        return self._n_tokens

    def clone(self) -> DecodeState:
        """An independent copy (e.g. for beam search or look-ahead)."""
        other = DecodeState(self._g, self._forced)
        other._seg, other._node = self._seg, self._node
        other._slate, other._ranking = list(self._slate), list(self._ranking)
        other._slate_mask, other._ranked_mask = self._slate_mask, self._ranked_mask
        other._n_tokens = self._n_tokens
        other._committed = self._committed
        return other

    # -- transitions ------------------------------------------------------------------
    def _avail(self) -> int:
        kind = self._g._segments[self._seg][1]
        if kind == _CONST:
            return _ALL
        if kind == _SLATE:
            if self._forced is not None:
                return 1 << self._forced[self._seg - 1]  # slate segments are 1..m
            return (self._g._pool_mask & ~self._slate_mask) | self._committed
        return (self._slate_mask & ~self._ranked_mask) | self._committed

    def allowed_token_list(self) -> tuple[int, ...]:
        """Allowed next token ids as a tuple (cached; do not mutate)."""
        if self.done:
            return self._g._done_allowed
        return self._g._allowed(self._seg, self._node, self._avail())

    def allowed_token_ids(self) -> torch.Tensor:
        """Allowed next token ids as a 1-D LongTensor (cached and shared: do not mutate)."""
        return self._g._as_tensor(self.allowed_token_list())

    def is_allowed(self, token_id: int) -> bool:
        """True when ``token_id`` may come next."""
        return int(token_id) in self.allowed_token_list()

    def advance(self, token_id: int) -> None:
        """Consume one token; raises GrammarError if it is not allowed.

        After EOS (``done``), further EOS / pad tokens are accepted and ignored.
        """
        tok = int(token_id)
        g = self._g
        if self.done:
            if tok in g._done_allowed:
                return
            raise GrammarError(
                f"token {tok} after the end of the rollout; only EOS/pad "
                f"{list(g._done_allowed)} may follow EOS."
            )
        trie, kind, _phase = g._segments[self._seg]
        child = trie.children[self._node].get(tok)
        avail = self._avail()
        if child is None or not (trie.mask[child] & avail):
            allowed = self.allowed_token_list()
            raise GrammarError(
                f"token {tok} ({_tok_text(g.tokenizer, tok)!r}) is not allowed after "
                f"{self._n_tokens} tokens (slate so far {self._slate}, ranking so far "
                f"{self._ranking}); allowed ids: {list(allowed)[:20]}"
                + (" …" if len(allowed) > 20 else "")
            )
        self._n_tokens += 1
        label = trie.commit[child]
        if label:
            self._committed = 1 << label
            if kind == _SLATE:
                self._slate.append(label)
                self._slate_mask |= 1 << label
            else:
                self._ranking.append(label)
                self._ranked_mask |= 1 << label
        if trie.terminal[child]:
            self._seg += 1
            self._node = 0
            self._committed = 0
        else:
            self._node = child

    def __repr__(self) -> str:
        return (
            f"DecodeState(phase={self.phase!r}, slate={self._slate}, ranking={self._ranking}, "
            f"tokens={self._n_tokens})"
        )


def _tok_text(tokenizer: Any, tok: int) -> str:
    try:
        return _decode(tokenizer, [tok])
    except Exception:  # noqa: BLE001 - only for an error message
        return "?"


# --------------------------------------------------------------------------------------
# logits masking and the transformers processor
# --------------------------------------------------------------------------------------
def apply_grammar_mask(
    scores: torch.Tensor, states: Sequence[DecodeState], *, inplace: bool = False
) -> torch.Tensor:
    """Return ``scores`` (rows, vocab) with every token a row's state forbids set to -inf.

    One gather/scatter for the whole batch; rows that are done allow only EOS/pad. Use
    it in a custom decoding loop: ``logits = apply_grammar_mask(logits, states)``.
    ``inplace=True`` overwrites ``scores`` instead of allocating a new (rows, vocab)
    tensor (cheaper; only when nothing else holds ``scores``).
    """
    if scores.shape[0] != len(states):
        raise GrammarError(
            f"scores has {scores.shape[0]} rows but {len(states)} states were given."
        )
    rows: list[int] = []
    cols: list[int] = []
    for i, st in enumerate(states):
        allowed = st.allowed_token_list()
        cols.extend(allowed)
        rows.extend([i] * len(allowed))
    r = torch.tensor(rows, dtype=torch.long, device=scores.device)
    c = torch.tensor(cols, dtype=torch.long, device=scores.device)
    if cols and max(cols) >= scores.shape[1]:
        raise GrammarError(
            f"allowed token id {max(cols)} is outside the logits width {scores.shape[1]}; "
            "the model's vocabulary does not cover the tokenizer's."
        )
    kept = scores[r, c]
    out = scores.fill_(float("-inf")) if inplace else torch.full_like(scores, float("-inf"))
    out[r, c] = kept
    return out


class SlateRankLogitsProcessor(LogitsProcessor):
    """Constrain ``model.generate`` to the slate/rank grammar (greedy, sampling, batches).

    Args:
        grammar: the :class:`SlateRankGrammar`.
        prompt_length: length of the (padded) prompt, i.e. ``input_ids.shape[1]`` passed
            to ``generate``. Optional: when None the first call is taken as the start.
        states: per-row initial states (one per generated row); default fresh states.
        forced_slates: per-row (length = rows) or per-prompt (length B, rows =
            B * num_return_sequences, repeated consecutively as ``generate`` does) slates
            for the decoupled baseline; None entries are free.
        inplace: mask ``scores`` in place instead of allocating a new (rows, vocab)
            tensor: ~10x cheaper on CPU (no page faults), safe with ``generate`` unless
            ``output_logits=True`` (which keeps the tensor it passes in).

    On each call the processor advances every unfinished row with the last token of
    ``input_ids`` (rows that are done ignore it: ``generate`` writes pad there), then
    masks (out of place: ``generate`` may keep the raw logits). It is stateful: use a new processor per ``generate`` call (cheap; the
    grammar's tables are cached) or call :meth:`reset`. After generation call
    :meth:`finish` with the returned sequences: :attr:`states` then holds the final
    per-row states (slate, ranking, done) — without it they lack the last token. Run it before top-k (``generate``
    applies user processors before its sampling warpers) and do not combine it with
    ``min_new_tokens`` / ``min_length`` (they may forbid the only legal token, EOS).
    """

    def __init__(
        self,
        grammar: SlateRankGrammar,
        prompt_length: int | None = None,
        *,
        states: Sequence[DecodeState] | None = None,
        forced_slates: Sequence[Sequence[int] | None] | None = None,
        inplace: bool = False,
    ) -> None:
        if states is not None and forced_slates is not None:
            raise ConfigError("give states or forced_slates, not both.")
        self.grammar = grammar
        self.prompt_length = prompt_length
        self.inplace = inplace
        self._initial_states = list(states) if states is not None else None
        self._forced = (
            [None if f is None else list(f) for f in forced_slates]
            if forced_slates is not None
            else None
        )
        self.states: list[DecodeState] | None = None
        self._last_len: int | None = None

    def reset(self) -> None:
        """Forget the rows (the next call starts a new generation)."""
        self.states = None
        self._last_len = None

    def _start(self, rows: int, cur_len: int) -> None:
        g = self.grammar
        if self._initial_states is not None:
            if len(self._initial_states) != rows:
                raise GrammarError(
                    f"{len(self._initial_states)} states were given but generate has {rows} rows."
                )
            self.states = [s.clone() for s in self._initial_states]
        elif self._forced is not None:
            f = self._forced
            if len(f) == rows:
                per_row = f
            elif rows % len(f) == 0:
                rep = rows // len(f)
                per_row = [x for x in f for _ in range(rep)]
            else:
                raise GrammarError(
                    f"{len(f)} forced slates do not match {rows} rows (need rows or a divisor)."
                )
            self.states = [g.new_state(x) for x in per_row]
        else:
            self.states = [g.new_state() for _ in range(rows)]
        logger.debug("grammar processor: %d rows, prompt length %d", rows, cur_len)

    def finish(self, sequences: torch.Tensor) -> list[DecodeState]:
        """Advance the states with the tokens the processor has not seen; return them.

        ``generate`` calls processors *before* sampling each token, so after it returns
        the states lack the last sampled token (usually the final EOS). Pass the full
        output of ``generate`` (prompt + completion, as returned) to catch up; rows that
        are already done ignore the extra tokens.
        """
        if self.states is None or self._last_len is None:
            raise GrammarError("finish() before the processor has seen any step.")
        if sequences.shape[0] != len(self.states):
            raise GrammarError(
                f"sequences has {sequences.shape[0]} rows but the processor tracks "
                f"{len(self.states)}."
            )
        tail = sequences[:, self._last_len :].tolist()
        for st, toks in zip(self.states, tail, strict=True):
            for tok in toks:
                if st.done:
                    break
                st.advance(tok)
        self._last_len = sequences.shape[1]
        return self.states

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        rows, cur_len = input_ids.shape
        fresh = (
            self.states is None
            or self._last_len is None
            or len(self.states) != rows
            or cur_len <= self._last_len
            or (self.prompt_length is not None and cur_len == self.prompt_length)
        )
        if fresh:
            if self.prompt_length is not None and cur_len != self.prompt_length:
                raise GrammarError(
                    f"first call has length {cur_len} but prompt_length={self.prompt_length}."
                )
            self._start(rows, cur_len)
        else:
            if cur_len != self._last_len + 1:
                raise GrammarError(
                    f"input_ids grew from {self._last_len} to {cur_len}; the processor must see "
                    "every step (use a new processor per generate call)."
                )
            assert self.states is not None
            for st, tok in zip(self.states, input_ids[:, -1].tolist(), strict=True):
                if not st.done:
                    st.advance(tok)
        self._last_len = cur_len
        assert self.states is not None
        return apply_grammar_mask(scores, self.states, inplace=self.inplace)
