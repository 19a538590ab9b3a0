"""Everything GL: shader passes, the compositor, the window, the headless context,
the recorder and the HUD. Imports no torch: frames arrive as numpy arrays."""
