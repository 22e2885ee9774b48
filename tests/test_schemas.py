"""The contract's shared vocabularies hold together across Python and the page."""

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from schemas.jobs import ConversionParams, F0Method, Phase, Progress, TrainingParams

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


@pytest.mark.parametrize(
    ("params", "shift"),
    [
        ({"input_kind": "song", "transpose": 3}, 3),  # follows the key by default
        ({"input_kind": "song", "transpose": -12}, 0),  # an octave keeps the key
        ({"input_kind": "song", "transpose": 12, "shift_instrumental": True}, 12),
        ({"input_kind": "song", "transpose": 5, "shift_instrumental": False}, 0),
        ({"input_kind": "vocal", "transpose": 3, "shift_instrumental": True}, 0),  # no backing
        ({"input_kind": "song"}, 0),
    ],
)
def test_the_instrumental_shift_a_song_conversion_asks_for(params, shift) -> None:
    assert ConversionParams.model_validate(params).instrumental_shift() == shift


def test_conversions_are_of_a_vocal_by_default_and_refuse_other_kinds() -> None:
    assert ConversionParams().input_kind == "vocal"
    with pytest.raises(ValidationError):
        ConversionParams.model_validate({"input_kind": "podcast"})


def test_a_cover_keeps_the_songs_loudness_unless_streaming_is_asked() -> None:
    assert ConversionParams().loudness == "original"
    assert ConversionParams.model_validate({"loudness": "streaming"}).loudness == "streaming"
    with pytest.raises(ValidationError):
        ConversionParams.model_validate({"loudness": "loud"})
