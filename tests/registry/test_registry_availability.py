"""Issue 13, availability: the review's denial-of-service requests, re-run on a live server.

- ``POST /login`` declaring ``Content-Length: 200`` and sending nothing held the SQLite write
  lock for 30 s (every write then got 500) and 16 of them exhausted the PostgreSQL pool. Now
  bodies are read before any session exists: 20 such requests are open while writes succeed,
  and each gets 408 at its deadline.
- A chunked body bypassed the size cap and was read before log-in was checked; an
  unauthenticated upload is now refused (401) before its body is read, and a chunked body is
  cut off at the anonymous cap (413).
- 50 concurrent randomisations/enrolments gave 36/22 × 500 on SQLite; now 100 concurrent
  enrolments and 50 concurrent randomisations give 0 × 500 (each succeeds or gets a clean
  503 with Retry-After).
- A 2 MB bundle holding three 500³ volumes stalled the server; headers are checked first.
"""

from __future__ import annotations

import gzip
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import nibabel as nib
import numpy as np
import pytest
from conftest import LiveServer
from plan_bundle_helpers import plan_json, rezip
from registry_helpers import PASSWORD, enrolment, nhs_numbers
from sqlalchemy import func, select

from cryoneuro.registry.errors import RegistryInputError
from cryoneuro.registry.models import Participant
from cryoneuro.registry.services import plan_files

# Live servers under stalled and concurrent requests: the slow tier.
pytestmark = pytest.mark.slow

DEADLINE_S = "2"


def _stalled_login(port: int) -> socket.socket:
    """A POST /login that declares a 200-byte body and never sends it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 200\r\n\r\n"
    )
    return sock


def _status_of(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else -1


def _login(base: str) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=base, timeout=60)
    response = client.post("/api/login", json={"username": "nurse", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client, {"X-CSRF-Token": response.json()["csrf_token"]}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_stalled_bodies_hold_no_lock_and_time_out(backend, request) -> None:
    reg = request.getfixturevalue("registry" if backend == "sqlite" else "pg_registry")
    server = LiveServer(reg, env={"CRYONEURO_BODY_DEADLINE_S": DEADLINE_S})
    server.start()
    try:
        stalled = [_stalled_login(server.port) for _ in range(20)]
        # while all 20 are still open: a log-in and two writes go through
        client, headers = _login(server.url)
        for nhs in nhs_numbers(2):
            response = client.post("/api/participants", json=enrolment(nhs), headers=headers)
            assert response.status_code == 201, response.text
        assert all(sock.fileno() != -1 for sock in stalled)
        # each stalled request ends with 408 once its deadline passes
        assert [_status_of(sock) for sock in stalled] == [408] * 20

        # chunked (no Content-Length), unauthenticated, over the anonymous cap: 413
        def chunks():
            for _ in range(200):
                yield b"x" * 65536  # 13 MB if it were all read

        with httpx.Client(base_url=server.url, timeout=60) as anon:
            assert anon.post("/login", content=chunks()).status_code == 413
            # an upload without a session is refused before its body is read
            big = anon.post("/api/procedures/1/plan-bundle", content=chunks())
            assert big.status_code == 401
        # a declared length over the cap is refused before anything is read
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        sock.sendall(
            b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        assert _status_of(sock) == 413
        # a logged-in client may send a normal-sized chunked body
        response = client.post(
            "/api/participants",
            headers={**headers, "Content-Type": "application/json"},
            content=iter(
                [httpx.Request("POST", "/", json=enrolment(nhs_numbers(1, start=500)[0])).read()]
            ),
        )
        assert response.status_code == 201, response.text
        client.close()
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


def test_100_concurrent_sqlite_writes_give_no_server_error(registry) -> None:
    server = LiveServer(registry)
    server.start()
    try:
        client, headers = _login(server.url)
        cookies = dict(client.cookies)

        def post(path: str, body: dict | None) -> tuple[int, str | None]:
            with httpx.Client(base_url=server.url, cookies=cookies, timeout=120) as c:
                r = c.post(path, json=body, headers=headers)
                return r.status_code, r.headers.get("retry-after")

        numbers = nhs_numbers(100, start=1000)
        with ThreadPoolExecutor(max_workers=100) as pool:
            enrolled = list(pool.map(lambda n: post("/api/participants", enrolment(n)), numbers))
        statuses = [s for s, _ in enrolled]
        assert all(s in (201, 503) for s in statuses), sorted(set(statuses))
        assert all(ra for s, ra in enrolled if s == 503)  # every 503 says when to retry
        with registry.factory() as session:
            stored = session.scalar(select(func.count()).select_from(Participant))
            ids = list(session.scalars(select(Participant.id).order_by(Participant.id)))
        assert stored == statuses.count(201) >= 1

        with ThreadPoolExecutor(max_workers=50) as pool:
            randomised = list(
                pool.map(lambda pid: post(f"/api/participants/{pid}/randomise", None), ids[:50])
            )
        statuses = [s for s, _ in randomised]
        assert all(s in (200, 503) for s in statuses), sorted(set(statuses))
        with registry.factory() as session:
            allocated = session.scalar(
                select(func.count())
                .select_from(Participant)
                .where(Participant.arm_code.is_not(None))
            )
        assert allocated == statuses.count(200) >= 1
        client.close()
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


def _header_only_volume(shape: tuple[int, ...], dtype: type) -> bytes:
    """A gzip'd NIfTI whose header declares ``shape`` but which holds only a few voxels."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    return gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 1024)


def test_nifti_headers_are_checked_before_decompressing() -> None:
    """The review's bundle: three 500³ uint8 volumes (125 MB each) in a small zip."""
    bomb = _header_only_volume((500, 500, 500), np.uint8)
    content = rezip(
        {
            "plan.json": plan_json().encode(),
            "image.nii.gz": bomb,
            "min_temperature.nii.gz": bomb,
            "iceball_labels.nii.gz": bomb,
        }
    )
    assert len(content) < 2_000_000
    with pytest.raises(RegistryInputError, match=r"image.nii.gz declares 500×500×500 voxels"):
        plan_files.validate_bundle(content)
    # 256³ float32 is exactly the limit, one more slice is over it
    assert plan_files.MAX_VOLUME_BYTES == 256**3 * 4
    plan_files.nifti_size_from_header("ok.nii.gz", _header_only_volume((256, 256, 256), np.float32))
    with pytest.raises(RegistryInputError, match="over the 64 MiB limit"):
        plan_files.nifti_size_from_header(
            "x.nii.gz", _header_only_volume((256, 256, 257), np.float32)
        )
    # a header that understates the data: decompression stops at the declared size
    small = _header_only_volume((2, 2, 2), np.uint8)
    with pytest.raises(RegistryInputError, match="more data than its header declares"):
        plan_files._read_nifti("small.nii.gz", small)
