"""Stored results as FHIR R4 resources, built and validated with fhir.resources.

Per result: three Observations (LV mass with its interval as a component, indexed LV mass, LVH
verdict) grouped in a DiagnosticReport, which references the Device (model id and sha256, software
version) and the pseudonymous patient identifier. fhir.resources 8 models FHIR R5 at its top level
and R4B (4.3.0) in ``fhir.resources.R4B``; R4B is the R4 wire format for every element used here
(Observation, DiagnosticReport, Device, Bundle are unchanged from R4 4.0.1 for these fields).

Codes:

* LOINC 18087-7 "Left ventricular Mass" (DICOM CID 12203 uses it as "Left Ventricle Mass");
* SNOMED CT 10828004 "Positive" / 260385009 "Negative" (qualifier values) for the verdict, with
  SNOMED CT 55827005 "Left ventricular hypertrophy (disorder)" as its interpretation when positive;
* HL7 v2-0074 "EC" (Electrocardiac) as the report category;
* UCUM ``g`` and ``g/m2``;
* no standard code exists for an ECG-estimated indexed LV mass, for the verdict by that index, or
  for the report itself: those use the local code system :data:`LOCAL_CODE_SYSTEM`.

Resource ids are derived from the result (sha256 of its stored identity), so building the same
result twice gives the same ids and a PUT of it never creates a duplicate.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

LOCAL_CODE_SYSTEM = "urn:elvmass:codes"
MODEL_SHA256_SYSTEM = "urn:elvmass:model-sha256"
RESULT_ID_SYSTEM = "urn:elvmass:result"
DEVICE_EXTENSION = "urn:elvmass:extension:device"
DEFAULT_PATIENT_ID_SYSTEM = "urn:elvmass:patient-id"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INSTALL_HINT = "FHIR export needs the fhir extra: pip install 'elvmass[fhir]'"

LVM_CODE = {"system": LOINC, "code": "18087-7", "display": "Left ventricular Mass"}
LVM_LOCAL_CODE = {"system": LOCAL_CODE_SYSTEM, "code": "lvm-ecg-estimate", "display": "LV mass estimated from the 12-lead ECG"}
LVM_INTERVAL_CODE = {"system": LOCAL_CODE_SYSTEM, "code": "lvm-interval", "display": "LV mass prediction interval"}
LVMI_CODE = {"system": LOCAL_CODE_SYSTEM, "code": "lvm-index-ecg-estimate",
             "display": "LV mass indexed to body surface area (Mosteller), estimated from the 12-lead ECG"}
LVH_CODE = {"system": LOCAL_CODE_SYSTEM, "code": "lvh-by-lvm-index",
            "display": "LV hypertrophy by ECG-estimated LV mass index above the sex-specific threshold"}
REPORT_CODE = {"system": LOCAL_CODE_SYSTEM, "code": "elvmass-report", "display": "ECG-estimated LV mass report"}
POSITIVE = {"system": SNOMED, "code": "10828004", "display": "Positive"}
NEGATIVE = {"system": SNOMED, "code": "260385009", "display": "Negative"}
LVH_DISORDER = {"system": SNOMED, "code": "55827005", "display": "Left ventricular hypertrophy (disorder)"}
EQUIVOCAL = {"system": SNOMED, "code": "42425007", "display": "Equivocal"}


class FhirUnavailable(RuntimeError):
    """fhir.resources is not installed (the message says how to install it)."""


def _models():
    try:
        from fhir.resources.R4B.bundle import Bundle
        from fhir.resources.R4B.device import Device
        from fhir.resources.R4B.diagnosticreport import DiagnosticReport
        from fhir.resources.R4B.observation import Observation
    except ModuleNotFoundError as error:
        raise FhirUnavailable(f"{INSTALL_HINT} (missing module {error.name!r})") from None
    return {"Bundle": Bundle, "Device": Device, "DiagnosticReport": DiagnosticReport, "Observation": Observation}


def result_key(row: dict) -> str:
    """A stable identity of one stored result: the same row always gives the same key."""
    parts = [str(row.get(name)) for name in ("id", "recorded_utc", "stored_utc", "model_sha256", "patient_id")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _resource_id(key: str, kind: str) -> str:
    # FHIR ids: [A-Za-z0-9-.]{1,64}
    return f"elvmass-{kind}-{key[:40]}"


def device_id(model_sha256: str | None, software_version: str) -> str:
    """Id of the Device resource for one model bundle and software version."""
    digest = hashlib.sha256(f"{model_sha256}|{software_version}".encode()).hexdigest()
    return f"elvmass-device-{digest[:40]}"


def _software_version() -> str:
    from elvmass import __version__

    return __version__


def _instant(text: str | None) -> str | None:
    """The store's ISO timestamps (with +00:00) are valid FHIR instants; empty stays None."""
    return text or None


def _quantity(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _notes(row: dict, report: dict) -> list[dict]:
    notes = [{"text": report.get("disclaimer") or "Research software; not clinically validated."}]
    if row.get("estimate_status") == "outside_population":
        notes.append({"text": "Outside the model's validated population: interpret with caution."})
    for flag in row.get("flags") or []:
        notes.append({"text": f"quality flag {flag.get('name')}: {flag.get('reason')}"})
    return notes


def build_device(row: dict) -> Any:
    """The Device resource: the model bundle (id, sha256) and the elvmass software version."""
    models = _models()
    version = _software_version()
    device = {
        "resourceType": "Device",
        "id": device_id(row.get("model_sha256"), version),
        "status": "active",
        "manufacturer": "elvmass (open source)",
        "deviceName": [{"name": f"elvmass LV mass estimator, model {row.get('model_id') or 'unknown'}",
                        "type": "model-name"}],
        "modelNumber": row.get("model_id") or "unknown",
        "version": [{"type": {"text": "software"}, "value": f"elvmass {version}"},
                    {"type": {"text": "model sha256"}, "value": row.get("model_sha256") or "unknown"}],
        "note": [{"text": "Research software; the model is not clinically validated."}],
    }
    if row.get("model_sha256"):
        device["identifier"] = [{"system": MODEL_SHA256_SYSTEM, "value": row["model_sha256"]}]
    return models["Device"].model_validate(device)


def build_result_resources(row: dict, report: dict | None = None, *,
                           patient_id_system: str = DEFAULT_PATIENT_ID_SYSTEM) -> list[Any]:
    """FHIR resources for one stored result: Device, 3 Observations, DiagnosticReport (in that order).

    Parameters
    ----------
    row : dict
        One row of :meth:`edge_runtime.runtime.store.ResultStore.results`.
    report : dict, optional
        The stored JSON report of that row (for the disclaimer and the interval's coverage).
    patient_id_system : str
        Identifier system of the pseudonymous patient ids (the clinic's, when it has one).

    Returns
    -------
    list
        Validated fhir.resources R4B models.

    Raises
    ------
    FhirUnavailable
        When fhir.resources is not installed.
    pydantic.ValidationError
        When a resource would not be valid FHIR (a bug, never expected).
    """
    models = _models()
    report = report or {}
    key = result_key(row)
    device = build_device(row)
    device_ref = {"reference": f"Device/{device.id}"}
    subject = None
    if row.get("patient_id"):
        subject = {"type": "Patient", "identifier": {"system": patient_id_system, "value": str(row["patient_id"])}}
    common: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "procedure", "display": "Procedure"}]}],
        "device": device_ref,
        "effectiveDateTime": _instant(row.get("recorded_utc")),
        "issued": _instant(row.get("stored_utc")),
        "identifier": [{"system": RESULT_ID_SYSTEM, "value": key}],
        "note": _notes(row, report),
    }
    if subject:
        common["subject"] = subject
    status = row.get("estimate_status")

    lvm = {**common, "id": _resource_id(key, "lvm"), "code": {"coding": [LVM_CODE, LVM_LOCAL_CODE],
                                                              "text": "LV mass (ECG estimate)"}}
    if row.get("lvm_g") is not None:
        lvm["valueQuantity"] = _quantity(float(row["lvm_g"]), "g")
        if row.get("lvm_low_g") is not None and row.get("lvm_high_g") is not None:
            coverage = report.get("lvm_interval_coverage")
            text = f"{coverage:.0%} prediction interval" if isinstance(coverage, (int, float)) else "prediction interval"
            lvm["component"] = [{"code": {"coding": [LVM_INTERVAL_CODE], "text": text},
                                 "valueRange": {"low": _quantity(float(row["lvm_low_g"]), "g"),
                                                "high": _quantity(float(row["lvm_high_g"]), "g")}}]
    else:
        lvm["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": "not-performed"}],
                                   "text": f"no estimate ({status})"}

    index = {**common, "id": _resource_id(key, "lvmi"), "code": {"coding": [LVMI_CODE], "text": "LV mass index"}}
    if row.get("lvm_index_g_m2") is not None:
        index["valueQuantity"] = _quantity(float(row["lvm_index_g_m2"]), "g/m2")
        if row.get("lvm_index_low_g_m2") is not None and row.get("lvm_index_high_g_m2") is not None:
            index["component"] = [{"code": {"coding": [LVM_INTERVAL_CODE], "text": "prediction interval of the index"},
                                   "valueRange": {"low": _quantity(float(row["lvm_index_low_g_m2"]), "g/m2"),
                                                  "high": _quantity(float(row["lvm_index_high_g_m2"]), "g/m2")}}]
    else:
        index["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": "unknown"}],
                                     "text": "needs an estimate, height and weight"}

    verdict = {**common, "id": _resource_id(key, "lvh"), "code": {"coding": [LVH_CODE], "text": "LVH verdict"}}
    threshold = report.get("lvh_threshold_g_m2")
    three_state = row.get("lvh_verdict") or report.get("lvh_verdict")
    if three_state == "borderline":  # the index interval spans the threshold: neither word would be honest
        verdict["valueCodeableConcept"] = {"coding": [EQUIVOCAL], "text": "borderline"}
    elif row.get("lvh") is True:
        verdict["valueCodeableConcept"] = {"coding": [POSITIVE], "text": "LVH"}
        verdict["interpretation"] = [{"coding": [LVH_DISORDER]}]
    elif row.get("lvh") is False:
        verdict["valueCodeableConcept"] = {"coding": [NEGATIVE], "text": "no LVH"}
    else:
        verdict["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": "unknown"}],
                                       "text": "needs an estimate, sex, height and weight"}
    if isinstance(threshold, (int, float)):
        verdict["referenceRange"] = [{"high": _quantity(float(threshold), "g/m2"),
                                      "text": "LVH when the LV mass index is above this threshold"}]
    verdict["derivedFrom"] = [{"reference": f"Observation/{index['id']}"}]
    index["derivedFrom"] = [{"reference": f"Observation/{lvm['id']}"}]

    observations = [models["Observation"].model_validate(item) for item in (lvm, index, verdict)]
    diagnostic = {
        "resourceType": "DiagnosticReport",
        "id": _resource_id(key, "report"),
        "identifier": [{"system": RESULT_ID_SYSTEM, "value": key}],
        "status": "final",
        "category": [{"coding": [{"system": V2_0074, "code": "EC", "display": "Electrocardiac"}]}],
        "code": {"coding": [REPORT_CODE], "text": "LV mass from the 12-lead ECG (elvmass)"},
        "effectiveDateTime": _instant(row.get("recorded_utc")),
        "issued": _instant(row.get("stored_utc")),
        # R4 DiagnosticReport has no device element (performer excludes Device): the Observations carry it in
        # Observation.device, and the report names it in an extension of ours.
        "extension": [{"url": DEVICE_EXTENSION, "valueReference": device_ref}],
        "result": [{"reference": f"Observation/{observation.id}"} for observation in observations],
        "conclusion": report.get("disclaimer") or "Research software; not clinically validated.",
    }
    if subject:
        diagnostic["subject"] = subject
    return [device, *observations, models["DiagnosticReport"].model_validate(diagnostic)]


def _full_url(resource) -> str:
    # A transaction entry needs an absolute or urn:uuid fullUrl; derive it from the id so it is stable too.
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{resource.__resource_type__}/{resource.id}')}"


def build_transaction_bundle(rows: list[dict], reports: dict[int, dict] | None = None, *,
                             patient_id_system: str = DEFAULT_PATIENT_ID_SYSTEM) -> Any:
    """A FHIR transaction Bundle of every row's resources, each as an idempotent ``PUT Type/id``.

    The Device shared by several results appears once.
    """
    models = _models()
    reports = reports or {}
    entries, seen = [], set()
    for row in rows:
        for resource in build_result_resources(row, reports.get(row["id"]), patient_id_system=patient_id_system):
            kind = resource.__resource_type__
            if (kind, resource.id) in seen:
                continue
            seen.add((kind, resource.id))
            entries.append({"fullUrl": _full_url(resource), "resource": resource,
                            "request": {"method": "PUT", "url": f"{kind}/{resource.id}"}})
    return models["Bundle"].model_validate({"resourceType": "Bundle", "type": "transaction", "entry": entries})
