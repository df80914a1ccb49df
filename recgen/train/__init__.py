"""Training: the F-GRPO / GRPO / decoupled objectives (:mod:`recgen.train.objectives`,
pure torch). Trainer code lives in sibling modules; import them explicitly."""

from recgen.train.objectives import (
    fgrpo_loss,
    group_advantages,
    grpo_advantages,
    grpo_loss,
    rank_only_loss,
    zero_advantage_fraction,
)

__all__ = [
    "fgrpo_loss",
    "group_advantages",
    "grpo_advantages",
    "grpo_loss",
    "rank_only_loss",
    "zero_advantage_fraction",
]
