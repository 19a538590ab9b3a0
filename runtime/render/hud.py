"""The heads-up display: a few lines of text over the picture, for the performer.

Text is drawn with Pillow into an RGBA image a few times a second (not every frame)
and uploaded as a texture; the compositor blends it over the window.
"""

from __future__ import annotations

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
#: Lines kept drawn between redraws (all are dropped when there are more).
ROWS_KEPT = 256


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
        # Each line drawn once: most lines stay the same from one redraw to the next.
        self._rows: dict[tuple[str, tuple[int, ...], int], list[np.ndarray]] = {}

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
        rows = [row for line in lines for row in self._drawn(line, TEXT_RGBA, room_px)]
        rows += [row for warning in warnings for row in self._drawn(warning, WARN_RGBA, room_px)]
        width = max((row.shape[1] for row in rows), default=2 * PAD_PX)
        height = len(rows) * LINE_PX + 2 * PAD_PX
        pixels = np.empty((height, max(width, 1), 4), np.uint8)
        pixels[:] = BACK_RGBA
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

    def _drawn(self, text: str, rgba: tuple[int, ...], room_px: int) -> list[np.ndarray]:
        """`text` drawn as rows of (LINE_PX, width, 4) pixels on the backing, padding
        on both sides: a status line cut to one row, a warning wrapped (`_wrap`)."""
        key = (text, rgba, room_px)
        drawn = self._rows.get(key)
        if drawn is None:
            if len(self._rows) >= ROWS_KEPT:
                self._rows.clear()
            texts = [self._fit(text, room_px)] if rgba == TEXT_RGBA else self._wrap(text, room_px)
            drawn = self._rows[key] = [self._row(t, rgba) for t in texts]
        return drawn

    def _row(self, text: str, rgba: tuple[int, ...]) -> np.ndarray:
        image = Image.new("RGBA", (int(self.font.getlength(text)) + 2 * PAD_PX, LINE_PX), BACK_RGBA)
        ImageDraw.Draw(image).text((PAD_PX, 0), text, font=self.font, fill=rgba)
        return np.asarray(image)

    def viewport(self, window_px: tuple[int, int]) -> tuple[int, int, int, int]:
        """Where the HUD goes: the top-left corner of the window. Thread: main."""
        width, height = self.size_px
        return (0, window_px[1] - height, width, height)

    def _fit(self, text: str, width_px: int) -> str:
        if self.font.getlength(text) <= width_px:
            return text
        return text[: self._chars_fitting(text, width_px, "…")] + "…"

    def _wrap(self, text: str, width_px: int) -> list[str]:
        """`text` over at most WARN_LINES lines, broken at spaces where possible."""
        out = []
        while text and len(out) < WARN_LINES - 1 and self.font.getlength(text) > width_px:
            cut = self._chars_fitting(text, width_px, "")
            space = text.rfind(" ", 0, cut + 1)
            cut = space if space > cut // 2 else cut
            out.append(text[:cut])
            text = "  " + text[cut:].lstrip()
        out.append(self._fit(text, width_px))
        return out

    def _chars_fitting(self, text: str, width_px: int, suffix: str) -> int:
        # Bisect on the length: a long message measured char by char took 0.4 s.
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.font.getlength(text[:mid] + suffix) <= width_px:
                lo = mid
            else:
                hi = mid - 1
        return lo
