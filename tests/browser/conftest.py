"""Headless Debian Chromium driven by Playwright, with a fake microphone that plays a WAV file
of Piper speech.

Playwright never downloads a browser here: it runs ``/usr/bin/chromium`` (``scripts/bootstrap``
installs it). Screenshots go to ``test-artifacts/browser/`` (or ``$PODIUM_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.e2e.speech import espeak, piper

CHROMIUM = Path(os.environ.get("PODIUM_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("PODIUM_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"

# No background traffic (this machine has no internet) and no first-run UI.
BASE_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
]

Shoot = Callable[[Page, str], Awaitable[Path]]


def speech_wav(
    path: Path, text: str, *, lead_s: float = 2.0, tail_s: float = 2.0, voice: str = "piper"
) -> Path:
    """``text`` spoken between stretches of silence, as a 16-bit mono WAV."""
    samples, rate = piper(text) if voice == "piper" else espeak(text)
    silence = np.zeros(int(rate * lead_s), dtype=np.int16)
    padded = np.concatenate([silence, samples, np.zeros(int(rate * tail_s), dtype=np.int16)])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(padded.tobytes())
    return path


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = ARTIFACTS / request.module.__name__.rsplit(".", 1)[-1]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    print(f"\nbrowser screenshots: {folder}")
    return folder


@pytest.fixture
def shoot(artifacts: Path) -> Shoot:
    async def take(page: Page, name: str) -> Path:
        path = artifacts / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap (it installs Debian's chromium)")
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def next_slide_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speech_wav(tmp_path_factory.mktemp("mic") / "next-slide.wav", "Next slide, please.")


@pytest.fixture(scope="module")
async def chromium(chromium_path: str, next_slide_wav: Path) -> AsyncIterator[Browser]:
    """Chromium whose microphone says "Next slide, please." once, from when it is opened."""
    wav = next_slide_wav
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                *BASE_ARGS,
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}%noloop",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="module")
async def chromium_without_mic_permission(chromium_path: str) -> AsyncIterator[Browser]:
    """Chromium whose permission prompts are dismissed, as when a user blocks the microphone."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=BASE_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
