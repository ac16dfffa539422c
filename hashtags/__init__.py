"""Hashtag suggestions for uploaded images: a reusable Django app on top of ``mlcore``."""

__version__ = "0.1.0"
