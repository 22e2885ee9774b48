"""The HTTP face of the pipeline. Never imports torch: the web function must cold-start fast."""
