"""The one place where the command line turns a user error into a message and an exit code.

A user error (:data:`reid_core.app.experiment.USER_ERRORS`: a bad config, dataset layout, run
state, a full disk, ...) is one unwrapped line ``error: Type: message`` (it may name a path, so
it is never wrapped: copy-pasteable) and exit code 2; Ctrl-C is one line and exit code 130.
Everything else is a bug and keeps its traceback.

Several processes (torchrun): an error that every rank raised together (a failed check,
:func:`reid_core.utils.distributed.agree`) is printed once, by rank 0; any other error of a
rank other than 0 is printed with its rank (``[rank 1] error: ...``).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

#: Exit code of a user error (as argparse uses for a usage error).
EXIT_USER_ERROR = 2
#: Exit code after Ctrl-C (128 + SIGINT, what a shell reports).
EXIT_INTERRUPTED = 130

#: What survives a Ctrl-C (checkpoints and records are written atomically, interrupts deferred
#: until a write completes).
INTERRUPTED = ("nothing half-written was left; a training run keeps its checkpoint of the last "
               "finished epoch: continue it with --resume (reproduce scripts: re-run the same "
               "command)")


def print_error(console: Console, error: BaseException) -> None:
    """Print a user error as one line (markup in the message is printed as is); nothing on a
    rank other than 0 when rank 0 prints the same error."""
    from reid_core.app.experiment import describe_error
    from reid_core.utils.distributed import REPORTED_BY_MAIN, launch_rank

    if getattr(error, REPORTED_BY_MAIN, False):
        return
    rank = launch_rank()
    prefix = f"[rank {rank}] " if rank else ""
    console.print(f"{escape(prefix)}[bold red]error:[/] {escape(describe_error(error))}",
                  highlight=False, soft_wrap=True)


def run_guarded(command: Callable[[], int], console: Console) -> int:
    """``command()``'s exit code; a user error or Ctrl-C is reported instead of raised."""
    from reid_core.app.experiment import USER_ERRORS

    try:
        return command()
    except USER_ERRORS as e:  # user-fixable: one clear message, no traceback
        print_error(console, e)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        console.print(f"[bold red]interrupted[/]: {INTERRUPTED}", highlight=False)
        return EXIT_INTERRUPTED
