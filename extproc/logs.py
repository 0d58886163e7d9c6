"""Logging setup shared by every subcommand: one line per record on stderr."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | None = None, prefix: str | None = None) -> None:
    level = (level or os.environ.get("EXTPROC_LOG_LEVEL", "INFO")).upper()
    tag = f"[{prefix}] " if prefix else ""
    logging.basicConfig(level=level, force=True,
                        format=f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s")
