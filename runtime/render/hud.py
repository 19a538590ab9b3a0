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
        rows = [(self._fit(line, room_px), TEXT_RGBA) for line in lines]
        for warning in warnings:
            rows += [(text, WARN_RGBA) for text in self._wrap(warning, room_px)]
        width = max((int(self.font.getlength(text)) for text, _ in rows), default=0) + 2 * PAD_PX
        height = len(rows) * LINE_PX + 2 * PAD_PX
        image = Image.new("RGBA", (max(width, 1), height), BACK_RGBA)
        draw = ImageDraw.Draw(image)
        for i, (text, rgba) in enumerate(rows):
            draw.text((PAD_PX, PAD_PX + i * LINE_PX), text, font=self.font, fill=rgba)
        pixels = np.asarray(image)[::-1]  # GL rows run bottom-up
        if self.texture is None or self.size_px != image.size:
            if self.texture is not None:
                self.texture.release()
            self.texture = self.ctx.texture(image.size, 4, alignment=1)
            self.size_px = image.size
        self.texture.write(np.ascontiguousarray(pixels))

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
