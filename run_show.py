#!/usr/bin/env python3
"""Play, render, check and measure latentstage shows. `python run_show.py --help`."""

import sys

from runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
