"""The contract's shared vocabularies hold together across Python and the page."""

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from schemas.jobs import F0Method, Phase, Progress, TrainingParams

WEB = Path(__file__).resolve().parent.parent / "web" / "public" / "js"


@pytest.mark.parametrize("script", ["training.js", "conversion.js", "dataset.js"])
def test_the_page_words_only_phases_a_job_can_be_in(script: str) -> None:
    source = (WEB / script).read_text()
    table = re.search(r"const PHASES = \{(.*?)\};", source, re.S)
    assert table is not None, script
    words = set(re.findall(r"(\w+):", table.group(1)))
    assert words and words <= set(get_args(Phase)), words - set(get_args(Phase))


def test_a_worker_cannot_report_an_unknown_phase() -> None:
    assert Progress.model_validate({"phase": "train", "step": 3}).step == 3
    with pytest.raises(ValidationError):
        Progress.model_validate({"phase": "warming up"})


def test_training_takes_the_same_pitch_trackers_as_conversion() -> None:
    for method in get_args(F0Method):
        assert TrainingParams(f0_method=method).f0_method == method
