"""Moved to :mod:`minnet.teaching.demo`; this name stays so that old imports keep working."""

from .teaching.demo import *  # noqa: F403
