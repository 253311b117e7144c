"""Stored results as FHIR R4 (R4B models of fhir.resources): codes, units, interval, device, ids, Bundle."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys

import pytest

pytest.importorskip("fhir.resources", reason="the fhir extra (fhir.resources) is part of dev")

from fhir.resources.R4B.bundle import Bundle  # noqa: E402

from conftest import REPO_ROOT, fill_store, make_report  # noqa: E402
from edge_runtime.commands import results  # noqa: E402
from edge_runtime.interop import fhir_results  # noqa: E402
from edge_runtime.interop.fhir_results import build_result_resources, build_transaction_bundle  # noqa: E402
from edge_runtime.runtime.store import ResultStore  # noqa: E402

@pytest.fixture()
def stored(tmp_path):
    path = tmp_path / "results.sqlite"
    fill_store(path, [make_report(0),
                      make_report(1, lvh=False, lvm_index_g_m2=60.0),
                      make_report(2, estimate_status="no_estimate", lvm_g=None, lvm_interval_g=None,
                                  lvm_index_g_m2=None, lvh=None, flags=[{"name": "noisy", "reason": "too noisy"}],
                                  patient={"patient_id": None})])
    with ResultStore(path) as store:
        rows = store.results()
        reports = {row["id"]: store.report(row["id"]) for row in rows}
    return path, rows, reports


def _by_type(resources):
    return {resource.__resource_type__ + (f":{resource.id.split('-')[1]}" if resource.__resource_type__ == "Observation" else ""): resource
            for resource in resources}


def test_resources_of_one_result(stored):
    _, rows, reports = stored
    resources = build_result_resources(rows[0], reports[rows[0]["id"]])
    kinds = [r.__resource_type__ for r in resources]
    assert kinds == ["Device", "Observation", "Observation", "Observation", "DiagnosticReport"]
    found = _by_type(resources)
    lvm = found["Observation:lvm"]
    assert lvm.code.coding[0].system == "http://loinc.org" and lvm.code.coding[0].code == "18087-7"
    assert (lvm.valueQuantity.value, lvm.valueQuantity.code, lvm.valueQuantity.system) == (150.0, "g", "http://unitsofmeasure.org")
    interval = lvm.component[0].valueRange
    assert (interval.low.value, interval.high.value, interval.low.code) == (120.0, 180.0, "g")
    assert "90%" in lvm.component[0].code.text
    index = found["Observation:lvmi"]
    assert index.valueQuantity.value == 80.0 and index.valueQuantity.code == "g/m2"
    verdict = found["Observation:lvh"]
    assert verdict.valueCodeableConcept.coding[0].code == "10828004"  # SNOMED CT Positive
    assert verdict.interpretation[0].coding[0].code == "55827005"  # LVH (disorder)
    assert verdict.referenceRange[0].high.value == 72.0
    device = found["Device"]
    assert device.modelNumber == "demo-model" and device.identifier[0].value == "ab" * 32
    assert any(v.value.startswith("elvmass ") for v in device.version)
    for observation in (lvm, index, verdict):
        assert observation.device.reference == f"Device/{device.id}"
        assert observation.subject.identifier.value == "P-0000" and observation.subject.identifier.system
        assert "not clinically validated" in observation.note[0].text
    report = found["DiagnosticReport"]
    assert [r.reference for r in report.result] == [f"Observation/{o.id}" for o in (lvm, index, verdict)]
    assert report.extension[0].valueReference.reference == f"Device/{device.id}"
    assert report.category[0].coding[0].code == "EC" and "not clinically validated" in report.conclusion


def test_negative_and_absent_values(stored):
    _, rows, reports = stored
    negative = _by_type(build_result_resources(rows[1], reports[rows[1]["id"]]))["Observation:lvh"]
    assert negative.valueCodeableConcept.coding[0].code == "260385009" and not negative.interpretation
    absent = _by_type(build_result_resources(rows[2], reports[rows[2]["id"]]))
    assert absent["Observation:lvm"].valueQuantity is None
    assert absent["Observation:lvm"].dataAbsentReason.coding[0].code == "not-performed"
    assert absent["Observation:lvh"].dataAbsentReason.coding[0].code == "unknown"
    assert absent["Observation:lvm"].subject is None  # no patient id: no subject, never a made-up one
    assert any("too noisy" in note.text for note in absent["Observation:lvm"].note)


def test_ids_are_stable_and_distinct(stored):
    _, rows, reports = stored
    first = [r.id for r in build_result_resources(rows[0], reports[rows[0]["id"]])]
    again = [r.id for r in build_result_resources(rows[0], reports[rows[0]["id"]])]
    other = [r.id for r in build_result_resources(rows[1], reports[rows[1]["id"]])]
    assert first == again
    assert first[0] == other[0]  # same model bundle and software: one Device
    assert not set(first[1:]) & set(other[1:])
    assert all(len(i) <= 64 for i in first + other)


def test_transaction_bundle_validates_and_puts_each_resource_once(stored):
    _, rows, reports = stored
    bundle = build_transaction_bundle(rows, reports)
    parsed = Bundle.model_validate_json(bundle.model_dump_json())  # round trip through JSON
    assert parsed.type == "transaction"
    urls = [entry.request.url for entry in parsed.entry]
    assert len(urls) == len(set(urls)) == 1 + 3 * 4  # one Device, 4 resources per result
    assert all(entry.request.method == "PUT" for entry in parsed.entry)
    assert all(entry.fullUrl.startswith("urn:uuid:") for entry in parsed.entry)


RUN_CLI = "import sys; from elvmass.cli import main; sys.exit(main(sys.argv[1:]))"


def test_results_format_fhir_command(stored, tmp_path):
    path, _, _ = stored
    out = tmp_path / "bundle.json"
    result = subprocess.run([sys.executable, "-c", RUN_CLI, "results", "--db", str(path), "--format", "fhir",
                             "--out", str(out)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    bundle = Bundle.model_validate(json.loads(out.read_text()))
    assert sum(entry.resource.__resource_type__ == "DiagnosticReport" for entry in bundle.entry) == 3
    assert (out.stat().st_mode & 0o077) == 0


def test_missing_fhir_extra_says_how_to_install(stored, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_fhir(name, *args, **kwargs):
        if name.startswith("fhir"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fhir)
    path, _, _ = stored
    parser = __import__("argparse").ArgumentParser()
    results.add_arguments(parser)
    assert results.run(parser.parse_args(["--db", str(path), "--format", "fhir"])) == 2
    assert "pip install 'elvmass[fhir]'" in capsys.readouterr().err
    assert fhir_results.INSTALL_HINT.endswith("'elvmass[fhir]'")


def test_a_borderline_verdict_is_equivocal_and_the_index_carries_its_interval():
    from edge_runtime.interop.fhir_results import build_transaction_bundle

    row = {"id": 7, "recorded_utc": "2026-11-26T02:00:00Z", "patient_id": "P-7", "estimate_status": "ok",
           "lvm_g": 104.5, "lvm_low_g": 84.0, "lvm_high_g": 125.0, "lvm_index_g_m2": 60.1,
           "lvm_index_low_g_m2": 48.3, "lvm_index_high_g_m2": 71.9, "lvh": True, "lvh_verdict": "borderline",
           "model_id": "demo", "model_sha256": "ab" * 32}
    report = {"lvh_threshold_g_m2": 55.0, "lvm_interval_coverage": 0.9}
    bundle = json.loads(build_transaction_bundle([row], {7: report}).model_dump_json())
    observations = {e["resource"]["id"]: e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"}
    verdict = next(o for o in observations.values() if o["code"].get("text") == "LVH verdict")
    assert verdict["valueCodeableConcept"]["coding"][0]["code"] == "42425007"
    assert "interpretation" not in verdict  # no LVH disorder code on an equivocal result
    index = next(o for o in observations.values() if o["code"].get("text") == "LV mass index")
    assert index["component"][0]["valueRange"]["low"]["value"] == 48.3
