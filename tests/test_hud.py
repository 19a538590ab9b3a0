"""The HUD: status lines cut to the window, problems wrapped so their end (often what
to do) stays readable."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from runtime.render.hud import BACK_RGBA, LINE_PX, PAD_PX, TEXT_RGBA, WARN_LINES, WARN_RGBA, Hud

pytestmark = pytest.mark.gl

PROBLEM = (
    "dream stage bypassed: model 'tv-googlenet' is not in the cache "
    "(/root/.cache/latentstage/models/tv-googlenet): run `run_show.py models pull "
    "tv-googlenet` on a connected machine, or download "
    "https://download.pytorch.org/models/googlenet-1378be20.pth to "
    "/root/.cache/latentstage/models/tv-googlenet/googlenet-1378be20.pth"
)


def test_long_problems_wrap_and_every_line_fits(gl_ctx):
    hud = Hud(gl_ctx)
    width_px = 640
    rows = hud._wrap(PROBLEM, width_px - 2 * PAD_PX)
    assert 2 <= len(rows) <= WARN_LINES
    assert all(hud.font.getlength(row) <= width_px - 2 * PAD_PX for row in rows)
    assert rows[0].startswith("dream stage bypassed:")
    assert "models pull" in " ".join(rows)  # the pull command is not cut off
    hud.update(["status " * 60], [PROBLEM, "short"], width_px)
    width, height = hud.size_px
    assert width <= width_px
    assert height == (1 + len(rows) + 1) * LINE_PX + 2 * PAD_PX


def test_short_text_is_left_alone(gl_ctx):
    hud = Hud(gl_ctx)
    assert hud._wrap("all good", 400) == ["all good"]
    assert hud._fit("all good", 400) == "all good"
    cut = hud._fit("x" * 500, 200)
    assert cut.endswith("…") and hud.font.getlength(cut) <= 200


def pillow_block(hud: Hud, rows: list[tuple[str, tuple[int, ...]]]) -> np.ndarray:
    """The rows drawn by Pillow in one image, as the HUD drew them before it laid
    out characters itself: (H, W, 4), top row first."""
    width = max(int(hud.font.getlength(text)) for text, _ in rows) + 2 * PAD_PX
    image = Image.new("RGBA", (width, len(rows) * LINE_PX + 2 * PAD_PX), BACK_RGBA)
    draw = ImageDraw.Draw(image)
    for i, (text, rgba) in enumerate(rows):
        draw.text((PAD_PX, PAD_PX + i * LINE_PX), text, font=hud.font, fill=rgba)
    return np.asarray(image)


def test_lines_laid_out_from_kept_characters_are_pillows_own_pixels(gl_ctx):
    hud = Hud(gl_ctx)
    lines = [
        "frame p50 13.1 ms  p99 56.0 ms  (budget 33.3)  late 3/600",
        "generator stylegan cuda interop 1024x1024  58.9 fps | dream 3 steps 12 ms",
        "scenes: calm [bloom] cut (fading 40%) | REC 00:01:23 set.mkv 0 dropped",
        "Äöü ßé ñ {}|_~ 0123456789",
    ]
    for redraw in range(3):  # fresh, then from the kept lines and characters
        shown = [*lines[:1], f"{lines[1]} #{redraw}", *lines[2:]]
        hud.update(shown, ["missing weights: /tmp/x.pkl"], 1280)
        width, height = hud.size_px
        seen = np.frombuffer(hud.texture.read(), np.uint8).reshape(height, width, 4)[::-1]
        rows = [(text, TEXT_RGBA) for text in shown] + [("missing weights: /tmp/x.pkl", WARN_RGBA)]
        np.testing.assert_array_equal(seen, pillow_block(hud, rows))
