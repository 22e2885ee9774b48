"""The text engine (gpu/text/): the checks on the text, the real Piper voice and espeak-ng,
the base voice chooser, Kokoro's adapter as far as it goes without its model files (which are
baked into the production image and cannot be fetched offline), and the output files."""

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from gpu.errors import JobFailure
from schemas.pitch import PitchRange
from schemas.text import (
    ENGINE_LANGUAGES,
    TextOptions,
    TextProblem,
    TextRequest,
    check_language,
    check_text,
)

SENTENCE = "A different sentence entirely, spoken by the same voice as before it."


def test_text_is_normalised_and_bounded() -> None:
    assert check_text("  Hello,\n\tworld  ", 500) == "Hello, world"
    assert check_text("x" * 500, 500) == "x" * 500
    with pytest.raises(TextProblem, match="at most 500") as found:
        check_text("x" * 501, 500)
    assert found.value.details == {"field": "text", "length": 501, "max_chars": 500}


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "?!", "..."])
def test_empty_text_is_refused(text: str) -> None:
    with pytest.raises(TextProblem):
        check_text(text, 500)


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\u202e", "\u0085"])
def test_control_characters_are_refused(char: str) -> None:
    with pytest.raises(TextProblem, match="control character") as found:
        check_text(f"Hello{char}world", 500)
    assert found.value.details["position"] == 5


def test_languages_follow_the_engine() -> None:
    assert check_language(None, "piper") == "en-us"
    assert check_language("EN_us", "piper") == "en-us"
    assert check_language("en", "kokoro") == "en-us"
    assert check_language("fr", "kokoro") == "fr"
    with pytest.raises(TextProblem) as found:
        check_language("fr", "piper")
    assert found.value.details["supported"] == ["en-us"]
    with pytest.raises(TextProblem):
        check_language("tlh", "kokoro")


def test_request_names_one_voice() -> None:
    assert TextRequest(text="hi").voice.kind == "trained"
    with pytest.raises(ValidationError):
        TextRequest.model_validate({"text": "hi", "voice": {"kind": "instant"}})
    with pytest.raises(ValidationError):
        TextRequest.model_validate({"text": "hi", "surprise": 1})


def test_pitch_plan_moves_the_median_or_predicts() -> None:
    from gpu.text.speak import pitch_plan

    low = PitchRange(median_hz=110.0, p5_hz=90.0, p95_hz=140.0, voiced_seconds=3, method="fcpe")
    high = PitchRange(median_hz=220.0, p5_hz=180.0, p95_hz=300.0, voiced_seconds=3, method="fcpe")
    assert pitch_plan(low, high, "auto") == ("shift", 12)
    assert pitch_plan(high, low, "shift") == ("shift", -12)
    assert pitch_plan(low, None, "auto") == ("predict", 0)
    assert pitch_plan(low, high, "predict") == ("predict", 0)


# Real engines ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def piper():
    from gpu.text.engines import PiperEngine

    return PiperEngine()


@pytest.fixture(scope="module")
def espeak():
    from gpu.text.engines import EspeakEngine

    return EspeakEngine()


def test_piper_speaks_the_packaged_voice(piper) -> None:
    assert piper.voices("en-us") == ["en_US-joe-medium"]
    assert piper.voices("fr") == []
    speech = piper.speak("Hello there, this is a test.", "en_US-joe-medium", "en-us")
    assert speech.rate == 22050
    assert 1.0 < len(speech.audio) / speech.rate < 5.0
    assert float(np.abs(speech.audio).max()) > 0.1


def test_espeak_takes_the_text_on_stdin(espeak) -> None:
    """A text starting with a dash is spoken, not read as an option."""
    speech = espeak.speak("--help me say this", "en-us", "en-us")
    assert len(speech.audio) / speech.rate > 0.5


def test_the_chooser_picks_the_closer_engine_voice(piper, espeak) -> None:
    """Given a target that is Piper's voice (another sentence), Piper's voice is chosen;
    given espeak-ng's female variant, that one is; the report lists every candidate."""
    from gpu.measures.quality import embedding
    from gpu.text.chooser import choose

    for engine, voice in ((piper, "en_US-joe-medium"), (espeak, "en-us+f3")):
        spoken = engine.speak(SENTENCE, voice, "en-us")
        target = embedding(spoken.audio, spoken.rate)
        chosen_engine, choice = choose([piper, espeak], "en-us", target, embedding)
        assert (chosen_engine, choice.voice, choice.chosen) == (engine, voice, "similarity")
        others = [s for name, s in choice.candidates.items() if name != f"{engine.name}:{voice}"]
        assert choice.similarity > max(others)
        assert len(choice.candidates) == 4


def test_the_chooser_honours_a_request_and_refuses_an_unknown_voice(piper, espeak) -> None:
    from gpu.text.chooser import choose

    def never(audio, rate):
        raise AssertionError("a requested voice needs no measuring")

    engine, choice = choose([piper, espeak], "en-us", np.ones(256), never, "en-us+m3")
    assert (engine, choice.chosen) == (espeak, "requested")
    with pytest.raises(JobFailure, match="No base voice"):
        choose([piper], "en-us", None, never, "nobody")
    with pytest.raises(JobFailure, match="No voice here speaks"):
        choose([piper], "fr", None, never)


# Kokoro, without its model files ---------------------------------------------------------


def test_kokoro_without_its_files_fails_with_a_code(tmp_path: Path) -> None:
    from gpu.text.engines import KokoroEngine, make_engine

    with pytest.raises(JobFailure) as found:
        KokoroEngine(tmp_path / "kokoro-v1.0.onnx", tmp_path / "voices-v1.0.bin")
    assert found.value.code == "TEXT_ENGINE_UNAVAILABLE"
    assert "kokoro-v1.0.onnx" in found.value.message
    with pytest.raises(JobFailure):
        make_engine("kokoro")


def test_kokoro_voices_are_chosen_by_their_language_letter() -> None:
    from gpu.text.engines import kokoro_voices_for

    names = ["af_heart", "am_adam", "bf_emma", "ff_siwis", "zf_xiaoxiao", "af", "jm_kumo"]
    assert kokoro_voices_for(names, "en-us") == ["af_heart", "am_adam"]
    assert kokoro_voices_for(names, "fr") == ["ff_siwis"]
    assert kokoro_voices_for(names, "zh") == ["zf_xiaoxiao"]
    assert kokoro_voices_for(names, "de") == []


def test_every_kokoro_language_phonemizes_offline() -> None:
    """The espeak-ng language each tag maps to is one kokoro-onnx's tokenizer knows: the
    part of a Kokoro run that needs no weights."""
    from kokoro_onnx.tokenizer import Tokenizer

    from gpu.text.engines import KOKORO_LANGS

    assert set(KOKORO_LANGS) == set(ENGINE_LANGUAGES["kokoro"])
    tokenizer = Tokenizer()
    for tag, (lang, _) in KOKORO_LANGS.items():
        phonemes = tokenizer.phonemize("Hello, one two three.", lang)
        assert phonemes.strip(), tag
        assert tokenizer.tokenize(phonemes), tag


# The output ------------------------------------------------------------------------------


def test_speak_writes_wav_and_mp3_at_44k_loudness_normalised(piper, tmp_path: Path) -> None:
    """With a stand-in voice that returns its input (the real voice models are in
    test_text.py): both files decode at 44.1 kHz with the base speech's length, the level is
    at the target with the true peak under the ceiling (the limiter), and the report says
    what was used."""
    from gpu.measures.quality import embedding
    from gpu.text.speak import OUTPUT_RATE, PEAK_CEILING_DB, TARGET_LUFS, VoiceTarget, speak

    base = piper.speak(SENTENCE, "en_US-joe-medium", "en-us")
    seen: list[np.ndarray] = []

    def convert(audio, transpose, predict, options):
        seen.append(audio)
        return audio

    target = VoiceTarget("trained", 32000, convert, None, embedding(base.audio, base.rate))
    spoken = speak(SENTENCE, "en-us", TextOptions(f0_method="dio"), [piper], target, tmp_path)
    expected = len(seen[0]) / 32000  # Piper's durations vary a little from run to run
    wav, rate = sf.read(spoken.wav)
    assert rate == OUTPUT_RATE
    assert abs(len(wav) / rate - expected) < 0.01
    mp3, mp3_rate = sf.read(io.BytesIO(spoken.mp3.read_bytes()))
    assert mp3_rate == OUTPUT_RATE
    assert abs(len(mp3) / mp3_rate - expected) < 0.1  # the encoder's padding
    report = spoken.report
    assert report.base_voice.voice == "en_US-joe-medium"
    assert report.pitch_mode == "predict"  # the stand-in has no recorded range
    # The output is the base speech with its peaks limited (gpu/text/limiter.py: Piper's line
    # needs ~7 dB off its peaks to reach -16 LUFS). The embedding normalises by RMS, so only
    # the limiting's change to the dynamics moves the score: 0.98-0.99 here (by the peak, the
    # limited line entered Resemblyzer ~7 dB hotter and scored ~0.93; bench/similarity.py).
    assert report.to_voice > 0.85 and report.to_base > 0.97
    assert report.loudness_lufs == pytest.approx(TARGET_LUFS, abs=0.5)  # limited, not held down
    assert float(np.abs(wav).max()) <= 10 ** (PEAK_CEILING_DB / 20) + 0.01
