"""The report as a list of blocks (headings, paragraphs, tables, figures), rendered to markdown
by :mod:`recgen.report.markdown` and to HTML by :mod:`recgen.report.html`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recgen.eval.tables import LOWER_IS_BETTER


@dataclass
class Cell:
    text: str
    detail: str = ""  # e.g. the CI; markdown: "text detail", HTML: a second, smaller line
    bold: bool = False


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str
    kind: str = "p"  # "p" or "note"


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Document:
    title: str
    blocks: list[Any] = field(default_factory=list)

    def add(self, *blocks: Any) -> None:
        self.blocks.extend(blocks)


def _f(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _test_cell(t: dict[str, Any] | None) -> Cell:
    """A paired difference: value, CI and the two p-values (bootstrap / Wilcoxon)."""
    if t is None:
        return Cell("—")
    return Cell(_f(t["mean_diff"], sign=True),
                f"[{_f(t['ci_lo'], sign=True)}, {_f(t['ci_hi'], sign=True)}]\n"
                f"p {_p(t['p_bootstrap'])} / {_p(t['p_wilcoxon'])}")


def comparison_blocks(comp: dict[str, Any]) -> list[Any]:
    """Mean [95% CI] per metric (best in bold) and the paired test on the primary metric."""
    ref, primary = comp["reference"], comp["primary"]
    header = ["method", "users", *comp["metrics"], f"{ref} − method, {primary}"]
    rows = []
    for name, m in comp["methods"].items():
        cells = [Cell(name + (" (ref.)" if name == ref else "")), Cell(str(m["users"]))]
        for metric in comp["metrics"]:
            s = m["metrics"].get(metric)
            cells.append(Cell("—") if s is None else Cell(
                _f(s["mean"]), f"[{_f(s['lo'])}, {_f(s['hi'])}]", bold=name in comp["best"].get(metric, ())))
        cells.append(Cell("reference") if name == ref else _test_cell(comp["paired"].get(name, {}).get(primary)))
        rows.append(cells)
    lower = ", ".join(sorted(m for m in comp["metrics"] if m in LOWER_IS_BETTER))
    caption = (f"Mean over users [95% bootstrap CI]. Bold: best in the column (lower is better for {lower}; "
               f"not marked where every method ties). Last column: {ref} minus the method on {primary}, paired "
               "over the same users [95% CI], p-values of the paired bootstrap / Wilcoxon signed-rank test.")
    return [Table(header, rows, caption)]


def paired_blocks(comp: dict[str, Any]) -> list[Any]:
    """Every metric's paired difference (reference − method) with its CI and p-values."""
    ref = comp["reference"]
    if not comp["paired"]:
        return [Para("Only one method: no paired tests.", "note")]
    rows = []
    for name, tests in comp["paired"].items():
        n = max((t["n"] for t in tests.values()), default=0)
        rows.append([Cell(name), Cell(str(n)), *(_test_cell(tests.get(m)) for m in comp["metrics"])])
    return [Table(["method", "users", *comp["metrics"]], rows,
                  f"{ref} minus the method, per metric, paired over the same users: mean difference, "
                  "[95% CI], p-values (two-sided; shifted paired bootstrap with 10,000 resamples / "
                  "Wilcoxon signed-rank).")]


def error_split_blocks(comp: dict[str, Any], figure: Path | None) -> list[Any]:
    rows = [[Cell(name), Cell(_f(s["ranked_first"])), Cell(_f(s["rank_drop"])), Cell(_f(s["slate_miss"]))]
            for name, s in comp["error_split"].items()]
    blocks: list[Any] = [Table(["method", "target ranked first", "rank drop", "slate miss"], rows,
                               "Share of users. Slate miss: the target is not in the slate (generation "
                               "error); rank drop: in the slate but not ranked first (ranking error).")]
    if figure is not None:
        blocks.append(Figure(figure, f"Where the target ends up ({comp['title']})."))
    return blocks


def pool_blocks(pools: list[dict[str, Any]]) -> list[Any]:
    if not pools:
        return [Para("No pool summary found (pools cached under ~/.cache/recgen/pools/<name>/"
                     "{inject,retrieve}/summary.json).", "note")]
    splits = sorted({s for p in pools for s in p["pool_recall"]}, key=["train", "valid", "test"].index)
    rows = [[Cell(p["folder"]), Cell(str(p["mode"])), Cell(str(p["size"])),
             *(Cell(_f(p["pool_recall"].get(s))) for s in splits)] for p in pools]
    return [Table(["pool folder", "mode", "N", *(f"recall@N {s}" for s in splits)], rows,
                  "Share of users whose held-out item is among the retriever's top N (before any "
                  "injection: in inject mode it is put into the pool afterwards for the pool protocol).")]


def training_blocks(runs: list[dict[str, Any]]) -> list[Any]:
    rl = [r for r in runs if r["kind"] == "rl"]
    sft = [r for r in runs if r["kind"] == "sft"]
    blocks: list[Any] = []
    if rl:
        rows = []
        for r in rl:
            g, k = r["reward_gen"], r["reward_rank"]
            rows.append([Cell(r["label"]), Cell(str(r["steps"])),
                         Cell(_f(g["mean"]), f"{_f(g['first'])} → {_f(g['last'])}"),
                         Cell(_f(k["mean"]), f"{_f(k['first'])} → {_f(k['last'])}"),
                         Cell(_f(r["frac_zero_adv_gen"]["mean"], 2)), Cell(_f(r["frac_zero_adv_rank"]["mean"], 2)),
                         Cell(_f(r["median_step_s"], 1))])
        blocks.append(Table(["run", "steps", "reward_gen", "reward_rank", "no-signal groups gen",
                             "no-signal groups rank", "median s/step"], rows,
                            "Per-phase rewards: mean over all steps, and the mean of the first quarter "
                            "of steps → the last quarter. No-signal groups: share of prompt groups whose "
                            "rewards in that phase are all equal (zero advantage)."))
    if sft:
        rows = [[Cell(r["label"]), Cell(str(r["steps"])), Cell(_f(r["loss"]["first"])), Cell(_f(r["loss"]["last"]))]
                for r in sft]
        blocks.append(Table(["SFT run", "steps", "first loss", "last loss"], rows))
    rows = [[Cell(r["label"]), Cell(str(r["method"])), Cell(str(r["preset"])), Cell(str(r["model"])),
             Cell(str(r["init_from"])), Cell(_f(r["seconds"], 0)), Cell(r["source"])] for r in runs]
    blocks.append(Table(["run", "method", "preset", "model", "init from", "seconds", "folder"], rows))
    return blocks


def dataset_blocks(datasets: dict[str, dict[str, Any]]) -> list[Any]:
    rows, notes = [], []
    for name, info in datasets.items():
        if "error" in info:
            notes.append(Para(f"{name}: statistics unavailable ({info['error']}).", "note"))
            continue
        s = info["stats"]
        rows.append([Cell(name), Cell(f"{s['users']:,}"), Cell(f"{s['items']:,}"), Cell(f"{s['interactions']:,}"),
                     Cell(f"{s['mean_sequence_length']:.1f}"), Cell(f"{s['density']:.4f}")])
    head = [Table(["dataset", "users", "items", "interactions", "mean sequence", "density"], rows)] if rows else []
    return head + notes
