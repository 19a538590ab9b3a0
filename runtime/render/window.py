"""The GLFW window: windowed or fullscreen on a chosen monitor, keys for the
performer, and the GL context the compositor draws with.

Keys: Esc or q quits, h toggles the HUD, f toggles fullscreen; every other key is
handed to `on_key` by name (the live loop writes it to the bus as `key:NAME`).

Monitors come and go over months (a projector switched off, a cable pulled): a
fullscreen window follows the chosen monitor by its name, plays on the primary one
while it is missing (also at start, with a warning), and goes back to it when it
returns. GLFW's monitor callback notices; the window moves between two frames.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

import glfw
import moderngl

from runtime.errors import OutputError
from runtime.render.llvm import load_triton_first

log = logging.getLogger(__name__)

# GLFW reports through our log (debug level), not Python warnings on stderr.
glfw.ERROR_REPORTING = "log"


def monitors() -> list[str]:
    """Connected monitors as 'N: name WxH @ R Hz' lines; empty with no display or
    none connected. Leaves GLFW initialised (call glfw.terminate when done).

    Thread: main.
    """
    if not glfw.init():
        return []
    lines = []
    for i, monitor in enumerate(glfw.get_monitors() or []):
        mode = glfw.get_video_mode(monitor)
        lines.append(
            f"{i}: {_name(monitor)} {mode.size.width}x{mode.size.height} @ {mode.refresh_rate} Hz"
        )
    return lines


def _name(monitor) -> str:
    return glfw.get_monitor_name(monitor).decode(errors="replace")


def _same(a, b) -> bool:
    """Whether two GLFW monitor handles are the same monitor (ctypes pointers
    compare by object, not address)."""
    address = ctypes.cast(a, ctypes.c_void_p).value if a else None
    return address == (ctypes.cast(b, ctypes.c_void_p).value if b else None)


class Window:
    """A GL 3.3 core window.

    Args:
        title: the window title.
        size_px: windowed size.
        fullscreen: start fullscreen on `monitor` (cursor hidden).
        monitor: monitor index (`run_show.py devices`); a missing one plays on the
            primary monitor until it is connected.
        vsync: swap on the display's refresh.
    Attributes:
        monitor_name: the chosen monitor's name once it was seen (the window finds it
            again by name when it comes back), else None.
    Raises:
        OutputError: no display, or no GL 3.3.
    Thread: main (GLFW requires it).
    """

    def __init__(
        self,
        title: str,
        size_px: tuple[int, int],
        *,
        fullscreen: bool = False,
        monitor: int = 0,
        vsync: bool = True,
    ) -> None:
        if not glfw.init():
            raise OutputError(
                "no display to open a window on (is DISPLAY set?); "
                "render without one: --headless --frames N --out FILE"
            )
        self.size_px = size_px
        self.monitor_index = monitor
        self.monitor_name: str | None = None
        self.show_hud_toggled = False
        self.on_key: Callable[[str, bool], None] | None = None
        self._held: dict[int, str] = {}
        self._monitors_changed = False
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        load_triton_first()
        self.window = glfw.create_window(size_px[0], size_px[1], title, None, None)
        if not self.window:
            glfw.terminate()
            raise OutputError("could not create an OpenGL 3.3 window")
        glfw.make_context_current(self.window)
        glfw.swap_interval(1 if vsync else 0)
        glfw.set_key_callback(self.window, self._on_key)
        glfw.set_monitor_callback(self._on_monitor)
        self.ctx = moderngl.create_context()
        self.fullscreen = False
        if fullscreen:
            self.set_fullscreen(True)

    def set_fullscreen(self, on: bool) -> None:
        """Go fullscreen on the chosen monitor (cursor hidden), or back to a window.
        A missing monitor is a warning: the primary one stands in until it returns.

        Thread: main.
        """
        self.fullscreen = on
        if on:
            self._fill(self._target_monitor())
        else:
            glfw.set_window_monitor(self.window, None, 80, 80, *self.size_px, 0)
            glfw.set_input_mode(self.window, glfw.CURSOR, glfw.CURSOR_NORMAL)

    def _chosen_monitor(self):
        """The chosen monitor if connected: by name once known (indices shift as
        monitors come and go), else by index."""
        found = glfw.get_monitors() or []
        if self.monitor_name is None:
            if self.monitor_index < len(found):
                self.monitor_name = _name(found[self.monitor_index])
                return found[self.monitor_index]
            return None
        named = [i for i, m in enumerate(found) if _name(m) == self.monitor_name]
        if not named:
            return None
        # Two monitors of one model share a name: prefer the one at the chosen index.
        return found[self.monitor_index if self.monitor_index in named else named[0]]

    def _target_monitor(self):
        """Where a fullscreen window belongs now: the chosen monitor, else the primary
        one, with a warning (None: no monitor at all)."""
        chosen = self._chosen_monitor()
        if chosen is not None:
            return chosen
        primary = glfw.get_primary_monitor()
        wanted = f"monitor {self.monitor_index}"
        if self.monitor_name is not None:
            wanted += f" ({self.monitor_name})"
        found = glfw.get_monitors() or []
        action = f"playing on the primary monitor ({_name(primary)})" if primary else "waiting"
        log.warning(
            "no %s: %d connected (%s); %s until it is connected",
            wanted,
            len(found),
            "; ".join(monitors()) or "none",
            action,
        )
        return primary

    def _fill(self, monitor) -> None:
        """Fill `monitor` (None: leave the window where it is)."""
        if not monitor:
            return
        mode = glfw.get_video_mode(monitor)
        glfw.set_window_monitor(
            self.window, monitor, 0, 0, mode.size.width, mode.size.height, mode.refresh_rate
        )
        glfw.set_input_mode(self.window, glfw.CURSOR, glfw.CURSOR_HIDDEN)

    def _on_monitor(self, monitor, event: int) -> None:
        """GLFW's monitor callback (inside poll_events): note the change; `swap`
        moves the window afterwards, outside the callback."""
        what = "connected" if event == glfw.CONNECTED else "disconnected"
        log.warning("monitor %s: %s", what, _name(monitor) if monitor else "?")
        self._monitors_changed = True

    def _follow_monitors(self) -> None:
        """After monitors changed: a fullscreen window goes to where it belongs."""
        self._monitors_changed = False
        if not self.fullscreen:
            return
        target = self._target_monitor()
        if target and not _same(target, glfw.get_window_monitor(self.window)):
            log.info("fullscreen on %s", _name(target))
            self._fill(target)

    @property
    def on_monitor(self) -> str | None:
        """The name of the monitor the window fills, or None when windowed.
        Thread: main."""
        monitor = glfw.get_window_monitor(self.window)
        return _name(monitor) if monitor else None

    @property
    def framebuffer_px(self) -> tuple[int, int]:
        """The drawable size in px (differs from the window size on HiDPI). Thread: main."""
        width, height = glfw.get_framebuffer_size(self.window)
        return (max(width, 1), max(height, 1))

    def should_close(self) -> bool:
        """True once the performer asked to quit. Thread: main."""
        return bool(glfw.window_should_close(self.window))

    def clear(self) -> None:
        """Black over the whole window (closed hours). Thread: main."""
        self.ctx.screen.use()
        self.ctx.viewport = (0, 0, *self.framebuffer_px)
        self.ctx.screen.clear(0.0, 0.0, 0.0, 1.0)

    def swap(self) -> None:
        """Show the frame and handle window events (keys, monitors). Thread: main."""
        glfw.swap_buffers(self.window)
        glfw.poll_events()
        if self._monitors_changed:
            self._follow_monitors()

    def close(self) -> None:
        """Close the window and release GLFW. Thread: main."""
        glfw.set_monitor_callback(None)
        self.ctx.release()
        glfw.destroy_window(self.window)
        glfw.terminate()

    def _on_key(self, window, key: int, scancode: int, action: int, mods: int) -> None:
        if action == glfw.RELEASE:
            name = self._held.pop(key, None)
            if name is not None and self.on_key is not None:
                self.on_key(name, False)
            return
        if action != glfw.PRESS:
            return
        if key in (glfw.KEY_ESCAPE, glfw.KEY_Q):
            glfw.set_window_should_close(window, True)
        elif key == glfw.KEY_H:
            self.show_hud_toggled = not self.show_hud_toggled
        elif key == glfw.KEY_F:
            self.set_fullscreen(not self.fullscreen)
        else:
            name = key_name(key, scancode, mods)
            if name is not None:
                self._held[key] = name
                if self.on_key is not None:
                    self.on_key(name, True)


#: Names of the keys that print nothing (glfw.get_key_name answers None for them).
_NAMED_KEYS = {
    glfw.KEY_SPACE: "space",
    glfw.KEY_ENTER: "enter",
    glfw.KEY_TAB: "tab",
    glfw.KEY_BACKSPACE: "backspace",
    glfw.KEY_LEFT: "left",
    glfw.KEY_RIGHT: "right",
    glfw.KEY_UP: "up",
    glfw.KEY_DOWN: "down",
    **{getattr(glfw, f"KEY_F{n}"): f"f{n}" for n in range(1, 13)},
    **{getattr(glfw, f"KEY_KP_{n}"): f"kp{n}" for n in range(10)},
}


def key_name(key: int, scancode: int, mods: int) -> str | None:
    """A pressed key as the bus names it (`key:NAME`): the layout's character for
    printable keys ("r", "1", "-"), "space", "left", "f5" ... for others, with
    "shift+", "ctrl+" and "alt+" before it when held. None for a modifier alone.

    Thread: main.
    """
    base = _NAMED_KEYS.get(key) or glfw.get_key_name(key, scancode)
    if not base:
        return None
    prefix = "".join(
        f"{word}+"
        for word, bit in (
            ("ctrl", glfw.MOD_CONTROL),
            ("alt", glfw.MOD_ALT),
            ("shift", glfw.MOD_SHIFT),
        )
        if mods & bit
    )
    return prefix + base.lower()
