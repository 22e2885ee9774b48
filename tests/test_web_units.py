"""The page's pure modules, run by Node's own test runner (`web/test/`)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parent.parent / "web"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_web_unit_tests_pass() -> None:
    done = subprocess.run(
        ["node", "--test", "test/"], cwd=WEB, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


def _major(spec: str) -> int:
    match = re.fullmatch(r">=\s*(\d+)(\.\d+)*", spec.strip())
    assert match, f"an engines range this check does not read: {spec}"
    return int(match.group(1))


def test_the_readme_asks_for_the_node_the_pinned_packages_need() -> None:
    """A new user's `npm ci` prints no EBADENGINE warning when they have what the README
    asks for: its Node version is the highest any locked package declares, and ours says so."""
    lock = json.loads((WEB / "package-lock.json").read_text())
    needed = max(
        _major(package["engines"]["node"])
        for package in lock["packages"].values()
        if isinstance(package.get("engines"), dict) and "node" in package["engines"]
    )
    ours = json.loads((WEB / "package.json").read_text())["engines"]["node"]
    assert _major(ours) == needed
    readme = (WEB.parent / "README.md").read_text()
    asked = re.search(r"Node\.js (\d+)\+", readme)
    assert asked and int(asked.group(1)) == needed, "README's Node.js version"
