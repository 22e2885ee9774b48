"""Training a voice: the job (`job`), its data (`prepare`, `held_out`), the Lightning loop
around the fork's model (`trainer`, `validation`, `schedule`, `early_stop`), the presets, and
the quality report measured on the held-out pieces (`evaluate`)."""
