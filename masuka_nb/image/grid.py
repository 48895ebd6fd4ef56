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
    font_size: int | None = None,
    min_cell: int | None = None,
) -> Any:
    """One PIL image holding `images` in a grid (row by row). `labels` go under each cell.

    `rows`/`cols` default to a near-square layout; cells take the first image's size unless
    `cell_size` is given (others are fitted inside, keeping their aspect ratio). `images` may also be
    a list of rows (lists of images, all the same length), which sets `rows` and `cols`.
    `row_labels` (one per row) go in a header column on the left, `col_labels` (one per column) in a
    header strip on top: the layout of a comparison, where each row and column means one thing.

    Text stays readable at any cell size: the font scales with the cells (`font_size` None: about 1/14 of a
    cell's height, 12 px at least), column headers wrap onto several lines instead of being cut, and
    `min_cell` scales up cells smaller than that many pixels (nearest-neighbour, so pixels stay visible).
    """
    from PIL import Image, ImageDraw

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
    if min_cell and min(cw, ch) < min_cell:
        scale = math.ceil(min_cell / min(cw, ch))
        cw, ch = cw * scale, ch * scale
    if font_size is None:  # an explicit strip height sets the text size; else the cells do
        font_size = max(8, label_height - 2) if label_height is not None else max(12, min(72, round(ch / 14)))
    font = _font(font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = _line_height(measure, font)
    lh = 0 if not labels else (label_height if label_height is not None else line_h + 4)
    left = 0 if not row_labels else 8 + math.ceil(max(measure.textlength(str(t), font=font) for t in row_labels))
    header_lines = [] if not col_labels else (
        [[_fit(measure, str(t), font, cw - 4)] for t in col_labels] if label_height is not None
        else [_wrap(measure, str(t), font, cw - 4) for t in col_labels])
    top = 0 if not col_labels else (label_height if label_height is not None
                                    else max(len(lines) for lines in header_lines) * line_h + 2) + 4
    width = left + cols * cw + (cols + 1) * gap
    height = top + rows * (ch + lh) + (rows + 1) * gap
    sheet = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(sheet)
    for c, lines in enumerate(header_lines):
        x = left + gap + c * (cw + gap)
        for k, text in enumerate(lines):
            if text:
                draw.text((x + 2, 2 + k * line_h), text, fill=(0, 0, 0), font=font)
    for r, text in enumerate(row_labels or ()):
        if text:
            y = top + gap + r * (ch + lh + gap)
            draw.text((4, y + ch // 2 - line_h // 2), str(text), fill=(0, 0, 0), font=font)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        x = left + gap + c * (cw + gap)
        y = top + gap + r * (ch + lh + gap)
        cell = im.convert("RGB")
        if cell.size != (cw, ch):
            if cell.width * ch == cell.height * cw and cell.width < cw:  # scaled up for readability
                cell = cell.resize((cw, ch), Image.Resampling.NEAREST)
            else:
                cell = cell.copy()
                cell.thumbnail((cw, ch))
        sheet.paste(cell, (x + (cw - cell.width) // 2, y + (ch - cell.height) // 2))
        if labels and labels[i]:
            draw.text((x + 2, y + ch + 1), _fit(draw, str(labels[i]), font, cw - 4), fill=(0, 0, 0), font=font)
    return sheet


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow ≥ 10.1 with FreeType: a scalable font
    except (TypeError, AttributeError, OSError, ImportError):
        return ImageFont.load_default()


def _line_height(draw: Any, font: Any) -> int:
    box = draw.textbbox((0, 0), "Ag|", font=font)
    return max(10, box[3] - min(0, box[1]) + 2)


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """Words onto lines no wider than `width` (a word too long on its own is broken, never dropped)."""
    lines, cur = [], ""
    for word in text.split():
        trial = f"{cur} {word}" if cur else word
        if draw.textlength(trial, font=font) <= width:
            cur = trial
            continue
        if cur:
            lines.append(cur)
        cur = ""
        while draw.textlength(word, font=font) > width and len(word) > 1:
            k = len(word)
            while k > 1 and draw.textlength(word[:k], font=font) > width:
                k -= 1
            lines.append(word[:k])
            word = word[k:]
        cur = word
    if cur:
        lines.append(cur)
    return lines or [""]


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text
