"""The HUD: status lines cut to the window, problems wrapped so their end (often what
to do) stays readable."""

from __future__ import annotations

import pytest

from runtime.render.hud import LINE_PX, PAD_PX, WARN_LINES, Hud

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
