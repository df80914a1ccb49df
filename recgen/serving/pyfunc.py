"""The recommender as an MLflow pyfunc model (``mlflow models serve``, the model registry).

The whole bundle folder (:mod:`recgen.serving.bundle`) is the model's one artifact, so a
registered model loads offline. Requests are DataFrame rows: ``user_id`` (a known user) or
``history`` (a list of item ids, oldest first, for a new user), and optionally ``k``
(default 10). The answer has one row per recommended item: ``request`` (the input row),
``user_id``, ``rank``, ``item_id``, ``title``, ``score``, ``source``. A bad request (unknown
user or item, bad k, wrong type) is an ``INVALID_PARAMETER_VALUE`` error: HTTP 400 with the
message naming the value.

Serving: ``mlflow models serve -m models:/recgen-ml-100k@champion --env-manager local``
(recgen must be installed in the serving environment; nothing is downloaded).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from recgen.errors import RecgenError

logger = logging.getLogger(__name__)

ARTIFACT = "bundle"
COLUMNS = ["request", "user_id", "rank", "item_id", "title", "score", "source"]


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists/arrays
        return False


class RecgenPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around :class:`recgen.Recommender` (loaded from the ``bundle`` artifact)."""

    def load_context(self, context: Any) -> None:
        from recgen.recommender import Recommender

        self.recommender = Recommender.load(context.artifacts[ARTIFACT])

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would enforce them as a schema
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        rows = []
        for n, req in enumerate(frame.to_dict("records")):
            user, history, k = req.get("user_id"), req.get("history"), req.get("k")
            k = 10 if _is_missing(k) else k
            if isinstance(k, float) and k.is_integer():  # JSON numbers may arrive as floats
                k = int(k)
            elif hasattr(k, "item"):  # numpy scalars
                k = k.item()
            try:
                if not _is_missing(history):
                    recs = self.recommender.recommend_for_history(list(history), k)
                    user = None
                elif not _is_missing(user):
                    recs = self.recommender.recommend(user, k)
                else:
                    raise MlflowException(f"request {n}: give a user_id or a history (a list of item ids)",
                                          error_code=INVALID_PARAMETER_VALUE)
            except RecgenError as e:
                raise MlflowException(f"request {n}: {e}", error_code=INVALID_PARAMETER_VALUE) from e
            rows += [(n, None if user is None else str(user), r.rank, r.item_id, r.title, r.score, r.source)
                     for r in recs]
        return pd.DataFrame(rows, columns=COLUMNS)


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("mlflow", "torch", "transformers", "faiss-cpu", "polars", "pandas", "numpy"):
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    return out


def log_model(bundle_dir: str | os.PathLike[str], name: str = "model", registered_model_name: str | None = None,
              input_example: bool = True) -> Any:
    """Log a saved recommender folder as a pyfunc model in the active MLflow run.

    No input schema is enforced (a request row holds either a ``user_id`` or a ``history``
    list, which MLflow's column schemas cannot express); :meth:`RecgenPyfunc.predict`
    validates every field itself. ``input_example``: also log ``request_example.json``, a
    two-row request (a known user, a new history) taken from the bundle, without running
    the model.
    """
    from recgen.serving.bundle import read_bundle

    parts = read_bundle(bundle_dir)
    info = mlflow.pyfunc.log_model(
        name=name, python_model=RecgenPyfunc(), artifacts={ARTIFACT: str(Path(bundle_dir))},
        pip_requirements=_requirements(), registered_model_name=registered_model_name)
    if input_example:
        user = next(iter(parts.histories))
        mlflow.log_dict({"dataframe_records": [{"user_id": user, "k": 10},
                                               {"history": parts.histories[user][:3], "k": 5}]},
                        "request_example.json")
    logger.info("logged recommender %s as %s", bundle_dir, info.model_uri)
    return info
