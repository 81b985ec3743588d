"""Where a registry page spends its time (issue 17 item 7): cProfile of the dashboard,
participant list, participant page and follow-up form paths on a seeded registry.

    PYTHONPATH=src .venv/bin/python benchmarks/registry_profile.py [--participants 10000]
        [--repeat 20] [--top 25] [--db postgresql://…] [--snapshot DIR]

Seeds the registry as benchmarks/registry_load.py does (the same function: the service layer,
audit trail included; PostgreSQL started in a temp dir unless ``--db``), logs in as the
data-entry user through the page form, then runs each request ``--repeat`` times under
cProfile and prints the mean wall time per request and the functions with the most time.

The app is driven in process through httpx's ASGI transport with the threadpool replaced by
inline calls (``anyio.to_thread.run_sync``), so the routes, their dependencies and the
middleware all run in the profiled thread: the profile shows the whole request, not only the
client's side of it (the server, not the network, is measured). ``--sort`` picks the order
(``tottime`` shows where the CPU goes; ``cumulative`` which call paths).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry_load

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _inline_threadpool() -> None:
    """Run what FastAPI/Starlette send to the threadpool in the calling thread (profiling)."""
    import anyio.to_thread

    async def run_sync(func, *args, abandon_on_cancel=False, cancellable=None, limiter=None):
        return func(*args)

    anyio.to_thread.run_sync = run_sync


class InProcessClient:
    """A blocking facade over ``httpx.AsyncClient`` on the ASGI app, on one event loop in
    this thread (cookies kept between requests, as a browser does)."""

    def __init__(self, app) -> None:
        import asyncio

        import httpx

        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        )

    def get(self, url: str, **kw):
        return self.loop.run_until_complete(self.client.get(url, **kw))

    def post(self, url: str, **kw):
        return self.loop.run_until_complete(self.client.post(url, **kw))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def main(argv: list[str] | None = None) -> int:
    import datetime as dt

    from cryoneuro.registry.settings import RegistrySettings
    from cryoneuro.web import create_app

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--db")
    ap.add_argument("--snapshot", type=Path, help="as registry_load.py --snapshot")
    ap.add_argument("--only", help="profile only this kind (e.g. dashboard)")
    ap.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    args = ap.parse_args(argv)
    _inline_threadpool()
    url, stop = (args.db, None) if args.db else registry_load.start_postgres()
    try:
        t0 = time.perf_counter()
        ids = registry_load.seed_or_restore(url, args.participants, args.snapshot)["RBH"]
        print(f"seeded {args.participants} participants in {time.perf_counter() - t0:.0f} s")
        settings = RegistrySettings(
            db_url=url, key_file=registry_load.KEY_FILE, secure_cookies=False
        ).load_keys()
        app = create_app(settings)
        client = InProcessClient(app)
        try:
            token = TOKEN.search(client.get("/login").text).group(1)
            form = {"username": "nurse", "password": registry_load.PASSWORD, "csrf_token": token}
            assert client.post("/login", data=form, follow_redirects=False).status_code == 303
            visit_date = (dt.date.today() - dt.timedelta(days=3)).isoformat()
            step = iter(range(10**6))

            def followup_post() -> int:
                pid = ids[next(step) % len(ids)]
                data = {
                    "csrf_token": token,
                    "visit_code": "m1",
                    "visit_date": visit_date,
                    "answers.nrs.pain": "4",
                }
                return client.post(
                    f"/participants/{pid}/followup", data=data, follow_redirects=False
                ).status_code

            kinds = {
                "dashboard": lambda: client.get("/").status_code,
                "participant list": lambda: (
                    client.get("/api/participants?limit=100&offset=2000").status_code
                ),
                "participant page": lambda: client.get(f"/participants/{ids[17]}").status_code,
                "follow-up GET": lambda: (
                    client.get(f"/participants/{ids[17]}/followup").status_code
                ),
                "follow-up POST": followup_post,
            }
            # the dashboard's service calls on their own, outside the page
            from cryoneuro.registry.auth import Actor
            from cryoneuro.registry.models import User
            from cryoneuro.registry.services.dashboard import dashboard, outcome_summary
            from cryoneuro.registry.services.participants import participant_rows

            factory = app.state.session_factory
            with factory() as session:
                nurse = session.query(User).filter_by(username="nurse").one()
                actor = Actor.from_user(nurse)
                services = {
                    "dashboard()": lambda: dashboard(session, actor),
                    "outcome_summary()": lambda: outcome_summary(session, actor),
                    "participant_rows(page)": lambda: participant_rows(
                        session, actor, limit=100, offset=2000
                    ),
                }
                for name, call in services.items():
                    if args.only and args.only not in ("services", name):
                        continue
                    call()
                    prof = cProfile.Profile()
                    t = time.perf_counter()
                    prof.enable()
                    for _ in range(args.repeat):
                        call()
                    prof.disable()
                    ms = (time.perf_counter() - t) / args.repeat * 1e3
                    print(f"\n## service {name}: {ms:.1f} ms per call (profiled)")
                    text = io.StringIO()
                    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(args.top)
                    print(text.getvalue())
            for kind, call in kinds.items():
                if args.only and kind != args.only:
                    continue
                status = call()  # warm (templates compiled, caches filled)
                t = time.perf_counter()
                for _ in range(args.repeat):
                    call()
                plain_ms = (time.perf_counter() - t) / args.repeat * 1e3
                prof = cProfile.Profile()
                t = time.perf_counter()
                prof.enable()
                for _ in range(args.repeat):
                    status = call()
                prof.disable()
                ms = (time.perf_counter() - t) / args.repeat * 1e3
                print(
                    f"\n## {kind}: {plain_ms:.1f} ms per request ({ms:.1f} ms profiled; "
                    f"HTTP {status})"
                )
                text = io.StringIO()
                pstats.Stats(prof, stream=text).sort_stats(args.sort).print_stats(args.top)
                print(text.getvalue())
        finally:
            client.close()
            app.state.engine.dispose()
    finally:
        if stop is not None:
            stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
