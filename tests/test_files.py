"""Checksummed array files: round trip, corruption and truncation are named errors."""

import zipfile

import numpy as np
import pytest

from interp import files

TREE = {"graph": {"edges": np.arange(12).reshape(6, 2), "weights": np.linspace(0, 1, 6, dtype=np.float32)},
        "names": np.array(["conv1", "conv2"]), "score": np.float64(0.25)}


def test_round_trip_and_numpy_reads_it(tmp_path):
    path = tmp_path / "out" / "graph.npz"
    files.save_arrays(path, TREE)
    loaded = files.load_arrays(path)
    assert loaded.keys() == TREE.keys() and loaded["graph"].keys() == TREE["graph"].keys()
    np.testing.assert_array_equal(loaded["graph"]["edges"], TREE["graph"]["edges"])
    assert loaded["graph"]["weights"].dtype == np.float32 and loaded["score"] == 0.25
    assert list(loaded["names"]) == ["conv1", "conv2"]
    with np.load(path, allow_pickle=False) as plain:
        np.testing.assert_array_equal(plain["graph/weights.npy"], TREE["graph"]["weights"])
    assert not list(tmp_path.rglob("*.tmp"))


def test_flipped_bytes_name_the_file_and_the_array(tmp_path):
    path = tmp_path / "graph.npz"
    files.save_arrays(path, {"edges": np.arange(4096)})
    data = bytearray(path.read_bytes())
    data[2000:2064] = bytes(b ^ 0xFF for b in data[2000:2064])
    path.write_bytes(bytes(data))
    with pytest.raises(files.CorruptFileError, match=r"graph.npz is corrupt .*CRC-32 for file 'edges.npy'") as error:
        files.load_arrays(path)
    assert error.value.path == path


def test_bytes_changed_with_a_matching_crc_still_fail_the_sha256(tmp_path):
    # A rewritten member with a fresh CRC-32 (a bad copy tool, or a mix of two files) passes zip's check.
    path = tmp_path / "graph.npz"
    files.save_arrays(path, {"edges": np.arange(8)})
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data.replace(np.int64(7).tobytes(), np.int64(9).tobytes()))
    with pytest.raises(files.CorruptFileError, match=r"graph.npz: array 'edges' does not match its sha256"):
        files.load_arrays(path)


def test_a_truncated_file_is_corrupt(tmp_path):
    path = tmp_path / "graph.npz"
    files.save_arrays(path, TREE)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(files.CorruptFileError, match="graph.npz is corrupt or cut short"):
        files.load_arrays(path)


def test_refuses_what_it_could_not_store_without_pickle(tmp_path):
    with pytest.raises(ValueError, match=r"tree\['x'\]: expected a numeric or string array, got dtype object"):
        files.save_arrays(tmp_path / "a.npz", {"x": np.array([{}, None], dtype=object)})
    with pytest.raises(ValueError, match="non-empty string keys without '/', got 'a/b'"):
        files.save_arrays(tmp_path / "a.npz", {"a/b": np.zeros(2)})
    with pytest.raises(ValueError, match="path: expected a file name ending in .npz"):
        files.save_arrays(tmp_path / "a.npy", {"x": np.zeros(2)})
