"""Per-tokenizer precomputed tables: canonical pieces, the five tries and the caches.

The output is a concatenation of *pieces*, each forced to one canonical token sequence:
``"<slate>"``, every number ``str(n)`` for n in 1..N, the separator ``" "``,
``"</slate><rank>"`` and ``"</rank>"``, each encoded *as one unit* with
``tokenizer.encode(piece, add_special_tokens=False)``, followed by one EOS token. A
tokenizer may merge across a piece boundary (SmolLM2 writes ``"</slate><rank>"`` as
``</ sl ate >< rank >``); the grammar never lets a token span two pieces except inside
one constant piece. At every decision point the alternatives are "number n followed by
the next delimiter" (``" "``, ``"</slate><rank>"`` or ``"</rank>"``); these token
sequences are stored in a :class:`~recgen.policy.grammar.trie._Trie`, so number prefixes
are handled exactly (after ``1`` both ``7`` (-> 17) and the delimiter are legal when 1
and 17 are both still available).

For SmolLM2 (digits and ``" "`` are single tokens) the canonical token path of a text
equals ``tokenizer.encode(text)``, so a supervised target tokenised the ordinary way
matches what the grammar allows (:meth:`SlateRankGrammar.encode_output` builds it).

Tables are built once per (tokenizer identity, N, m, k, EOS) by :func:`_get_tables` and
shared (thread-safe, dropped when the tokenizer is garbage-collected).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from recgen.errors import GrammarError
from recgen.policy.grammar.parser import (
    CLOSE_RANK,
    CLOSE_SLATE,
    MID,
    OPEN_SLATE,
    SEPARATOR,
    format_output,
)
from recgen.policy.grammar.phases import _decode, gen_length_from_ids
from recgen.policy.grammar.trie import _Trie

logger = logging.getLogger(__name__)


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
