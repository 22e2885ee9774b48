"""What the server accepts in a request, written once as JSON Schema constraints.

The OpenAPI document publishes these (endpoints/openapi.py) and the pipeline's own checks
refuse exactly what they exclude, so a client generated from the spec and the server agree on
every value: a file name is 1 to 255 characters with no control, format or surrogate
characters and no path separators, ends in an allowed extension, and its declared
content type names the same format.
"""

import re
import unicodedata
from functools import lru_cache
from typing import Any

MAX_FILENAME_CHARS = 255
# The content types a client may declare for each format, by file extension.
CONTENT_TYPES: dict[str, frozenset[str]] = {
    "wav": frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}),
    "flac": frozenset({"audio/flac", "audio/x-flac"}),
    "mp3": frozenset({"audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg-3"}),
}
# Control, format (invisible, bidirectional overrides) and surrogate code points. Private-use
# ones are allowed: harmless in a display name, dropped from object keys like all non-ASCII.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
# Lone surrogates (Cs) cannot be written in a pattern JSON Schema validators compile, nor
# sent in UTF-8 JSON text except as `\\ud8xx` escapes; the server refuses them all the same.
PATTERN_CATEGORIES = REFUSED_CATEGORIES - {"Cs"}


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# Only these planes hold control and format characters.
_SCANNED = (range(0x20000), range(0xE0000, 0xE1000))


@lru_cache
def refused_chars() -> str:
    """A character-class body of every refused code point (computed once, when the OpenAPI
    document is first built)."""
    ranges: list[tuple[int, int]] = []
    for plane in _SCANNED:
        for code in plane:
            if unicodedata.category(chr(code)) in PATTERN_CATEGORIES:
                if ranges and ranges[-1][1] == code - 1:
                    ranges[-1] = (ranges[-1][0], code)
                else:
                    ranges.append((code, code))
    body = "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)
    return body


def text_pattern() -> str:
    """Text with at least one visible character and no refused ones (a profile's name)."""
    refused = refused_chars()
    return f"^[^{refused}]*[^\\s{refused}][^{refused}]*$"


def document_text_pattern(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for a name field: the pattern is built when the document is."""
    schema["pattern"] = text_pattern()


def has_refused_chars(text: str) -> bool:
    return any(unicodedata.category(ch) in REFUSED_CATEGORIES for ch in text)


def _either_case(text: str) -> str:
    """`wav` → `[Ww][Aa][Vv]`: explicit, so no engine's Unicode case folding differs."""
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in text)


def filename_pattern(extensions: list[str], refused: str | None = None) -> str:
    """Optional surrounding spaces (stripped), a first visible character, then anything
    allowed, ending in one of the extensions in any case. `refused` defaults to the whole
    refused class; a caller that has checked the characters already may pass less."""
    refused = (refused_chars() if refused is None else refused) + "/\\\\"
    ext = "|".join(_either_case(e) for e in extensions)
    space = f"[^\\S{refused}]"
    return f"^{space}*[^\\s{refused}][^{refused}]*\\.(?:{ext}){space}*$"


def content_type_pattern(content_types: frozenset[str]) -> str:
    """One of the types in any case, with optional spaces and parameters (`; …`)."""
    types = "|".join(_either_case(t) for t in sorted(content_types))
    return f"^\\s*(?:{types})\\s*(?:;[\\s\\S]*)?$"


def format_variants(formats: list[str]) -> list[dict[str, Any]]:
    """An `anyOf` of the allowed formats: the name's extension and the type must agree."""
    return [
        {
            "properties": {
                "filename": {"pattern": filename_pattern([fmt])},
                "content_type": {"pattern": content_type_pattern(CONTENT_TYPES[fmt])},
            }
        }
        for fmt in formats
        if fmt in CONTENT_TYPES
    ]


def matches_format(filename: str, content_type: str, formats: list[str]) -> bool:
    """Whether the name and type fit one allowed format, by the published patterns; the
    characters themselves are checked apart (pipeline.keys.check_filename), cheaply."""
    return any(
        re.fullmatch(filename_pattern([fmt], refused=""), filename)
        and re.fullmatch(content_type_pattern(CONTENT_TYPES[fmt]), content_type)
        for fmt in formats
        if fmt in CONTENT_TYPES
    )
