"""``kvmnet show``: the host's network as a picture (SVG or Graphviz DOT) or as JSON.

::

    kvmnet show --svg host.svg          # guests, networks, bridges, host NICs, the LAN
    kvmnet show --dot | dot -Tpng > host.png
    kvmnet -c test:///default show --json
"""

from __future__ import annotations

import argparse
import sys

from ._common import CommandError, add_json_option, command_uri, print_json

__all__ = ["register", "write_svg"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``show``."""
    p = sub.add_parser("show", help="draw the host's network: guests, bridges, NICs, LAN")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--svg", metavar="FILE", help="write the picture as SVG ('-': stdout)")
    out.add_argument("--dot", action="store_true", help="print Graphviz DOT")
    add_json_option(out)
    p.add_argument(
        "--theme", choices=("light", "dark"), default="light", help="SVG colours (default light)"
    )
    p.add_argument("--netns", metavar="NS", help="read the host's links inside this namespace")
    p.set_defaults(handler=_show)


def write_svg(path: str, svg: str) -> None:
    """Write ``svg`` to ``path`` ('-': stdout); a file that cannot be written is exit 1."""
    if path == "-":
        sys.stdout.write(svg)
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(svg)
    except OSError as exc:
        raise CommandError(f"cannot write {path!r}: {exc.strerror}") from exc


def _show(args: argparse.Namespace) -> int:
    import kvmnet

    runner = None
    if args.netns is not None:
        from ..hostnet.runners.runner import default_runner

        runner = default_runner(args.netns)
    with kvmnet.connect(command_uri(args)) as host:
        topo = host.topology(runner=runner)
    if args.json:
        print_json(topo.to_dict())
    elif args.dot:
        sys.stdout.write(topo.dot())
    elif args.svg is not None:
        write_svg(args.svg, topo.svg(theme=args.theme))
    else:
        print(topo.summary())
    return 0
