"""Moved to :mod:`minnet.teaching.tutorial`; this name stays so that old imports keep working."""

from .teaching.tutorial import *  # noqa: F403
