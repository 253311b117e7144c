"""Philips SierraECG / PhilipsECG XML with XLI-compressed waveforms."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from edge_runtime.assets import PHILIPS_XML_RECORD
from edge_runtime.formats import detect_format, read_record
from edge_runtime.formats.xli import XliError, lzw_decompress, undo_second_differences, xli_decode
from edge_runtime.record import STANDARD_LEADS, RecordError
from edge_runtime.signal_core.detect import detect_r_peaks
from tests.conftest import shared_path

VALID = ["129DYPRG.XML", "2020-5-18_15-48-11.xml", "3191723_ZZDEMOPTONLY_1-04_orig.xml"]


def _einthoven_residual_uv(record) -> float:
    """|III - (II - I)|: III is stored compressed on its own, so a wrong decoder breaks this identity."""
    lead = {name: record.lead(name).astype(np.float64) for name in ("I", "II", "III")}
    return float(np.abs(lead["III"] - (lead["II"] - lead["I"])).max() * 1000.0)


def _check(record) -> None:
    assert record.format == "philips-xml" and record.lead_names == STANDARD_LEADS and record.fs == 500.0
    assert 10.0 <= record.duration_s <= 11.0
    assert _einthoven_residual_uv(record) <= 10.0 + 1e-3  # 2 units of 5 uV: the cart's own rounding
    peaks = detect_r_peaks(record.signals_mv, record.fs)
    ours = 60.0 * record.fs / float(np.mean(np.diff(peaks)))  # mean RR: 3191723 has marked sinus arrhythmia
    assert ours == pytest.approx(record.measurements["heart_rate"], rel=0.05)
    assert any("calibration" in note for note in record.notes)
    assert 0.2 < np.ptp(record.lead("II")) < 5.0  # millivolts, not raw units


def test_bundled_example_reads():
    assert detect_format(PHILIPS_XML_RECORD) == "philips-xml"
    record = read_record(PHILIPS_XML_RECORD)
    _check(record)
    assert record.patient.age_years == 50 and record.patient.sex == "M"
    assert record.measurements["qrs_ms"] == 135 and record.measurements["r_axis"] == -21


@pytest.mark.shared
@pytest.mark.parametrize("name", VALID)
def test_shared_examples_read(name):
    record = read_record(shared_path("philips-xml", name))
    _check(record)


@pytest.mark.shared
def test_utf16_1_04_demographics():
    record = read_record(shared_path("philips-xml", VALID[2]))
    assert record.patient.sex == "M"
    assert record.patient.age_years == pytest.approx(60.05, abs=0.01)  # born 1950-01-01, ECG 2010-01-19


@pytest.mark.shared
@pytest.mark.parametrize("name, message", [
    ("invalid-doc-type.xml", "document type 'MortaraECG' is not supported"),
    ("invalid-doc-version.xml", "version '1.05' is not supported"),
])
def test_shared_invalid_examples(name, message):
    with pytest.raises(RecordError, match=message):
        read_record(shared_path("philips-xml", name))


@pytest.fixture()
def text():
    return PHILIPS_XML_RECORD.read_text(encoding="utf-8")


def _payload(text: str) -> bytes:
    body = re.search(r"<parsedwaveforms[^>]*>([^<]*)<", text)[1]
    return base64.b64decode("".join(body.split()))


def _with_payload(text: str, payload: bytes) -> str:
    encoded = base64.b64encode(payload).decode()
    return re.sub(r"(<parsedwaveforms[^>]*>)[^<]*<", lambda m: m[1] + encoded + "<", text)


def _write(tmp_path, text, name="p.xml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('compressmethod="XLI"', 'compressmethod="ZIP"'), "compression 'ZIP' is not supported"),
    (lambda t: t.replace('dataencoding="Base64"', 'dataencoding="Hex"'), "dataencoding 'Hex'"),
    (lambda t: t.replace('durationperchannel="11000"', 'durationperchannel="10000"'), "declares 5000"),
    (lambda t: t.replace("<documentversion>1.03<", "<documentversion>2.0<"), "version '2.0'"),
    (lambda t: t.replace("<acquisitiontype>STD-12<", "<acquisitiontype>15-LEAD<"), "acquisition type '15-LEAD'"),
    (lambda t: t.replace("<samplingrate>500<", "<samplingrate>-5<"), "sampling rate"),
    (lambda t: _with_payload(t, _payload(t)[:-300]), "corrupt XLI"),
    (lambda t: _with_payload(t, _payload(t)[:5]), "truncated header"),
    (lambda t: _with_payload(t, b"\xff\xff\xff\x7f\x00\x00\x00\x00" + _payload(t)), "size"),
    (lambda t: re.sub(r"(<parsedwaveforms[^>]*>)", r"\1!!", t), "not valid base64"),
    (lambda t: t.replace("<restingecgdata", "<!DOCTYPE r [<!ENTITY a 'x'>]><restingecgdata"), "unsafe XML"),
])
def test_broken_files_are_clear_record_errors(tmp_path, text, edit, message):
    with pytest.raises(RecordError, match=message):
        read_record(_write(tmp_path, edit(text)))


def test_other_xml_says_what_it_is(tmp_path):
    path = _write(tmp_path, '<?xml version="1.0"?><MortaraECG><x/></MortaraECG>')
    with pytest.raises(RecordError, match="root element <MortaraECG>"):
        read_record(path)


def test_utf16_file_is_sniffed(tmp_path, text):
    path = tmp_path / "u16.xml"
    path.write_bytes(text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"))
    assert detect_format(path) == "philips-xml"
    assert read_record(path).n_samples == read_record(PHILIPS_XML_RECORD).n_samples


def test_lzw_known_answer():
    # "ABABABA" as 10-bit codes: A B 256(AB) 258(ABA, the KwKwK case)
    codes = [65, 66, 256, 258]
    bits = "".join(f"{code:010b}" for code in codes)
    bits += "0" * (-len(bits) % 8)
    data = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    assert lzw_decompress(data, max_output=100) == b"ABABABA"


def test_lzw_refuses_undefined_codes_and_runaway_output():
    with pytest.raises(XliError, match="before it was defined"):
        lzw_decompress(bytes([0b01000000, 0b00000000]), max_output=100)  # code 256 first
    codes = [65] + list(range(256, 300))
    bits = "".join(f"{code:010b}" for code in codes)
    data = bytes(int(bits[i:i + 8].ljust(8, "0"), 2) for i in range(0, len(bits), 8))
    with pytest.raises(XliError, match="exceeds"):
        lzw_decompress(data, max_output=50)


def test_second_differences_match_the_sequential_definition():
    rng = np.random.default_rng(0)
    values = rng.integers(-3000, 3000, 400).astype(np.int16)
    expected = values.astype(np.int64).copy()
    x, y, last = int(values[0]), int(values[1]), 17
    for i in range(2, len(values)):
        z = 2 * y - x - last
        last = int(values[i]) - 64
        expected[i] = z
        x, y = y, z
    expected = ((expected + 32768) % 65536 - 32768).astype(np.int16)  # 16-bit wrap, as on the cart
    np.testing.assert_array_equal(undo_second_differences(values, 17), expected)


def test_xli_decode_caps_the_number_of_chunks(text):
    with pytest.raises(XliError, match="more than 3 lead chunks"):
        xli_decode(_payload(text), max_leads=3, max_samples=10_000)
