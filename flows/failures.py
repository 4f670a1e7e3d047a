"""How a run that fails on bad input reads in the Prefect UI: one ERROR line, the state message.

An ``InputError`` (bad data, bad configuration, missing model) is the user's to fix and its message
says how. Left to Prefect, the UI shows it three times, twice with ~25 lines of engine frames (task
failed with traceback, task finished Failed, flow failed with traceback) and the run header only
says Failed. Instead:

- ``failed_on_input`` (in the flow body) logs the message once, as one ERROR line marked
  ``input_error``, and returns a Failed state whose message is that line; calling the flow still
  raises the InputError itself (the CLI turns it into ``error: …`` and exit 2);
- ``QuietInputErrors``, installed on Prefect's task- and flow-run loggers when this module is
  imported (in every process that runs the flow: CLI, worker subprocess, serve), drops Prefect's own
  records of the InputError, tracebacks included.
"""

from __future__ import annotations

import logging

from prefect.states import Failed, State

from tasks.errors import InputError

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


def is_prefects_record_of_input_error(record: logging.LogRecord) -> bool:
    """Prefect's own record of an InputError: with its traceback, or 'Finished in state Failed(…
    InputError: …)'. Not our one line (``input_error`` set)."""
    if getattr(record, "input_error", False):
        return False
    if record.exc_info and isinstance(record.exc_info[1], InputError):
        return True
    return "InputError" in record.getMessage() and record.levelno >= logging.ERROR


class QuietInputErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_prefects_record_of_input_error(record)


def install() -> None:
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietInputErrors) for f in logger.filters):
            logger.addFilter(QuietInputErrors())


def failed_on_input(exc: InputError, logger: logging.Logger | logging.LoggerAdapter) -> State:
    """Log the one line and return the run's Failed state (message = that line)."""
    logger.error("%s", exc, extra={"input_error": True})
    return Failed(message=str(exc), data=exc)


install()
