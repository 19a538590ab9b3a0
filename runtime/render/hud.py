"""The heads-up display: a few lines of text over the picture, for the performer.

Text is laid out into an RGBA image a few times a second (not every frame) and
uploaded as a texture; the compositor blends it over the window. Pillow draws each
character once; a line is its characters' coverage placed by their advances and
blended over the backing as Pillow blends, so a redraw costs no font rendering
(the same pixels as Pillow's own line, kerned pairs aside). A line that reads as it
did at the last redraw is not laid out again.
"""

from __future__ import annotations

import functools

import moderngl
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_PX = 15
LINE_PX = 19
PAD_PX = 8
TEXT_RGBA = (235, 235, 235, 255)
WARN_RGBA = (255, 120, 90, 255)
BACK_RGBA = (0, 0, 0, 150)
#: A problem takes at most this many lines (what to do is often at its end).
WARN_LINES = 3
#: Characters kept drawn (about 600 bytes each).
GLYPHS_KEPT = 4096
_BACK_PIXEL = np.array(BACK_RGBA, np.uint8).view(np.uint32)[0]


class Hud:
    """Renders text lines into a texture.

    Args:
        ctx: the window's GL context.
    Thread: main.
    """

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self.visible = True
        self.font = ImageFont.load_default(FONT_PX)
        self.texture: moderngl.Texture | None = None
        self.size_px = (0, 0)
        # The last redraw's lines: most stay the same from one redraw to the next.
        self._rows: dict[tuple[str, tuple[int, ...], int, bool], list[np.ndarray]] = {}
        self._glyphs: dict[str, tuple[np.ndarray, float]] = {}

    def update(self, lines: list[str], warnings: list[str], max_width_px: int) -> None:
        """Redraw the text: `lines` in white, `warnings` in red below.

        Args:
            lines: status lines.
            warnings: problems (long ones wrap onto up to WARN_LINES lines, the last
                cut to fit `max_width_px`).
            max_width_px: the window width.
        Thread: main.
        """
        room_px = max_width_px - 2 * PAD_PX
        kept, self._rows = self._rows, {}  # only this redraw's lines are kept for the next
        rows = [row for line in lines for row in self._drawn(kept, line, TEXT_RGBA, room_px, False)]
        rows += [
            row for text in warnings for row in self._drawn(kept, text, WARN_RGBA, room_px, True)
        ]
        width = max((row.shape[1] for row in rows), default=2 * PAD_PX)
        height = len(rows) * LINE_PX + 2 * PAD_PX
        backing = np.empty((height, max(width, 1)), np.uint32)  # one RGBA pixel each
        backing.fill(_BACK_PIXEL)
        pixels = backing.view(np.uint8).reshape(height, -1, 4)
        for i, row in enumerate(rows):  # top row first
            top = PAD_PX + i * LINE_PX
            pixels[top : top + LINE_PX, : row.shape[1]] = row
        size = (pixels.shape[1], height)
        if self.texture is None or self.size_px != size:
            if self.texture is not None:
                self.texture.release()
            self.texture = self.ctx.texture(size, 4, alignment=1)
            self.size_px = size
        self.texture.write(np.ascontiguousarray(pixels[::-1]))  # GL rows run bottom-up

    def _drawn(
        self, kept: dict, text: str, rgba: tuple[int, ...], room_px: int, wrap: bool
    ) -> list[np.ndarray]:
        """`text` drawn as rows of (LINE_PX, width, 4) pixels on the backing, padding
        on both sides: cut to one row, or wrapped (`_wrap`); taken from `kept` (the
        last redraw's) when it was drawn then."""
        key = (text, rgba, room_px, wrap)
        drawn = self._rows.get(key) or kept.get(key)
        if drawn is None:
            texts = self._wrap(text, room_px) if wrap else [self._fit(text, room_px)]
            drawn = [self._row(t, rgba) for t in texts]
        self._rows[key] = drawn
        return drawn

    def _row(self, text: str, rgba: tuple[int, ...]) -> np.ndarray:
        """(LINE_PX, width, 4) uint8: `text` over the backing, PAD_PX either side."""
        glyphs = [self._glyph(char) for char in text]
        width = int(sum(advance for _, advance in glyphs)) + 2 * PAD_PX
        widest = max((mask.shape[1] for mask, _ in glyphs), default=0)
        coverage = np.zeros((LINE_PX, width + widest), np.uint8)
        over = _over()
        pen = 0.0
        for mask, advance in glyphs:
            x = int(pen)
            under = coverage[:, x : x + mask.shape[1]]
            under[:] = over[under, mask]  # where edges meet, one over the other, as Pillow
            pen += advance
        return _ink(rgba)[coverage[:, :width]]

    def _glyph(self, char: str) -> tuple[np.ndarray, float]:
        """A character's coverage, (LINE_PX, w) uint8, drawn once by Pillow with its
        origin PAD_PX in (where a row's first character sits), and its advance in
        pixels."""
        glyph = self._glyphs.get(char)
        if glyph is None:
            if len(self._glyphs) >= GLYPHS_KEPT:  # months of CLIP prompts in every script
                self._glyphs.clear()
            advance = self.font.getlength(char)
            image = Image.new("L", (int(advance) + 2 * PAD_PX, LINE_PX), 0)
            ImageDraw.Draw(image).text((PAD_PX, 0), char, font=self.font, fill=255)
            glyph = self._glyphs[char] = (np.asarray(image), advance)
        return glyph

    def _length(self, text: str) -> float:
        return sum(self._glyph(char)[1] for char in text)

    def viewport(self, window_px: tuple[int, int]) -> tuple[int, int, int, int]:
        """Where the HUD goes: the top-left corner of the window. Thread: main."""
        width, height = self.size_px
        return (0, window_px[1] - height, width, height)

    def _fit(self, text: str, width_px: int) -> str:
        if self._length(text) <= width_px:
            return text
        return text[: self._chars_fitting(text, width_px, "…")] + "…"

    def _wrap(self, text: str, width_px: int) -> list[str]:
        """`text` over at most WARN_LINES lines, broken at spaces where possible."""
        out = []
        while text and len(out) < WARN_LINES - 1 and self._length(text) > width_px:
            cut = self._chars_fitting(text, width_px, "")
            space = text.rfind(" ", 0, cut + 1)
            cut = space if space > cut // 2 else cut
            out.append(text[:cut])
            text = "  " + text[cut:].lstrip()
        out.append(self._fit(text, width_px))
        return out

    def _chars_fitting(self, text: str, width_px: int, suffix: str) -> int:
        """How many of `text`'s first characters fit in `width_px` with `suffix`."""
        room_px = width_px - self._length(suffix)
        pen = 0.0
        for count, char in enumerate(text):
            pen += self._glyph(char)[1]
            if pen > room_px:
                return count
        return len(text)


@functools.cache
def _ink(rgba: tuple[int, ...]) -> np.ndarray:
    """(256, 4) uint8: the backing under `rgba` at each coverage, blended as Pillow
    blends an ink through a mask: (back (255 - m) + ink m) / 255, rounded."""
    cover = np.arange(256)[:, None]
    return _div255(np.array(BACK_RGBA) * (255 - cover) + np.array(rgba) * cover).astype(np.uint8)


@functools.cache
def _over() -> np.ndarray:
    """(256, 256) uint8: coverage `new` drawn over `old` at [old, new], as Pillow
    lays one glyph's edge over another's: new + old (255 - new) / 255, rounded."""
    old, new = np.arange(256)[:, None], np.arange(256)[None, :]
    return (new + _div255(old * (255 - new))).astype(np.uint8)


def _div255(value: np.ndarray) -> np.ndarray:
    """value / 255, rounded as Pillow rounds it (integers)."""
    value = value + 128
    return ((value >> 8) + value) >> 8
