"""A report's sections as one self-contained HTML page: inline style, images as base64 PNG data
URLs, nothing fetched from anywhere (a report is read offline, mailed, attached to a ticket)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from bigmodel_tf.report.sections import Block, Image, Section, Table, Text, format_value

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222;
       padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1em; margin-bottom: 0.3em; }
.subtitle, .note, figcaption, caption { color: #555; }
nav a { margin-right: 1em; }
figure { margin: 1em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
caption { caption-side: bottom; text-align: left; padding-top: 0.3em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; white-space: pre-wrap; }
"""


def _image(block: Image) -> str:
    data = base64.b64encode(block.png).decode("ascii")
    caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
    alt = html.escape(block.name, quote=True)
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{caption}</figure>'


def _cell(value: object) -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    css = ' class="number"' if number else ""
    return f"<td{css}>{html.escape(format_value(value))}</td>"


def _table(block: Table) -> str:
    header = "".join(f"<th>{html.escape(str(name))}</th>" for name in block.header)
    rows = "".join(f"<tr>{''.join(map(_cell, row))}</tr>" for row in block.rows)
    caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
    return f"<table>{caption}<thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"


def _text(block: Text) -> str:
    return f"<h3>{html.escape(block.name)}</h3><pre>{html.escape(block.text)}</pre>"


def _block(block: Block) -> str:
    if isinstance(block, Image):
        return _image(block)
    if isinstance(block, Table):
        return _table(block)
    return _text(block)


def _anchor(index: int) -> str:
    return f"section-{index}"


def render(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The page: a title, a line under it, links to the sections, then each section."""
    links = " ".join(
        f'<a href="#{_anchor(i)}">{html.escape(s.title)}</a>' for i, s in enumerate(sections)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f'<h1>{html.escape(title)}</h1><p class="subtitle">{html.escape(subtitle)}</p>',
        f"<nav>{links}</nav>",
    ]
    for index, section in enumerate(sections):
        parts.append(f'<section id="{_anchor(index)}"><h2>{html.escape(section.title)}</h2>')
        if section.note:
            parts.append(f'<p class="note">{html.escape(section.note)}</p>')
        parts.extend(map(_block, section.blocks))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
