"""Garbage collector settings for the processes of a crawl run.

A crawl allocates many short-lived objects for every response, and with Python's default
thresholds the collector runs every 700 allocations, each time walking again the objects
Scrapy, Twisted, lxml and SQLAlchemy set up at start-up and keep for the whole run. Those are
moved out of its sight once start-up is over (``gc.freeze``), and collections come less often;
reference counting still frees nearly everything at once, and a run is a short-lived process.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def settle() -> None:
    """Call once start-up is over: freeze what exists, collect less often from then on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
