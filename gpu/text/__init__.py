"""Text in a voice: an engine speaks the text, the chosen voice converts it (see speak.py)."""
