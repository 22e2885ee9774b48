"""Converting a vocal or a whole song into a trained voice: the job (`job`), a song's
separate → convert → mix path (`song`), reading the input (`audio_io`), the fork's inference
(`inference`), the container's cache of loaded models (`model_cache`) and the mix (`mix`)."""
