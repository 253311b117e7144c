"""Parse untrusted XML safely: defusedxml, a size cap, and one error type.

Entity declarations (billion laughs), external entities and external DTD fetches are refused by
defusedxml; a plain ``<!DOCTYPE RestingECG SYSTEM "restecg.dtd">`` line, which every GE MUSE export
carries, is allowed because it declares nothing and nothing is fetched.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from edge_runtime.formats.limits import read_limited
from edge_runtime.record import RecordError


def parse_xml_file(path: str | Path, *, max_bytes: int | None = None) -> Element:
    """The root element of the XML file at ``path``.

    Raises
    ------
    RecordError
        When the file is too large, not well-formed, or uses entities/DTD features we refuse.
    """
    return parse_xml_bytes(read_limited(path, max_bytes=max_bytes), str(path))


def parse_xml_bytes(data: bytes, source: str) -> Element:
    """The root element of ``data``; see :func:`parse_xml_file`."""
    try:
        return fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise RecordError(source, f"unsafe XML refused ({type(error).__name__}: {error})") from None
    except ParseError as error:
        raise RecordError(source, f"malformed XML ({error})") from None
    except (ValueError, UnicodeError, LookupError, RecursionError) as error:  # bad encodings, deep nesting
        raise RecordError(source, f"unreadable XML ({type(error).__name__}: {error})") from None


def local_name(element: Element) -> str:
    """Tag without its ``{namespace}`` prefix."""
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""
