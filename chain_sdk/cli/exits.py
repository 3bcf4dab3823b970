"""One set of exit codes and argument checks for the three command lines (chain-sdk,
chain-train, chain-export); `EXIT_CODES_HELP` is the epilog of each `--help`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from chain_sdk.errors import ChainSDKError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

EXIT_CODES_HELP = """exit status:
  0  success
  1  error: the command could not do its job (missing or bad model, input file or data;
     a parity gate that failed); the reason is on stderr
  2  usage: invalid command line (unknown option, bad value)
  3  partial failure: some inputs failed; the output holds every one that worked and the
     failures are listed on stderr"""


class UsageError(ChainSDKError):
    """Arguments that are well-formed one by one but not together (exit status 2)."""


def run(prog: str, handler: Callable[[Any], int], args: Any,
        usage_errors: tuple[type[BaseException], ...] = ()) -> int:
    """`handler(args)`, with user-facing errors turned into a one-line message and an exit status
    (never a traceback): UsageError (and `usage_errors`) -> 2, any other ChainSDKError -> 1."""
    try:
        return int(handler(args))
    except (UsageError, *usage_errors) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ChainSDKError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is not {'positive' if low == 1 else 'non-negative'}")
    return value


def device(text: str) -> str:
    """cpu | cuda | cuda:N, checked here so that a typo never runs silently on the CPU."""
    from chain_sdk.backends.base import parse_device

    try:
        parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class TqdmHandler(logging.Handler):
    """Writes records with tqdm.write: a log line above the progress bar, never through it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(verbose: int, fmt: str = "%(levelname)s %(name)s: %(message)s") -> None:
    """Log lines through tqdm.write, so they never break a progress bar on the terminal."""
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    # Replace what logging.basicConfig or an earlier call installed on stderr; keep other
    # handlers (files, pytest's capture).
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, TqdmHandler) and not (
        type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.stdout))]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
