"""The token-level grammar (:class:`SlateRankGrammar`) and the per-row :class:`DecodeState`.

A rollout is a sequence of *segments*: ``<slate>``, m-1 times "number + ``" "``", one
"number + ``</slate><rank>``", k-1 times "number + ``" "``", one "number + ``</rank>``",
then EOS; each segment walks one trie of :mod:`recgen.policy.grammar.tables`. A step is a
dict lookup plus a loop over the children of one trie node, cached per (node, available
numbers) — microseconds per row, never a pass over the vocabulary. Numbers still
available are bitmasks (pool minus slate in the slate, slate minus ranked in the
ranking, one bit for a forced slate).

Errors: bad sizes or a bad forced slate raise :class:`recgen.errors.ConfigError` (a
``ValueError``); a tokenizer the grammar cannot be built for, or an illegal token given
to :meth:`DecodeState.advance`, raises :class:`recgen.errors.GrammarError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from recgen.errors import ConfigError, GrammarError
from recgen.policy.grammar.parser import (
    CLOSE_RANK,
    MID,
    OPEN_SLATE,
    SEPARATOR,
    ParsedOutput,
    _check_sizes,
    parse_output,
)
from recgen.policy.grammar.phases import _decode, phase_masks_from_ids
from recgen.policy.grammar.tables import _CACHE_LIMIT, _canonical_ids, _eos_ids, _get_tables
from recgen.policy.grammar.trie import _Trie

_ALL = -1  # "every label available" for constant pieces (any mask & -1 != 0)

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
