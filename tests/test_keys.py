"""The object-key layout: built and parsed in one place; the parser accepts nothing else."""

from uuid import uuid4

import pytest

from pipeline import keys


def test_round_trip_every_kind() -> None:
    u, p, x = uuid4(), uuid4(), uuid4()
    cases = {
        keys.dataset_key(u, p, x, "My Take.wav"): ("dataset", "My_Take.wav"),
        keys.model_key(u, p, x): ("model", "model.pth"),
        keys.model_config_key(u, p, x): ("model_config", "config.json"),
        keys.model_cluster_key(u, p, x): ("model_cluster", "cluster.pt"),
        keys.model_preview_key(u, p, x, "original"): ("model_preview", "preview-original.wav"),
        keys.model_preview_key(u, p, x, "converted"): ("model_preview", "preview-converted.wav"),
        keys.conversion_input_key(u, p, x, "mp3"): ("conversion_input", "input.mp3"),
        keys.conversion_output_key(u, p, x): ("conversion_output", "output.wav"),
        keys.conversion_part_key(u, p, x, "vocal"): ("conversion_output", "vocal.wav"),
        keys.conversion_part_key(u, p, x, "instrumental"): (
            "conversion_output",
            "instrumental.wav",
        ),
        keys.instant_reference_key(u, p, x, "wav"): ("instant_reference", "reference.wav"),
        keys.instant_input_key(u, p, x, "flac"): ("instant_input", "input.flac"),
        keys.instant_part_key(u, p, x, "mix"): ("instant_output", "output.wav"),
        keys.text_keys(u, p, x)[0]: ("speech_output", "speech.wav"),
        keys.text_keys(u, p, x)[1]: ("speech_output", "speech.mp3"),
    }
    for key, (kind, leaf) in cases.items():
        parsed = keys.parse_key(key)
        assert parsed is not None, key
        assert (parsed.kind, parsed.user_id, parsed.profile_id, parsed.object_id, parsed.leaf) == (
            kind,
            u,
            p,
            x,
            leaf,
        )


@pytest.mark.parametrize(
    "key",
    [
        "",
        "vc/users/",
        "other/users/{u}/profiles/{p}/dataset/{x}/a.wav",
        "vc/users/{u}/profiles/{p}/dataset/{x}/../a.wav",
        "vc/users/{u}/profiles/{p}/dataset/{x}/a/b.wav",
        "vc/users/{u}/profiles/{p}/dataset/{x}/.hidden",
        "vc/users/{U}/profiles/{p}/dataset/{x}/a.wav",
        "vc/users/not-a-uuid/profiles/{p}/dataset/{x}/a.wav",
        "vc/users/{u}/profiles/{p}/models/{x}/weights.bin",
        "vc/users/{u}/profiles/{p}/conversions/{x}/input.ogg",
        "vc/users/{u}/profiles/{p}/conversions/{x}/output.wav.tmp",
        "vc/users/{u}/profiles/{p}/conversions/{x}/drums.wav",
        "vc/users/{u}/profiles/{p}/speech/{x}/speech.ogg",
        "vc/users/{u}/profiles/{p}/speech/{x}/output.wav",
        "/vc/users/{u}/profiles/{p}/dataset/{x}/a.wav",
        "vc/users/{u}/profiles/{p}/dataset/{x}/a.wav\n",
    ],
)
def test_parser_rejects_anything_outside_the_layout(key: str) -> None:
    u, p, x = uuid4(), uuid4(), uuid4()
    key = key.format(u=u, U=str(u).upper(), p=p, x=x)
    assert keys.parse_key(key) is None


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("take.wav", "take.wav"),
        ("  spaced name.WAV ", "spaced_name.wav"),
        ("Ünïcødé.flac", "Unicde.flac"),  # ø has no ASCII decomposition
        ("....wav", "audio.wav"),
        ("日本語.mp3", "audio.mp3"),
        ("a" * 300 + ".wav", "a" * 96 + ".wav"),
        ("noext", "noext"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert keys.safe_filename(name) == safe
    parsed = keys.parse_key(keys.dataset_key(uuid4(), uuid4(), uuid4(), name))
    assert parsed is not None and parsed.leaf == safe
