"""Reading LLaVA-format training data: bad records are reported with their line and skipped."""

from __future__ import annotations

import json

import pytest

from clapper_core.errors import DataError
from clapper_core.train.data import read_train_data


def _rec(video="v.mp4", q="<video>\nWhat colour?", a="red", **extra):
    return {"id": "x", "video": video, "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}],
            **extra}


@pytest.fixture
def video_root(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    (root / "v.mp4").write_bytes(b"not decoded here")
    return root


def test_bad_records_skipped_with_line_numbers(tmp_path, video_root):
    lines = [
        json.dumps(_rec()),                                  # 1 ok
        json.dumps(_rec(video="missing.mp4")),               # 2 missing video
        json.dumps(_rec(q="What colour?")),                  # 3 no <video> tag
        "",                                                  # 4 blank: ignored
        json.dumps(_rec(a="  ")),                            # 5 empty answer
        "{not json",                                         # 6 unparsable
        json.dumps({"video": "v.mp4", "conversations": [{"from": "gpt", "value": "x"}]}),  # 7 order
        json.dumps(_rec(q="Which way?<video>", a="left")),   # 8 ok (tag anywhere)
    ]  # fmt: skip
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data = read_train_data(path, video_root=video_root)
    assert [r.line for r in data.records] == [1, 8]
    assert [s.line for s in data.skipped] == [2, 3, 5, 6, 7]
    reasons = " | ".join(s.reason for s in data.skipped)
    assert "not found" in reasons and "<video>" in reasons and "empty answer" in reasons and "JSON" in reasons
    assert data.records[1].turns == (("Which way?", "left"),)
    assert data.describe_skipped()[0].startswith("train.jsonl:2: skipped:")


def test_json_list_and_multi_turn(tmp_path, video_root):
    rec = _rec()
    rec["conversations"] += [{"from": "human", "value": "And the shape?"}, {"from": "gpt", "value": "circle"}]
    path = tmp_path / "train.json"
    path.write_text(json.dumps([rec, _rec(a="")]))
    data = read_train_data(path, video_root=video_root)
    assert data.records[0].turns == (("What colour?", "red"), ("And the shape?", "circle"))
    assert [s.line for s in data.skipped] == [2]


def test_nothing_usable_is_an_error(tmp_path, video_root):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(_rec(video="nope.mp4")) + "\n")
    with pytest.raises(DataError, match="no usable training record.*line 1"):
        read_train_data(path, video_root=video_root)
    with pytest.raises(DataError, match="does not exist"):
        read_train_data(tmp_path / "absent.jsonl", video_root=video_root)


def test_labels_cover_only_answers(synth_data, tiny_loaded, tmp_path):
    from clapper_core.train.batches import IGNORE, ExampleBuilder, collate
    from clapper_core.train.data import ClipCache
    from clapper_core.video import SamplingConfig

    data = read_train_data(synth_data.train_file)
    proc = tiny_loaded.processor
    build = ExampleBuilder(proc, ClipCache(SamplingConfig()))
    rec = data.records[0]
    ex = build(rec)
    tok = proc.tokenizer
    trained = [i for i, y in zip(ex.input_ids, ex.labels) if y != IGNORE]
    expected = "".join(a + "<|im_end|>" for _, a in rec.turns)
    assert tok.decode(trained) == expected
    assert ex.input_ids.count(proc.video_token_id) == proc.count(ex.segment_sizes)
    # the whole sequence is what the chat template renders, with the video placeholders inside
    messages = []
    for q, a in rec.turns:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    rendered = tok.apply_chat_template(messages, tokenize=False)
    text = tok.decode([i for i in ex.input_ids if i != proc.video_token_id])
    assert text.replace("[0.0s]", "").replace("<|im_start|>user\n\n", "<|im_start|>user\n") == rendered
    batch = collate([ex, build(data.records[1])], pad_id=tok.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["pixel_values_videos"].shape[0] == sum(batch["segment_sizes"])
