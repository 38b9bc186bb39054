"""Copying the study's results to a shared storage that outlives the machine, and checking it.

A backend says where (``Backend.shared_results``: the Ray backend's ``storage_path``, see
search/ray/storage.py). On a multi-node cluster the head node is often short-lived (a KubeRay
job's head pod goes away with the job; `ray down` takes the cluster's disks): copying
summary.json, trials.csv, the report and the plots next to the trials puts everything a user
fetches in one place that outlives the cluster. pyarrow's filesystems are the ones Ray Tune
itself writes with, and they read s3://, gs:// and local paths alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

RESULT_FILES = ("summary.json", "trials.csv", "report.html", "plots")


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
    return _read(filesystem, path) if _is_file(filesystem, path) else None


def _read(filesystem, path: str) -> str:
    with filesystem.open_input_stream(path) as f:
        return f.read().decode()


def write_text(location: str, text: str) -> None:
    filesystem, path = _filesystem(location)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as f:
        f.write(text.encode())


def unpublished(output_dir: Path, destination: str) -> List[str]:
    """The result files of ``output_dir`` whose copy at ``destination`` is missing or differs
    (in size; summary.json in content too, so an earlier run's copy under the same study name
    does not pass for this one's); [] when every file arrived whole."""
    import pyarrow.fs as pafs

    local = [p for name in RESULT_FILES for p in ([Path(output_dir) / name] if (Path(output_dir) / name).is_file()
                                                   else sorted((Path(output_dir) / name).rglob("*")))
             if p.is_file()]
    wrong = []
    try:
        filesystem, root = _filesystem(destination.rstrip("/"))
        for source in local:
            name = source.relative_to(output_dir).as_posix()
            info = filesystem.get_file_info(f"{root}/{name}")
            if info.type != pafs.FileType.File or info.size != source.stat().st_size or (
                    name == "summary.json" and _read(filesystem, f"{root}/{name}") != source.read_text()):
                wrong.append(name)
    except (OSError, ValueError):  # the storage cannot be read: nothing is known to be there
        return [source.relative_to(output_dir).as_posix() for source in local]
    return wrong


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
