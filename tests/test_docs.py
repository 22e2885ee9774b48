"""The repository explains itself: nothing it holds points at a document outside it, and
every pointer into docs/architecture.md names a section that exists."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# Spelled in pieces so this file does not match itself.
OUTSIDE = [
    re.compile(pattern)
    for pattern in ("ARCHITECTURE" + r"\.md", "SVC" + "_NOTES", "ARCHITECTURE" + " §")
]
POINTER = re.compile(r'docs/architecture\.md,\s+"([^"]+)"')
SKIP_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".ico", ".woff", ".woff2", ".wav", ".flac"}


def _tracked_texts() -> dict[str, str]:
    names = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    texts = {}
    for name in filter(None, names):
        path = ROOT / name
        if path.suffix.lower() in SKIP_SUFFIXES or not path.is_file():
            continue
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def test_nothing_points_at_documents_outside_the_repo() -> None:
    offenders = [
        f"{name}: {match.group(0)}"
        for name, text in _tracked_texts().items()
        for pattern in OUTSIDE
        for match in pattern.finditer(text)
    ]
    assert offenders == []


def test_pointers_into_the_architecture_name_real_sections() -> None:
    sections = set(re.findall(r"^#{2,3} (.+?)\s*$", ARCHITECTURE.read_text(), re.M))
    pointers = {
        (name, section)
        for name, text in _tracked_texts().items()
        for section in POINTER.findall(re.sub(r"\s*\n\s*(#\s*)?", " ", text))
    }
    assert pointers, "code points at the architecture document by section name"
    missing = sorted((name, s) for name, s in pointers if s not in sections)
    assert missing == []
