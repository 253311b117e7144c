"""Tell the XML ECG formats apart by the root element, without parsing the whole file."""

from __future__ import annotations

import re
from pathlib import Path

from edge_runtime.record import RecordError

_ROOTS = {"RestingECG": "muse-xml", "AnnotatedECG": "hl7-aecg", "restingecgdata": "philips-xml"}


def _head_text(head: bytes) -> str:
    # Philips exports are often UTF-16 with a byte-order mark.
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace")


def sniff_xml_format(path: Path) -> str:
    """``muse-xml``, ``hl7-aecg`` or ``philips-xml`` from the first 4 KiB of ``path``."""
    try:
        with open(path, "rb") as handle:
            head = _head_text(handle.read(4096))
    except OSError as error:
        raise RecordError(str(path), f"cannot open: {error.strerror}") from None
    for root, kind in _ROOTS.items():
        if f"<{root}" in head:
            return kind
    # Name what the file is, so a user sees which export they have.
    match = re.search(r"<(?![?!])([A-Za-z_][\w.:-]*)", head)
    found = f"root element <{match[1]}>" if match else "no root element in the first 4 KiB"
    raise RecordError(str(path), f"XML is not a GE MUSE RestingECG, HL7 AnnotatedECG or Philips restingecgdata "
                                 f"document ({found})")
