"""The code in README.md, data/README.md and docs/*.md runs as written.

- the README's Python example (the block after ``<!-- test: readme-example ... -->``), with a
  tiny model and a 1-epoch retriever; the verbatim run with the real model is ``slow``, and
  so is docs/models.md's example (the real model with LoRA);
- docs/data.md: every ``<!-- sample FORMAT: PATH -->`` block is written to disk and loads as
  FORMAT; the Python example and every ``recgen data prepare`` command run on those files;
- every ``recgen ...`` line of a fenced shell block parses with the real CLI parser (nothing
  is trained: ``--help`` lines print help, the others are only parsed);
- every relative link points to an existing file, and every ``recgen/FILE.py:NAME``
  reference in docs/ names a function or class defined in that file.
"""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console", ""}
MARKER = re.compile(r"^\s*<!--\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(\S*)\s*$")


def code_blocks(path: Path) -> list[tuple[str, str, str]]:
    """(language, marker, body) of every top-level fenced block; ``marker`` is the text of an
    HTML comment on the closest non-blank line above the fence ('' if none)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, marker, i = [], "", 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            assert end < len(lines), f"{path.name}: unclosed code block at line {i + 1}"
            blocks.append((fence.group(1), marker, "\n".join(lines[i + 1 : end]) + "\n"))
            marker, i = "", end + 1
            continue
        comment = MARKER.match(line)
        if comment:
            marker = comment.group(1)
        elif line.strip():
            marker = ""
        i += 1
    return blocks


def marked_block(path: Path, name: str) -> str:
    found = [body for _, marker, body in code_blocks(path) if marker.split(" (")[0] == name]
    assert len(found) == 1, f"{path.name}: expected one block marked {name!r}, found {len(found)}"
    return found[0]


def recgen_commands() -> list[tuple[str, list[str]]]:
    """(``file: command``, argv after ``recgen``) for every recgen call in a shell block."""
    out = []
    for path in DOC_FILES:
        for lang, _, body in code_blocks(path):
            if lang not in SHELL_LANGS:
                continue
            for line in re.sub(r"\\\n\s*", " ", body).splitlines():
                for part in re.split(r"\s+(?:&&|\|\||;)\s+", line.strip().removeprefix("$ ")):
                    words = shlex.split(part, comments=True)
                    if words and words[-1] == "&":  # a background job
                        words = words[:-1]
                    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                        words = words[1:]  # VAR=value prefixes
                    if words and words[0] == "recgen":
                        out.append((f"{path.relative_to(ROOT)}: {part}", words[1:]))
    return out


COMMANDS = recgen_commands()


# --- the README's Python example ---------------------------------------------------------
def test_readme_example_is_short_and_uses_the_facade():
    code = marked_block(ROOT / "README.md", "test: readme-example")
    assert len(code.strip().splitlines()) <= 10
    assert "from recgen import Recommender" in code


def test_readme_example_runs(tiny_retriever_dir, tmp_path, monkeypatch, capsys):
    """The block as written, except that ``Recommender.build`` gets the tiny random model and
    the 1-epoch retriever (the real ones: ``test_readme_example_runs_verbatim``)."""
    from recgen.recommender import Recommender

    build, calls = Recommender.build, []

    def tiny_build(cls, model="smollm2-135m", dataset="ml-100k", **kwargs):
        calls.append((model, dataset, kwargs))
        return build("tiny", dataset, retriever_dir=tiny_retriever_dir)

    monkeypatch.setattr(Recommender, "build", classmethod(tiny_build))
    monkeypatch.chdir(tmp_path)
    code = marked_block(ROOT / "README.md", "test: readme-example")
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md example", "exec"), namespace)
    assert calls == [("smollm2-135m", "ml-100k", {})]
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 6 and [line.split()[0] for line in printed[:5]] == ["1", "2", "3", "4", "5"]
    assert all(line.split()[-1] in ("ranking", "slate", "retriever") for line in printed[:5])
    assert (tmp_path / "runs" / "recommender" / "recgen-bundle.json").is_file()
    loaded = namespace["rec"]  # the example ends with Recommender.load(...)
    assert isinstance(loaded, Recommender) and len(loaded.recommend("196", k=5)) == 5


@pytest.mark.slow
def test_readme_example_runs_verbatim(tmp_path, monkeypatch, capsys):
    """The README example with the real default model and pools (minutes on a fresh machine)."""
    monkeypatch.chdir(tmp_path)
    code = marked_block(ROOT / "README.md", "test: readme-example")
    exec(compile(code, "README.md example", "exec"), {"__name__": "readme_example"})
    assert len(capsys.readouterr().out.splitlines()) == 6


@pytest.mark.slow
def test_models_example_runs(capsys):
    """docs/models.md's Python example: the real default model with LoRA adapters."""
    code = marked_block(ROOT / "docs" / "models.md", "test: models-example")
    exec(compile(code, "docs/models.md example", "exec"), {"__name__": "models_example"})
    name, is_lora, trainable, total = capsys.readouterr().out.split()
    assert (name, is_lora) == ("smollm2-135m", "True") and 0 < int(trainable) < int(total)


# --- docs/data.md ------------------------------------------------------------------------
def data_samples() -> dict[str, list[tuple[str, str]]]:
    """FORMAT -> [(relative path, content)] of the ``<!-- sample FORMAT: PATH -->`` blocks."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for _, marker, body in code_blocks(ROOT / "docs" / "data.md"):
        m = re.match(r"^sample ([\w-]+): (\S+)$", marker)
        if m:
            out[m.group(1)].append((m.group(2), body))
    return out


@pytest.fixture
def samples_dir(tmp_path, monkeypatch):
    """The samples of docs/data.md written under ``tmp_path`` (the working directory), with
    the dataset cache in ``tmp_path/cache``."""
    for files in data_samples().values():
        for rel, body in files:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECGEN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_data_md_has_a_sample_of_every_format():
    from recgen.data import KNOWN_FORMATS

    assert set(data_samples()) == set(KNOWN_FORMATS)


@pytest.mark.parametrize("fmt", sorted(data_samples()))
def test_data_sample_loads_as_its_format(samples_dir, fmt):
    from recgen.data import load_dataset

    folders = {str(Path(rel).parent) for rel, _ in data_samples()[fmt]}
    assert len(folders) == 1, f"the {fmt} samples should share one folder"
    ds = load_dataset(folders.pop(), kcore=0)
    assert ds.info["format"] == fmt
    assert (ds.num_users, ds.num_items, ds.test.height) == (1, 3, 1)
    untitled = [i for i in ds.item_ids if ds.title(i) == i]
    assert untitled == ([] if fmt != "amazon-2023-csv" else ds.item_ids)


def test_data_md_python_example_runs(samples_dir, capsys):
    code = marked_block(ROOT / "docs" / "data.md", "test: data-example")
    exec(compile(code, "docs/data.md example", "exec"), {"__name__": "data_example"})
    assert "Dataset(" in capsys.readouterr().out


def test_data_md_prepare_commands_run(samples_dir, capsys):
    from recgen.cli import main

    prepare = [argv for where, argv in COMMANDS if where.startswith("docs/data.md") and argv[:2] == ["data", "prepare"]]
    assert prepare
    for argv in prepare:
        assert main(argv) == 0, argv
        assert "users:" in capsys.readouterr().out


# --- every recgen command line parses ----------------------------------------------------
def test_docs_show_recgen_commands():
    shown = {argv[0] for _, argv in COMMANDS if argv and not argv[0].startswith("-")}
    assert {"data", "pools", "train", "evaluate"} <= shown


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_recgen_command_parses(where, argv, capsys):
    from recgen.cli import build_parser

    parser = build_parser()
    if "--help" in argv or "-h" in argv:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 0, where
        assert "usage: recgen" in capsys.readouterr().out
        return
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: does not parse: {capsys.readouterr().err.strip()}")
    assert getattr(args, "func", None) is not None, f"{where}: names no command"


# --- links and code references -----------------------------------------------------------
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_relative_links_exist(path):
    missing = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file) if file else path
        if not linked.exists():
            missing.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            missing.append(target)
    assert not missing, f"{path.relative_to(ROOT)}: broken links {missing}"


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return out


CODE_REF = re.compile(r"`(recgen/[\w/]+\.py):([\w.]+)")


@pytest.mark.parametrize("path", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_code_references_exist(path):
    bad = []
    for file, name in CODE_REF.findall(path.read_text(encoding="utf-8")):
        source = ROOT / file
        text = source.read_text(encoding="utf-8") if source.is_file() else ""
        if not all(re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{part}\b", text, re.M) for part in name.split(".")):
            bad.append(f"{file}:{name}")
    assert not bad, f"{path.relative_to(ROOT)}: references to missing code {bad}"
