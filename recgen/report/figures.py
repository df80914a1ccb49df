"""The report's figures (matplotlib, Agg backend), each written as a PNG file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from recgen.report.inputs import TrainingRun  # noqa: E402

logger = logging.getLogger(__name__)

SPLIT_COLOURS = {"ranked_first": "#2b8a3e", "rank_drop": "#f59f00", "slate_miss": "#c92a2a"}
SPLIT_LABELS = {"ranked_first": "target ranked first", "rank_drop": "rank drop (in slate, not first)",
                "slate_miss": "slate miss (not in slate)"}
DPI = 110


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    logger.debug("wrote %s", path)
    return path


def error_split_figure(split: dict[str, dict[str, float]], title: str, path: Path) -> Path:
    """Stacked horizontal bars per method: ranked first / rank drop / slate miss (sum 1)."""
    names = list(split)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(names) + 1.3), layout="constrained")
    left = np.zeros(len(names))
    y = np.arange(len(names))[::-1]
    for part, colour in SPLIT_COLOURS.items():
        vals = np.array([split[n][part] for n in names])
        ax.barh(y, vals, left=left, color=colour, label=SPLIT_LABELS[part], height=0.6)
        for yi, v, lft in zip(y, vals, left, strict=True):
            if v >= 0.06:
                ax.text(lft + v / 2, yi, f"{v:.2f}", ha="center", va="center", color="white", fontsize=8)
        left += vals
    ax.set_yticks(y, names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of users")
    ax.set_title(title, fontsize=10)
    fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return _save(fig, path)


def ci_figure(methods: dict[str, Any], metric: str, title: str, path: Path) -> Path:
    """Mean and 95% CI of one metric per method (a forest plot)."""
    names = list(methods)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2), layout="constrained")
    y = np.arange(len(names))[::-1]
    for yi, name in zip(y, names, strict=True):
        s = methods[name]["metrics"][metric]
        ax.plot([s["lo"], s["hi"]], [yi, yi], color="#1c7ed6", lw=2)
        ax.plot(s["mean"], yi, "o", color="#1c7ed6")
    ax.set_yticks(y, names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel(f"{metric} (mean, 95% bootstrap CI over users)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if values.size < window or window <= 1:
        return values
    kernel = np.ones(window) / window
    head = np.array([values[: i + 1].mean() for i in range(window - 1)])
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def _curve(ax, run: TrainingRun, key: str, colour, window: int) -> bool:
    pts = [(s["step"], s[key]) for s in run.steps if isinstance(s.get(key), int | float) and "step" in s]
    if not pts:
        return False
    x, v = (np.array(a, dtype=float) for a in zip(*pts, strict=True))
    ax.plot(x, v, color=colour, alpha=0.25, lw=1)
    ax.plot(x, _smooth(v, window), color=colour, lw=2, label=run.label)
    return True


def _legend(fig, axes) -> None:
    """One legend under the panels, from the first panel that has labelled lines (none: no legend)."""
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        if labels:
            fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), frameon=False)
            return


def reward_figure(runs: list[TrainingRun], path: Path, window: int = 5) -> Path:
    """reward_gen and reward_rank per step, one colour per run (faint: raw; bold: moving mean)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        for ax, key in zip(axes, ("reward_gen", "reward_rank"), strict=True):
            _curve(ax, run, key, colours[i % len(colours)], window)
    titles = ("generation reward (slate coverage)", "ranking reward (NDCG@k of the ranking)")
    for ax, t in zip(axes, titles, strict=True):
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"mean over rollouts (bold: {window}-step moving mean)")
    _legend(fig, axes)
    return _save(fig, path)


def diagnostics_figure(runs: list[TrainingRun], path: Path, window: int = 5) -> Path:
    """Per step: zero-advantage group fractions, clip fraction, KL and seconds per step."""
    panels = [("frac_zero_adv_gen", "groups with no generation signal"),
              ("frac_zero_adv_rank", "groups with no ranking signal"),
              ("clip_frac", "clip fraction (any phase)"), ("kl", "KL to the reference"),
              ("step_s", "seconds per step")]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 3.6), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        for ax, (key, _) in zip(axes, panels, strict=True):
            if key == "clip_frac":
                keys = sorted({k for s in run.steps for k in s if k.startswith("clip_frac_")})
                for k in keys:
                    _curve(ax, run, k, colours[i % len(colours)], window)
            else:
                _curve(ax, run, key, colours[i % len(colours)], window)
    for ax, (_, title) in zip(axes, panels, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)


def loss_figure(runs: list[TrainingRun], path: Path, window: int = 5) -> Path:
    """Supervised (SFT) loss per step, one line per run."""
    fig, ax = plt.subplots(figsize=(6, 3))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        _curve(ax, run, "loss", colours[i % len(colours)], window)
    ax.set_title("SFT loss (token cross-entropy)", fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)
