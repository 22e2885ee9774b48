"""The voice detector listens to a fixed budget of audio per file, chosen where there is
sound, and its share still agrees with listening to every window of the file."""

import numpy as np
import pytest
import soundfile as sf

from pipeline import vad
from pipeline.audio import measure
from tests.vocals import RATE, have_espeak, mix_at_snr, singing, speech

TOLERANCE = 0.06  # of the file's length


def listen_to_everything(samples: np.ndarray) -> float:
    """The reference: the model over the whole file as one stream."""
    probs = vad.speech_probabilities(vad.to_vad_rate(samples.astype(np.float32), RATE))
    return float(np.mean(probs[vad.WARMUP_WINDOWS :] >= vad.THRESHOLD))


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng (make espeak)")
def test_budgeted_share_agrees_with_listening_to_everything(tmp_path) -> None:
    talk = speech(30, seed=4, pauses=False)
    cases = {
        "speech with pauses, 12 s": speech(12, seed=1),
        "speech with pauses, 60 s": speech(60, seed=2),
        "speech cut tight, 12 s": speech(12, seed=3, pauses=False),
        "talk, then near silence": np.concatenate(
            [talk[: 6 * RATE], 0.0005 * np.ones(6 * RATE, np.float32)]
        ),
        "talk, then silence, 3 min": np.concatenate(
            [speech(90, seed=5, pauses=False), np.zeros(90 * RATE, np.float32)]
        ),
        "speech + white noise 10 dB": mix_at_snr(speech(20, seed=6), "white", 10),
        "speech + babble 5 dB": mix_at_snr(speech(20, seed=7), "babble", 5),
        "speech + pink noise 20 dB": mix_at_snr(speech(20, seed=8), "pink", 20),
        "sung phrases": singing(20, style="phrases", seed=2),
        "talk and singing in turns": np.concatenate(
            [speech(5, seed=9, pauses=False), singing(5, seed=1)] * 4
        ),
    }
    print(f"\n{'file':<28}{'every window':>14}{'budget':>8}{'error':>8}")
    errors = {}
    for name, samples in cases.items():
        path = tmp_path / "take.wav"
        sf.write(path, samples, RATE, subtype="FLOAT")
        budgeted = measure(path, 3600).voice_ratio
        reference = listen_to_everything(samples)
        errors[name] = budgeted - reference
        print(f"{name:<28}{reference:14.3f}{budgeted:8.3f}{budgeted - reference:+8.3f}")
    assert all(abs(e) <= TOLERANCE for e in errors.values()), errors


def test_the_detector_listens_to_a_fixed_budget_whatever_the_length(tmp_path, monkeypatch):
    heard: list[int] = []
    listen = vad.speech_probabilities

    def counting(audio16k: np.ndarray) -> np.ndarray:
        heard.append(audio16k.size)
        return listen(audio16k)

    monkeypatch.setattr(vad, "speech_probabilities", counting)
    budget = vad.BUDGET * vad.STRETCH_SECONDS * vad.VAD_RATE
    for minutes in (1, 5):
        heard.clear()
        path = tmp_path / f"{minutes}.flac"
        sf.write(path, singing(60 * minutes, style="phrases", seed=minutes), RATE)
        assert measure(path, 3600).voice_ratio is not None
        assert 0 < sum(heard) <= budget, (minutes, sum(heard) / vad.VAD_RATE)


def test_warm_up_loads_the_voice_model_on_its_thread() -> None:
    """The dispatch threads (and the Prober's container) warm up before the first upload."""
    import threading

    from pipeline.audio import warm_up

    loaded: list[bool] = []

    def run() -> None:
        before = hasattr(vad._local, "vad")
        warm_up()
        loaded.extend([before, hasattr(vad._local, "vad")])

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert loaded == [False, True]
