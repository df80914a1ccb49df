"""The slate-then-rank output grammar: constrained decoding, parsing and phase masks.

One rollout writes (defaults N = 20 candidates, m = 10 slate, k = 5 ranking)::

    <slate>4 17 2 9 11 3 20 8 5 13</slate><rank>17 4 9 2 11</rank><EOS>

m distinct 1-based pool positions, then k distinct positions taken from the slate.

Design
------
* Precomputed (:mod:`.tables`, :mod:`.trie`), once per (tokenizer identity, N, m, k,
  EOS): the canonical token ids of every piece (``<slate>``, each number, ``" "``,
  ``</slate><rank>``, ``</rank>``) and five prefix-free tries whose paths are
  "number + next delimiter" (or a constant piece), labelled with the number.
* A step (:mod:`.state`): a :class:`DecodeState` walks one trie per segment; the allowed
  tokens are the children of its node whose label set meets the still-available numbers
  (a bitmask), cached per (node, available) — a dict lookup, never a vocabulary pass.
  :mod:`.processor` turns a batch of states into a -inf logits mask
  (:func:`apply_grammar_mask`, :class:`SlateRankLogitsProcessor` for ``generate``).
* Phases (:mod:`.phases`): ``gen`` runs through the token that completes ``</slate>``,
  ``rank`` covers the rest and the EOS; the same rule applies to unconstrained outputs.
* Text (:mod:`.parser`): :func:`parse_output` / :func:`is_valid` check any decoded
  completion; :func:`format_output` writes the canonical text.
"""

from __future__ import annotations

from recgen.policy.grammar.parser import (
    CLOSE_RANK,
    DEFAULT_END_MARKERS,
    MID,
    OPEN_SLATE,
    SEPARATOR,
    ParsedOutput,
    format_output,
    is_valid,
    parse_output,
)
from recgen.policy.grammar.parser import CLOSE_SLATE as CLOSE_SLATE
from recgen.policy.grammar.parser import OPEN_RANK as OPEN_RANK
from recgen.policy.grammar.phases import (
    gen_length_from_ids,
    phase_masks_from_ids,
    phase_masks_from_text,
)
from recgen.policy.grammar.processor import SlateRankLogitsProcessor, apply_grammar_mask
from recgen.policy.grammar.state import DecodeState, SlateRankGrammar
from recgen.policy.grammar.trie import _Trie as _Trie

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
