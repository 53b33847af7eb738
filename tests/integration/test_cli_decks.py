"""`podium decks ...` as an integrator runs it: a real process against the running control plane."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.devstack.services import free_port
from shared.devstack.stack import ROOT, EphemeralStack, TenantKey
from tests.factories import make_pdf, make_product_deck

Cli = Callable[..., subprocess.CompletedProcess[str]]
PODIUM_DECKS = [sys.executable, "-m", "control_plane", "decks"]


def cli_env(url: str, key: str | None) -> dict[str, str]:
    env = {**os.environ, "PODIUM_API_URL": url}  # conftest has scrubbed any other PODIUM_*
    if key is not None:
        env["PODIUM_API_KEY"] = key
    return env


def podium(*args: str, url: str, key: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PODIUM_DECKS, *args],
        env=cli_env(url, key),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture
def cli(control_plane: EphemeralStack, tenant: TenantKey) -> Cli:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return podium(*args, url=control_plane.api_url, key=tenant.api_key)

    return run


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_upload_json_waits_until_the_pdf_is_ready(cli: Cli, tmp_path: Path) -> None:
    pdf = write(tmp_path, "q3.pdf", make_pdf([["Intro", "Hello"], ["Pricing", "49"], ["Team"]]))

    done = cli("upload", pdf, "--json")

    assert done.returncode == 0, done.stderr
    deck = json.loads(done.stdout)
    assert deck["status"] == "ready"
    assert deck["progress"] == {"slides_done": 3, "slides_total": 3}
    assert deck["filename"] == "q3.pdf"


def test_upload_shows_the_ready_deck_and_search_finds_the_answer(cli: Cli, tmp_path: Path) -> None:
    pptx = write(tmp_path, "acme.pptx", make_product_deck())

    done = cli("upload", pptx)

    assert done.returncode == 0, done.stderr
    assert "Ready: Acme Analytics" in done.stdout
    assert "slides    8" in done.stdout
    deck_id = next(
        line.split()[-1] for line in done.stdout.splitlines() if line.strip().startswith("deck id")
    )

    question = "How much does it cost per month?"
    found = cli("search", deck_id, question, "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert hits[0]["slide_index"] == 4
    assert len(hits) <= 5

    table = cli("search", deck_id, question, "-k", "3")
    assert table.returncode == 0, table.stderr
    header, first, *rest = table.stdout.strip().splitlines()
    assert header.split()[:3] == ["#", "SLIDE", "TITLE"]
    assert first.split()[:3] == ["1", "4", "Pricing"]
    assert len(rest) <= 2


def test_a_refused_upload_prints_the_reason_and_exits_1(cli: Cli, tmp_path: Path) -> None:
    refused = cli("upload", write(tmp_path, "empty.pdf", b""))

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("error: The file is empty.")
    assert refused.stderr.rstrip().endswith("(empty_file)")


def test_list_show_and_delete(cli: Cli, tmp_path: Path) -> None:
    pdf = write(tmp_path, "board [final].pdf", make_pdf([["Board update"], ["Numbers"]]))
    accepted = cli("upload", pdf, "--no-wait", "--json")
    assert accepted.returncode == 0, accepted.stderr
    deck_id = json.loads(accepted.stdout)["deck_id"]

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    assert deck_id in listed.stdout
    shown = cli("show", deck_id)
    assert shown.returncode == 0, shown.stderr
    assert "board [final].pdf" in shown.stdout  # brackets are not taken for rich markup

    deleted = cli("delete", deck_id)
    assert deleted.returncode == 0, deleted.stderr
    assert deck_id not in cli("list").stdout
    gone = cli("show", deck_id)
    assert gone.returncode == 1
    assert gone.stderr.strip() == f"error: Deck {deck_id} was not found. (not_found)"


def test_ctrl_c_stops_waiting_but_not_the_ingestion(
    control_plane: EphemeralStack, tenant: TenantKey, tmp_path: Path
) -> None:
    pages = [[f"Chapter {i}", "Some text", "More detail"] for i in range(300)]
    pdf = write(tmp_path, "long.pdf", make_pdf(pages))
    waiting = subprocess.Popen(
        [*PODIUM_DECKS, "upload", pdf],
        env=cli_env(control_plane.api_url, tenant.api_key),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background inherits SIGINT ignored, and so would the CLI;
        # give it the default a person's terminal gives it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        with httpx.Client(base_url=control_plane.api_url, headers=tenant.headers) as api:
            deck = wait_for(api, lambda d: d["status"] == "processing")
            waiting.send_signal(signal.SIGINT)
            stdout, stderr = waiting.communicate(timeout=30)

            assert waiting.returncode == 130, stderr
            assert stdout == ""
            # The signal may land while the 202 is still on its way (the server starts ingesting
            # before the response is read) or while following progress; both stop the CLI only.
            if "upload interrupted" in stderr:
                assert "podium decks list" in stderr
            else:
                assert "ingestion continues on the server" in stderr
                assert f"podium decks show {deck['deck_id']}" in stderr
            assert wait_for(api, lambda d: d["status"] == "ready")["deck_id"] == deck["deck_id"]
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()


def wait_for(api: httpx.Client, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The tenant's newest deck, once ``ok`` holds for it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = api.get("/v1/decks").json()["items"]
        if items and ok(items[0]):
            return dict(items[0])
        time.sleep(0.05)
    raise AssertionError("the deck never got there")


def test_without_an_api_key_it_says_where_to_put_one(control_plane: EphemeralStack) -> None:
    missing = podium("list", url=control_plane.api_url, key=None)

    assert missing.returncode == 2
    assert "--api-key" in missing.stderr
    assert "PODIUM_API_KEY" in missing.stderr


def test_a_wrong_key_is_refused(control_plane: EphemeralStack) -> None:
    wrong = podium("list", url=control_plane.api_url, key="pk_not_a_real_key")

    assert wrong.returncode == 1
    assert wrong.stderr.rstrip().endswith("(unauthorized)")


def test_a_wrong_url_asks_whether_the_control_plane_is_running(tenant: TenantKey) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    down = podium("list", url=url, key=tenant.api_key)

    assert down.returncode == 1
    assert f"Is the control plane running at {url}?" in down.stderr
