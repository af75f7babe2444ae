"""A tiny sub-command dispatcher shared by `python -m stm_zoo` and `python -m training`.

Each sub-command lives in the module that owns its logic and exposes two functions:
`configure_parser(parser: argparse.ArgumentParser) -> None` and `run(args) -> int`.
Modules are imported only when their command runs, so `--help` stays fast and a broken optional
dependency of one command cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from stm_zoo.errors import StmZooError

EXIT_USER_ERROR = 2


def dispatch(
    prog: str,
    description: str,
    commands: dict[str, tuple[str, str]],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse `argv`, run the chosen command and turn user errors into one line on stderr.

    Args:
        prog: program name shown in usage.
        description: one-line description for `--help`.
        commands: name -> (module path, help line).
        argv: arguments (default: sys.argv[1:]).

    Returns:
        The process exit code: 0 on success, 2 on a user error (message printed, no traceback).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if a in commands), None)
    for name, (module_path, help_line) in commands.items():
        command_parser = sub.add_parser(name, help=help_line, description=help_line)
        if name == chosen:
            module = importlib.import_module(module_path)
            module.configure_parser(command_parser)
            command_parser.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except StmZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
