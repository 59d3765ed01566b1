"""The ``safehandler`` command: ``soak`` a handler; print the ``settings`` table.

Exit status: 0 clean, 1 leak found or invocations failing, 2 usage error (one line on stderr,
no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._health_state import state_path, worst_live_state
from ._redact import redact_text
from .errors import ConfigError
from .layer import ARCHES, build_layer, publish_command, publish_layer
from .policy import settings_table
from .testing import (
    DEFAULT_INVOCATIONS,
    DEFAULT_TIMEOUT,
    LAMBDA_FD_LIMIT,
    SoakReport,
    TargetError,
    load_events,
    load_handler,
    soak,
    soak_isolated,
    soak_policy,
)
from .testing._outcomes import VERDICTS
from .testing._output import AtomicOutput

__all__ = ["main"]

EXIT_CLEAN, EXIT_LEAK, EXIT_USAGE = 0, 1, 2  # EXIT_LEAK: a leak, or failing invocations


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number of at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):  # (NaN fails this too)
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds above 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safehandler", description="Find resources that outlive Lambda invocations."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "soak",
        help="run a handler many times and report what it leaks",
        description="Run a handler many times under the guard; exit 1 if anything leaked.",
    )
    run.add_argument(
        "target",
        help="package.module:function or path/to/file.py:function, or Lambda's "
        "package.module.function or path/to/file.function",
    )
    run.add_argument(
        "-n",
        "--invocations",
        type=_positive,
        default=DEFAULT_INVOCATIONS,
        help=f"how many invocations (default {DEFAULT_INVOCATIONS:,}: past Lambda's 1,024 fds)",
    )
    events = run.add_mutually_exclusive_group()
    events.add_argument("--event", metavar="FILE.json", help="the event for every invocation")
    events.add_argument(
        "--events", metavar="DIR", help="a directory of *.json events, used in turn"
    )
    run.add_argument("--seed", type=int, help="shuffle the events with this seed")
    run.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"each invocation's timeout (default {DEFAULT_TIMEOUT:g}, the Lambda console's "
        "default): the context counts down from it, a longer invocation fails",
    )
    run.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop once the soak cannot end clean: at the first leak or failing invocation",
    )
    run.add_argument(
        "--max-seconds",
        type=_seconds,
        metavar="SECONDS",
        help="stop when this much time has gone by, and report what ran",
    )
    run.add_argument(
        "--isolate",
        action="store_true",
        help="run in a child process under Lambda's limits (RLIMIT_NOFILE, memory size)",
    )
    run.add_argument(
        "--fd-limit",
        type=_positive,
        default=LAMBDA_FD_LIMIT,
        help=f"RLIMIT_NOFILE with --isolate (default {LAMBDA_FD_LIMIT:,}, as on Lambda)",
    )
    run.add_argument(
        "--memory-mb", type=_positive, help="the function's memory size, for the memory limit"
    )
    run.add_argument(
        "--expect",
        choices=VERDICTS,
        help="exit 0 when the verdict is this one, 1 otherwise (a demo of a leak, a test of "
        "the soak itself)",
    )
    run.add_argument("--json", metavar="OUT.json", help="also write the report as JSON here")
    run.add_argument("--html", metavar="OUT.html", help="also write an HTML report with charts")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no text report")
    commands.add_parser("settings", help="print the SAFEHANDLER_* settings as a table")
    check = commands.add_parser(
        "health",
        help="exit 0 if the guarded process is healthy, 1 if not, 2 if unknown",
        description="For container health checks (ECS, Kubernetes): reads the state the guard "
        "keeps beside SAFEHANDLER_HEALTH_FILE, one file per process (<stem>.<pid>.json): the "
        "worst state of the processes still running.",
    )
    check.add_argument("--file", help="the states' base path (default: SAFEHANDLER_HEALTH_FILE)")
    layer = commands.add_parser("layer", help="build or publish the Lambda layer")
    layer_commands = layer.add_subparsers(dest="layer_command", required=True, metavar="COMMAND")
    build = layer_commands.add_parser(
        "build", help="write the layer zip: one per architecture, for every supported Python"
    )
    build.add_argument("--arch", choices=sorted(ARCHES), default="x86_64")
    build.add_argument("-o", "--output", metavar="DIR", required=True)
    build.add_argument(
        "--no-bytecode", action="store_true", help="ship sources only (no precompiled .pyc)"
    )
    publish = layer_commands.add_parser(
        "publish",
        help="publish a built zip as a layer version (dry run unless --yes)",
        description="Prints the AWS CLI command that publishes the zip; with --yes publishes "
        "it with boto3 and the usual AWS credentials, and prints the new version's ARN.",
    )
    publish.add_argument("zip", metavar="ZIP", help="the zip `safehandler layer build` wrote")
    publish.add_argument("--arch", choices=sorted(ARCHES), default="x86_64")
    publish.add_argument("--region", help="the AWS region (default: boto3's)")
    publish.add_argument("--yes", action="store_true", help="publish it for real")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "settings":
        print(settings_table())
        return EXIT_CLEAN
    if args.command == "health":
        return _health(args.file)
    if args.command == "layer":
        return _layer(args)
    with contextlib.ExitStack() as outputs:
        try:
            # Reserved first: a leaking handler may leave no descriptor to open them with later.
            json_out = outputs.enter_context(_reserve(args.json))
            html_out = outputs.enter_context(_reserve(args.html))
            with _terminated_as_interrupt():
                report = _run_soak(args)
        except (TargetError, ConfigError, OSError) as exc:
            print(redact_text(f"safehandler: error: {exc}"), file=sys.stderr)
            return EXIT_USAGE
        if not args.quiet:
            print(report)  # SoakReport's text and to_dict() are redacted
        if json_out is not None:
            json_out.commit(json.dumps(report.to_dict(), indent=2) + "\n")
        if html_out is not None:
            html_out.commit(_html(report, args))
    return _exit_code(report, args.expect)


def _exit_code(report: SoakReport, expected: str | None) -> int:
    if expected is None:
        return EXIT_CLEAN if report.clean else EXIT_LEAK
    if report.verdict == expected:
        return EXIT_CLEAN
    print(f"safehandler: expected {expected}, the verdict is {report.verdict}", file=sys.stderr)
    return EXIT_LEAK


def _reserve(path: str | None) -> contextlib.AbstractContextManager[AtomicOutput | None]:
    if path is None:
        return contextlib.nullcontext()
    return AtomicOutput(path)


@contextlib.contextmanager
def _terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, ``timeout``) stops the soak as Ctrl-C does: the invocations
    that ran are reported and the report files written."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _layer(args: argparse.Namespace) -> int:
    if args.layer_command == "build":
        print(
            build_layer(args.output, arch=args.arch, interpreters=[] if args.no_bytecode else None)
        )
        return EXIT_CLEAN
    archive = Path(args.zip)
    if not archive.is_file():
        print(f"safehandler: error: {archive}: no such zip", file=sys.stderr)
        return EXIT_USAGE
    if not args.yes:
        print("# dry run: the command that publishes it (or run again with --yes):")
        print(publish_command(archive, args.arch, args.region))
        return EXIT_CLEAN
    print(publish_layer(archive, args.arch, region=args.region))
    return EXIT_CLEAN


def _health(path: str | None) -> int:
    state = worst_live_state(path)
    if state is None:
        print(
            redact_text(f"unknown: no live process's health state beside {path or state_path()}"),
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(redact_text(str(state)))
    return EXIT_CLEAN if state.healthy else EXIT_LEAK


def _run_soak(args: argparse.Namespace) -> SoakReport:
    # The project directory is the task root, as on Lambda: `module:function` imports from it
    # under the installed command too (whose sys.path[0] is its own bin directory).
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    events: Any = args.events or args.event
    if args.isolate:
        return soak_isolated(
            args.target,
            invocations=args.invocations,
            events=events,
            fd_limit=args.fd_limit,
            memory_mb=args.memory_mb,
            seed=args.seed,
            timeout=args.timeout,
            fail_fast=args.fail_fast,
            max_seconds=args.max_seconds,
        )
    settings = {"memory_limit_mb": args.memory_mb} if args.memory_mb else {}
    policy = soak_policy(**settings)
    if events:
        load_events(events)  # a bad event file is a usage error, before importing anything
    handler = load_handler(args.target)
    return soak(
        handler,
        events=events,
        invocations=args.invocations,
        policy=policy,
        name=args.target,
        seed=args.seed,
        progress=None if args.quiet else sys.stderr,
        timeout=args.timeout,
        fail_fast=args.fail_fast,
        max_seconds=args.max_seconds,
    )


def _html(report: SoakReport, args: argparse.Namespace) -> str:
    from .testing.html_report import render_html

    return render_html(
        report,
        # the limit line: the one the soak ran under when isolated, else Lambda's (the
        # shell's, often 20,000 or more, would flatten the chart)
        fd_limit=report.fd_limit if report.isolated else LAMBDA_FD_LIMIT,
        memory_limit_bytes=args.memory_mb * 2**20 if args.memory_mb else None,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
