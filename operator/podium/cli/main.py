"""The `podium` command: a thin dispatcher to each subsystem's own CLI module.

Each subcommand lives with the code it drives and exposes ``main(argv) -> int``; importing them lazily
keeps `podium agent` start-up free of operator and Kubernetes imports.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("podium.operator.cli", "run the Kubernetes operator (kopf)"),
    "agent": ("podium.agent.cli", "run an agent: consume its inbox and execute tasks"),
    "run": ("podium.cli.orchestrations", "submit, watch and inspect Orchestrations"),
    "ui": ("podium.viewer.cli", "serve the read-only run viewer (a web page)"),
    "selftest": ("podium.cli.selftest", "prove an installation works: an Agent runs one task (helm test)"),
}


def usage() -> str:
    lines = ["usage: podium <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines.append("\n`podium <command> --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version", "version"):
        from podium import __version__

        print(__version__)
        return 0
    entry = SUBCOMMANDS.get(args[0])
    if entry is None:
        print(f"podium: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(entry[0])
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
