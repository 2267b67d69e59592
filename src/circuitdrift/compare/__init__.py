"""Comparison of fine-tuning runs: frontiers, matched-accuracy comparisons and interval statistics."""
