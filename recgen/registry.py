"""The MLflow model registry: package a training run as one pyfunc model and promote it.

``main(RegisterConfig(run_dir=...))``:

1. reads the run's validation NDCG@5 (pool protocol) from ``RUN/result.json``
   (``eval → ndcg@5 → mean``, written by ``recgen train``); evaluates ``RUN/final`` on the
   validation users when it is missing;
2. packages policy + retriever + FAISS index + item table as one bundle
   (``recgen.recommender.Recommender.from_training_run(RUN).save(BUNDLE)``) and logs it as a
   pyfunc model registered as ``recgen-<dataset>`` (``recgen.serving.pyfunc.log_model``);
3. points alias ``candidate`` at the new version and moves ``champion`` to it only when its
   score beats the current champion's (a model without a champion gets one), recording the
   decision and both numbers as tags/metrics of the registering run and of the version.

``resolve_model(uri_or_dir)`` turns ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
``runs:/…`` or a bundle folder into a local bundle folder; registry lookups that fail raise
:class:`recgen.errors.ModelNotFoundError` naming the URI, model and alias.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError, ModelNotFoundError
from recgen.serving.bundle import MANIFEST as BUNDLE_MANIFEST
from recgen.tracking import MlflowTracker, Tracker, dataset_label, metric_key

logger = logging.getLogger(__name__)

CANDIDATE, CHAMPION = "candidate", "champion"


@dataclass(frozen=True)
class RegisterConfig:
    """What ``recgen register`` / the MLflow ``register`` entry point need."""

    run_dir: str = field(metadata={"help": "a `recgen train` output folder (holds final/ and result.json)"})
    name: str | None = field(default=None, metadata={"help": "registered model name (default recgen-<dataset>)"})
    metric: str = field(default="ndcg@5", metadata={"help": "validation metric (pool protocol) that decides"})
    bundle_dir: str | None = field(default=None, metadata={"help": "where the bundle is written (default RUN/bundle)"})
    eval_users: int = field(default=300, metadata={"help": "validation users when the score must be computed"})
    experiment: str | None = field(default=None, metadata={"help": "MLflow experiment of the registering run"})

    def __post_init__(self) -> None:
        run = Path(self.run_dir)
        if not (run / "final" / "recgen.json").is_file():
            raise ModelNotFoundError(f"training run {self.run_dir!r}: no final/recgen.json there (expected the "
                                     "--out-dir of a finished `recgen train`)")
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ConfigError(f"model name {self.name!r}: use letters, digits, '.', '_' and '-'")
        if self.eval_users < 0:
            raise ConfigError(f"eval_users must be >= 0, got {self.eval_users}")
        if not re.fullmatch(r"(ndcg|recall)@\d+|coverage", self.metric):
            raise ConfigError(f"metric {self.metric!r}: expected ndcg@K, recall@K or coverage")


@dataclass
class Registration:
    """The outcome of one registration (also logged on the run and the model version)."""

    name: str
    version: int
    model_uri: str
    metric: str
    score: float
    champion_score: float | None  # the previous champion's, None if there was none
    previous_champion: int | None
    promoted: bool
    champion_version: int
    run_id: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_name(dataset: str) -> str:
    """``recgen-ml-100k``; a dataset path gives its sanitised file stem (``recgen-All_Beauty``)."""
    return f"recgen-{dataset_label(dataset)}"


def run_meta(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "final" / "recgen.json").read_text())


def validation_score(run_dir: str | Path, metric: str = "ndcg@5", *, eval_users: int = 300) -> float:
    """The run's validation ``metric`` (pool protocol) from result.json, else by evaluating it."""
    result = Path(run_dir) / "result.json"
    if result.is_file():
        value = json.loads(result.read_text()).get("eval", {}).get(metric, {}).get("mean")
        if value is not None:
            return float(value)
    logger.info("%s has no validation %s: evaluating %s/final", run_dir, metric, run_dir)
    return float(evaluate_run(run_dir, eval_users=eval_users)[metric]["mean"])


def evaluate_run(run_dir: str | Path, *, eval_users: int = 300, seed: int = 0) -> dict[str, Any]:
    """Pool-protocol metrics of ``RUN/final`` on its training pools' validation users."""
    from recgen.data import load_dataset
    from recgen.eval.runner import EvalSetup, evaluate_methods
    from recgen.pipeline import ensure_pools

    meta = run_meta(run_dir)
    ds = load_dataset(meta["dataset"])
    pools = ensure_pools(ds, dataset=meta["dataset"], size=meta["pool_size"], folder=meta.get("pools"))
    prompt = meta.get("prompt", {})
    setup = EvalSetup(protocol="pool", split="valid", users=eval_users, seed=seed, pool_size=meta["pool_size"],
                      slate_size=meta["slate_size"], rank_size=meta["rank_size"],
                      history_len=prompt.get("history_len", 10), max_title_tokens=prompt.get("max_title_tokens", 16))
    method = meta.get("method", "model")
    return evaluate_methods(ds, pools, [f"{method}={Path(run_dir) / 'final'}"], setup)[method].summary


# --- registry lookups --------------------------------------------------------------------
def _client():
    import mlflow

    return mlflow.MlflowClient()


def get_alias(name: str, alias: str):
    """The model version ``alias`` points at, or None (also when the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _not_found(uri: str, err: Exception) -> ModelNotFoundError:
    """A ModelNotFoundError that names the URI and, for models:/NAME@ALIAS, the model and alias."""
    from mlflow.exceptions import MlflowException

    m = re.fullmatch(r"models:/([^/@]+)(?:@(.+)|/(.+))?", uri)
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    if m:
        name, alias, version = m.groups()
        try:
            aliases = _client().get_registered_model(name).aliases
        except MlflowException:
            return ModelNotFoundError(f"{uri}: registered model {name!r} does not exist ({detail})")
        if alias:
            return ModelNotFoundError(f"{uri}: model {name!r} has no alias {alias!r} "
                                      f"(aliases: {', '.join(sorted(aliases)) or 'none'})")
        if version:
            return ModelNotFoundError(f"{uri}: model {name!r} has no version {version!r} ({detail})")
    return ModelNotFoundError(f"{uri}: not found ({detail})")


def is_model_uri(source: str) -> bool:
    return bool(re.match(r"^(models|runs|mlflow-artifacts):/", str(source)))


def download_model(uri: str, dst: str | Path | None = None) -> Path:
    """Download a model URI's files (``models:/…``, ``runs:/…``) to ``dst`` (default: a cache folder)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if dst is None:
        from recgen.pipeline import cache_root

        resolved = uri
        try:
            m = re.fullmatch(r"models:/([^/@]+)@(.+)", uri)
            if m:  # an alias moves: cache by the version it points at now
                mv = _client().get_model_version_by_alias(*m.groups())
                resolved = f"models:/{mv.name}/{mv.version}"
        except MlflowException as e:
            raise _not_found(uri, e) from e
        key = hashlib.sha256(f"{mlflow.get_tracking_uri()}|{resolved}".encode()).hexdigest()[:16]
        dst = cache_root() / "models" / key
        if (Path(dst) / ".complete").exists():
            return Path(dst)
        uri = resolved
    Path(dst).mkdir(parents=True, exist_ok=True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except MlflowException as e:
        raise _not_found(uri, e) from e
    (Path(dst) / ".complete").write_text(uri)
    return local


def find_bundle(folder: str | Path) -> Path:
    """The bundle folder (holding recgen-bundle.json) at or below ``folder``."""
    folder = Path(folder)
    if (folder / BUNDLE_MANIFEST).is_file():
        return folder
    hits = sorted(p.parent for p in folder.rglob(BUNDLE_MANIFEST))
    if not hits:
        raise ModelNotFoundError(f"{folder}: no recgen bundle ({BUNDLE_MANIFEST}) in this folder")
    return hits[0]


def resolve_model(source: str | Path) -> Path:
    """A local bundle folder for a model URI or a bundle folder."""
    if is_model_uri(str(source)):
        return find_bundle(download_model(str(source)))
    path = Path(source)
    if not path.exists():
        raise ModelNotFoundError(f"model {str(source)!r}: no such folder, and not a models:/ or runs:/ URI")
    return find_bundle(path)


def resolve_policy_folder(source: str | Path) -> Path:
    """The LLM folder (weights, tokenizer, recgen.json) of a model URI, a bundle or a model folder."""
    if not is_model_uri(str(source)) and (Path(source) / "recgen.json").is_file():
        return Path(source)  # already a model folder (a run's final/)
    policy = resolve_model(source) / "policy"
    if not (policy / "recgen.json").is_file():
        raise ModelNotFoundError(f"model {str(source)!r}: the bundle has no policy/recgen.json")
    return policy


# --- registration ------------------------------------------------------------------------
def package(run_dir: str | Path, bundle_dir: str | Path) -> Path:
    """Write the self-contained bundle of a training run (policy, retriever, index, items)."""
    from recgen.recommender import Recommender

    Recommender.from_training_run(Path(run_dir)).save(Path(bundle_dir))
    return Path(bundle_dir)


def decide(name: str, version: int, score: float, metric: str = "ndcg@5") -> Registration:
    """Point ``candidate`` at ``version``; move ``champion`` there when ``score`` beats it."""
    client = _client()
    tag = f"valid_{metric_key(metric)}"
    client.set_model_version_tag(name, str(version), tag, repr(float(score)))
    client.set_registered_model_alias(name, CANDIDATE, str(version))
    current = get_alias(name, CHAMPION)
    champ_score: float | None = None
    if current is None:
        promoted, reason = True, "no champion yet"
    elif tag not in current.tags:
        promoted, reason = True, f"champion v{current.version} has no recorded {tag}"
    else:
        champ_score = float(current.tags[tag])
        promoted = score > champ_score
        reason = (f"{metric} {score:.4f} {'>' if promoted else '<='} champion v{current.version}'s "
                  f"{champ_score:.4f}")
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, str(version))
    decision = "promoted" if promoted else "kept"
    client.set_model_version_tag(name, str(version), "decision", f"{decision}: {reason}")
    logger.info("%s v%s: %s (%s)", name, version, decision, reason)
    return Registration(name=name, version=int(version), model_uri=f"models:/{name}/{version}", metric=metric,
                        score=float(score), champion_score=champ_score,
                        previous_champion=int(current.version) if current is not None else None,
                        promoted=promoted, champion_version=int(version) if promoted else int(current.version),
                        reason=reason)


def log_decision(tracker: Tracker, reg: Registration) -> None:
    """The decision and both numbers on the registering run."""
    key = metric_key(reg.metric)
    tracker.set_tags({"registry.name": reg.name, "registry.version": reg.version,
                      "registry.decision": "promoted" if reg.promoted else "kept", "registry.reason": reg.reason,
                      "registry.champion_version": reg.champion_version})
    metrics = {f"candidate_valid_{key}": reg.score}
    if reg.champion_score is not None:
        metrics[f"champion_valid_{key}"] = reg.champion_score
    tracker.log_metrics(metrics)


def main(cfg: RegisterConfig, tracker: Tracker | None = None) -> Registration:
    """Package, log, register and (maybe) promote one training run; see the module docstring."""
    from recgen.serving.pyfunc import log_model

    meta = run_meta(cfg.run_dir)
    name = cfg.name or model_name(meta["dataset"])
    score = validation_score(cfg.run_dir, cfg.metric, eval_users=cfg.eval_users)
    bundle = package(cfg.run_dir, cfg.bundle_dir or Path(cfg.run_dir) / "bundle")
    tracker = tracker or MlflowTracker(cfg.experiment)
    tags = {"method": meta.get("method"), "dataset": dataset_label(meta["dataset"]), "stage": "register",
            "run_dir": str(Path(cfg.run_dir).resolve())}
    with tracker.start_run(f"register-{name}", tags=tags):
        tracker.log_params({"run_dir": str(cfg.run_dir), "metric": cfg.metric, "registered_model": name})
        info = log_model(str(bundle), name="model", registered_model_name=name)
        version = int(info.registered_model_version)
        reg = decide(name, version, score, cfg.metric)
        reg.run_id = tracker.run_id
        log_decision(tracker, reg)
        _client().set_model_version_tag(name, str(version), "run_dir", str(Path(cfg.run_dir).resolve()))
    return reg
