"""One report, two renderings: Markdown with relative PNG links, and a self-contained HTML page.

The report's content is a list of blocks (heading, paragraph, bullets, table,
figure) built once in content.py; these renderers only lay it out, so the two
files cannot say different things. The HTML embeds every PNG as base64 and
carries its CSS inline: it opens offline, from e-mail, from anywhere.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from circuitdrift.report.tables import markdown_table


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    path: str  # relative to the run folder, e.g. "figures/forgetting.png"
    title: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


def render_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            table = markdown_table(list(block.header), [list(r) for r in block.rows]).rstrip("\n")
            parts.append(table + (f"\n\n{block.note}" if block.note else ""))
        elif isinstance(block, Figure):
            parts.append(f"![{block.title}]({block.path})\n\n*Figure: {block.title}.* {block.caption}")
    return "\n\n".join(parts) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .88em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: .3em .55em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; margin-top: .3em; }
.note { font-size: .85em; color: #555; }
"""


def render_html(blocks: list[Block], title: str, run_dir: Path) -> str:
    """The page, with every figure read from ``run_dir`` and embedded as a data URI."""
    esc = html.escape
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{esc(c)}</th>" for c in block.header)
            body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            note = f'<p class="note">{esc(block.note)}</p>' if block.note else ""
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}")
        elif isinstance(block, Figure):
            data = base64.b64encode((run_dir / block.path).read_bytes()).decode("ascii")
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(block.title)}">'
                         f"<figcaption><b>{esc(block.title)}.</b> {esc(block.caption)}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")
