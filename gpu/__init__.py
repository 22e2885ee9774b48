"""The GPU side: the only package that imports torch; the web side never imports it.

Grouped by job: `training/`, `conversion/`, `separation/`, and `measures/` (pitch, loudness,
speaker, quality) that they share. What every job shares stays here: the worker's context
(`runtime`), failures and the heartbeat (`errors`), sealed inputs (`sealed`), the model
weights cache (`weights`), chunked streaming (`chunked`), logging (`logs`) and the command
line (`__main__`). A new job kind is one more folder beside these.
"""
