"""The experiment pipeline: config, stages that hand files to each other, caching and resume."""
