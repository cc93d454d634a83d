"""livecommerce: a live-shopping server."""

__version__ = "0.1.0"
