"""The web entry point stays light: no torch (or so-vits-svc) on import, settings from env."""

import subprocess
import sys

from pipeline.settings import Settings


def test_importing_the_app_imports_no_torch() -> None:
    code = (
        "import sys, endpoints.app as a; a.create_app(); "
        "heavy = [m for m in ('torch', 'torchaudio', 'so_vits_svc_fork', 'librosa') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_limits_are_overridable_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("VC_TRAININGS_PER_MONTH", "9")
    monkeypatch.setenv("VC_CONVERSIONS_PER_DAY", "0")
    monkeypatch.setenv("VC_MAX_FILE_BYTES", "1000")
    monkeypatch.setenv("VC_CORS_ORIGINS", '["https://app.example"]')
    settings = Settings()
    assert (settings.trainings_per_month, settings.conversions_per_day) == (9, 0)
    assert settings.max_file_bytes == 1000
    assert settings.cors_origins == ["https://app.example"]
    assert settings.issuer.endswith("/auth/v1")
