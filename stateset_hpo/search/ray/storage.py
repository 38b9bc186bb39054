"""Where a Ray study keeps its trials (``ray_config["storage_path"]``): Tune's storage path, the
warning when a local path cannot work on a multi-node cluster, and where the study's results
are copied beside its trials (shared_storage.py copies them)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ...masking import masked


def storage_location(storage_path: Optional[str], output_dir: str) -> str:
    """Tune's storage_path: the configured URI as given, a local path made absolute (Tune
    needs one), or by default ``<output_dir>/ray_results``."""
    if storage_path and "://" in storage_path:
        return storage_path.rstrip("/")
    return str(Path(storage_path or Path(output_dir) / "ray_results").expanduser().resolve())


def multi_node_warning(storage: str, nodes: int, autoscaling: bool) -> Optional[str]:
    """Why a local storage path may fail on this cluster, or None. Trials on other nodes write
    their results and checkpoints to the same path on *their* disk, where the driver never sees
    them; only a shared file system (NFS and the like, which cannot be told apart from a local
    disk here) or a URI works. A warning, not an error, for that reason."""
    if "://" in storage or (nodes <= 1 and not autoscaling):
        return None
    where = f"{nodes} nodes" if nodes > 1 else "nodes started on demand"
    return (f"the study's storage {masked(storage)!r} is a local path, but this Ray cluster has {where}: unless every "
            "node mounts it from a shared file system, give ray_config['storage_path'] (--storage-path) as an "
            "s3:// or gs:// URI")


def checkpoint_location(checkpoint) -> Optional[str]:
    """Where a Tune checkpoint is, as a user (and retention) can open it. Tune keeps the path
    inside its storage's filesystem, so a checkpoint under ``s3://bucket/hpo`` is ``bucket/hpo/...``
    on an S3 filesystem: read as a local path, it names nothing, and deleting it would do
    nothing. The storage's scheme is put back (``s3://``, ``gs://`` for pyarrow's "gcs")."""
    if checkpoint is None:
        return None
    kind = getattr(checkpoint.filesystem, "type_name", "local")
    if kind == "local":
        return checkpoint.path
    scheme = {"gcs": "gs"}.get(kind, kind)
    return f"{scheme}://{checkpoint.path.lstrip('/')}"


def results_location(storage_path: str, study_name: str) -> str:
    """Where a study's results are copied: ``<storage>/<study>/results`` (beside Tune's trials)."""
    return f"{storage_path.rstrip('/')}/{study_name}/results"
