"""Moved to :mod:`minnet.teaching.bugs`; this name stays so that old imports keep working."""

from .teaching.bugs import *  # noqa: F403
