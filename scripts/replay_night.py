#!/usr/bin/env python
"""Publish one new-exposure event per file of a simulated night (see service/stream/replay.py)."""

import sys

from skyqa.service.stream.replay import main

if __name__ == "__main__":
    sys.exit(main())
