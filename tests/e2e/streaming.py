"""Streamed bodies: patterned uploads, and the 1 GiB download check the
component tests use (the guest sends 1 GiB of the byte pattern 0..255
repeated; the client checks every byte and the serving child's peak RSS
growth)."""

import hashlib

from apache import PeakRssGrowth
from http1 import request

MIB = 1024 * 1024
GIB_LIMIT_MIB = 32


def pattern_upload(size, piece):
    """size bytes of a repeating pattern, in pieces; returns (pieces, sha256)."""
    block = bytes(range(256)) * (piece // 256)
    digest = hashlib.sha256()
    sent = 0
    pieces = []
    while sent < size:
        part = block[: min(piece, size - sent)]
        pieces.append(part)
        digest.update(part)
        sent += len(part)
    return pieces, digest.hexdigest()


def assert_1_gib_streams_with_bounded_memory(server, target):
    """GETs target, which must answer 1 GiB of the pattern; returns the
    peak RSS growth in MiB after checking it is under GIB_LIMIT_MIB."""
    digest = hashlib.sha256()
    total = [0]

    def take(data):
        digest.update(data)
        total[0] += len(data)

    with PeakRssGrowth(server) as growth:
        r = request(server.port, "GET", target, on_chunk=take)
    assert r.status == 200 and r.complete
    assert total[0] == 1024 * MIB
    expected = hashlib.sha256()
    one_mib = bytes(range(256)) * 4096
    for _ in range(1024):
        expected.update(one_mib)
    assert digest.hexdigest() == expected.hexdigest()
    print(f"peak child RSS growth while streaming 1 GiB from {target}: {growth.mib:.1f} MiB")
    assert growth.mib < GIB_LIMIT_MIB, f"a child grew by {growth.mib:.1f} MiB"
    return growth.mib
