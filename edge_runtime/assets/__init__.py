"""Files shipped with the package: bundled real records and the demo model bundle."""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
RECORDS_DIR = ASSETS_DIR / "records"

# The records the demo and the core tests use (see records/README.md for source and license).
LUDB_ANNOTATED_RECORD = RECORDS_DIR / "ludb_1.hea"
PTBXL_RECORD = RECORDS_DIR / "HR06004.hea"
CINC_LVH_RECORD = RECORDS_DIR / "E07505.hea"
PHILIPS_XML_RECORD = RECORDS_DIR / "philips_129DYPRG.xml"
