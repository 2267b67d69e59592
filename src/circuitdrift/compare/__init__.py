"""The compare stage: aggregation over seeds, statistics, frontiers, results.json's schema and results.csv.

Pure functions of the typed records; imports neither pipeline/ (which calls it) nor report/ (which reads it)."""
