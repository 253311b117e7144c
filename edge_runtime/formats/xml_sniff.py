"""Tell GE MUSE XML from HL7 aECG by the root element, without parsing the whole file."""

from __future__ import annotations

from pathlib import Path

from edge_runtime.record import RecordError


def sniff_xml_format(path: Path) -> str:
    """``muse-xml`` or ``hl7-aecg`` from the first KiB of ``path``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
    except OSError as error:
        raise RecordError(str(path), f"cannot open: {error.strerror}") from None
    if "<RestingECG" in head:
        return "muse-xml"
    if "<AnnotatedECG" in head:
        return "hl7-aecg"
    if "restingecgdata" in head.replace("\x00", "").lower():  # Philips (SierraECG/PhilipsECG), UTF-8 or UTF-16
        raise RecordError(str(path), "Philips XML is not supported by this version; export the ECG as GE MUSE XML, "
                                     "HL7 aECG or WFDB")
    raise RecordError(str(path), "XML is neither a GE MUSE RestingECG nor an HL7 AnnotatedECG document")
