"""`tableau-steward emulator`: serve a generated demo site until Ctrl-C."""

from __future__ import annotations

import argparse
import gc
import logging
import pickle
import signal
import sys

from . import model as m

# A deliberately obvious demo credential: the emulator is a local tool and prints it on start.
DEFAULT_PAT_NAME = "steward-demo"
DEFAULT_PAT_SECRET = "demo-secret-not-for-production"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="serve a local Tableau REST API emulator with a generated demo site",
        description="Serve a stateful Tableau REST API emulator (XML, as tableauserverclient expects) "
        "on a local port, with a deterministic generated site.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8585, help="0 picks a free port (default 8585)")
    parser.add_argument("--site", default="demo", metavar="CONTENT_URL", help="the site's contentUrl")
    parser.add_argument("--size", choices=("demo", "large"), default="demo")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--pat",
        action="append",
        default=[],
        metavar="NAME:SECRET[:USERNAME]",
        help="add a personal access token (repeatable); "
        "without USERNAME it belongs to the site administrator",
    )
    parser.add_argument("--api-version", default="3.24")
    parser.add_argument("--session-idle-seconds", type=float, default=14400)
    parser.add_argument("--job-speed", type=float, default=1.0)
    # Internal: serve a pickled SiteState instead of generating one (emulator.process.EmulatorProcess).
    parser.add_argument("--state-file", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def add_pats(site: m.SiteState, specs: list[str]) -> list[m.PersonalAccessToken]:
    """Parse `NAME:SECRET[:USERNAME]` specs into the site's PATs; a default demo PAT when none are given."""
    if not specs:
        specs = [f"{DEFAULT_PAT_NAME}:{DEFAULT_PAT_SECRET}"]
    added = []
    for spec in specs:
        name, sep, rest = spec.partition(":")
        secret, _, username = rest.partition(":")
        if not sep or not name or not secret:
            raise SystemExit(f"--pat must be NAME:SECRET[:USERNAME], got {spec.split(':', 1)[0]}:…")
        if username:
            user = site.user_by_name(username)
            if user is None:
                raise SystemExit(f"--pat {name}: no user named {username!r} on the site")
        else:
            user = site.site_admin()
        pat = m.PersonalAccessToken(name=name, secret=secret, user_id=user.id)
        site.pats[name] = pat
        added.append(pat)
    return added


YOUNG_GC_THRESHOLD = 20_000


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from .runner import EmulatorServer

    if args.state_file:
        with open(args.state_file, "rb") as handle:
            site = pickle.load(handle)  # written by EmulatorProcess in this same checkout
        pats = add_pats(site, args.pat) if args.pat else []  # the caller knows the state's own PATs
    else:
        from .generator import build_site  # imported late: generating is the slow part

        site = build_site(size=args.size, seed=args.seed, content_url=args.site)
        pats = add_pats(site, args.pat)
    server = EmulatorServer(
        site,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        api_version=args.api_version,
        session_idle_seconds=args.session_idle_seconds,
        job_speed=args.job_speed,
    )
    # The site is a million long-lived objects that every full collection would walk again (tens
    # of ms, at random requests); this process never frees them, so take them out of the GC's view.
    gc.collect()
    gc.freeze()
    # A list page allocates thousands of short-lived tuples while the 20,000-item lists it selects
    # from are young too, and each young collection walks those lists: collect in fewer batches.
    young, middle, old = gc.get_threshold()
    if young:  # 0: automatic collection was turned off on purpose
        gc.set_threshold(max(young, YOUNG_GC_THRESHOLD), middle, old)
    server.start()
    creds = ", ".join(f"PAT {p.name}:{p.secret} ({site.users[p.user_id].name})" for p in pats)
    print(f"Tableau emulator at {server.url} site={site.content_url!r} {creds}".rstrip(), flush=True)
    # SIGTERM (EmulatorProcess.stop, service managers) ends the server as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
