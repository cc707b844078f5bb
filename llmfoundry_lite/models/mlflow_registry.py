"""HF exports in the MLflow model registry: register one as a new version, fetch one back to serve it.

The Databricks fine-tuning recipe (HF + DeepSpeed + MLflow) ends with the model logged in MLflow's
``transformers`` flavor and registered under a name, and deployment then asks for
``models:/NAME/VERSION`` or ``models:/NAME@alias`` rather than for a path. ``register_export`` logs
an export directory of ``hf_export`` as that flavor from its local checkpoint path: MLflow copies
the directory whole (weights, ``config.json``, tokenizer, ``generation_config.json``) under the
model's ``model/`` artifact and saves the tokenizer again as a pipeline component, so
``mlflow.transformers.load_model`` works as well as our own loader; no model is loaded into memory
and nothing is downloaded. ``fetch_registered`` resolves a registry URI to one version and
downloads its artifacts, returning the copied export directory, which every loader takes like any
HF export. Tracking and registry stores are whatever MLflow is pointed at (``MLFLOW_TRACKING_URI``
or an explicit URI: a ``sqlite:///…`` file, a tracking server, Databricks).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEME = "models:/"
_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))")
TASK = "text-generation"
"""The transformers pipeline task the export is logged for (a causal LM completing text)."""


@dataclass(frozen=True)
class RegisteredModel:
    """One registered version, fetched: its name, version and the local HF export directory."""

    name: str
    version: str
    path: Path
    """The HF export inside the download (MLflow's ``model/`` artifact)."""
    root: Path
    """The directory the version's artifacts were downloaded into."""


def is_registry_uri(model: str) -> bool:
    """Whether ``model`` names a registered model (``models:/…``) rather than a path."""
    return model.startswith(SCHEME)


@contextmanager
def _store(tracking_uri: str | None) -> Iterator[None]:
    """MLflow's fluent API pointed at ``tracking_uri`` (runs and registry) for the block only.

    ``mlflow.set_tracking_uri`` and ``mlflow.set_experiment`` change process-wide state and export it
    to the environment (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_ID``), where it outlives the call
    and sends a later run (Composer's ``MLFlowLogger`` in the same process, or a child process) to
    this store's experiment. So the store is named through the environment for the block, which the
    fluent API reads when no process-wide URI was set, and the environment is restored after."""
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.get(k) for k in keys}
    if tracking_uri is not None:
        for k in keys:
            os.environ[k] = tracking_uri
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def register_export(export_dir: str | Path, name: str, tracking_uri: str | None = None,
                    experiment: str | None = None, params: dict[str, object] | None = None) -> str:
    """Log ``export_dir`` (an ``hf_export`` directory) as an MLflow ``transformers`` model in a new run,
    register it as a new version of ``name`` and return its ``models:/NAME/VERSION`` URI.

    ``experiment`` (created when missing) defaults to MLflow's own choice (``MLFLOW_EXPERIMENT_NAME``
    or the store's default experiment); ``params`` are logged on the run (where the export came from)."""
    export_dir = Path(export_dir).resolve()
    if not (export_dir / "config.json").is_file():
        raise ValueError(f"{export_dir} is not an HF export (no config.json); write one with scripts/export_hf.py")
    import mlflow
    import mlflow.transformers

    with _store(tracking_uri):
        experiment_id = None
        if experiment is not None:  # by id, not set_experiment: that one exports MLFLOW_EXPERIMENT_ID
            client = mlflow.MlflowClient()
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
        with mlflow.start_run(run_name=f"register-{name}", experiment_id=experiment_id):
            if params:
                mlflow.log_params(params)
            info = mlflow.transformers.log_model(str(export_dir), name="model", task=TASK,
                                                 registered_model_name=name)  # fmt: skip
    return f"{SCHEME}{name}/{info.registered_model_version}"


def fetch_registered(uri: str, dst: str | Path | None = None, tracking_uri: str | None = None) -> RegisteredModel:
    """Resolve ``models:/NAME/VERSION`` or ``models:/NAME@alias`` in the registry and download that
    version's artifacts into ``dst`` (a new temporary directory when None); ValueError names what
    is missing (the URI form, the model, the version or alias, the HF export inside it)."""
    m = _URI.fullmatch(uri)
    if m is None:
        raise ValueError(f"--model {uri!r}: a registered model is models:/NAME/VERSION or models:/NAME@ALIAS")
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    with _store(tracking_uri):
        client = mlflow.MlflowClient()
        name = m["name"]
        try:
            mv = (client.get_model_version_by_alias(name, m["alias"]) if m["alias"]
                  else client.get_model_version(name, m["version"]))  # fmt: skip
            source = client.get_model_version_download_uri(name, mv.version)
        except MlflowException as err:
            raise ValueError(f"--model {uri}: {err.message} (registry {mlflow.get_registry_uri()})") from err
    dst = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix=f"{name}-v{mv.version}-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst)))
    flavors = Model.load(str(local)).flavors
    if "transformers" not in flavors:
        raise ValueError(f"--model {uri}: version {mv.version} is not a transformers model (flavors {sorted(flavors)})")
    export = local / flavors["transformers"].get("model_binary", "model")
    if not (export / "config.json").is_file():
        raise ValueError(f"--model {uri}: version {mv.version} holds no HF export at {export.name}/; "
                         "register one with scripts/export_hf.py --mlflow-register")  # fmt: skip
    return RegisteredModel(name, str(mv.version), export, dst)
