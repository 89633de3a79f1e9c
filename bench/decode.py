"""Sampling 96 frames from 30-minute 720p H.264 videos: exact and keyframe-snapped against full decode.

For each keyframe spacing (10 s, x264's default, and 2 s) this prints wall time, frames decoded
and peak RSS of:
  full     PyAV decoding every frame (the baseline)
  limit    the least work exact sampling can do: for each target, seek to the keyframe before
           it and decode up to it (PyAV, same threading)
  exact    load_clip(seek="exact")   the frame shown at each target time
  snap     load_clip(seek="snap")    the nearest keyframe, one decoded frame per target
  decord / torchcodec, exact and keyframe-only, where they import
Each method runs in a fresh subprocess, so peak RSS is its own.

    python bench/decode.py [--minutes 30] [--cache-dir /tmp/clapper-bench]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

WIDTH, HEIGHT, FPS, FRAMES = 1280, 720, 30, 96


def generate(path: Path, *, minutes: float, gop_seconds: int) -> None:
    """Cheap moving content written straight as yuv420p planes (no RGB conversion)."""
    import av
    import numpy as np

    total = int(minutes * 60 * FPS)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = ((xx + yy) // 4 % 256).astype(np.uint8)
    u = np.full((HEIGHT // 2, WIDTH // 2), 128, np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(gop_seconds * FPS), "keyint_min": str(gop_seconds * FPS)}
        for i in range(total):
            y = np.roll(base, i * 3, axis=1)
            x0 = (i * 7) % (WIDTH - 160)
            y[200:360, x0 : x0 + 160] = 235  # a moving box
            v = np.full((HEIGHT // 2, WIDTH // 2), (i // FPS) % 256, np.uint8)  # colour changes every second
            frame = av.VideoFrame.from_ndarray(np.concatenate([y, u.reshape(-1, WIDTH), v.reshape(-1, WIDTH)]),
                                               format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# --- methods: each runs in its own process and prints one JSON line ----------------------


def _targets(duration: float) -> list[float]:
    return [(k + 0.5) * duration / FRAMES for k in range(FRAMES)]


def m_full(path: str) -> dict:
    import av

    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for _ in c.decode(s):
            n += 1
    return {"decoded": n, "kept": 0}


def m_limit(path: str) -> dict:
    import av

    from clapper_core.video import probe_video
    from clapper_core.video.decode import to_rgb

    info = probe_video(path)
    n = kept = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for t in _targets(info.duration):
            c.seek(int(t / s.time_base), stream=s, backward=True)
            for frame in c.decode(s):
                n += 1
                if frame.time + 1e-9 >= t - 1.0 / FPS:  # the last frame at or before t
                    to_rgb(frame, 0, 720)
                    kept += 1
                    break
    return {"decoded": n, "kept": kept}


def m_clapper(path: str, seek: str) -> dict:
    from clapper_core.video import SamplingConfig, load_clip

    clip = load_clip(path, SamplingConfig(max_frames=FRAMES, seek=seek))
    return {"decoded": clip.decoded_frames, "kept": clip.num_frames}


def m_decord(path: str, snap: bool) -> dict:
    import decord

    vr = decord.VideoReader(path, num_threads=0)
    fps = vr.get_avg_fps()
    idx = [int(t * fps) for t in _targets(len(vr) / fps)]
    if snap:
        keys = vr.get_key_indices()
        idx = [min(keys, key=lambda k: abs(k - i)) for i in idx]
    vr.get_batch(idx).asnumpy()
    return {"decoded": None, "kept": len(idx)}


def m_torchcodec(path: str, snap: bool) -> dict:
    from torchcodec.decoders import VideoDecoder

    dec = VideoDecoder(path, seek_mode="exact" if not snap else "approximate", num_ffmpeg_threads=0)
    duration = dec.metadata.duration_seconds
    frames = dec.get_frames_played_at(_targets(duration))
    return {"decoded": None, "kept": int(frames.data.shape[0])}


METHODS = {
    "full": (m_full, ()),
    "limit": (m_limit, ()),
    "exact": (m_clapper, ("exact",)),
    "snap": (m_clapper, ("snap",)),
    "decord exact": (m_decord, (False,)),
    "decord keyframes": (m_decord, (True,)),
    "torchcodec exact": (m_torchcodec, (False,)),
}


def child(name: str, path: str) -> None:
    import resource

    fn, args = METHODS[name]
    start = time.perf_counter()
    try:
        result = fn(path, *args)
    except ImportError as exc:
        print(json.dumps({"error": f"not available ({exc.name})"}))
        return
    result["wall_s"] = time.perf_counter() - start
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(name: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": "not available (" + (out.stderr.strip().splitlines() or ["failed"])[-1][:50] + ")"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/clapper-bench"))
    parser.add_argument("--gops", type=int, nargs="+", default=[10, 2], help="keyframe spacings in seconds")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    for gop in args.gops:
        path = args.cache_dir / f"bench-{args.minutes:g}min-720p-gop{gop}s.mp4"
        if not path.exists():
            start = time.perf_counter()
            generate(path.with_suffix(".part.mp4"), minutes=args.minutes, gop_seconds=gop)
            path.with_suffix(".part.mp4").rename(path)
            print(f"generated {path.name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        results = {name: measure(name, path) for name in METHODS}
        full, limit = results["full"], results["limit"]
        print(f"\n{args.minutes:g} min 720p H.264, keyframe every {gop} s, {FRAMES} frames sampled")
        print(f"{'method':<18}{'wall s':>9}{'decoded':>10}{'peak RSS MB':>13}{'vs full':>10}{'vs limit':>10}")
        for name, r in results.items():
            if "error" in r:
                print(f"{name:<18}  {r['error']}")
                continue
            decoded = "-" if r["decoded"] is None else str(r["decoded"])
            vs_full = f"{full['wall_s'] / r['wall_s']:.1f}x" if "wall_s" in full else "-"
            vs_limit = f"{r['wall_s'] / limit['wall_s']:.2f}" if "wall_s" in limit else "-"
            print(f"{name:<18}{r['wall_s']:>9.2f}{decoded:>10}{r['rss_mb']:>13.0f}{vs_full:>10}{vs_limit:>10}")
        print("vs full: how many times faster than decoding every frame; vs limit: wall time / exact's limit")


if __name__ == "__main__":
    main()
