"""Logging as the SDK sets it up in a task (task-contract.md 8): a handler on stderr on the root
logger, level INFO, the SDK's format. The node keeps a task's stdout and stderr as its log, so
whatever a task logs (`self.logger`, `logging.getLogger(...)`, print) reaches the manager.

Configured once, at `import manta.light`, unless the task configured the root logger before.
"""
import logging
import sys

FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s (%(filename)s:%(lineno)d)"
LEVEL = logging.INFO


def setup_logging(level=LEVEL, fmt: str = FORMAT) -> logging.Logger:
    """Give the root logger the SDK's stderr handler (once); returns the root logger."""
    root = logging.getLogger()
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(fmt))
        root.addHandler(h)
        root.setLevel(level)
    return root


def get_logger(name: str) -> logging.Logger:
    """A logger whose INFO records reach the task's log even when the root logger was set to a
    higher level by something else."""
    setup_logging()
    logger = logging.getLogger(name)
    if logger.getEffectiveLevel() > LEVEL:
        logger.setLevel(LEVEL)
    return logger


setup_logging()
