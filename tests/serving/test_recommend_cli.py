"""``recgen recommend``: a readable table, JSON lines, clear errors."""

from __future__ import annotations

import json

from recgen.cli import main


def test_recommend_table(tiny_bundle, tiny_recommender, capsys):
    assert main(["recommend", "--model", str(tiny_bundle), "--user", "1", "-k", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "item", "title", "score", "source"]
    assert set(lines[1]) <= {"-", " "}
    expected = tiny_recommender.recommend("1", k=7)
    assert len(lines) == 2 + 7
    for line, rec in zip(lines[2:], expected, strict=True):
        assert line.split()[:2] == [str(rec.rank), rec.item_id] and line.endswith(rec.source)


def test_recommend_history_json(tiny_bundle, tiny_recommender, capsys):
    assert main(["recommend", "--model", str(tiny_bundle), "--history", "50", "172", "-k", "3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["item_id"] for r in rows] == [r.item_id for r in tiny_recommender.recommend_for_history(["50", "172"], 3)]


def test_recommend_errors(tiny_bundle, tmp_path, capsys):
    assert main(["recommend", "--model", str(tmp_path), "--user", "1"]) == 2
    assert "is not an MLflow model URI, a recommender folder" in capsys.readouterr().err
    assert main(["recommend", "--model", str(tiny_bundle), "--user", "nobody"]) == 2
    assert "user 'nobody' is not known" in capsys.readouterr().err
    assert main(["recommend", "--model", str(tiny_bundle), "--user", "1", "-k", "0"]) == 2
    assert "k must be >= 1" in capsys.readouterr().err
