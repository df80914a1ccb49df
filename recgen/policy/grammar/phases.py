"""Phase masks (gen / rank) of arbitrary token sequences, constrained or not.

``gen`` covers the slate tokens from ``<slate>`` through ``</slate>``; ``rank`` covers
``<rank>`` through ``</rank>`` and the final EOS. A token that straddles the boundary
(SmolLM2's ``><``) belongs to ``gen``: the gen phase ends with the token whose decoding
*completes* the text ``</slate>``. :func:`phase_masks_from_ids` applies that rule to any
output by decoding prefixes, so it agrees with :attr:`DecodeState.phase` on constrained
outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from recgen.policy.grammar.parser import CLOSE_SLATE


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
    from recgen.policy.grammar.state import SlateRankGrammar  # circular at import time

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
