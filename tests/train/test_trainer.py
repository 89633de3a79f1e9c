"""The training loop on a tiny random model: learning, exact resume, frozen weights, LoRA, two ranks."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch

from clapper_core.errors import ConfigError, DataError
from clapper_core.model import LoadConfig, load_model
from clapper_core.train import read_metrics, train


def _losses(run_dir):
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl")]


def _state(path):
    return load_model(LoadConfig(model=str(path), device="cpu")).model.state_dict()


def test_a_few_steps_reduce_the_loss(quick_config, tmp_path):
    cfg = quick_config(stage=2, steps=12, lr=5e-3)
    result = train(cfg)
    losses = _losses(cfg.output)
    assert len(losses) == 12 and result.steps == 12 and not result.stopped_early
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses
    assert (cfg.output / "model.safetensors").is_file() and (cfg.output / "tokenizer.json").is_file()


def test_per_sample_loss_weighs_every_record_the_same():
    from clapper_core.train.batches import IGNORE
    from clapper_core.train.trainer import per_sample_loss

    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11)  # (B, L, V)
    labels = torch.randint(0, 11, (3, 6))
    labels[0, :4] = IGNORE  # record 0: 2 answer tokens
    labels[1, :1] = IGNORE  # record 1: 5 answer tokens
    labels[2, :] = IGNORE  # record 2: none (cut away): not a record
    tok = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=IGNORE,
                                            reduction="none")
    want = (tok[0, 3:].mean() + tok[1, :].mean()) / 2  # each record's own mean, then the mean of the two
    assert torch.allclose(per_sample_loss(logits, labels), want)
    token_mean = tok.sum() / (labels[:, 1:] != IGNORE).sum()  # what "token" averaging gives: not the same
    assert not torch.allclose(per_sample_loss(logits, labels), token_mean)


def test_a_few_steps_reduce_the_per_sample_loss(quick_config):
    cfg = quick_config(stage=2, steps=12, lr=5e-3, loss_average="sample")
    train(cfg)
    losses = _losses(cfg.output)
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses


def test_resume_continues_exactly(quick_config, tmp_path):
    full = quick_config(stage=2, steps=5, output=tmp_path / "full", grad_accum=2, warmup=0.2)
    ref = train(full)
    part = quick_config(stage=2, steps=5, output=tmp_path / "part", grad_accum=2, warmup=0.2, stop_after=3)
    first = train(part)
    assert first.stopped_early and first.steps == 3
    assert (tmp_path / "part/checkpoints/step-000003/trainer.json").is_file()
    assert not (tmp_path / "part/model.safetensors").exists()
    resumed = train(quick_config(stage=2, steps=5, output=tmp_path / "part", grad_accum=2, warmup=0.2, resume=True))
    assert resumed.steps == 5
    assert _losses(tmp_path / "part") == _losses(tmp_path / "full")  # the same next losses, bit for bit
    assert resumed.weights_digest == ref.weights_digest


def test_resume_refuses_other_settings(quick_config, tmp_path):
    train(quick_config(output=tmp_path / "r", steps=4, stop_after=1))
    with pytest.raises(DataError, match="batch_size"):
        train(quick_config(output=tmp_path / "r", steps=4, batch_size=2, resume=True))


def test_resume_reads_settings_newer_than_the_checkpoint_as_their_defaults(quick_config, tmp_path):
    def checkpoint_without_loss_average(output):  # as one written before the setting existed
        train(quick_config(output=output, steps=3, stop_after=1))
        meta_file = output / "checkpoints/step-000001/trainer.json"
        meta = json.loads(meta_file.read_text())
        del meta["settings"]["loss_average"]
        meta_file.write_text(json.dumps(meta))

    checkpoint_without_loss_average(tmp_path / "r")
    assert train(quick_config(output=tmp_path / "r", steps=3, resume=True)).steps == 3
    checkpoint_without_loss_average(tmp_path / "s")
    with pytest.raises(DataError, match="loss_average"):  # a value other than the default is still refused
        train(quick_config(output=tmp_path / "s", steps=3, resume=True, loss_average="sample"))


def test_stage1_leaves_frozen_weights_bit_identical(quick_config, tiny_model_dir):
    cfg = quick_config(stage=1, steps=3, lr=1e-2)
    result = train(cfg)
    before, after = _state(tiny_model_dir), _state(cfg.output)
    frozen = [k for k in before if not k.startswith(("model.multi_modal_projector", "model.time_perceiver"))]
    assert any(k.startswith("model.vision_tower") for k in frozen) and "lm_head.weight" in frozen
    for k in frozen:
        assert torch.equal(before[k], after[k]), k
    changed = [k for k in before if k not in frozen and not torch.equal(before[k], after[k])]
    assert any("multi_modal_projector" in k for k in changed) and any("time_perceiver" in k for k in changed)
    assert result.trainable_params < result.total_params


def test_vision_lr_sets_the_vision_towers_own_step(quick_config, tiny_model_dir):
    cfg = quick_config(stage=2, train_vision=True, vision_lr=1e-9, steps=3, lr=1e-2)
    train(cfg)
    before, after = _state(tiny_model_dir), _state(cfg.output)
    moved = {k: float((after[k] - before[k]).abs().max()) for k in before}
    vision = [v for k, v in moved.items() if k.startswith("model.vision_tower")]
    llm = [v for k, v in moved.items() if k.startswith("model.language_model")]
    assert vision and max(vision) < 1e-7  # Adam moves a weight by about lr per step: 3e-9 at most
    assert max(llm) > 1e-3  # while lr 1e-2 moves the LLM


def test_stage2_lora_is_merged_into_a_loadable_model(quick_config, tiny_model_dir):
    cfg = quick_config(stage=2, lora=True, lora_rank=4, steps=3, lr=1e-2)
    train(cfg)
    before, after = _state(tiny_model_dir), _state(cfg.output)
    assert before.keys() == after.keys()  # no adapter weights left: merged
    diff = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.endswith("self_attn.q_proj.weight") for k in diff)
    assert not any("mlp" in k and "language_model" in k for k in diff)
    assert not any(k.startswith("model.vision_tower") for k in diff)


def test_options_that_do_not_fit_the_stage():
    from clapper_core.train import TrainConfig

    with pytest.raises(ConfigError, match="--stage 2"):
        TrainConfig(data="x.jsonl", output="o", stage=1, lora=True)
    with pytest.raises(ConfigError, match="stage"):
        TrainConfig(data="x.jsonl", output="o", stage=3)
    with pytest.raises(ConfigError, match="--save-every 0"):
        TrainConfig(data="x.jsonl", output="o", fsdp=True)
    with pytest.raises(ConfigError, match="--train-vision"):
        TrainConfig(data="x.jsonl", output="o", stage=2, vision_lr=1e-5)
    with pytest.raises(ConfigError, match="token, sample"):
        TrainConfig(data="x.jsonl", output="o", loss_average="word")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_worker(rank: int, world: int, port: int, cfg, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    result = train(cfg)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"digest": result.weights_digest, "steps": result.steps, "loss": result.final_loss}, f)
    import torch.distributed as dist

    dist.destroy_process_group()


def test_two_gloo_processes_train_the_same_model(quick_config, tmp_path):
    import torch.multiprocessing as mp

    cfg = quick_config(stage=2, steps=3, batch_size=2, output=tmp_path / "ddp", device="cpu")  # gloo: CPU ranks
    mp.spawn(_rank_worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["digest"] == ranks[1]["digest"]  # gradients were averaged: one model on both ranks
    assert ranks[0]["steps"] == 3 and ranks[0]["loss"] == ranks[1]["loss"]
    assert len(_losses(tmp_path / "ddp")) == 3  # rank 0 alone writes the log and the model
    single = train(quick_config(stage=2, steps=3, batch_size=2, output=tmp_path / "one", device="cpu"))
    assert single.weights_digest != ranks[0]["digest"]  # two ranks saw twice the data


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    from clapper_core.distributed import DistInfo, select_device
    from clapper_core.errors import DeviceError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    second = DistInfo(rank=1, world_size=2, local_rank=1, local_world_size=2)  # 2 processes, one GPU
    for choice in ("cuda", "auto"):
        with pytest.raises(DeviceError, match=r"local rank 1 has no GPU \(this machine shows 1\)"):
            select_device(second, choice)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP shards over GPUs: needs two")
def test_two_processes_with_fsdp_save_a_whole_model(quick_config, tmp_path, tiny_model_dir):
    import torch.multiprocessing as mp

    cfg = quick_config(stage=2, steps=2, batch_size=2, output=tmp_path / "fsdp", fsdp=True, device="cuda")
    mp.spawn(_rank_worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    before, after = _state(tiny_model_dir), _state(tmp_path / "fsdp")
    assert before.keys() == after.keys()
    assert all(before[k].shape == after[k].shape for k in before)
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])
