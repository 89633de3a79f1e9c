"""Rank discovery, sharding, per-rank part files, resume and the merge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clapper_core.distributed import (
    DistInfo,
    ShardedJsonl,
    dist_info,
    find_parts,
    merge_parts,
    part_path,
    read_jsonl,
    select_device,
    shard,
    shard_indices,
)
from clapper_core.errors import ConfigError, DataError

KEYS = [f"v{i:02d}" for i in range(11)]


def _line(key: str) -> str:
    return json.dumps({"id": key, "answer": key.upper()})


def _key(obj: dict) -> str:
    return obj["id"]


def _run(output: Path, info: DistInfo, *, stop_after: int | None = None, resume: bool = True) -> Path | None:
    out = ShardedJsonl(output, keys=KEYS, record_key=_key, info=info, resume=resume)
    for n, i in enumerate(out.pending):
        if stop_after is not None and n == stop_after:
            out.close()
            return None
        out.append(_line(KEYS[i]))
    return out.finish(timeout_s=10, poll_s=0.01)


def test_dist_info_reads_torchrun_environment():
    env = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
           "TORCHELASTIC_RUN_ID": "abc"}
    info = dist_info(env)
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size) == (5, 8, 1, 4)
    assert info.run_id == "abc" and info.is_distributed and not info.is_main
    single = dist_info({})
    assert (single.rank, single.world_size, single.is_main, single.is_distributed) == (0, 1, True, False)


@pytest.mark.parametrize("env", [
    {"RANK": "2", "WORLD_SIZE": "2"},
    {"WORLD_SIZE": "2"},
    {"RANK": "x", "WORLD_SIZE": "2"},
    {"RANK": "0", "WORLD_SIZE": "0"},
])
def test_dist_info_rejects_inconsistent_environment(env):
    with pytest.raises(ConfigError):
        dist_info(env)


def test_select_device_on_cpu():
    assert select_device(DistInfo(), "cpu") == "cpu"
    import torch

    if not torch.cuda.is_available():
        assert select_device(DistInfo(rank=1, world_size=2, local_rank=1, local_world_size=2)) == "cpu"


def test_shards_are_disjoint_cover_everything_and_balanced():
    for n in (0, 1, 7, 100):
        for world in (1, 2, 3, 8):
            parts = [list(shard_indices(n, r, world)) for r in range(world)]
            flat = sorted(i for p in parts for i in p)
            assert flat == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shard(list("abcdefg"), DistInfo(rank=1, world_size=3)) == ["b", "e"]


def test_single_process_writes_output_in_work_order(tmp_path):
    out = tmp_path / "res.jsonl"
    assert _run(out, DistInfo()) == out
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == KEYS
    assert find_parts(out) == []


def _parallel(out: Path, world: int, *, stop_after: dict[int, int] | None = None) -> Path | None:
    """Ranks run one after another here; rank 0 last, so its merge finds every marker."""
    stop_after = stop_after or {}
    merged = None
    for rank in list(range(1, world)) + [0]:
        info = DistInfo(rank=rank, world_size=world, run_id="t")
        res = _run(out, info, stop_after=stop_after.get(rank))
        if rank == 0:
            merged = res
    return merged


@pytest.mark.parametrize("world", [2, 3, 8, 16])
def test_parallel_merge_equals_single_process(tmp_path, world):
    single = tmp_path / "single.jsonl"
    _run(single, DistInfo())
    multi = tmp_path / "multi.jsonl"
    assert _parallel(multi, world) == multi
    assert multi.read_bytes() == single.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi.jsonl", "single.jsonl"]


def test_interrupted_parallel_run_resumes_per_rank(tmp_path):
    single = tmp_path / "single.jsonl"
    _run(single, DistInfo())
    out = tmp_path / "multi.jsonl"
    # every rank stops after one item, the rank 0 merge never happens
    for rank in range(3):
        _run(out, DistInfo(rank=rank, world_size=3, run_id="a"), stop_after=1)
    assert not out.exists() and len(find_parts(out)) == 3
    # a torn line, as left by a killed process
    with open(part_path(out, 1, 3), "a") as f:
        f.write('{"id": "v04", "ans')
    infos = [DistInfo(rank=r, world_size=3, run_id="b") for r in range(3)]
    writers = [ShardedJsonl(out, keys=KEYS, record_key=_key, info=i) for i in infos]
    assert [w.skipped for w in writers] == [1, 1, 1]
    assert [KEYS[i] for i in writers[1].pending] == ["v04", "v07", "v10"]
    for w in writers[::-1]:
        for i in w.pending:
            w.append(_line(KEYS[i]))
        w.finish(timeout_s=10, poll_s=0.01)
    assert out.read_bytes() == single.read_bytes()


def test_resume_with_another_process_count(tmp_path):
    out = tmp_path / "res.jsonl"
    _parallel(out, 4, stop_after={0: 1, 1: 2, 2: 0, 3: 1})
    assert not out.exists()
    # resumed on 2 processes: stale 4-process parts are skipped, then merged first
    w = [ShardedJsonl(out, keys=KEYS, record_key=_key, info=DistInfo(rank=r, world_size=2)) for r in range(2)]
    done = {"v00", "v01", "v05", "v03"}
    assert {KEYS[i] for x in w for i in x.pending} == set(KEYS) - done
    for x in w[::-1]:
        for i in x.pending:
            x.append(_line(KEYS[i]))
        x.finish(timeout_s=10, poll_s=0.01)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == ["v00", "v01", "v03", "v05"] + [k for k in KEYS if k not in done]
    assert find_parts(out) == []

    # a single process resuming the same situation writes the same file
    out1 = tmp_path / "one.jsonl"
    _parallel(out1, 4, stop_after={0: 1, 1: 2, 2: 0, 3: 1})
    _run(out1, DistInfo())
    assert out1.read_bytes() == out.read_bytes()


def test_overwrite_discards_earlier_results(tmp_path):
    out = tmp_path / "res.jsonl"
    out.write_text(_line("zz") + "\n")
    _parallel(out, 4, stop_after={0: 1, 1: 1, 2: 1, 3: 1})
    for rank in (1, 0):
        _run(out, DistInfo(rank=rank, world_size=2, run_id="c"), resume=False)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == KEYS
    assert find_parts(out) == []


def test_merge_parts_recovers_unmerged_run(tmp_path):
    out = tmp_path / "res.jsonl"
    for rank in (1, 2):
        _run(out, DistInfo(rank=rank, world_size=3, run_id="x"))
    _run(out, DistInfo(rank=0, world_size=3, run_id="x"), stop_after=2)
    merge_parts(out, keys=KEYS, record_key=_key)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [k for k in KEYS if k not in ("v06", "v09")]


def test_rank0_times_out_naming_missing_ranks(tmp_path):
    out = tmp_path / "res.jsonl"
    w = ShardedJsonl(out, keys=KEYS, record_key=_key, info=DistInfo(rank=0, world_size=2, run_id="r"))
    with pytest.raises(DataError, match="ranks 1 of 2"):
        w.finish(timeout_s=0.05, poll_s=0.01)


def test_corrupt_middle_line_is_refused_and_duplicates_rejected(tmp_path):
    out = tmp_path / "res.jsonl"
    out.write_text(_line("v00") + "\nnot json\n" + _line("v01") + "\n")
    with pytest.raises(DataError, match="line 2"):
        ShardedJsonl(out, keys=KEYS, record_key=_key, info=DistInfo())
    with pytest.raises(DataError, match="twice"):
        ShardedJsonl(tmp_path / "b.jsonl", keys=["a", "b", "a"], record_key=_key, info=DistInfo())


def test_torn_last_line_is_cut_before_appending(tmp_path):
    out = tmp_path / "res.jsonl"
    out.write_text(_line("v00") + "\n" + '{"id": "v0')
    w = ShardedJsonl(out, keys=KEYS, record_key=_key, info=DistInfo())
    assert w.skipped == 1
    for i in w.pending:
        w.append(_line(KEYS[i]))
    w.finish()
    assert [obj["id"] for _, obj in read_jsonl(out)] == KEYS


WORKER = textwrap.dedent("""
    import json, sys
    from clapper_core.distributed import ShardedJsonl, dist_info
    keys = [f"v{i:02d}" for i in range(11)]
    out = ShardedJsonl(sys.argv[1], keys=keys, record_key=lambda o: o["id"], info=dist_info())
    for i in out.pending:
        out.append(json.dumps({"id": keys[i], "answer": keys[i].upper()}))
    print(out.finish(timeout_s=60, poll_s=0.05))
""")


def test_two_real_processes_merge_like_one(tmp_path):
    single = tmp_path / "single.jsonl"
    _run(single, DistInfo())
    out = tmp_path / "two.jsonl"
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                   LOCAL_WORLD_SIZE="2", TORCHELASTIC_RUN_ID="two")
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(out)], env=env,
                                      stdout=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [str(out), "None"]
    assert out.read_bytes() == single.read_bytes()


def test_grouped_sharding_keeps_groups_together(tmp_path):
    groups = [f"video{i // 3}" for i in range(len(KEYS))]  # three questions per video
    got = {}
    for rank in range(2):
        w = ShardedJsonl(tmp_path / "g.jsonl", keys=KEYS, record_key=_key, groups=groups,
                         info=DistInfo(rank=rank, world_size=2))
        got[rank] = w.pending
        w.close()
    assert got[0] == [0, 1, 2, 6, 7, 8] and got[1] == [3, 4, 5, 9, 10]
