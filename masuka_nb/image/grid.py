"""Contact sheets: several images in one, optionally labelled (LoRA comparisons, seed sweeps, the app's gallery)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from masuka_nb.errors import InvalidRequestError

__all__ = ["make_grid"]


def make_grid(
    images: Sequence[Any],
    *,
    rows: int | None = None,
    cols: int | None = None,
    labels: Sequence[str] | None = None,
    cell_size: tuple[int, int] | None = None,
    gap: int = 4,
    background: tuple[int, int, int] = (255, 255, 255),
    label_height: int | None = None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
) -> Any:
    """One PIL image holding `images` in a grid (row by row). `labels` go under each cell.

    `rows`/`cols` default to a near-square layout; cells take the first image's size unless
    `cell_size` is given (others are fitted inside, keeping their aspect ratio). `images` may also be
    a list of rows (lists of images, all the same length), which sets `rows` and `cols`.
    `row_labels` (one per row) go in a header column on the left, `col_labels` (one per column) in a
    header strip on top: the layout of a comparison, where each row and column means one thing.
    """
    from PIL import Image, ImageDraw, ImageFont

    images = list(images)
    if images and all(isinstance(row, (list, tuple)) for row in images):
        widths = {len(row) for row in images}
        if len(widths) != 1 or not images[0]:
            raise InvalidRequestError("Every row of `images` must hold the same number of images (≥ 1).",
                                      argument="images", value=sorted(widths), hint="Pad short rows or pass a flat list.")
        rows, cols = len(images), len(images[0])
        images = [im for row in images for im in row]
    if not images:
        raise InvalidRequestError("`images` is empty: nothing to put in a grid.", argument="images", value=[],
                                  hint="Pass at least one PIL image.")
    if not all(isinstance(im, Image.Image) for im in images):
        raise InvalidRequestError("Every item of `images` must be a PIL image.", argument="images",
                                  value=[type(im).__name__ for im in images][:5], hint="Use result.images.")
    n = len(images)
    for name, value in (("rows", rows), ("cols", cols)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidRequestError(f"`{name}` must be a whole number ≥ 1.", argument=name, value=value,
                                      hint=f"Or leave {name}=None to choose automatically.")
    if cols is None and rows is None:
        cols = math.ceil(math.sqrt(n))
    if cols is None:
        cols = math.ceil(n / rows)
    if rows is None:
        rows = math.ceil(n / cols)
    if rows * cols < n:
        raise InvalidRequestError(f"A {rows}×{cols} grid holds {rows * cols} images, not {n}.", argument="rows",
                                  value=(rows, cols), hint="Leave rows or cols as None to size it automatically.")
    if labels is not None and len(labels) != n:
        raise InvalidRequestError(f"{len(labels)} labels for {n} images.", argument="labels", value=len(labels),
                                  hint="Give one label per image (empty strings are fine).")
    for name, header, count in (("row_labels", row_labels, rows), ("col_labels", col_labels, cols)):
        if header is not None and len(header) != count:
            raise InvalidRequestError(f"{len(header)} {name} for {count} {name[:3]}s.", argument=name,
                                      value=len(header), hint=f"Give one label per {name[:3]} (empty strings are fine).")
    cw, ch = cell_size or images[0].size
    font = ImageFont.load_default()
    lh = 0 if not labels else (label_height if label_height is not None else 14)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 0 if not row_labels else 8 + math.ceil(max(measure.textlength(str(t), font=font) for t in row_labels))
    top = 0 if not col_labels else (label_height if label_height is not None else 14) + 4
    width = left + cols * cw + (cols + 1) * gap
    height = top + rows * (ch + lh) + (rows + 1) * gap
    sheet = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(sheet)
    for c, text in enumerate(col_labels or ()):
        if text:
            x = left + gap + c * (cw + gap)
            draw.text((x + 2, 2), _fit(draw, str(text), font, cw - 4), fill=(0, 0, 0), font=font)
    for r, text in enumerate(row_labels or ()):
        if text:
            y = top + gap + r * (ch + lh + gap)
            draw.text((4, y + ch // 2 - 5), str(text), fill=(0, 0, 0), font=font)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        x = left + gap + c * (cw + gap)
        y = top + gap + r * (ch + lh + gap)
        cell = im.convert("RGB")
        if cell.size != (cw, ch):
            cell = cell.copy()
            cell.thumbnail((cw, ch))
        sheet.paste(cell, (x + (cw - cell.width) // 2, y + (ch - cell.height) // 2))
        if labels and labels[i]:
            draw.text((x + 2, y + ch + 1), _fit(draw, str(labels[i]), font, cw - 4), fill=(0, 0, 0), font=font)
    return sheet


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text
