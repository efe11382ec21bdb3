"""A big file's bytes produced on a helper thread while the caller hashes and writes them.

Inflating is about two thirds of the CPU a restored byte costs, hashing and writing the rest
(issue 13's benchmark data); zlib, hashlib and os.write release the GIL on big buffers. Files
already go two at a time, but a build that is mostly one big file (a multi-GB .pak is common)
kept one core idle: with `read_ahead`, the file's next pieces inflate on one core while the
previous ones are hashed and written on the other.

Contract: the pieces come out in order, then whatever the producer raised (a `BadObject` comes
after the bytes of the chunk it names, exactly as without read-ahead). At most `depth` pieces
wait between the two threads, so memory stays at a few MiB per file. A consumer that stops
early (an exception, a closed generator) stops the producer and waits for it, so no thread
outlives the file and the producer closes its own generator (its file handles).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from dataclasses import dataclass

DEPTH_PIECES = 4
_POLL_S = 0.1  # how soon a producer blocked on a full queue notices the consumer stopped


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_DONE = object()


def read_ahead(
    pieces: Generator[bytes, None, None], depth: int = DEPTH_PIECES
) -> Generator[bytes, None, None]:
    """`pieces`, produced on a helper thread up to `depth` pieces ahead."""
    channel: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce, args=(pieces, channel, stop), name="restore-read-ahead", daemon=True
    )
    producer.start()
    try:
        while (item := channel.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.error
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        producer.join()


def _produce(
    pieces: Generator[bytes, None, None], channel: queue.Queue[object], stop: threading.Event
) -> None:
    try:
        for piece in pieces:
            if not _put(channel, piece, stop):
                return
        _put(channel, _DONE, stop)
    except BaseException as exc:  # handed to the consumer, which raises it in its thread
        _put(channel, _Failure(exc), stop)
    finally:
        pieces.close()  # in this thread, where it ran: its `with` blocks end here


def _put(channel: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Queue `item`; False when the consumer stopped first."""
    while not stop.is_set():
        try:
            channel.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False
