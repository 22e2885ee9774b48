"""`.env.example` documents every setting, and only real ones."""

from pathlib import Path

from pipeline.settings import Settings


def test_env_example_lists_every_setting() -> None:
    text = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    documented = {
        line.split("=", 1)[0].strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    expected = {f"VC_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected
