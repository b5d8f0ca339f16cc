"""What the `levers-admin` groups share: the program name, exit codes and help epilog."""

from __future__ import annotations

from worker.commands import REDIS_VARIABLES, environment_help, epilog, exit_codes_help

PROG = "levers-admin"
EXIT_CODES = (
    (0, "done"),
    (
        1,
        "refused: nothing matched what was asked (the message names what exists), or some "
        "dead letters could not be replayed",
    ),
    (2, "could not start: bad option, bad configuration, or Redis unreachable"),
)
ENVIRONMENT = (*REDIS_VARIABLES, "default_region")


# For commands that only read.
READ_EXIT_CODES = (EXIT_CODES[0], EXIT_CODES[2])


def admin_epilog(codes: tuple[tuple[int, str], ...] = EXIT_CODES) -> str:
    """Exit codes and environment variables, under every levers-admin parser."""
    return epilog(exit_codes_help(codes), environment_help(ENVIRONMENT))
