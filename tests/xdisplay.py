"""An X server for window tests (Xvfb) and a way to start the CLI on it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from runtime import PROJECT_ROOT


@pytest.fixture(scope="module")
def display():
    """An Xvfb server for the test module; yields its DISPLAY (":N")."""
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed (install.sh --dev installs it)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            "640x360x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    # Keep the pipe open while Xvfb runs: it may write its display number again, and
    # a write to a closed pipe kills it.
    number = os.read(read_fd, 16).decode().strip()
    # Xvfb names its display before it accepts connections: wait until it does.
    # (-noreset above: by default the server resets whenever its last client leaves,
    # and a client arriving during the reset is turned away.)
    deadline = time.monotonic() + 15
    while True:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(f"/tmp/.X11-unix/X{number}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)
    os.close(read_fd)


def run_show(args: list[str], display: str | None, **kwargs) -> subprocess.Popen:
    """`run_show.py ARGS` on `display` (None: no DISPLAY at all), output merged."""
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    if display:
        env["DISPLAY"] = display
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen(
        [sys.executable, "run_show.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def in_a_fresh_process(request: pytest.FixtureRequest) -> bool:
    """Run the calling test again, alone, in a new Python process.

    A GLFW window's GLX context cannot be made current in a process where an EGL
    context already is (the headless tests' session context): Xlib answers BadAccess
    and exits the process. A test that opens a window in-process calls this first and
    returns when it gives True; in the fresh process it gives False and the test runs.

    Returns:
        True in the calling process (the test passed in the fresh one), False in
        the fresh process.
    """
    node = request.node.nodeid
    if os.environ.get("LATENTSTAGE_FRESH_TEST") == node:
        return False
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
        cwd=PROJECT_ROOT,
        env={**os.environ, "LATENTSTAGE_FRESH_TEST": node},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "1 passed" in proc.stdout, proc.stdout[-3000:]
    return True
