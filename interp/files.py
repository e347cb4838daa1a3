"""Files the library writes, each with a sha256 checksum written with it and verified on load.

`write_json` / `read_json` keep a JSON object with its checksum beside its
keys, and `check_same_config` is the rule that a rerun's config matches the
one its workdir was written with.

`save_arrays` / `load_arrays` keep a tree of arrays (nested dicts of numpy
arrays: graphs, trees, sweep results) in one `.npz` file that `numpy.load`
also reads. The archive holds one `.npy` member per leaf, named by its key
path (`"a/b"`), and a `checksums.json` member with each member's sha256.
Nothing is pickled. A file is written to a temporary name and renamed into
place, so a reader sees the old file or the new one, never half of one.
"""

import hashlib
import io
import json
import os
import pathlib
import re
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

CHECKSUMS = "checksums.json"


class CorruptFileError(RuntimeError):
    """A file's bytes differ from the checksum written with it (or the file is cut short).

    Attributes:
      path: the corrupt file (for a checkpoint: the corrupt file inside it).
    """

    def __init__(self, message: str, path: pathlib.Path):
        super().__init__(message)
        self.path = path


def file_sha256(path: pathlib.Path) -> str:
    """The hex sha256 of the file at `path` (about 1.5 GB/s on one core with SHA extensions)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_atomically(path: pathlib.Path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file renamed into place, synced to disk first."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_arrays(path: str | pathlib.Path, tree: Mapping[str, Any]) -> None:
    """Writes `tree` (nested dicts with string keys, leaves array-like) to the `.npz` file `path`.

    Raises:
      ValueError: `path` does not end in `.npz`, a key is empty or holds '/',
        or a leaf is an object array (which only pickle could store).
    """
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path: expected a file name ending in .npz, got {str(path)!r}")
    buffer = io.BytesIO()
    checksums = {}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, leaf in _flatten(tree, ""):
            array = np.asarray(leaf)
            if array.dtype.hasobject:
                raise ValueError(f"tree[{key!r}]: expected a numeric or string array, got dtype {array.dtype} "
                                 "(object arrays need pickle, which is never used)")
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            checksums[key + ".npy"] = hashlib.sha256(member.getvalue()).hexdigest()
            archive.writestr(key + ".npy", member.getvalue())
        archive.writestr(CHECKSUMS, json.dumps({"sha256": checksums}, indent=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, buffer.getvalue())


def load_arrays(path: str | pathlib.Path) -> dict[str, Any]:
    """The tree `save_arrays` wrote to `path`, every array checked against its checksum.

    Raises:
      FileNotFoundError: no file at `path`.
      CorruptFileError: the file is cut short, lacks its checksums, or an
        array's bytes differ from its checksum (sha256, or the zip's CRC-32).
    """
    path = pathlib.Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            checksums = json.loads(archive.read(CHECKSUMS))["sha256"]
            members = {name: archive.read(name) for name in archive.namelist() if name != CHECKSUMS}
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as error:
        # zipfile checks each member's CRC-32 as it reads it, so most flipped bytes surface here.
        raise CorruptFileError(f"{path} is corrupt or cut short (not a whole file written by save_arrays): "
                               f"{type(error).__name__}: {error}", path) from error
    if set(members) != set(checksums):
        raise CorruptFileError(f"{path}: its arrays {sorted(members)} differ from those its checksums list "
                               f"{sorted(checksums)}", path)
    tree: dict[str, Any] = {}
    for name, data in members.items():
        if hashlib.sha256(data).hexdigest() != checksums[name]:
            raise CorruptFileError(f"{path}: array {name.removesuffix('.npy')!r} does not match its sha256 "
                                   "checksum; the file is corrupt (rewrite it, or restore it from a copy)", path)
        *parents, leaf = name.removesuffix(".npy").split("/")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    return tree


def _flatten(tree: Mapping[str, Any], prefix: str):
    for key, value in tree.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(f"tree: expected non-empty string keys without '/', got {key!r} "
                             f"under {prefix or 'the root'!r}")
        if isinstance(value, Mapping):
            yield from _flatten(value, prefix + key + "/")
        else:
            yield prefix + key, value


def write_json(path: str | pathlib.Path, content: Mapping[str, Any]) -> None:
    """Writes the JSON object `content` with a `"sha256"` key of its own checksum, atomically."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, (json.dumps({**content, "sha256": _json_sha256(content)}, indent=2) + "\n").encode())


def read_json(path: str | pathlib.Path) -> dict[str, Any]:
    """The object `write_json` wrote to `path` (without its checksum), verified against it.

    Raises:
      FileNotFoundError: no file at `path`.
      CorruptFileError: the file was edited, cut short or is corrupt.
    """
    path = pathlib.Path(path)
    text = path.read_text()
    try:
        stored = json.loads(text)
        content = {key: value for key, value in stored.items() if key != "sha256"}
        intact = stored.get("sha256") == _json_sha256(content)
    except (ValueError, AttributeError):
        intact = False
    if not intact:
        raise CorruptFileError(f"{path}: its contents do not match the checksum written with them (edited, cut "
                               "short or corrupt); delete it to compute it again", path)
    return content


def _json_sha256(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


class ConfigMismatchError(ValueError):
    """A rerun's config differs from the one its workdir was written with."""


def check_same_config(stored: Mapping[str, Any], config: Mapping[str, Any], where: str | pathlib.Path,
                      force_new_config: bool) -> None:
    """Raises unless `config` equals the `stored` config of `where` (both as JSON), or `force_new_config`.

    Raises:
      ConfigMismatchError: naming each field that differs, with both values.
    """
    stored, config = json.loads(json.dumps(stored)), json.loads(json.dumps(config))
    if stored == config or force_new_config:
        return
    missing = object()
    differences = [f"{key}: {stored.get(key, '(none)')!r} there, {config.get(key, '(none)')!r} now"
                   for key in sorted(set(stored) | set(config)) if stored.get(key, missing) != config.get(key, missing)]
    raise ConfigMismatchError(
        f"{where} was written with another config ({'; '.join(differences)}); rerun with the same config, "
        "or pass --force-new-config (force_new_config=True) or use a fresh workdir to change it"
    )


def file_stems(layers: list[str]) -> dict[str, str]:
    """A distinct file-name-safe stem per layer; none is "index"."""
    taken, stems = {"index"}, {}
    for layer in layers:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer).lstrip(".") or "layer"
        candidate, n = stem, 1
        while candidate in taken:
            n += 1
            candidate = f"{stem}-{n}"
        taken.add(candidate)
        stems[layer] = candidate
    return stems
