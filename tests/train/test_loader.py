"""Training data through DataLoader workers: the same batches with or without workers, exact resume with
workers, disjoint shares per rank, bad videos counted and skipped, big mostly-missing files in little memory."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tracemalloc

import torch

from clapper_core.distributed import DistInfo
from clapper_core.train import read_metrics, read_train_data, train
from clapper_core.train.config import TrainConfig
from clapper_core.train.loader import LengthGroupedBatches
from clapper_core.train.state import DataPosition
from clapper_core.train.trainer import build_loader


def _loader(cfg: TrainConfig, processor, *, info=DistInfo(), position=DataPosition()):
    records = read_train_data(cfg.data).records
    return build_loader(cfg, processor, records, info=info, position=position, pin=False)


def test_two_workers_give_the_same_batches_as_none(quick_config, tiny_loaded):
    proc = tiny_loaded.processor
    got = {}
    for workers in (0, 2):
        loader = _loader(quick_config(num_workers=workers, batch_size=3), proc)
        got[workers] = list(itertools.islice(iter(loader), 6))  # two epochs of 12 records
    assert [b.ids for b in got[0]] == [b.ids for b in got[2]]
    assert len({i for b in got[0][:4] for i in b.ids}) == 12  # one epoch covers every record once
    for a, b in zip(got[0], got[2]):
        for k in ("input_ids", "labels", "attention_mask", "pixel_values_videos"):
            assert torch.equal(a.tensors[k], b.tensors[k]), k


def test_batches_are_grouped_by_length_and_fixed_by_the_seed():
    lengths = [i % 7 * 100 for i in range(64)]
    first = list(itertools.islice(iter(LengthGroupedBatches(lengths, batch_size=4, seed=1)), 16))
    again = list(itertools.islice(iter(LengthGroupedBatches(lengths, batch_size=4, seed=1)), 16))
    other = list(itertools.islice(iter(LengthGroupedBatches(lengths, batch_size=4, seed=2)), 16))
    assert first == again and first != other
    assert sorted(i for b in first for i in b) == list(range(64))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first)
    assert spread < 0.25 * 16 * 600  # random batches would spread over most of 0..600
    resumed = list(itertools.islice(iter(LengthGroupedBatches(lengths, batch_size=4, seed=1, epoch=0, start=5)), 11))
    assert resumed == first[5:]


def test_resume_mid_epoch_with_workers_continues_with_the_same_losses(quick_config, tmp_path):
    kw = dict(stage=2, steps=5, batch_size=5, num_workers=2, warmup=0.2)  # 3 batches an epoch: stop in epoch 0
    ref = train(quick_config(output=tmp_path / "full", **kw))
    first = train(quick_config(output=tmp_path / "part", stop_after=2, **kw))
    meta = json.loads((tmp_path / "part/checkpoints/step-000002/trainer.json").read_text())
    assert first.stopped_early and meta["position"] == {"epoch": 0, "batch": 2}
    resumed = train(quick_config(output=tmp_path / "part", resume=True, **kw))
    losses = [[r["loss"] for r in read_metrics(tmp_path / run / "metrics.jsonl")] for run in ("full", "part")]
    assert losses[0] == losses[1] and len(losses[0]) == 5
    assert resumed.weights_digest == ref.weights_digest


def _rank_reads(rank: int, world: int, port: int, cfg, model_dir: str, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    import torch.distributed as dist

    from clapper_core.distributed import dist_info, init_process_group
    from clapper_core.model import LoadConfig, load_model

    info = dist_info()
    init_process_group(info, "cpu")
    proc = load_model(LoadConfig(model=model_dir, device="cpu")).processor
    loader = _loader(cfg, proc, info=info)
    seen = [i for b in itertools.islice(iter(loader), 3) for i in b.ids]  # one epoch: 12 records / (2 x 2)
    with open(os.path.join(out_dir, f"seen{rank}.json"), "w") as f:
        json.dump(seen, f)
    dist.barrier()
    dist.destroy_process_group()


def test_two_gloo_ranks_never_see_the_same_record(quick_config, tiny_model_dir, tmp_path):
    import torch.multiprocessing as mp

    from tests.train.test_trainer import _free_port

    cfg = quick_config(batch_size=2, num_workers=1, device="cpu")
    mp.spawn(_rank_reads, args=(2, _free_port(), cfg, str(tiny_model_dir), str(tmp_path)), nprocs=2, join=True)
    seen = [json.loads((tmp_path / f"seen{r}.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 6
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0]) | set(seen[1])) == 12


def _records(video: str, n: int) -> list[dict]:
    return [{"id": f"r{i}", "video": video, "conversations": [{"from": "human", "value": "<video>\nWhat?"},
                                                              {"from": "gpt", "value": f"answer {i}"}]}
            for i in range(n)]


def test_a_big_file_of_mostly_missing_videos_streams_and_counts_them(synth_data, quick_config, tmp_path):
    good = read_train_data(synth_data.train_file).records[0].video
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i, rec in enumerate(_records("missing/v.mp4", 20_000)):
            if i % 2000 == 0:
                rec["video"] = good  # 10 usable records
            f.write(json.dumps(rec) + "\n")
    tracemalloc.start()
    data = read_train_data(path, video_root=tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(data.records) == 10 and data.skipped_count == 19_990
    assert len(data.skipped) <= 20 and "19980 more skipped" in data.describe_skipped()[-1]
    assert peak < 0.5 * path.stat().st_size, (peak, path.stat().st_size)  # never the whole file, nor its records
    result = train(quick_config(data=path, video_root=tmp_path, steps=2, batch_size=2, num_workers=1))
    assert result.skipped_records == 19_990 and result.num_records == 10 and result.steps == 2


def test_an_unreadable_video_in_a_worker_is_skipped_and_counted(synth_data, quick_config, tmp_path):
    good = [r.video for r in read_train_data(synth_data.train_file).records]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))  # looks like an mp4, decodes as nothing
    recs = _records(str(bad), 16)
    for i, rec in enumerate(recs[:14]):
        rec["video"] = good[i % len(good)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    notices: list[str] = []
    result = train(quick_config(data=path, steps=4, batch_size=4, num_workers=2), on_notice=notices.append)
    assert result.steps == 4 and result.num_records == 16  # four batches: one epoch, each record once
    assert result.skipped_records == 2
    assert sum("broken.mp4" in n and "skipped" in n for n in notices) == 2


def test_llava_video_178k_layout_is_read_as_released(synth_data, tmp_path):
    root = tmp_path / "LLaVA-Video-178K"
    subset = root / "0_30_s_academic_v0_1"
    (subset / "academic_source").mkdir(parents=True)
    video = read_train_data(synth_data.train_file).records[0].video
    shutil.copy(video, subset / "academic_source/a.mp4")
    rel = "academic_source/a.mp4"  # relative to the subset folder, where the archives unpack
    cap = [{"id": "c1", "video": rel, "data_source": "0_30_s_academic_v0_1",
            "conversations": [{"from": "human", "value": "<image>\nDescribe the video in detail."},
                              {"from": "gpt", "value": "A square moves."}]}]
    oe = _records(rel, 2)
    mc = [{"id": "m1", "video": rel, "conversations": [
        {"from": "human", "value": "<image>\nWhich way does it move?\nA. left\nB. right\nAnswer with the letter."},
        {"from": "gpt", "value": "B."}]}]
    (subset / "0_30_s_academic_v0_1_cap_processed.json").write_text(json.dumps(cap))
    (subset / "0_30_s_academic_oe_v0_1_qa_processed.json").write_text(json.dumps(oe))
    (subset / "0_30_s_academic_mc_v0_1_qa_processed.json").write_text(json.dumps(mc + _records("gone.mp4", 1)))
    by_folder = read_train_data(root)
    by_glob = read_train_data(str(root / "*" / "*_processed.json"))
    for data in (by_folder, by_glob):
        assert sorted(r.id for r in data.records) == ["c1", "m1", "r0", "r1"]
        assert data.skipped_count == 1 and len(data.files) == 3
        assert all(r.seconds == 15.0 for r in data.records)  # "0_30_s": a length hint for batching
    cap_rec = next(r for r in by_folder.records if r.id == "c1")
    assert cap_rec.turns == (("Describe the video in detail.", "A square moves."),)


def test_the_eta_is_smoothed_over_steps(monkeypatch):
    from clapper_core.train import metrics

    clock = iter([0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 12.0, 12.0, 13.0])  # steps of 1 s, 1 s, 10 s, 1 s
    monkeypatch.setattr(metrics.time, "perf_counter", lambda: next(clock))
    meter = metrics.StepMeter(smoothing=0.1)
    etas = []
    for _ in range(4):
        meter.begin()
        meter.end()
        etas.append(meter.eta(100))
    assert etas[:2] == [100.0, 100.0]
    assert 150 < etas[2] < 250  # one slow step moves the estimate by a tenth of its excess, not to 1,000 s
    assert etas[3] < etas[2]
