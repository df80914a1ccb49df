"""Recommender: list structure, determinism, k beyond the slate, new histories, bad input,
threads, save/load. The LLM is the tiny random model, so only behaviour is checked, not quality."""

from __future__ import annotations

import threading

import pytest

from recgen import Recommendation, Recommender
from recgen.errors import (
    ConfigError,
    ModelNotFoundError,
    RequestError,
    RequestTypeError,
    UnknownItemError,
    UnknownUserError,
)
from recgen.serving.bundle import BundleConfig

USER = "1"


def _ids(recs: list[Recommendation]) -> list[str]:
    return [r.item_id for r in recs]


def test_list_structure(tiny_recommender, ml100k):
    recs = tiny_recommender.recommend(USER, k=10)
    assert [r.rank for r in recs] == list(range(1, 11))
    assert len(set(_ids(recs))) == 10
    assert not set(_ids(recs)) & set(ml100k.sequence(USER))  # exclude_seen
    cfg = tiny_recommender.config
    # the LLM's ranking (k items), then the rest of its slate (m - k), then retriever backfill
    assert [r.source for r in recs] == ["ranking"] * cfg.rank_size + ["slate"] * (10 - cfg.rank_size)
    from recgen.examples import display_titles

    titles = display_titles(ml100k)  # the titles the LLM sees, e.g. "Toy Story (1995)"
    assert all(r.title == titles[r.item_id] for r in recs)


def test_same_user_same_list(tiny_recommender):
    assert tiny_recommender.recommend(USER, k=8) == tiny_recommender.recommend(USER, k=8)


def test_k_beyond_slate_and_pool_is_filled_by_retriever_score(tiny_recommender, ml100k):
    cfg = tiny_recommender.config
    recs = tiny_recommender.recommend(USER, k=50)
    assert len(recs) == 50 and len(set(_ids(recs))) == 50
    assert _ids(recs)[:10] == _ids(tiny_recommender.recommend(USER, k=10))  # a longer list extends the shorter
    back = [r for r in recs if r.source == "retriever"]
    assert len(back) == 50 - cfg.slate_size
    assert [r.score for r in back] == sorted((r.score for r in back), reverse=True)
    slate = [r for r in recs if r.source == "slate"]
    assert [r.score for r in slate] == sorted((r.score for r in slate), reverse=True)


def test_k_up_to_catalogue_minus_history(tiny_recommender, ml100k):
    seen = len(set(ml100k.sequence(USER)))
    most = ml100k.num_items - seen
    assert len(tiny_recommender.recommend(USER, k=most)) == most
    with pytest.raises(RequestError, match=f"{most + 1}.*{seen} seen"):
        tiny_recommender.recommend(USER, k=most + 1)
    assert len(tiny_recommender.recommend(USER, k=most + 1, exclude_seen=False)) == most + 1


def test_batch_equals_single(tiny_recommender):
    users = ["1", "2", "5", "13", "100"]
    batch = tiny_recommender.recommend_batch(users, k=12, batch_size=3)
    assert [_ids(b) for b in batch] == [_ids(tiny_recommender.recommend(u, k=12)) for u in users]
    assert set(tiny_recommender.last_timings) == {"pool", "prompt", "decode", "backfill"}


def test_new_history(tiny_recommender, ml100k):
    history = ml100k.sequence("7")[:15]
    recs = tiny_recommender.recommend_for_history(history, k=12)
    assert len(recs) == 12 and not set(_ids(recs)) & set(history)
    assert recs == tiny_recommender.recommend_for_history(history, k=12)
    assert recs[0].source == "ranking"


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda r: r.recommend("no-such-user"), UnknownUserError, "'no-such-user'"),
    (lambda r: r.recommend(USER, k=0), RequestError, "k must be >= 1, got 0"),
    (lambda r: r.recommend(USER, k=-3), RequestError, "got -3"),
    (lambda r: r.recommend(USER, k="5"), RequestTypeError, "k must be an int, got str"),
    (lambda r: r.recommend(USER, k=True), RequestTypeError, "got bool"),
    (lambda r: r.recommend(USER, k=2.0), RequestTypeError, "got float"),
    (lambda r: r.recommend(1.5), RequestTypeError, "user_id must be a string id"),
    (lambda r: r.recommend(None), RequestTypeError, "got NoneType"),
    (lambda r: r.recommend_batch("1"), RequestTypeError, "list of user ids"),
    (lambda r: r.recommend_batch(["1", "nope"]), UnknownUserError, "'nope'"),
    (lambda r: r.recommend_batch(["1"], batch_size=0), RequestError, "batch_size"),
    (lambda r: r.recommend_for_history([]), RequestError, "history is empty"),
    (lambda r: r.recommend_for_history(["1", "999999"]), UnknownItemError, r"item_ids\[1\] = '999999'"),
    (lambda r: r.recommend_for_history("1 2 3"), RequestTypeError, "list of item ids"),
    (lambda r: r.recommend_for_history([1.0]), RequestTypeError, r"item_ids\[0\]"),
])
def test_bad_requests_name_the_value(tiny_recommender, call, error, message):
    with pytest.raises(error, match=message):
        call(tiny_recommender)


def test_int_user_id_is_accepted(tiny_recommender):
    assert tiny_recommender.recommend(1, k=5) == tiny_recommender.recommend("1", k=5)


def test_threads_get_the_same_answers(tiny_recommender):
    users = ["1", "2", "3", "4", "5", "6"]
    expected = {u: _ids(tiny_recommender.recommend(u, k=7)) for u in users}
    got: dict[tuple[int, str], list[str]] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for u in users[t % 3:] + users[: t % 3]:
                got[(t, u)] = _ids(tiny_recommender.recommend(u, k=7))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(got) == 4 * len(users)
    assert all(ids == expected[u] for (_, u), ids in got.items())


def test_save_load_round_trip(tiny_recommender, tiny_bundle):
    loaded = Recommender.load(tiny_bundle)
    assert loaded.config == tiny_recommender.config
    assert loaded.histories == tiny_recommender.histories
    for user in ("1", "42"):
        assert loaded.recommend(user, k=15) == tiny_recommender.recommend(user, k=15)


def test_load_errors(tmp_path, tiny_bundle):
    with pytest.raises(ModelNotFoundError, match="recgen-bundle.json is missing"):
        Recommender.load(tmp_path)
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    shutil.rmtree(broken / "retriever" / "index")
    with pytest.raises(ModelNotFoundError, match=r"incomplete: missing \['retriever/index'\]"):
        Recommender.load(broken)
    with pytest.raises(ModelNotFoundError, match="not a finished recgen training run"):
        Recommender.from_training_run(tmp_path)


def test_decoupled_slate_is_the_retrievers_top_m(tiny_recommender):
    import dataclasses

    cfg = dataclasses.replace(tiny_recommender.config, method="decoupled")
    rec = Recommender(tiny_recommender.policy, tiny_recommender.retriever, tiny_recommender.index,
                      tiny_recommender.titles, tiny_recommender.histories, cfg)
    recs = rec.recommend(USER, k=30)
    llm = {r.item_id for r in recs if r.source in ("ranking", "slate")}
    by_score = [r.item_id for r in sorted(recs, key=lambda r: -r.score)]
    assert llm == set(by_score[: cfg.slate_size])


def test_bundle_config_validates():
    with pytest.raises(ConfigError, match="rank_size <= slate_size <= pool_size"):
        BundleConfig(pool_size=5, slate_size=10)
    with pytest.raises(ConfigError, match="dtype"):
        BundleConfig(dtype="fp8")


def test_repeated_request_reuses_the_decoded_output(tiny_recommender, monkeypatch):
    import recgen.policy.rollout as rollout

    calls = []
    original = rollout.sample_groups
    monkeypatch.setattr(rollout, "sample_groups", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    tiny_recommender._decoded.clear()
    first = tiny_recommender.recommend("9", k=5)
    assert tiny_recommender.recommend("9", k=12)[:5] == first  # another k: same decode, longer list
    assert len(calls) == 1
    monkeypatch.setattr(tiny_recommender, "cache_size", 0)
    tiny_recommender._decoded.clear()
    tiny_recommender.recommend("9", k=5)
    tiny_recommender.recommend("9", k=5)
    assert len(calls) == 3 and not tiny_recommender._decoded
