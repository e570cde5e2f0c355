"""Descriptions and generated folders: TOML text, files and round trips; open_folder checks
manifests, hashes and the model's parameters."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import kvpq
from conftest import REPO, SMALL_TOML

EXAMPLE = REPO / "examples" / "pqcache-llama3.toml"
SNAPSHOT = REPO / "tests" / "snapshots" / "pqcache-llama3"


def test_text_files_and_round_trips():
    a = kvpq.Accelerator(EXAMPLE)
    assert a == kvpq.Accelerator(str(EXAMPLE)) == kvpq.Accelerator.from_file(EXAMPLE)
    assert a == kvpq.Accelerator(EXAMPLE.read_text()) == kvpq.Accelerator(a.to_toml())
    assert a != kvpq.Accelerator(SMALL_TOML)
    assert (a.name, a.head_dim, a.gqa_group, a.max_tokens) == ("pqcache-llama3", 128, 4, 131072)
    assert a.config["retrieval"]["budget"] == 0.1 and a.config["topk"]["strategy"] == "select"
    assert a.layout == {"m": 2, "code_bits": 6, "beat_bits": 512, "tokens_per_beat": 42,
                        "padding_bits": 8, "words_per_beat": 8}
    assert a.policy_split(1000) == {"tokens": 1000, "sink": 32, "local": 50, "middle": 918, "topk": 50}
    assert "pqcache-llama3" in repr(a)


def test_open_folder_checks_the_model_and_the_files(tmp_path):
    f = kvpq.open_folder(SNAPSHOT, head_dim=128, max_tokens=65536, gqa_group=4)
    assert f.accelerator == kvpq.Accelerator(EXAMPLE)
    assert Path(f.path) == SNAPSHOT and f.manifest["config"]["name"] == "pqcache-llama3"
    with pytest.raises(kvpq.InputError, match=r"pq.head_dim is 128 in the folder's manifest, but 64 was asked for") as e:
        kvpq.open_folder(SNAPSHOT, head_dim=64)
    assert e.value.kind == "mismatch"
    with pytest.raises(kvpq.InputError, match="engine.max_tokens"):
        kvpq.open_folder(SNAPSHOT, max_tokens=1 << 20)
    copy = tmp_path / "copy"
    shutil.copytree(SNAPSHOT, copy)
    with (copy / "lut_scanner.v").open("a") as out:
        out.write("// edited\n")
    with pytest.raises(kvpq.InputError, match="lut_scanner.v") as e:
        kvpq.open_folder(copy)
    assert e.value.kind == "manifest"
    with pytest.raises(kvpq.InputError, match="cannot read") as e:
        kvpq.open_folder(tmp_path / "nothing")


def test_an_index_on_a_folder_uses_its_description():
    f = kvpq.open_folder(SNAPSHOT)
    # The folder's path is the default of hardware backends; the cpu device takes none.
    index = kvpq.Index(f, 1, 8)
    assert index.accelerator == f.accelerator and index.devices == ["cpu"]
    with pytest.raises(kvpq.InputError, match="the cpu device takes no path"):
        kvpq.Index(f, 1, 8, path=SNAPSHOT)
    # This machine has no XRT: the folder is checked, then loading XRT fails.
    with pytest.raises(kvpq.DeviceUnavailableError, match="xrt device unavailable"):
        kvpq.Index(f, 1, 8, device="xrt", device_options={"library": "/nonexistent/libxrt.so"})
    with pytest.raises(kvpq.InputError, match="generated from the description"):
        kvpq.Index(kvpq.Accelerator(f.accelerator.to_toml().replace('"pqcache-llama3"', '"other"', 1)),
                   1, 8, device="xrt", path=SNAPSHOT)
