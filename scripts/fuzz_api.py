"""Property-based API fuzz: every route, two tenants, no 5xx and no cross-tenant read.

Runs the real stack on loopback (Postgres, Redis, LiveKit, the control plane; no worker:
admission is off so sessions need no presenter), creates tenants A and B through the CLI and gives
each a ready deck, a session and a webhook endpoint (with a delivery). Then:

- worker plane: each session's worker credential (what its job holds) on the
  ``/internal/v1/sessions`` routes, fuzzed on its own session (leaving transcript lines, turns
  and escalations for the API pass to read) and refused on the other tenant's session;
- API, as tenant A: schemathesis generates requests for every operation of ``/openapi.json``
  plus the routes it leaves out (``/internal/*``, ``/livekit/webhook``, ``/assets``, the web
  pages: they need other credentials, so A's key must get a 4xx, never a 5xx). Each operation
  gets valid (positive) and invalid (negative) cases, and cases whose id parameters are A's or
  B's ids. Checks: no 5xx, responses and content types as documented, and no 2xx body holding
  one of B's ids;
- cross-tenant: every operation with an id parameter once more with B's ids (path, query and
  ``deck_id`` in a body), which must not answer 2xx (``/v1`` routes: 404);
- B's records, read as B before and after the API pass, are unchanged.

Prints a table per operation (cases, status codes, failures by kind) and per pass, each
failure's first request as curl, and exits 1 on any failure.

    .venv/bin/python scripts/fuzz_api.py [--max-examples 40] [--seed 0] [--only PATH_SUBSTRING]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.devstack.services import free_port  # noqa: E402
from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402
from tests.factories import make_pdf  # noqa: E402

# Parameters that name a tenant's record, and which of B's ids goes there.
ID_PARAMS = {
    "session_id": "session",
    "deck_id": "deck",
    "endpoint_id": "endpoint",
    "delivery_id": "delivery",
    "key_id": "key",
    "key": "asset",
}


@dataclass
class Seed:
    tenant: TenantKey
    name: str
    ids: dict[str, str] = field(default_factory=dict)
    room: str = ""
    credential: str = ""  # the session's worker credential, as its job would hold it

    def secrets(self) -> set[str]:
        """What must never appear in another tenant's 2xx answer."""
        found = {self.tenant.tenant_id, *self.ids.values()}
        found.discard(self.ids.get("asset", ""))
        return found


async def seed(api_url: str, owner: TenantKey, name: str) -> Seed:
    out = Seed(owner, name)
    out.ids["tenant"] = owner.tenant_id
    h = owner.headers
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as api:
        # The endpoint first, so the deck's deck.ready makes a delivery.
        resp = await api.post(
            "/v1/webhooks/endpoints",
            headers=h,
            json={"url": "http://127.0.0.1:9/hook", "events": ["deck.ready", "session.ended"]},
        )
        resp.raise_for_status()
        out.ids["endpoint"] = str(resp.json()["endpoint_id"])
        pdf = make_pdf([[f"{name} slide {i}", f"{name} body {i}"] for i in range(1, 4)])
        resp = await api.post("/v1/decks", headers=h, files={"file": (f"{name}.pdf", pdf)})
        resp.raise_for_status()
        deck_id = str(resp.json()["deck_id"])
        deadline = time.monotonic() + 60
        while (deck := (await api.get(f"/v1/decks/{deck_id}", headers=h)).json())["status"] not in (
            "ready",
            "failed",
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("deck not ingested in 60 s")
            await asyncio.sleep(0.2)
        if deck["status"] != "ready":
            raise RuntimeError(f"deck failed: {deck}")
        out.ids["deck"] = deck_id
        slides = (await api.get(f"/v1/decks/{deck_id}/slides", headers=h)).json()["slides"]
        image = slides[0]["image_url"] or ""
        out.ids["asset"] = image.split("/assets/", 1)[-1].split("?", 1)[0]
        resp = await api.post(
            "/v1/sessions",
            headers=h,
            json={"deck_id": deck_id, "participant": {"identity": "ada", "name": "Ada"}},
        )
        resp.raise_for_status()
        out.ids["session"] = str(resp.json()["session_id"])
        out.room = str(resp.json()["room"])
        keys = (await api.get("/v1/keys", headers=h)).json()
        items = keys["items"] if isinstance(keys, dict) else keys
        out.ids["key"] = str(items[0]["key_id"])
        deadline = time.monotonic() + 30
        while not out.ids.get("delivery"):
            page = (await api.get("/v1/webhooks/deliveries", headers=h)).json()
            if page["items"]:
                out.ids["delivery"] = str(page["items"][0]["delivery_id"])
            elif time.monotonic() > deadline:
                raise TimeoutError("no webhook delivery in 30 s")
            else:
                await asyncio.sleep(0.2)
    return out


async def snapshot(api_url: str, owner: Seed) -> dict[str, Any]:
    """B's records as B reads them: compared before and after the fuzz."""
    h, ids = owner.tenant.headers, owner.ids
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as api:
        deck = (await api.get(f"/v1/decks/{ids['deck']}", headers=h)).json()
        session = (await api.get(f"/v1/sessions/{ids['session']}", headers=h)).json()
        slide = (await api.get(f"/v1/sessions/{ids['session']}/slide", headers=h)).json()
        endpoints = (await api.get("/v1/webhooks/endpoints", headers=h)).json()
        keys = (await api.get("/v1/keys", headers=h)).json()
        avatar = (await api.get("/v1/tenant/avatar", headers=h)).json()
        deliveries = (await api.get("/v1/webhooks/deliveries", headers=h)).json()
    items = keys["items"] if isinstance(keys, dict) else keys
    return {
        "deck": (deck.get("deck_id"), deck.get("status")),
        "session": (session.get("session_id"), session.get("status"), session.get("end_reason")),
        "slide": (slide.get("index"), slide.get("version"), slide.get("paused")),
        "endpoints": sorted(str(e["endpoint_id"]) for e in endpoints),
        "keys": sorted((str(k["key_id"]), str(k.get("revoked_at"))) for k in items),
        "avatar": avatar,
        "deliveries": len(deliveries["items"]),
    }


def full_schema(public: dict[str, Any]) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """``/openapi.json`` plus the operations the app keeps out of it, documented the same way
    (built from the same code in this process)."""
    from fastapi.routing import APIRoute, _IncludedRouter

    from control_plane.app import create_app

    app = create_app()

    def reveal(routes: list[Any]) -> None:
        for route in routes:
            if isinstance(route, _IncludedRouter):
                route.original_router.include_in_schema = True
                reveal(route.original_router.routes)
            elif isinstance(route, APIRoute):
                route.include_in_schema = True

    reveal(app.router.routes)
    app.openapi_schema = None
    everything = app.openapi()
    merged = json.loads(json.dumps(public))
    hidden: set[tuple[str, str]] = set()
    for path, ops in everything["paths"].items():
        for method, op in ops.items():
            if method not in merged["paths"].get(path, {}):
                merged["paths"].setdefault(path, {})[method] = op
                hidden.add((method.upper(), path))
    schemas = merged.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in everything.get("components", {}).get("schemas", {}).items():
        schemas.setdefault(name, schema)
    return merged, hidden


@dataclass
class OpResult:
    label: str
    hidden: bool
    cases: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # kind -> first failing request

    def fail(self, kind: str, request: str, detail: str) -> None:
        self.failures[kind] += 1
        self.examples.setdefault(kind, f"{request}\n      -> {detail}")


def failure_kinds(exc: BaseException) -> list[tuple[str, str]]:
    inner = getattr(exc, "exceptions", None)
    if inner:
        return [k for e in inner for k in failure_kinds(e)]
    title = (
        getattr(exc, "title", "") or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    )
    return [(type(exc).__name__, str(title)[:300])]


class Fuzzer:
    """Sends schemathesis' cases for one document to the running control plane and records
    what each answer shows."""

    def __init__(self, api_url: str, doc: dict[str, Any], hidden: set[tuple[str, str]],
                 args: argparse.Namespace) -> None:  # fmt: skip
        import requests
        import schemathesis
        from schemathesis.checks import (
            content_type_conformance,
            not_a_server_error,
            response_schema_conformance,
        )

        warnings.simplefilter("ignore")
        self.api_url, self.hidden, self.args = api_url, hidden, args
        self.schema = schemathesis.openapi.from_dict(doc)
        self.checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
        self.http = requests.Session()

    def operations(self) -> list[Any]:
        ops = [found.ok() for found in self.schema.get_all_operations()]
        return [op for op in ops if not self.args.only or self.args.only in op.path]

    def call(self, result: OpResult, case: Any, auth: dict[str, str], forbidden: set[str]) -> Any:
        """One request; a 5xx, a schema mismatch or another tenant's id in a 2xx is recorded."""
        request = case.as_curl_command(headers=auth, base_url=self.api_url)
        result.cases += 1
        try:
            response = case.call(base_url=self.api_url, session=self.http, headers=auth, timeout=20)
        except Exception as exc:  # a dropped connection or a hang is a server failure too
            result.fail("NoResponse", request, f"{type(exc).__name__}: {exc}"[:300])
            return None
        result.statuses[str(response.status_code)] += 1
        # Routes left out of /openapi.json document nothing to conform to.
        checks = self.checks[:1] if result.hidden else self.checks
        try:
            case.validate_response(response, checks=checks, headers=auth)
        except (Exception, BaseExceptionGroup) as exc:
            for kind, detail in failure_kinds(exc):
                result.fail(kind, request, f"{response.status_code}: {detail}")
        if 200 <= response.status_code < 300:
            leaked = sorted(i for i in forbidden if i in response.text)
            if leaked:
                result.fail("CrossTenantRead", request, f"{response.status_code} holds {leaked}")
        return response

    def worker_plane(self, owner: Seed, other: Seed) -> list[OpResult]:
        """The owner's session credential (what its job holds) on the /internal session routes:
        fuzzed on its own session (which also leaves records there: transcript lines, turns,
        escalations), and with the other tenant's session id, which it must not reach."""
        from hypothesis import strategies as st
        from schemathesis import GenerationMode

        worker = {"Authorization": f"Bearer {owner.credential}"}
        who = owner.name
        forbidden = other.secrets()
        out: list[OpResult] = []
        for op in self.operations():
            if not op.path.startswith("/internal/v1/sessions/"):
                continue
            label = f"{op.method.upper()} {op.path}"
            own = OpResult(f"{label} [{who}'s credential, own session]", True)
            theirs = OpResult(f"{label} [{who}'s credential, other's session]", True)
            mine = {"session_id": owner.ids["session"]}
            strategies = [op.as_strategy(GenerationMode.POSITIVE, path_parameters=mine)]
            with contextlib.suppress(Exception):  # nothing to make invalid
                strategies.append(op.as_strategy(GenerationMode.NEGATIVE, path_parameters=mine))
            try:
                drive(
                    st.one_of(*strategies),
                    self.args.max_examples,
                    self.args.seed,
                    lambda c, r=own: self.call(r, c, worker, forbidden),
                )
            except Exception as exc:
                own.fail("GenerationError", label, f"{type(exc).__name__}: {exc}"[:300])

            def reach(case: Any, theirs: OpResult = theirs) -> None:
                response = self.call(theirs, case, worker, forbidden)
                if response is not None and 200 <= response.status_code < 300:
                    request = case.as_curl_command(headers=worker, base_url=self.api_url)
                    theirs.fail("CrossTenantAccess", request, f"{response.status_code}")

            try:
                strategy = op.as_strategy(path_parameters={"session_id": other.ids["session"]})
                drive(strategy, 5, self.args.seed, reach)
            except Exception as exc:
                theirs.fail("GenerationError", label, f"{type(exc).__name__}: {exc}"[:300])
            out += [own, theirs]
        return out

    def api(self, a: Seed, b: Seed) -> tuple[list[OpResult], list[OpResult]]:
        """Every operation with A's API key: generated cases, then B's ids."""
        from hypothesis import strategies as st
        from schemathesis import GenerationMode

        auth, forbidden = a.tenant.headers, b.secrets()
        fuzzed: list[OpResult] = []
        crossed: list[OpResult] = []
        for op in self.operations():
            method, path = op.method.upper(), op.path
            result = OpResult(f"{method} {path}", (method, path) in self.hidden)
            names = {p.name: p.location for p in op.iter_parameters()}
            id_names = {n: loc for n, loc in names.items() if n in ID_PARAMS}
            strategies = [op.as_strategy(GenerationMode.POSITIVE)]
            try:
                negative = op.as_strategy(GenerationMode.NEGATIVE)
                strategies.append(negative)
            except Exception:  # nothing to make invalid
                pass
            b_path = {n: b.ids[ID_PARAMS[n]] for n, loc in id_names.items() if loc == "path"}
            b_query = {n: b.ids[ID_PARAMS[n]] for n, loc in id_names.items() if loc == "query"}
            # A's own records, for cases that get past the lookup (not those that would delete
            # them or A's key, which the rest of the run needs).
            a_ids = {n: a.ids[ID_PARAMS[n]] for n, loc in id_names.items() if ID_PARAMS[n] != "key"}
            if a_ids and method != "DELETE" and not path.endswith(("/end", "/rotate")):
                a_path = {n: v for n, v in a_ids.items() if names[n] == "path"}
                a_query = {n: v for n, v in a_ids.items() if names[n] == "query"}
                strategies.append(
                    op.as_strategy(path_parameters=a_path or None, query=a_query or None)
                )
            if b_path or b_query:
                strategies.append(
                    op.as_strategy(path_parameters=b_path or None, query=b_query or None)
                )

            try:
                drive(
                    st.one_of(*strategies),
                    self.args.max_examples,
                    self.args.seed,
                    lambda c, r=result: self.call(r, c, auth, forbidden),
                )
            except Exception as exc:  # e.g. a strategy that cannot be drawn
                result.fail("GenerationError", result.label, f"{type(exc).__name__}: {exc}"[:300])
            fuzzed.append(result)

            # Cross-tenant pass: B's ids everywhere they fit, a few bodies each.
            if not (b_path or b_query or _takes_deck_id(op)):
                continue
            cross = OpResult(result.label, result.hidden)
            body = _deck_body(op, b.ids["deck"])

            # Pages without an API key (the join page: its token is in the URL fragment) answer
            # anyone; for them only the body check above holds.
            secured = bool(op.definition.raw.get("security"))

            def across(
                case: Any,
                cross: OpResult = cross,
                body: Any = body,
                secured: bool = secured,
                b_path: dict[str, str] = b_path,
                path: str = path,
            ) -> None:
                response = self.call(cross, case, auth, forbidden)
                for _ in range(3):  # a rate limit the fuzz used up: wait, as a client would
                    if response is None or response.status_code != 429:
                        break
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                    response = self.call(cross, case, auth, forbidden)
                if response is None:
                    return
                request = case.as_curl_command(headers=auth, base_url=self.api_url)
                if secured and 200 <= response.status_code < 300 and (b_path or body is not None):
                    cross.fail("CrossTenantAccess", request, f"{response.status_code} with B's ids")
                elif path.startswith("/v1/") and b_path and response.status_code not in (404, 429):
                    cross.statuses[f"not 404: {response.status_code}"] += 1

            strategy = op.as_strategy(
                path_parameters=b_path or None,
                query=b_query or None,
                **({"body": body} if body is not None else {}),
            )
            try:
                drive(strategy, 3, self.args.seed, across)
            except Exception as exc:
                cross.fail("GenerationError", cross.label, f"{type(exc).__name__}: {exc}"[:300])
            crossed.append(cross)
        return fuzzed, crossed


def drive(strategy: Any, examples: int, seed_value: int, test: Any) -> None:
    """Run ``test`` on ``examples`` cases drawn from ``strategy``; failures are recorded by the
    test, never raised, so Hypothesis neither stops nor shrinks."""
    from hypothesis import HealthCheck, Phase, given, seed, settings

    @seed(seed_value)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        test(case)

    run()


def _takes_deck_id(op: Any) -> bool:
    """The operations whose body names a deck of the caller's."""
    return bool(op.method.upper() == "POST" and op.path == "/v1/sessions")


def _deck_body(op: Any, deck_id: str) -> dict[str, Any] | None:
    if not _takes_deck_id(op):
        return None
    return {"deck_id": deck_id, "participant": {"name": "Mallory"}}


def table(title: str, rows: list[OpResult]) -> None:
    print(f"\n{title}")
    print(f"{'operation':<66} {'cases':>5}  {'statuses':<34} failures")
    for r in rows:
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(r.statuses.items()))
        fails = ", ".join(f"{k}:{v}" for k, v in sorted(r.failures.items())) or "-"
        label = r.label + (" (hidden)" if r.hidden else "")
        print(f"{label:<66} {r.cases:>5}  {statuses:<34} {fails}")
    total = sum(r.cases for r in rows)
    failed = sum(sum(r.failures.values()) for r in rows)
    print(f"{len(rows)} operations, {total} cases, {failed} failing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=40, help="cases per operation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="fuzz only paths containing this")
    parser.add_argument(
        "--metrics-on-api-port",
        action="store_true",
        help="leave PODIUM_METRICS_PORT unset (the default): /metrics on the API port",
    )
    parser.add_argument("--logs", type=Path, default=None, help="keep the stack's logs here")
    args = parser.parse_args()

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp), logs=args.logs) as stack:
        stack.start_control_plane(
            PODIUM_ADMISSION_ENABLED="false",
            PODIUM_WEBHOOK_ALLOW_PRIVATE_URLS="true",
            # Nobody joins the seeded sessions; they must outlive the run to be read.
            PODIUM_SESSION_NO_SHOW_SECONDS="3600",
            # As deployed (deploy/k8s): /metrics, which names tenants with open sessions, on
            # its own port and not on the API's; --metrics-on-api-port fuzzes it there too.
            **({} if args.metrics_on_api_port else {"PODIUM_METRICS_PORT": str(free_port())}),
        )
        tenant_a, tenant_b = stack.create_tenant("fuzz-a"), stack.create_tenant("fuzz-b")
        a = asyncio.run(seed(stack.api_url, tenant_a, "A"))
        b = asyncio.run(seed(stack.api_url, tenant_b, "B"))
        a.credential = asyncio.run(stack.worker_credential(a.room))
        b.credential = asyncio.run(stack.worker_credential(b.room))
        public = httpx.get(f"{stack.api_url}/openapi.json", timeout=10).json()
        os.environ.update(stack.api_env)  # the in-process app (only its routes) reads these
        fuzzer = Fuzzer(stack.api_url, *full_schema(public), args)
        # The worker plane first: it leaves records in both sessions for the API to read.
        workers = fuzzer.worker_plane(a, b) + fuzzer.worker_plane(b, a)
        before = asyncio.run(snapshot(stack.api_url, b))
        fuzzed, crossed = fuzzer.api(a, b)
        after = asyncio.run(snapshot(stack.api_url, b))
        log = (stack.logs / "control-plane.log").read_text(errors="replace")

    table("Fuzz (tenant A's key; positive, negative and B-seeded cases)", fuzzed)
    table("Cross-tenant (tenant A's key, B's ids)", crossed)
    table("Worker plane (each session's credential on /internal)", workers)
    print(f"\n{'pass':<14} {'operations':>10} {'cases':>7} {'failing':>8}")
    passes = {"API, tenant A": fuzzed, "cross-tenant": crossed, "worker plane": workers}
    for name, rows in passes.items():
        failed = sum(sum(r.failures.values()) for r in rows)
        print(f"{name:<14} {len(rows):>10} {sum(r.cases for r in rows):>7} {failed:>8}")
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    # The lifecycle sweeper may end B's session on its own (its reason is not ended_by_api);
    # its session.ended webhook is then one more delivery. Neither is A's doing.
    ended_by_itself = "session" in changed and changed["session"][1][2] not in (
        None,
        "ended_by_api",
    )
    lifecycle = {
        k: v for k, v in changed.items() if ended_by_itself and k in ("session", "deliveries")
    }
    for k in lifecycle:
        del changed[k]
    print(f"\nB's records unchanged: {'yes' if not changed else 'NO'}")
    for k, (was, now) in {**changed, **lifecycle}.items():
        note = " (the lifecycle sweeper, not A)" if k in lifecycle else ""
        print(f"  {k}: {was} -> {now}{note}")
    failing = [r for r in fuzzed + crossed + workers if r.failures]
    if failing:
        print("\nFailures (first request of each kind):")
        for r in failing:
            for kind, example in r.examples.items():
                print(f"- {r.label} [{kind}]\n    {example}")
    tracebacks = log.count("Traceback")
    print(f"\ncontrol-plane log: {tracebacks} tracebacks")
    print(f"elapsed: {time.monotonic() - started:.0f} s")
    sys.exit(1 if failing or changed else 0)


if __name__ == "__main__":
    main()
