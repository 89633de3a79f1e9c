"""VideoSession: streaming, greedy determinism, sampling with a seed, the reused prefix cache."""

from __future__ import annotations

import pytest
import torch

from clapper_core.errors import ConfigError
from clapper_core.generation import GenerationConfig, VideoSession

GREEDY = GenerationConfig(max_new_tokens=10)


@pytest.fixture
def session(tiny_loaded, tiny_frames):
    frames, ts = tiny_frames
    return VideoSession(tiny_loaded, frames=frames, timestamps=ts)


def test_session_encodes_once_and_counts_tokens(session):
    assert session.num_visual_tokens == 75 and session.encode_s > 0


def test_greedy_is_deterministic_and_streaming_equals_ask(session):
    pieces = list(session.stream("what happens?", GREEDY))
    assert len(pieces) >= 1
    assert "".join(pieces) == session.ask("what happens?", GREEDY) == session.ask("what happens?", GREEDY)
    stats = session.last_stats
    assert 1 <= stats.new_tokens <= 10 and stats.prefill_s > 0 and stats.tokens_per_s > 0


def test_matches_transformers_generate(session, tiny_loaded, tiny_frames):
    frames, ts = tiny_frames
    inputs = tiny_loaded.processor(frames=frames, timestamps=ts, question="what happens?")
    with torch.no_grad():
        out = tiny_loaded.model.generate(**inputs, max_new_tokens=10, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    expected = tiny_loaded.processor.tokenizer.decode(new, skip_special_tokens=True)
    assert session.ask("what happens?", GREEDY) == expected


def test_second_question_reuses_the_prefix_cache(session, tiny_loaded, tiny_frames):
    session.ask("first question", GREEDY)
    first_prompt = session.last_stats.prompt_tokens
    second = session.ask("which color?", GREEDY)
    assert session.last_stats.prompt_tokens < first_prompt - session.num_visual_tokens
    frames, ts = tiny_frames
    fresh = VideoSession(tiny_loaded, frames=frames, timestamps=ts)
    assert fresh.ask("which color?", GREEDY) == second  # the rewound cache gives the same answer


def test_sampling_with_a_seed_is_reproducible(session):
    gen = GenerationConfig(max_new_tokens=12, temperature=1.5, top_p=0.9, seed=7)
    a, b = session.ask("q", gen), session.ask("q", gen)
    assert a == b
    others = {session.ask("q", GenerationConfig(max_new_tokens=12, temperature=1.5, seed=s)) for s in range(4)}
    assert len(others) > 1


def test_stops_at_end_of_turn(session, monkeypatch):
    im_end = session.processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    monkeypatch.setattr("clapper_core.generation._sample", lambda logits, gen, rng: im_end)
    assert session.ask("q", GREEDY) == "" and session.last_stats.new_tokens == 0


@pytest.mark.parametrize("kwargs", [{"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}])
def test_generation_config_validates(kwargs):
    with pytest.raises(ConfigError):
        GenerationConfig(**kwargs)


def test_a_decoded_clip_goes_straight_in(tiny_loaded, tiny_video):
    from clapper_core.model.configuration_clapper import visual_token_count
    from clapper_core.video import SamplingConfig, load_clip

    clip = load_clip(tiny_video, SamplingConfig(num_frames=6))
    session = VideoSession(tiny_loaded, clip)
    sizes = [s.stop - s.start for s in clip.segments]
    assert session.num_visual_tokens == visual_token_count(tiny_loaded.config, sizes)
    assert isinstance(session.ask("what happens?", GREEDY), str)


def test_option_logprobs_equal_one_full_forward_of_question_and_answer(session, tiny_loaded, tiny_frames):
    from clapper_core.model.tokenizer import IM_END

    session.ask("what happens?", GREEDY)  # a used cache: each option starts again from the video
    options = ["red square", "blue"]
    got = session.option_logprobs("which color?", options)
    frames, ts = tiny_frames
    tok = tiny_loaded.processor.tokenizer
    for option, lp in zip(options, got):
        inputs = tiny_loaded.processor(frames=frames, timestamps=ts, question="which color?")
        answer = tok.encode(option, add_special_tokens=False) + tok.encode(IM_END, add_special_tokens=False)
        n = inputs["input_ids"].shape[1]
        inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([answer])], 1)
        if "attention_mask" in inputs:
            inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        with torch.no_grad():
            logits = tiny_loaded.model(**inputs).logits[0].float()  # (L, V)
        expected = sum(torch.log_softmax(logits[n - 1 + i], -1)[t].item() for i, t in enumerate(answer))
        assert lp == pytest.approx(expected, abs=1e-4)
    assert got == session.option_logprobs("which color?", options)  # and again the same


def _generate(loaded, ids, frames, ts, n=10) -> str:
    """transformers' own generate on a whole prompt: the reference a conversation turn must match."""
    inputs = loaded.processor(frames=frames, timestamps=ts, question="")
    input_ids = torch.tensor([ids], dtype=torch.long)
    inputs.update(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    with torch.no_grad():
        out = loaded.model.generate(**inputs, max_new_tokens=n, do_sample=False)
    return loaded.processor.tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)


def test_a_follow_up_sees_the_earlier_turn_in_the_chat_template(session, tiny_loaded, tiny_frames):
    frames, ts = tiny_frames
    proc = tiny_loaded.processor
    first = session.ask("what happens?", GREEDY)
    history = [("what happens?", first)]
    ids = proc.question_ids("and then?", history)
    text = proc.tokenizer.decode(ids)
    # the earlier answer, closed as an assistant turn, then the new user turn, as the template writes them
    assert text == ("\nwhat happens?<|im_end|>\n<|im_start|>assistant\n" + first
                    + "<|im_end|>\n<|im_start|>user\nand then?<|im_end|>\n<|im_start|>assistant\n")
    follow = session.ask("and then?", GREEDY, history=history)
    ran = session.last_stats.prompt_tokens
    assert ran < len(ids)  # the first turn's tokens were still in the cache
    assert session.last_stats.context_tokens == len(session.video.prefix_ids) + len(ids)
    assert follow == _generate(tiny_loaded, list(session.video.prefix_ids) + ids, frames, ts)
    # a fresh session asked the whole conversation at once agrees, and so does going back to one turn
    fresh = VideoSession(tiny_loaded, frames=frames, timestamps=ts)
    assert fresh.ask("and then?", GREEDY, history=history) == follow
    assert fresh.ask("what happens?", GREEDY) == first


def test_a_system_prompt_goes_in_the_prefix(tiny_loaded, tiny_frames):
    frames, ts = tiny_frames
    plain = VideoSession(tiny_loaded, frames=frames, timestamps=ts)
    custom = VideoSession(tiny_loaded, frames=frames, timestamps=ts, system="Answer in one word.")
    text = tiny_loaded.processor.tokenizer.decode(list(custom.video.prefix_ids))
    assert text.startswith("<|im_start|>system\nAnswer in one word.<|im_end|>\n<|im_start|>user\n")
    assert custom.video.prefix_ids != plain.video.prefix_ids
    assert custom.nbytes() > 0 and custom.video.pixel_values.numel() == 0  # pixels dropped once encoded
