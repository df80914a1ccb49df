"""Prefix-free tries of canonical token sequences, the building block of the grammar.

One trie holds the alternatives of one decision point ("number n followed by the next
delimiter", or a constant piece); each path carries the number it spells as a label, so
a row's set of still-available numbers is a bitmask that prunes the trie's edges.
"""

from __future__ import annotations

from collections.abc import Sequence

from recgen.errors import GrammarError


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
