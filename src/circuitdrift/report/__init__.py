"""The report: figures, the summary table and a Markdown + self-contained HTML page, built from results.json."""

from __future__ import annotations


def build_report(run_dir):
    """See :func:`circuitdrift.report.build.build_report` (imported on call, so importing this package is cheap)."""
    from circuitdrift.report.build import build_report as _build  # defers torch (compare/ imports circuits/)

    return _build(run_dir)


__all__ = ["build_report"]
