"""The TimePerceiver starts as spatio-temporal average pooling, and training can move it away."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clapper_core.model.configuration_clapper import ClapperConfig
from clapper_core.model.time_perceiver import TimePerceiver, cell_history, spatiotemporal_avg_pool


def _config(grid=7, patch_grid=28):
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  image_size=patch_grid * 2, patch_size=2)  # fmt: skip
    return ClapperConfig(vision_config=vision, perceiver_grid=grid, perceiver_heads=2, perceiver_depth=2)


def _reference_pool(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(F, g*g, D) real frames -> (grid*grid, D) with torch's 3-D adaptive average pooling."""
    Fr, P, D = x.shape
    g = int(P**0.5)
    v = x.reshape(Fr, g, g, D).permute(3, 0, 1, 2)[None]  # (1, D, F, g, g)
    return F.adaptive_avg_pool3d(v, (1, grid, grid))[0, :, 0].reshape(D, grid * grid).T


@pytest.mark.parametrize("n_frames", [2, 3, 4])
def test_untrained_equals_7x7_spatiotemporal_average_pooling(n_frames):
    cfg = _config()
    tp = TimePerceiver(cfg).eval()
    x = torch.randn(2, 4, 28 * 28, 16)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[:, :n_frames] = True
    x[:, n_frames:] = 1e3  # padding must not leak into the result
    out = tp(x, mask)
    assert out.shape == (2, 49, 16)
    for s in range(2):
        torch.testing.assert_close(out[s], _reference_pool(x[s, :n_frames], 7), rtol=1e-5, atol=1e-5)


def test_untrained_equals_pooling_in_train_mode_too():
    """Training runs the full perceiver; with the gate at zero the output is still the pooling."""
    tp = TimePerceiver(_config(grid=3, patch_grid=9)).train()
    with torch.no_grad():
        for p in tp.layers.parameters():
            p.normal_()
    x, mask = torch.randn(3, 4, 81, 16), torch.ones(3, 4, dtype=torch.bool)
    torch.testing.assert_close(tp(x, mask), spatiotemporal_avg_pool(x, mask, 3))


def test_gate_gets_gradients_and_opening_it_changes_the_output():
    tp = TimePerceiver(_config(grid=3, patch_grid=9)).train()
    x, mask = torch.randn(2, 4, 81, 16), torch.ones(2, 4, dtype=torch.bool)
    tp(x, mask).square().sum().backward()
    assert tp.gate.grad is not None and tp.gate.grad.abs().sum() > 0
    with torch.no_grad():
        tp.gate.fill_(0.5)
    tp.eval()
    assert not tp.is_untrained()
    assert not torch.allclose(tp(x, mask), spatiotemporal_avg_pool(x, mask, 3))


def test_direct_path_learns_from_the_first_step_while_the_gate_is_closed():
    tp = TimePerceiver(_config(grid=3, patch_grid=9)).train()
    x, mask = torch.randn(2, 4, 81, 16), torch.ones(2, 4, dtype=torch.bool)
    tp(x, mask).square().sum().backward()
    assert tp.motion_out[-1].weight.grad.abs().sum() > 0  # the direct path's last layer moves at once
    assert tp.out_proj.weight.grad.abs().sum() == 0  # behind the closed gate nothing does yet
    with torch.no_grad():
        tp.motion_out[-1].bias.fill_(0.1)
    tp.eval()
    assert not tp.is_untrained()
    assert not torch.allclose(tp(x, mask), spatiotemporal_avg_pool(x, mask, 3))


def test_direct_path_sees_each_step_in_order():
    """The direct path reads a cell's frames side by side: a change at the second frame and one at the
    fourth give different outputs, which the frames' average cannot tell apart."""
    torch.manual_seed(0)
    tp = TimePerceiver(_config(grid=3, patch_grid=9)).eval()
    with torch.no_grad():
        tp.motion_out[-1].weight.normal_(0.0, 0.1)
    early, late = torch.zeros(1, 4, 81, 16), torch.zeros(1, 4, 81, 16)
    early[:, 1:, :, 0] = 1.0  # a colour change after the keyframe, kept to the end
    late[:, 3:, :, 0] = 3.0  # the same average (3 frames of 1.0 = 1 frame of 3.0), later and bigger
    mask = torch.ones(1, 4, dtype=torch.bool)
    torch.testing.assert_close(spatiotemporal_avg_pool(early, mask, 3), spatiotemporal_avg_pool(late, mask, 3))
    with torch.no_grad():
        assert (tp(early, mask) - tp(late, mask)).abs().max() > 1e-3


def test_cell_history_puts_each_event_in_the_slot_of_its_frame():
    """A cell that changes at the second and fourth frames has steps (and sizes) in slots 1 and 3 only,
    however big: the direct path reads "when" and "how many times" from which slots hold a step."""
    cells = torch.zeros(2, 4, 9, 16)  # (S, F, G, D)
    cells[0, 1:3, 4] = 2.0  # segment 0, cell 4: a change at frame 2, another at frame 4
    cells[0, 3:, 4] = -1.0
    cells[1, :, 0] = 5.0  # segment 1: 2 real frames; cell 0 is constant, the padding is not
    cells[1, 2:] = torch.randn(2, 9, 16)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    history, sizes = cell_history(cells, mask, max_frames=4)
    assert history.shape == (2, 9, 64) and sizes.shape == (2, 9, 3)
    changed = sizes > 1e-2
    assert changed[0, 4].tolist() == [True, False, True]
    assert changed.sum() == 2  # nothing else moved; steps into the padding are zero
    torch.testing.assert_close(history[1, 0, :16], torch.full((16,), 5.0))  # the keyframe's own cell first
    assert history[1, :, 16:].abs().max() == 0
    short_history, short_sizes = cell_history(cells[1:, :2], mask[1:, :2], max_frames=4)  # a 2-frame tensor
    torch.testing.assert_close(short_history, history[1:])
    torch.testing.assert_close(short_sizes, sizes[1:])


def test_masked_frames_do_not_change_a_trained_perceiver():
    tp = TimePerceiver(_config(grid=3, patch_grid=9)).eval()
    with torch.no_grad():
        tp.gate.fill_(1.0)
    x = torch.randn(1, 4, 81, 16)
    mask = torch.tensor([[True, True, False, False]])
    y = x.clone()
    y[:, 2:] = torch.randn_like(y[:, 2:])
    torch.testing.assert_close(tp(x, mask), tp(y, mask))


def test_init_weights_keeps_the_gate_and_the_direct_path_at_zero():
    from clapper_core.model.modeling_clapper import ClapperForConditionalGeneration

    cfg = _config(grid=3, patch_grid=9)
    cfg.text_config.update(dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                num_key_value_heads=1, vocab_size=64))  # fmt: skip
    model = ClapperForConditionalGeneration(cfg)
    tp = model.model.time_perceiver
    with torch.no_grad():
        tp.gate.fill_(1.0)
        tp.motion_out[-1].weight.fill_(1.0)
        tp.energy_out[-1].bias.fill_(1.0)
    model._init_weights(tp)
    assert tp.is_untrained()
    assert tp.latents.std() > 0  # the rest is initialised, not zeroed
    torch.testing.assert_close(tp.motion_proj.weight, torch.eye(16))  # motion features at full weight


def test_motion_features_tell_frame_order_apart():
    """Without temporal position the perceiver sees a segment's patches as a set: played forwards
    or backwards, a segment gives the same output, as average pooling does. The motion features
    (each frame minus the keyframe), in the keys and values or pooled into the queries, are what
    tell the two apart."""
    torch.manual_seed(0)
    tp = TimePerceiver(_config(grid=3, patch_grid=9)).eval()
    x, mask = torch.randn(1, 4, 81, 16), torch.ones(1, 4, dtype=torch.bool)
    rev = x.flip(1)
    with torch.no_grad():
        tp.gate.fill_(1.0)
        tp.temporal_pos.zero_()
        for lin in (tp.motion_proj, tp.motion_in):
            lin.weight.zero_()
            lin.bias.zero_()
        torch.testing.assert_close(tp(x, mask), tp(rev, mask))
        tp.motion_proj.weight.copy_(torch.eye(16))
        assert (tp(x, mask) - tp(rev, mask)).abs().max() > 1e-3
        tp.motion_proj.weight.zero_()
        tp.motion_in.weight.normal_(0.0, 0.1)
        assert (tp(x, mask) - tp(rev, mask)).abs().max() > 1e-3
