"""A session's recording in segments, through the real control plane on Postgres: segments from
a job and then from the job that resumed the session are listed in arrival order (the later
job's after the earlier's, none replaced), a segment sent again changes nothing, each is
served as audio/ogg by the API and by its signed link, pages follow a cursor, another tenant
sees none of it, and a segment over the cap is refused before it is read."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.devstack.stack import EphemeralStack, TenantKey

pytestmark = pytest.mark.integration


def _ogg(tag: str, size: int = 3000) -> bytes:
    return (b"OggS" + tag.encode() * size)[:size]


class Uploader:
    def __init__(self, api: httpx.AsyncClient, session: dict[str, Any], credential: str) -> None:
        self._api = api
        self._path = f"/internal/v1/sessions/{session['session_id']}/recording/segments"
        self._headers = {"Authorization": f"Bearer {credential}", "Content-Type": "audio/ogg"}

    async def put(
        self, job: str, n: int, body: bytes | AsyncIterator[bytes], *, started_at: float
    ) -> httpx.Response:
        return await self._api.put(
            f"{self._path}/{n}",
            params={"job_id": job, "started_at": started_at, "duration_s": 3.0},
            headers=self._headers,
            content=body,
        )


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(body), 1000):  # sent chunked, without a Content-Length
        yield body[at : at + 1000]


async def test_segments_of_two_jobs_are_listed_in_order_and_served_to_their_tenant_only(
    api: httpx.AsyncClient, control_plane: EphemeralStack, tenant: TenantKey
) -> None:
    created = await api.post("/v1/sessions", headers=tenant.headers, json={"record": True})
    assert created.status_code == 201, created.text
    session = created.json()
    sid = session["session_id"]
    worker = Uploader(api, session, await control_plane.worker_credential(session["room"]))
    t0 = time.time()
    sent = [("AJ_first", 0, _ogg("a0")), ("AJ_first", 1, _ogg("a1"))]
    sent += [("AJ_resumed", 0, _ogg("b0", 5000)), ("AJ_resumed", 1, _ogg("b1"))]
    for i, (job, n, body) in enumerate(sent):
        content = _chunks(body) if i == 2 else body
        done = await worker.put(job, n, content, started_at=t0 + 3 * i)
        assert done.status_code == 204, done.text
    # The first job's last segment again (its job was cut off before the answer): nothing moves.
    again = await worker.put("AJ_first", 1, _ogg("zz"), started_at=t0 + 99)
    assert again.status_code == 204

    public = f"/v1/sessions/{sid}/recording"
    listed = await api.get(public, headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(s["seq"], s["bytes"]) for s in items] == [
        (i, len(body)) for i, (_, _, body) in enumerate(sent)
    ]
    assert listed.json()["next_cursor"] is None
    starts = [s["started_at"] for s in items]
    assert starts == sorted(starts) and starts[3] - starts[0] == pytest.approx(9, abs=0.01)
    for item, (_, _, body) in zip(items, sent, strict=True):
        by_key = await api.get(f"{public}/segments/{item['seq']}", headers=tenant.headers)
        assert (by_key.status_code, by_key.headers["content-type"]) == (200, "audio/ogg")
        assert by_key.content == body
        by_link = await api.get(item["url"])  # no API key: the signed link is the credential
        assert (by_link.status_code, by_link.headers["content-type"]) == (200, "audio/ogg")
        assert by_link.content == body
    tampered = await api.get(items[0]["url"].replace("sig=", "sig=0"))
    assert tampered.status_code == 403

    first = (await api.get(public, headers=tenant.headers, params={"limit": 3})).json()
    assert [s["seq"] for s in first["items"]] == [0, 1, 2] and first["next_cursor"]
    rest = await api.get(
        public, headers=tenant.headers, params={"limit": 3, "cursor": first["next_cursor"]}
    )
    assert [s["seq"] for s in rest.json()["items"]] == [3] and rest.json()["next_cursor"] is None

    other = control_plane.create_tenant("not-the-owner")
    assert (await api.get(public, headers=other.headers)).status_code == 404
    assert (await api.get(f"{public}/segments/0", headers=other.headers)).status_code == 404
    # Another session's worker cannot add to this one.
    theirs = (await api.post("/v1/sessions", headers=other.headers, json={"record": True})).json()
    stranger = await control_plane.worker_credential(theirs["room"])
    foreign = await api.put(
        f"/internal/v1/sessions/{sid}/recording/segments/7",
        params={"job_id": "AJ_x", "started_at": t0, "duration_s": 1.0},
        headers={"Authorization": f"Bearer {stranger}"},
        content=_ogg("x"),
    )
    assert foreign.status_code == 404
    assert len((await api.get(public, headers=tenant.headers)).json()["items"]) == 4

    # A segment is a minute of audio, under a megabyte: one over the cap is refused.
    huge = await worker.put("AJ_resumed", 2, _ogg("h", 5 * 2**20), started_at=t0 + 12)
    assert huge.status_code == 413
    assert huge.json() == {
        "error": "too_large",
        "message": "A recording segment is over the 4 MB limit.",
    }
    assert len((await api.get(public, headers=tenant.headers)).json()["items"]) == 4
    await api.post(f"/v1/sessions/{sid}/end", headers=tenant.headers)
    await api.post(f"/v1/sessions/{theirs['session_id']}/end", headers=other.headers)
