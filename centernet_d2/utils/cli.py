"""How the command-line tools show a user's mistake: one ``error: ...`` line, exit status 2.

The library raises ``FileNotFoundError`` (and the other ``OSError``\\ s of a path), ``ValueError``
or :class:`ConfigKeyError` naming the file, config key or argument and the fix; a tool runs its
``main`` through :func:`run_tool`, which prints those as one line (``--debug`` shows the
traceback instead) when this project raised them (:func:`raised_by_project`: the error left
``centernet_d2`` or ``tools/``), and lets every other exception raise as usual: a ``ValueError``
from inside torch, numpy or Detectron2 is a bug to see, not a user's mistake. :func:`flag_context`
adds the command-line flag that gave the input to an error's message.
"""

import argparse
import contextlib
import logging
import os
import sys
from typing import Any, Callable, Iterator

from ..deploy.runtime import MissingPackageError

__all__ = [
    "USER_ERRORS",
    "raised_by_project",
    "ConfigKeyError",
    "add_debug_flag",
    "config_tool_parser",
    "flag_context",
    "run_tool",
]

EXIT_USER_ERROR = 2  # as argparse's own usage errors
# the package's folder: errors raised in it are the library's
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class ConfigKeyError(KeyError):
    """An unknown config key; ``str()`` is the message itself (``KeyError`` would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# a user's mistakes: missing or unreadable files and folders, bad values, unknown config keys
USER_ERRORS = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    ValueError,
    MissingPackageError,
    ConfigKeyError,
)


def config_tool_parser(description: str) -> argparse.ArgumentParser:
    """The parser of a tool that runs a config: ``--config-file FILE`` (required) and
    ``--debug``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    return add_debug_flag(parser)


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--debug", action="store_true", help="show the traceback of an input error")
    return parser


@contextlib.contextmanager
def flag_context(flag: str = "", hint: str = "") -> Iterator[None]:
    """Re-raise a user error raised inside as the same type with ``flag: `` before its message
    and ``hint`` after it (the command line's way to the fix the library's message names)."""
    try:
        yield
    except USER_ERRORS as e:
        message = f"{flag}: {e}" if flag else str(e)
        try:
            wrapped = type(e)(f"{message} {hint}" if hint else message)
        except TypeError:  # an exception type with other constructor arguments
            raise e
        raise wrapped from e


def raised_by_project(error: BaseException, tool_file: str = "") -> bool:
    """Whether ``error`` was raised in this project's code: the innermost frame of its traceback
    (where it was raised, or called the builtin that raised it: ``open()`` of a user's path) is in
    the ``centernet_d2`` package or in ``tool_file`` (the running tool's script)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = os.path.abspath(tb.tb_frame.f_code.co_filename)
    return where.startswith(_PACKAGE_DIR) or (
        bool(tool_file) and where == os.path.abspath(tool_file)
    )


def run_tool(main: Callable[[Any], Any], args: argparse.Namespace) -> Any:
    """``main(args)``; a user error that this project raised (:func:`raised_by_project`) is
    printed as ``error: <message>`` on stderr and exits with status 2, unless ``args.debug``."""
    # torch logs that it finds no CUDA runtime when Detectron2 collects the environment for its
    # log: nothing to act on for tools that compile no extension
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        return main(args)
    except USER_ERRORS as e:
        tool_file = getattr(getattr(main, "__code__", None), "co_filename", "")
        if getattr(args, "debug", False) or not raised_by_project(e, tool_file):
            raise
        message = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.strerror and e.filename:  # raised by open() and the like
            message = f"{e.strerror}: {e.filename}"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
