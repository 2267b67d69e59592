"""The index page of a run with several target tasks: one section per task, linking its full report.

Each task's experiment is a complete run folder (``<run>/<task>/report.html``);
the index repeats each one's matched-accuracy verdict and frontier figure so
the tasks can be read side by side, and is rebuilt from their results.json alone.
"""

from __future__ import annotations

from pathlib import Path

from circuitdrift.io import read_json, write_json, write_text
from circuitdrift.report.build import build_report, load_results
from circuitdrift.report.render import Block, Figure, Heading, Paragraph, render_html, render_markdown
from circuitdrift.report.sweep import verdict_blocks


def index_blocks(root: Path, name: str, folders: dict[str, str]) -> list[Block]:
    blocks: list[Block] = [
        Heading(1, f"circuitdrift: {name}"),
        Paragraph(f"One experiment per target task ({', '.join(folders)}), each with the same models, probes, "
                  "methods, learning rates, seeds and budget; each task's full report is in its folder."),
    ]
    for task, folder in folders.items():
        results = load_results(root / folder)
        blocks += [Heading(2, f"Target task: {task}"),
                   Paragraph(f"Full report: {folder}/report.html (Markdown: {folder}/report.md).")]
        blocks += verdict_blocks(results.sweep, results.methods)
        frontier = Path(folder) / "figures" / "frontier.png"
        if (root / frontier).is_file():
            blocks.append(Figure(frontier.as_posix(), f"Frontier on {task}",
                                 "Target accuracy against prior-capability measures, every checkpoint of every run."))
    return blocks


INDEX = "index.json"  # {"name": ..., "folders": {task: subfolder}}: what `report` needs to rebuild the index


def build_index(root: str | Path, name: str, folders: dict[str, str]) -> list[Path]:
    """Write index.json, index.md and index.html in ``root`` for ``folders`` (task -> subfolder)."""
    root = Path(root)
    blocks = index_blocks(root, name, folders)
    return [write_json(root / INDEX, {"name": name, "folders": folders}),
            write_text(root / "index.md", render_markdown(blocks)),
            write_text(root / "index.html", render_html(blocks, f"circuitdrift: {name}", root))]


def rebuild(root: str | Path) -> list[Path]:
    """Rebuild every task's report and the index of a several-task run folder from their results.json."""
    root = Path(root)
    index = read_json(root / INDEX, "index file")
    written = []
    for folder in index["folders"].values():
        written += build_report(root / folder)
    return written + build_index(root, index["name"], index["folders"])
