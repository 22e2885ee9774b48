"""The OpenAPI document is the contract: Schemathesis generates requests from it (valid and
invalid, every check on) against the live test API with a real token, and finds nothing.

A fixed budget of cases in deterministic mode (the seed is kept for a non-deterministic
rerun) keeps the run repeatable and about a minute or two long: 25 operations, about 1200
cases. Valid requests must be accepted, invalid ones refused with a documented status and the
error body, an undeclared method answered 405 with `Allow`, and the requests that need a
token refused without it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = 1411
MAX_EXAMPLES = 8


@pytest.mark.timeout(900)
@pytest.mark.skipif(
    shutil.which("st", path=str(Path(sys.executable).parent)) is None,
    reason="schemathesis is not installed",
)
def test_the_api_keeps_its_openapi_contract(api_url, make_user, tmp_path) -> None:
    user = make_user()
    st = Path(sys.executable).parent / "st"
    config = ["--config-file", str(ROOT / "tests" / "schemathesis.toml"), "--no-color"]
    budget = ["--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1"]
    auth = ["--header", f"Authorization: Bearer {user.token}"]
    command = [str(st), *config, "run", f"{api_url}/openapi.json", "--checks", "all"]
    # Every check but one: schemathesis's inferred links bind `{file_id}` in
    # /profiles/{profile_id}/dataset/files/{file_id}/download to the id a POST /profiles just
    # returned, then call the honest 404 for that made-up file "created resource not found"
    # (ST302). Creates and reads are checked by tests/test_api.py.
    command += ["--exclude-checks", "ensure_resource_availability"]
    command += [*budget, "--generation-deterministic", *auth]
    env = os.environ | {"HOME": str(tmp_path), "SCHEMATHESIS_HOOKS": ""}
    report = tmp_path / "schemathesis.txt"
    with report.open("w") as out:
        run = subprocess.run(command, cwd=tmp_path, env=env, stdout=out, stderr=out, timeout=800)
    assert run.returncode == 0, report.read_text()[-20000:]
