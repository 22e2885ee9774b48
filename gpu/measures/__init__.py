"""What every job measures: pitch (`f0`, `rmvpe`, `pitch_range`), loudness (`loudness`),
speaker identity (`singers`) and a voice's quality report (`quality`)."""
