"""Imported by every Python process started with this folder on PYTHONPATH: it moves the
process's wall clock by SKEWED_CLOCK_SECONDS, as a host whose clock is off would.

Only the clock-skew tests put this folder on the path of the workers they start.
"""

import os
import time

_skew = float(os.environ.get("SKEWED_CLOCK_SECONDS", "0") or 0)
if _skew:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _skew
    time.time_ns = lambda: _time_ns() + int(_skew * 1e9)
