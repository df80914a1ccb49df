"""Experiment tracking behind a small interface: MLflow for real runs, a no-op for tests.

``Tracker`` is what the library talks to (``recgen.train.run.main(cfg, tracker=...)``):

    with tracker.start_run("fgrpo-ml-100k-cpu", tags={"method": "fgrpo", ...}):
        tracker.log_params(cfg.to_dict())
        tracker.log_metrics({"loss": 0.3}, step=1)
        tracker.log_artifact("runs/x/final", artifact_path="final")

``NullTracker`` does nothing (the library default). ``MlflowTracker`` writes to
``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``; it

- flattens nested params and truncates long values (MLflow keeps at most 6000 characters);
- renames metric keys MLflow refuses (``ndcg@5`` → ``ndcg_at_5``);
- tags every run with the git commit (``git rev-parse HEAD``; ``unknown`` without git);
- samples system metrics (CPU, memory, disk, network; GPU when pynvml finds one) through
  MLflow's monitor, which needs psutil (installed with accelerate/trl) and no network; it
  samples every 10 s, so a run shorter than that may have none; without psutil, none;
- nests a run started while another is active under it;
- ends a run whose body raises with status FAILED and the error in the ``error`` tag.

Inside ``mlflow run`` (``MLFLOW_RUN_ID`` set), the first ``start_run`` continues the run
MLflow created for the entry point instead of starting another.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from recgen.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "recgen"
MAX_PARAM_LENGTH = 500  # long values (prompts, lists) are cut to this many characters
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


@runtime_checkable
class Tracker(Protocol):
    """What the library logs through."""

    def start_run(self, name: str, tags: Mapping[str, Any] | None = None
                  ) -> contextlib.AbstractContextManager[Any]: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None: ...

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None: ...

    def log_dict(self, data: Any, artifact_file: str) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def end_run(self, status: str = "FINISHED") -> None: ...

    @property
    def run_id(self) -> str | None: ...


class NullTracker:
    """Accepts every call and records nothing."""

    @contextlib.contextmanager
    def start_run(self, name: str, tags: Mapping[str, Any] | None = None) -> Iterator[NullTracker]:
        yield self

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_dict(self, data: Any, artifact_file: str) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def end_run(self, status: str = "FINISHED") -> None:
        pass

    @property
    def run_id(self) -> str | None:
        return None


# --- helpers (pure) ----------------------------------------------------------------------
def metric_key(name: str) -> str:
    """A key MLflow accepts: ``@`` becomes ``_at_``, other refused characters ``_``."""
    return _BAD_KEY_CHARS.sub("_", str(name).replace("@", "_at_"))


def flatten_params(params: Mapping[str, Any], prefix: str = "", max_length: int = MAX_PARAM_LENGTH
                   ) -> dict[str, str]:
    """``{"a": {"b": 1}}`` → ``{"a.b": "1"}``; values rendered as text, cut to ``max_length``."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, f"{name}.", max_length))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > max_length:
            text = text[: max_length - 3] + "..."
        out[metric_key(name)] = text
    return out


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    """The commit checked out in ``cwd`` (default: recgen's source folder), or ``"unknown"``
    outside a git work tree or without git."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = res.stdout.strip()
    return sha if res.returncode == 0 and sha else "unknown"


def dataset_label(dataset: str | os.PathLike[str]) -> str:
    """A dataset's short name: the name itself (``ml-100k``) or a path's file stem (``All_Beauty``)."""
    text = str(dataset).rstrip("/\\")
    if "/" in text or "\\" in text or Path(text).suffix in (".gz", ".jsonl", ".json", ".csv", ".zip"):
        name = Path(text).name
        for suffix in (".gz", ".zip", ".jsonl", ".json", ".csv", ".inter", ".dat"):
            name = name.removesuffix(suffix)
        text = name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "dataset"


def run_name(method: str, dataset: str, preset: str) -> str:
    """``fgrpo-ml-100k-cpu``; a dataset path contributes its file stem."""
    return f"{method}-{dataset_label(dataset)}-{preset}"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` (in the working directory)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking_uri(uri: str) -> None:
    """A sqlite store's folder must exist (MLflow would create it silently, typo or not)."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if path and path != ":memory:":
            parent = Path(path).expanduser().absolute().parent
            if not parent.is_dir():
                raise ConfigError(f"MLflow tracking URI {uri!r}: folder {parent} does not exist "
                                  "(create it, or set MLFLOW_TRACKING_URI to another sqlite:///PATH)")


# --- MLflow ------------------------------------------------------------------------------
class MlflowTracker:
    """Logs to MLflow. ``experiment`` is ignored inside ``mlflow run`` (its run decides)."""

    def __init__(self, experiment: str | None = None, uri: str | None = None, *,
                 system_metrics: bool = True, system_metrics_interval: float = 10.0) -> None:
        import mlflow

        self.uri = uri or tracking_uri()
        check_tracking_uri(self.uri)
        self.system_metrics = system_metrics and importlib.util.find_spec("psutil") is not None
        if system_metrics and not self.system_metrics:
            logger.warning("psutil is not installed: no system metrics (pip install psutil)")
        self._mlflow = mlflow
        try:
            mlflow.set_tracking_uri(self.uri)
            mlflow.MlflowClient(self.uri).search_experiments(max_results=1)  # opens the store
            if system_metrics:
                mlflow.set_system_metrics_sampling_interval(system_metrics_interval)
            if not os.environ.get("MLFLOW_RUN_ID") and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
                mlflow.set_experiment(experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
                                      or DEFAULT_EXPERIMENT)
        except Exception as e:  # MlflowException, sqlalchemy errors, OSError …
            raise ConfigError(f"MLflow tracking URI {self.uri!r} cannot be opened: {e}") from e
        self._commit = git_commit()

    @property
    def run_id(self) -> str | None:
        run = self._mlflow.active_run()
        return run.info.run_id if run else None

    @contextlib.contextmanager
    def start_run(self, name: str, tags: Mapping[str, Any] | None = None) -> Iterator[MlflowTracker]:
        """A run (nested under the active one, if any), ended FINISHED, or FAILED on an exception."""
        mlflow = self._mlflow
        nested = mlflow.active_run() is not None
        all_tags = {"git_commit": self._commit, **{k: str(v) for k, v in (tags or {}).items()}}
        run = mlflow.start_run(run_name=name, nested=nested, tags=all_tags,
                               log_system_metrics=self.system_metrics)
        logger.info("MLflow run %s (%s)%s in %s", name, run.info.run_id, " nested" if nested else "",
                    self.uri)
        try:
            yield self
        except BaseException as e:
            with contextlib.suppress(Exception):
                mlflow.set_tag("error", f"{type(e).__name__}: {e}"[:5000])
            mlflow.end_run(status="KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
        mlflow.end_run(status="FINISHED")

    def end_run(self, status: str = "FINISHED") -> None:
        self._mlflow.end_run(status=status)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (flattened) params; a param already logged in this run keeps its first value."""
        flat = flatten_params(params)
        run = self._mlflow.active_run()
        if run is not None:
            known = self._mlflow.get_run(run.info.run_id).data.params
            changed = {k: (known[k], v) for k, v in flat.items() if k in known and known[k] != v}
            if changed:
                logger.warning("params already logged with other values keep their first value: %s",
                               changed)
            flat = {k: v for k, v in flat.items() if k not in known}
        if flat:
            self._mlflow.log_params(flat)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the numeric values of ``metrics`` (others are skipped)."""
        clean = {metric_key(k): float(v) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """A file, or a folder's contents, under ``artifact_path``."""
        p = Path(path)
        if p.is_dir():
            self._mlflow.log_artifacts(str(p), artifact_path=artifact_path)
        else:
            self._mlflow.log_artifact(str(p), artifact_path=artifact_path)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._mlflow.log_dict(data, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._mlflow.log_text(text, artifact_file)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items()})


def make_tracker(enabled: bool = True, experiment: str | None = None) -> Tracker:
    """``MlflowTracker(experiment)`` when enabled, else ``NullTracker()``."""
    return MlflowTracker(experiment) if enabled else NullTracker()
