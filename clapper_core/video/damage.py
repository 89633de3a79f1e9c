"""What counts as a damaged video, and when what still decodes is enough to use.

Decoding a damaged file mostly "works": FFmpeg skips unreadable packets, hands out frames that
are partly grey, or silently drops a stretch. `FrameCheck` follows one run of decoding (from one
seek) and decides, frame by frame, which frames can be trusted; `Damage` counts what was lost;
`judge` turns the count into a warning, or an error when too few sampled frames are left.
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass, field

from clapper_core.errors import CorruptVideoError


@dataclass
class Damage:
    """What went wrong while decoding one clip (none of it stops decoding)."""

    errors: int = 0  # packets that failed to demux or decode
    corrupt: int = 0  # frames the decoder flagged as damaged, or decoded from damage (not kept)
    dropped: int = 0  # packets that went in and never came out as a frame
    truncated: bool = False  # the stream ended before its stated duration
    missing: list[float] = field(default_factory=list)  # target times with no frame near them

    @property
    def damaged(self) -> bool:
        return bool(self.errors or self.corrupt or self.dropped or self.truncated)

    def describe(self) -> str:
        parts = [
            f"{self.errors} unreadable packet(s)" if self.errors else "",
            f"{self.corrupt} damaged frame(s)" if self.corrupt else "",
            f"{self.dropped} frame(s) that did not decode" if self.dropped else "",
            "it ends early" if self.truncated else "",
        ]
        return ", ".join(p for p in parts if p) or "frames missing"


class FrameCheck:
    """Follows the frames of one run of decoding (from one seek) and says which to trust.

    A frame is lost when a keyframe the container's index lists is skipped over, when frames that
    tell their duration leave a hole, or when a packet goes into the decoder and never comes out.
    After a loss or a decode error, frames up to the next clean keyframe are suspect: they are
    predicted from what was lost.
    """

    def __init__(self, damage: Damage, index_keys: list[int]):
        self.damage = damage
        self.index_keys = index_keys  # pts of the keyframes the container's index lists (sorted)
        self.fed: list[int] = []  # pts of packets sent to the decoder that have not come out yet
        self.first_pts = None  # the first frame out after the seek
        self.tainted = False  # damage since the last keyframe: what decodes until the next one is suspect
        self.last_pts, self.last_duration = None, 0

    def packet_in(self, packet) -> None:
        if packet.size and packet.pts is not None:
            heapq.heappush(self.fed, packet.pts)

    def decode_failed(self) -> None:
        self.damage.errors += 1
        self.tainted = True

    def trusted(self, frame) -> bool:
        """Whether `frame` (the next one out of the decoder) can be kept."""
        pts = frame.pts
        if pts is not None and self.last_pts is not None:
            lost = self._lost_keyframes(pts) + self._hole(pts)
            self.tainted = self.tainted or (lost > 0 and not frame.key_frame)
        if pts is not None:
            self._came_out(pts, frame.duration or 0)
        if frame.key_frame and not frame.is_corrupt:
            self.tainted = False
        if frame.is_corrupt or self.tainted:
            self.damage.corrupt += 1
            self.tainted = True
            return False
        return True

    def _lost_keyframes(self, pts: int) -> int:
        """Indexed keyframes skipped over since the last frame: the demuxer lost a stretch."""
        if not self.index_keys:
            return 0
        lost = bisect.bisect_left(self.index_keys, pts) - bisect.bisect_right(self.index_keys, self.last_pts)
        self.damage.dropped += max(0, lost)
        return max(0, lost)

    def _hole(self, pts: int) -> int:
        """Frames missing between the last frame and this one, for frames that tell their duration."""
        if not self.last_duration:
            return 0
        missed = round((pts - self.last_pts) / self.last_duration) - 1
        if missed < 2:
            return 0
        self.damage.dropped += missed
        return missed

    def _came_out(self, pts: int, duration: int) -> None:
        self.last_pts, self.last_duration = pts, duration
        if self.first_pts is None:
            self.first_pts = pts
        while self.fed and self.fed[0] < pts:  # went in before this one, never came out
            # (ones before the first frame are leading frames that a seek skips)
            self.damage.dropped += heapq.heappop(self.fed) > self.first_pts
        if self.fed and self.fed[0] == pts:
            heapq.heappop(self.fed)


def judge(path: str, damage: Damage, kept: int, wanted: int) -> str | None:
    """A warning when the clip is damaged but at least half its sampled frames decoded;
    `CorruptVideoError` when fewer did; None when nothing went wrong."""
    if not (damage.damaged or damage.missing):
        return None
    if kept < max(1, math.ceil(wanted / 2)):
        raise CorruptVideoError(
            f"{path}: damaged ({damage.describe()}); only {kept} of {wanted} sampled frames decode"
        )
    return f"{path}: damaged ({damage.describe()}); {kept} of {wanted} sampled frames decoded"
