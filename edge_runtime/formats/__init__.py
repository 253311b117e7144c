"""Reading ECG files into :class:`edge_runtime.record.EcgRecord`.

``read_record(path)`` picks the reader from the file; each reader lives in its own module and
imports any heavy library (``wfdb``) only when called.
"""

from __future__ import annotations

from pathlib import Path

from edge_runtime.record import EcgRecord, RecordError

__all__ = ["read_record", "detect_format", "RecordError"]


def detect_format(path: str | Path) -> str:
    """Name of the reader for ``path``: ``wfdb``, ``muse-xml``, ``hl7-aecg``, ``philips-xml``, ``dicom-ecg``,
    ``csv`` or ``npy``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".hea", ".dat", ".mat", "") and _wfdb_header(path).exists():
        return "wfdb"
    if not path.exists():
        raise RecordError(str(path), "file not found")
    if suffix == ".xml":
        from edge_runtime.formats.xml_sniff import sniff_xml_format

        return sniff_xml_format(path)
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".npy", ".npz"):
        return "npy"
    from edge_runtime.formats.dicom_ecg import is_dicom_file

    if suffix in (".dcm", ".dicom") or is_dicom_file(path):
        return "dicom-ecg"
    raise RecordError(str(path), "unknown ECG file type (expected WFDB .hea, MUSE/HL7/Philips .xml, DICOM .dcm, "
                                 ".csv, .npy/.npz)")


def _wfdb_header(path: Path) -> Path:
    return path.with_suffix(".hea") if path.suffix else Path(str(path) + ".hea")


def read_record(path: str | Path, *, fs: float | None = None, lead_names: list[str] | None = None) -> EcgRecord:
    """Read any supported ECG file.

    Parameters
    ----------
    path : str or Path
        The file (for WFDB, the ``.hea`` file or the record path without extension).
    fs, lead_names : optional
        Needed only for CSV/NumPy files that do not state their sampling rate or leads.

    Returns
    -------
    EcgRecord
        Samples in millivolts at the file's own rate (resample with ``edge_runtime.resample``).

    Raises
    ------
    RecordError
        With the file and the problem when the file cannot be read or is not a usable ECG.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == "wfdb":
        from edge_runtime.formats.wfdb_reader import read_wfdb

        return read_wfdb(_wfdb_header(path))
    if kind == "muse-xml":
        from edge_runtime.formats.muse_xml import read_muse_xml

        return read_muse_xml(path)
    if kind == "hl7-aecg":
        from edge_runtime.formats.hl7_aecg import read_hl7_aecg

        return read_hl7_aecg(path)
    if kind == "philips-xml":
        from edge_runtime.formats.philips_xml import read_philips_xml

        return read_philips_xml(path)
    if kind == "dicom-ecg":
        from edge_runtime.formats.dicom_ecg import read_dicom_ecg

        return read_dicom_ecg(path)
    if kind == "csv":
        from edge_runtime.formats.tabular import read_csv

        return read_csv(path, fs=fs, lead_names=lead_names)
    if kind == "npy":
        from edge_runtime.formats.tabular import read_npy

        return read_npy(path, fs=fs, lead_names=lead_names)
    raise RecordError(str(path), f"no reader for format {kind!r}")
