"""The run engine both experiments use: config files, the run folder, cached stages, worker processes, progress."""
