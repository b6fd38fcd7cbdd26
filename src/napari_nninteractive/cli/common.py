"""What every command line shares: the one guard that turns user errors into one line."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable


def guarded(
    prog: str,
    run_fn: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    extra_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Run ``run_fn(args)``: the one guard of every command line.

    One of :data:`~..core.errors.USER_ERRORS` (a ``UserError``: anything the user can fix, or an
    ``OSError`` of the file system) or running out of memory prints one line naming the fix and exits 2, with no
    traceback. Anything else is a bug: its traceback is printed with a request to report it
    (exit 1).
    """
    from ..core.errors import REPORT_BUG, USER_ERRORS, user_message

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return run_fn(args)
    except (*USER_ERRORS, *extra_errors) as exc:
        print(f"{prog}: error: {user_message(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prog}: error: out of memory; close other programs, or crop or downsample the image.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"{prog}: {REPORT_BUG}", file=sys.stderr)
        return 1
