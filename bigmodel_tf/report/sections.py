"""What a run's report is made of: sections of images, tables and texts.

A family adds its own sections through `TrainingTask.report_sections`; the report page
(`report.html`) shows every block and, at the end of training, TensorBoard gets the images (the
Images tab) and texts (the Text tab) of the sections that ask for it.

    >>> Section("Samples", [Text("temperature 0.5", "To be, or not..."), Image("curves", png)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Image:
    """A PNG picture.

    Args:
        name: str. Its name: the alt text on the page, the tag in TensorBoard.
        png: bytes. The PNG file's bytes (`pictures.png_bytes(figure)`).
        caption: str. What it shows, under it. Defaults to none.
    """

    name: str
    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """A table of values (numbers are shown with 4 significant digits).

    Args:
        name: str. Its name: the tag in TensorBoard.
        header: sequence of str. The column names.
        rows: sequence of sequences. One value per column each.
        caption: str. What it shows, under it. Defaults to none.
    """

    name: str
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass(frozen=True)
class Text:
    """A text shown as it is (line breaks and spacing kept): generated samples, outputs.

    Args:
        name: str. Its name: the heading above it, the tag in TensorBoard.
        text: str. The text.
    """

    name: str
    text: str


Block = Image | Table | Text


@dataclass
class Section:
    """A titled part of a report.

    Args:
        title: str. The heading.
        blocks: list of `Image`, `Table` or `Text`, in order.
        note: str. A sentence under the heading. Defaults to none.
        tensorboard: bool. Whether the end of training also writes the blocks to TensorBoard;
            False for what a family already logs there every epoch. Defaults to True.
    """

    title: str
    blocks: list[Block] = field(default_factory=list)
    note: str = ""
    tensorboard: bool = True


def format_value(value: Any) -> str:
    """A cell's text: floats with 4 significant digits, lists joined by commas."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(format_value, value))
    return str(value)
