"""`chain-sdk`, the runtime's command line: `main.py` (commands), `formats.py` (code files),
`demo.py` (the demo's edited copies)."""

from chain_sdk.cli.demo import EDITS, make_copy
from chain_sdk.cli.formats import OUT_FORMATS, read_codes, write_codes
from chain_sdk.cli.main import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, build_parser, main

__all__ = ["EDITS", "EXIT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "OUT_FORMATS", "build_parser", "main",
           "make_copy", "read_codes", "write_codes"]
