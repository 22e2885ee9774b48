"""Training batches of a few lengths (`Speed(length_bucket=frames)`): each batch padded up to a
whole number of `frames`, instead of to its longest piece as the fork pads it.

Why: with the fork's padding nearly every batch has a length of its own, and each cost keyed
by a shape is paid again and again: cuDNN's benchmark mode autotunes every new shape (137 GiB
and 53 s before the first step on an H200, so it is off), a compiled part compiles again (so
the prior encoder and the F0 decoder stay eager), a CUDA graph is captured again. The fork's
dataset cuts a piece at 800 frames, so a bucket of b frames leaves at most ceil(800 / b)
lengths; a bucket of 800 leaves one.

Why it changes nothing a step learns (in distribution: the posterior's and prior's samples
draw a number for every padded frame too, so a seed gives other draws after them): the
networks mask every frame past a piece's length (the fork already pads every piece but a
batch's longest), the mel, feature-matching and adversarial losses see slices drawn inside a
piece's length, and the KL loss is averaged over the mask (`tests/test_length_buckets.py`
compares them). The exceptions are the F0 predictor's: only it learns from its loss (its
input is detached), and Adam's step hardly depends on a gradient's scale. Its loss is a plain
mean over the padded tensor, where padded frames add no error but weigh the mean down by
their share; and its first convolution reads one frame past a piece, which is the padding
for every piece but a batch's longest in the fork's batches, and for the longest too in
bucketed ones.
"""

from dataclasses import dataclass
from typing import Any

# The fork's `TextAudioCollate` returns (content, f0, spec, mel, audio, speaker, lengths, uv).
FRAME_KEYED = (0, 1, 2, 3, 7)
AUDIO = 4
# Frames a piece may have (`so_vits_svc_fork.dataset.TextAudioDataset.max_spec_len`).
LONGEST = 800


def padded(batch: tuple, bucket: int, hop: int) -> tuple:
    """`batch` as the fork collates it, every frame-keyed tensor padded with zeros to the next
    multiple of `bucket` frames and the audio by as many hops; `lengths` stay the pieces'."""
    from torch.nn.functional import pad

    extra = -batch[0].shape[-1] % bucket
    if not extra:
        return batch
    out = list(batch)
    for i in FRAME_KEYED:
        out[i] = pad(batch[i], (0, extra))
    out[AUDIO] = pad(batch[AUDIO], (0, extra * hop))
    return tuple(out)


@dataclass(frozen=True)
class BucketedCollate:
    """The fork's collate, then `padded` (a plain class, so loader workers can pickle it)."""

    collate: Any
    bucket: int
    hop: int

    def __call__(self, pieces: list) -> tuple:
        return padded(self.collate(pieces), self.bucket, self.hop)
