"""`chain-sdk`, the runtime's command line: `main.py` (commands), `formats.py` (code files),
`demo.py` (the demo's edited copies), `exits.py` (exit codes and argument checks shared with
chain-train and chain-export)."""

from chain_sdk.cli.demo import EDITS, make_copy
from chain_sdk.cli.formats import OUT_FORMATS, read_codes, write_codes
from chain_sdk.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from chain_sdk.cli.main import build_parser, main

__all__ = ["EDITS", "EXIT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "OUT_FORMATS", "build_parser", "main",
           "make_copy", "read_codes", "write_codes"]
