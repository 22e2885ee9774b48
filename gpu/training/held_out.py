"""Which dataset pieces are kept out of training to validate it.

The held-out pieces become the fork's validation list, so the trainer's validation loss (and
the quality report after training) is measured on audio the model never trained on. The
choice is deterministic for a job: pieces are ordered by a hash of the job's seed and their
names, never by a random draw, so a retried worker holds out the same pieces. They are whole
pieces, taken in turn from each source file, until a few percent of the dataset and at least
`MIN_SECONDS` from at least `MIN_FILES` files are held out, while training keeps at least
`MIN_TRAIN_PIECES` pieces.
"""

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SHARE = 0.03  # of the dataset's seconds
MIN_SECONDS = 10.0
MAX_SECONDS = 60.0  # a validation pass must stay cheap beside the training
MIN_TRAIN_PIECES = 4
MIN_FILES = 2  # held-out pieces come from at least this many files, when there are that many
# `preprocess_split` names a piece `{source stem}_{start:.3f}_{end:.3f}.wav`.
_PIECE_NAME = re.compile(r"^(?P<source>.+)_\d+\.\d+_\d+\.\d+$")


@dataclass(frozen=True)
class Piece:
    path: Path
    seconds: float

    @property
    def source(self) -> str:
        found = _PIECE_NAME.match(self.path.stem)
        return found["source"] if found else self.path.stem


@dataclass(frozen=True)
class Split:
    train: list[Piece]
    held_out: list[Piece]
    target_seconds: float

    @property
    def held_out_seconds(self) -> float:
        return sum(p.seconds for p in self.held_out)


def target_seconds(total_seconds: float) -> float:
    return min(max(SHARE * total_seconds, MIN_SECONDS), MAX_SECONDS)


def _rank(seed: str, name: str) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def choose(pieces: list[Piece], seed: str) -> Split:
    """Round-robin over the source files (in an order fixed by the seed), one piece from each
    in turn, until the target is held out or training would fall below MIN_TRAIN_PIECES. A
    dataset too small for `MIN_SECONDS` keeps what it can (at least one piece when it has more
    than MIN_TRAIN_PIECES), so it still trains and still validates, on less."""
    target = target_seconds(sum(p.seconds for p in pieces))
    by_source: dict[str, list[Piece]] = defaultdict(list)
    for piece in sorted(pieces, key=lambda p: _rank(seed, p.path.name)):
        by_source[piece.source].append(piece)
    queues = [by_source[s] for s in sorted(by_source, key=lambda s: _rank(seed, s))]
    files = min(MIN_FILES, len(queues))
    held: list[Piece] = []

    def wanted() -> bool:
        enough = sum(p.seconds for p in held) >= target and len(held) >= files
        return not enough and len(pieces) - len(held) > MIN_TRAIN_PIECES

    while wanted() and any(queues):
        for queue in queues:
            if not wanted():
                break
            if queue:
                held.append(queue.pop(0))
    chosen = {p.path for p in held}
    train = sorted((p for p in pieces if p.path not in chosen), key=lambda p: p.path.name)
    return Split(train, sorted(held, key=lambda p: p.path.name), target)
