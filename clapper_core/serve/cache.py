"""Encoded videos kept across requests, least recently used out, bounded by memory.

An entry is a `VideoSession` (the video's visual features and its prompt prefix's KV cache, with the
last conversation's turns after it) and what is known about the decoded clip. It is keyed by the
video's content (SHA-256), the sampling and the system prompt, so the same video asked again by
another path or as a data: URL is not decoded or encoded again. Entries are weighed by what their
tensors hold, re-weighed after each use (a conversation grows the KV cache), and the oldest go
until the rest fit; an entry larger than the whole budget serves its request and is not kept.

Only the model worker touches the sessions; the lock guards the bookkeeping that /health reads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Hashable


@dataclass
class Entry:
    session: Any  # a VideoSession
    clip: dict  # frames, timestamps, segments, duration_s, decode_s, encode_s of the decoded clip
    nbytes: int = 0


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int = 0
    nbytes: int = 0
    max_bytes: int = 0


class SessionCache:
    def __init__(self, max_bytes: int) -> None:
        assert max_bytes > 0
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._stats = CacheStats(max_bytes=max_bytes)

    def get(self, key: Hashable) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self._stats.hits += 1
            return entry

    def put(self, key: Hashable, entry: Entry) -> None:
        """Keep `entry` (weighed now), dropping the least recently used until everything fits."""
        entry.nbytes = _weigh(entry)
        with self._lock:
            self._entries.pop(key, None)
            if entry.nbytes <= self.max_bytes:
                self._entries[key] = entry
            self._shrink()

    def reweigh(self, key: Hashable) -> None:
        """After a request used the entry: its KV cache may have grown."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.nbytes = _weigh(entry)
            if entry.nbytes > self.max_bytes:
                del self._entries[key]
                self._stats.evictions += 1
            self._shrink()

    def _shrink(self) -> None:
        while self._entries and sum(e.nbytes for e in self._entries.values()) > self.max_bytes:
            self._entries.popitem(last=False)
            self._stats.evictions += 1

    def stats(self) -> CacheStats:
        with self._lock:
            s = self._stats
            return CacheStats(s.hits, s.misses, s.evictions, len(self._entries),
                              sum(e.nbytes for e in self._entries.values()), self.max_bytes)

    def __len__(self) -> int:
        return len(self._entries)


def _weigh(entry: Entry) -> int:
    nbytes = getattr(entry.session, "nbytes", None)
    return int(nbytes()) if callable(nbytes) else 0
