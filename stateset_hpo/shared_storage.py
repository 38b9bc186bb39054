"""The study's shared storage (``ray_config["storage_path"]``): where Ray Tune keeps trials and
checkpoints, and where the driver copies the study's results when it ends.

On a multi-node cluster every node writes its trials there (S3, GCS or a shared file
system), and the head node is often short-lived (a KubeRay job's head pod goes away with
the job; `ray down` takes the cluster's disks): copying summary.json, trials.csv, the report
and the plots next to the trials puts everything a user fetches in one place that outlives
the cluster. pyarrow's filesystems are the ones Ray Tune itself writes with.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

RESULT_FILES = ("summary.json", "trials.csv", "report.html", "plots")


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
    return (f"the study's storage {storage!r} is a local path, but this Ray cluster has {where}: unless every "
            "node mounts it from a shared file system, give ray_config['storage_path'] (--storage-path) as an "
            "s3:// or gs:// URI")


def results_location(storage_path: str, study_name: str) -> str:
    """Where a study's results are copied: ``<storage>/<study>/results`` (beside Tune's trials)."""
    return f"{storage_path.rstrip('/')}/{study_name}/results"


def _filesystem(location: str):
    """(pyarrow filesystem, path in it) of a local path or a URI."""
    import pyarrow.fs as pafs

    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def _is_file(filesystem, path: str) -> bool:
    import pyarrow.fs as pafs

    return filesystem.get_file_info(path).type == pafs.FileType.File


def read_text(location: str) -> Optional[str]:
    """The file's text, or None if there is no such file."""
    filesystem, path = _filesystem(location)
    if not _is_file(filesystem, path):
        return None
    with filesystem.open_input_stream(path) as f:
        return f.read().decode()


def write_text(location: str, text: str) -> None:
    filesystem, path = _filesystem(location)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as f:
        f.write(text.encode())


def published(destination: str) -> bool:
    """Is the study's summary.json at ``destination`` (where `publish_results` copies it)?"""
    try:
        return _is_file(*_filesystem(f"{destination.rstrip('/')}/summary.json"))
    except (OSError, ValueError):
        return False


def publish_results(output_dir: Path, destination: str) -> List[str]:
    """Copy the study's result files from ``output_dir`` to ``destination`` (a local path or
    a URI such as s3://bucket/prefix/study/results); the names copied."""
    import pyarrow.fs as pafs

    if "://" in destination:
        filesystem, root = pafs.FileSystem.from_uri(destination)
    else:
        filesystem, root = pafs.LocalFileSystem(), str(Path(destination).resolve())
    filesystem.create_dir(root, recursive=True)
    copied = []
    for name in RESULT_FILES:
        source = Path(output_dir) / name
        if not source.exists():
            continue
        if source.is_dir():
            filesystem.create_dir(f"{root}/{name}", recursive=True)
        pafs.copy_files(str(source.resolve()), f"{root}/{name}", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=filesystem)
        copied.append(name)
    return copied
