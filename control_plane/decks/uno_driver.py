"""One headless LibreOffice kept running, converting PPTX packages to PDF on request.

Run by the system Python that has Debian's python3-uno (``uno`` is built for that interpreter,
not for the control plane's), as ``python3 uno_driver.py SOFFICE PROFILE_URL MEMORY_BYTES``.
It starts ``soffice`` listening on a private UNO pipe (a Unix socket: no network needed), then
reads one JSON request a line on stdin, ``{"src": path, "dst": path}``, and answers one JSON line
on stdout: ``{"ok": true, "rss": bytes}`` or ``{"ok": false, "error": text}``. The first line it
writes is ``{"ready": true, "pid": soffice_pid}``. It imports nothing from Podium; the control
plane's ``converter`` module owns its lifetime (timeouts, restarts, shutdown).
"""

import contextlib
import json
import os
import resource
import subprocess
import sys
import time

import uno  # type: ignore[import-not-found]
from com.sun.star.beans import PropertyValue  # type: ignore[import-not-found]
from com.sun.star.connection import NoConnectException  # type: ignore[import-not-found]

START_TIMEOUT_S = 60.0


def _props(**values: object) -> tuple[object, ...]:
    return tuple(PropertyValue(Name=name, Value=value) for name, value in values.items())


def _rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (soffice is a launcher for soffice.bin)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            # oosplash starts soffice.bin from a thread other than its main one.
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue
    return total


def _reply(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    soffice, profile, memory = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pipe = f"podium-converter-{os.getpid()}"

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    office = subprocess.Popen(
        [
            soffice,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--invisible",
            "--nologo",
            "--nodefault",
            "--norestore",
            "--nolockcheck",
            f"--accept=pipe,name={pipe};urp;StarOffice.ComponentContext",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        preexec_fn=limit_memory,  # the driver is single-threaded here
    )
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            context = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
            break
        except NoConnectException:
            if office.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"soffice did not start (exit code {office.poll()})") from None
            time.sleep(0.05)
    desktop = context.ServiceManager.createInstanceWithContext(
        "com.sun.star.frame.Desktop", context
    )
    _reply({"ready": True, "pid": office.pid})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            document = desktop.loadComponentFromURL(
                uno.systemPathToFileUrl(request["src"]),
                "_blank",
                0,
                # No macros, no links updated: the package is untrusted.
                _props(Hidden=True, ReadOnly=True, MacroExecutionMode=0, UpdateDocMode=0),
            )
            if document is None:
                _reply({"ok": False, "error": "LibreOffice could not open the file"})
                continue
            try:
                # Hidden slides too, so page N of the PDF is slide N of the extracted text.
                filter_data = uno.Any(
                    "[]com.sun.star.beans.PropertyValue", _props(ExportHiddenSlides=True)
                )
                arguments = (
                    PropertyValue(Name="FilterName", Value="impress_pdf_Export"),
                    PropertyValue(Name="FilterData", Value=filter_data),
                )
                uno.invoke(
                    document,
                    "storeToURL",
                    (
                        uno.systemPathToFileUrl(request["dst"]),
                        uno.Any("[]com.sun.star.beans.PropertyValue", arguments),
                    ),
                )
            finally:
                document.close(True)
        except Exception as exc:  # reported to the control plane, which decides what it means
            _reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]})
            if office.poll() is not None:
                break
            continue
        _reply({"ok": True, "rss": _rss(office.pid)})
    # The office may already be gone; it is waited for, or killed, below.
    with contextlib.suppress(Exception):
        desktop.terminate()
    try:
        office.wait(10)
    except subprocess.TimeoutExpired:
        office.kill()


if __name__ == "__main__":
    main()
