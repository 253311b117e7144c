"""The C99 reference encoder and the Python encoder reproduce the shared vectors byte for byte."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.events import InfoReceived, Reply, Samples
from firmware_bridge.frames import DeviceInfo, lead_off_matrix
from firmware_bridge.vectors import VECTORS_PATH, data_inputs, encode_vector, info_inputs, read_vectors

FIRMWARE_DIR = VECTORS_PATH.parent
VECTORS = read_vectors()


def compiler() -> str:
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    pytest.skip("no C compiler (cc/gcc/clang) on PATH: the C reference encoder cannot be built here")


@pytest.fixture(scope="module")
def c_output(tmp_path_factory) -> list[str]:
    binary = tmp_path_factory.mktemp("fw") / "vector_check"
    build = subprocess.run([compiler(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                            "-o", str(binary), str(FIRMWARE_DIR / "vector_check.c"), str(FIRMWARE_DIR / "elvmass_frame.c")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary), str(VECTORS_PATH)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout.splitlines()


def test_vectors_cover_every_kind():
    assert {v.kind for v in VECTORS} == {"data", "info", "frame"} and len(VECTORS) >= 16


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"line{v.line}-{v.kind}")
def test_python_encoder_reproduces_vector(vector):
    assert encode_vector(vector) == vector.expected


def test_c_encoder_reproduces_every_vector(c_output):
    assert len(c_output) == len(VECTORS)
    for line, vector in zip(c_output, VECTORS):
        status, produced = line.split()
        assert status == "ok" and bytes.fromhex(produced) == vector.expected, f"vector at line {vector.line}"


def test_python_decoder_decodes_c_output(c_output):
    # the data vectors come first in the file, so they decode with the default INFO given here
    c_bytes = b"".join(bytes.fromhex(line.split()[1]) for line in c_output)
    decoder = StreamDecoder(DeviceInfo())
    by_first = {}
    infos, replies = [], []
    for event in decoder.feed(c_bytes):
        if isinstance(event, Samples):
            by_first[event.first_sample] = event
        elif isinstance(event, InfoReceived):
            infos.append(event.info)
        elif isinstance(event, Reply):
            replies.append(event.kind)
    assert decoder.stats.crc_errors == 0 and decoder.stats.bytes_discarded == 0
    for vector in (v for v in VECTORS if v.kind == "data"):
        _, first, codes, status = data_inputs(vector)
        block = by_first[first]
        lsb_mv = DeviceInfo().lsb_nv * 1e-6
        np.testing.assert_allclose(block.signals_mv, codes.T * lsb_mv, rtol=1e-6, atol=lsb_mv / 2)
        np.testing.assert_array_equal(block.lead_off, lead_off_matrix(status))
    assert infos == [info_inputs(v)[1] for v in VECTORS if v.kind == "info"]
    assert replies == ["pong", "ack", "nak"]
