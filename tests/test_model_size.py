"""Fit to Model Size / Restore Size (image_ops/model_size.py, docs/shared.md §7.4): the official raise-and-pad
rules, checked against the official code's own operations (TASR's `resize_short_edge_to` and
`pad_to_multiples_of`, DiffBIR's zero `pad`, torch's reflect), and the round trip back to the exact size."""
import pytest
import torch
import torch.nn.functional as F

from timeaware_sr.clear_errors import InputError
from timeaware_sr.image_ops.model_size import fit_to_model, plan, raised_size, restore_size
from timeaware_sr.nodes.model_size import FitToModelSize, RestoreSize


def tasr_resize_short_edge_to(h: int, w: int, size: int) -> tuple[int, int]:
    """TASR's `resize_short_edge_to` size rule (utils/helpers.py), written out as the official code has it."""
    if h == w:
        return size, size
    if h < w:
        return size, int(w * (size / h))
    return int(h * (size / w)), size


def tasr_pad(h: int, multiple: int) -> int:
    """TASR's `pad_to_multiples_of` pad amount for one side."""
    return (h // multiple + int(h % multiple != 0)) * multiple - h


def image(b: int, h: int, w: int, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, h, w, c, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("h,w", [(148, 116), (80, 288), (288, 80), (512, 512), (256, 256), (16, 500), (700, 1000),
                                 (511, 1203), (100, 333)])
def test_sizes_follow_tasr_official_rule(h, w):
    record = plan(h, w, 64, 512)
    expected = tasr_resize_short_edge_to(h, w, 512) if min(h, w) < 512 else (h, w)
    assert record.raised == expected
    assert record.padded == (expected[0] + tasr_pad(expected[0], 64), expected[1] + tasr_pad(expected[1], 64))
    assert record.original == (h, w)


def test_a_square_256_image_is_raised_to_512_and_a_1024_one_is_left_alone():
    assert plan(256, 256, 64, 512).padded == (512, 512)
    assert plan(1024, 1024, 64, 512).padded == (1024, 1024)
    assert raised_size(600, 900, 512) == (600, 900)


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
@pytest.mark.parametrize("h,w,c", [(37, 29, 3), (1, 1, 3), (20, 72, 4), (64, 64, 3), (9, 130, 1)])
def test_pad_then_restore_gives_the_input_back_bitwise(mode, h, w, c):
    x = image(2, h, w, c)
    padded, record = fit_to_model(x, 64, 0, mode)
    assert padded.shape == (2, -(-h // 64) * 64, -(-w // 64) * 64, c)
    assert torch.equal(restore_size(padded, record), x)


def test_zero_padding_is_the_official_constant_zero_pad_and_reflect_is_torch_reflect():
    x = image(1, 37, 45)
    zeros, _ = fit_to_model(x, 64, 0, "zeros")
    reference = F.pad(x.movedim(-1, 1), (0, 64 - 45, 0, 64 - 37)).movedim(1, -1)  # TASR / DiffBIR: value 0
    assert torch.equal(zeros, reference)
    reflect, _ = fit_to_model(image(1, 40, 50), 8, 0, "reflect")
    reference = F.pad(image(1, 40, 50).movedim(-1, 1), (0, 6, 0, 0), mode="reflect").movedim(1, -1)
    assert torch.equal(reflect, reference)


def test_the_raise_is_torch_antialiased_bicubic_as_tasr_and_restore_resizes_back_the_same_way():
    x = F.interpolate(image(1, 12, 10).movedim(-1, 1), size=(148, 116), mode="bilinear").movedim(1, -1)  # smooth
    padded, record = fit_to_model(x, 64, 512, "zeros")
    raised = F.interpolate(x.movedim(-1, 1), size=(653, 512), mode="bicubic", antialias=True).clamp(0, 1)
    assert record.raised == (653, 512) and padded.shape[1:3] == (704, 512)
    assert torch.equal(padded[:, :653, :512], raised.movedim(1, -1))
    assert torch.count_nonzero(padded[:, 653:]) == 0
    back = restore_size(padded, record)
    expected = F.interpolate(raised, size=(148, 116), mode="bicubic", antialias=True).clamp(0, 1)
    assert back.shape == x.shape
    torch.testing.assert_close(back, expected.movedim(1, -1), rtol=0, atol=0)
    assert 0 < (back - x).abs().max() < 0.02  # up and back down: close to a smooth input, not equal


def test_restore_accepts_a_whole_multiple_of_the_padded_size_and_crops_that_share():
    x = image(1, 20, 30)
    padded, record = fit_to_model(x, 64, 0, "reflect")
    x4 = F.interpolate(padded.movedim(-1, 1), scale_factor=4, mode="nearest").movedim(1, -1)
    out = restore_size(x4, record)
    assert out.shape == (1, 80, 120, 3)
    assert torch.equal(out, x4[:, :80, :120])


@pytest.mark.parametrize("shape", [(1, 64, 100, 3), (1, 63, 64, 3), (1, 128, 192, 3)])
def test_restore_refuses_an_image_that_is_not_the_padded_one_and_says_what_to_connect(shape):
    _, record = fit_to_model(image(1, 20, 30), 64, 0, "zeros")
    with pytest.raises(InputError, match="64x64 px padded image: connect the image decoded from that padded"):
        restore_size(torch.zeros(shape), record)


def test_the_nodes_wire_the_two_functions_and_check_their_widgets():
    x = image(2, 29, 37, 4)
    padded, record = FitToModelSize.execute(x, 8, 0, "reflect").result
    assert padded.shape == (2, 32, 40, 4)
    assert torch.equal(RestoreSize.execute(padded, record).result[0], x)
    assert "min_short_side must be at least 0" in FitToModelSize.validate_inputs(
        image=None, multiple=8, min_short_side=-1, mode="zeros")
    assert "mode must be one of" in FitToModelSize.validate_inputs(image=None, multiple=8, min_short_side=0,
                                                                   mode="edge")


def test_a_map_of_the_lr_is_laid_on_the_padded_canvas_not_stretched_over_it():
    from timeaware_sr.image_ops.model_size import map_on_padded_canvas
    from timeaware_sr.image_ops.sds_map import variance_map_outputs

    lr = image(1, 20, 30)
    _, record = fit_to_model(torch.zeros(1, 80, 120, 3), 64, 0, "zeros")  # the x4 image: 128 x 128 padded
    plain_map = variance_map_outputs(lr)[1]
    preview, mask = variance_map_outputs(lr, record)
    assert mask.shape == (1, 128, 128) and preview.shape == (1, 128, 128, 3)
    expected = F.interpolate(plain_map[:, None], size=(80, 120), mode="bilinear", antialias=True).clamp(0, 1)[:, 0]
    assert torch.equal(mask[:, :80, :120], expected)
    assert torch.count_nonzero(mask[:, 80:]) == 0 and torch.count_nonzero(mask[:, :, 120:]) == 0
    assert torch.equal(map_on_padded_canvas(mask[:, :80, :120], record), mask)  # already the raised size: kept


@pytest.mark.parametrize("h,w,min_short", [(4, 2048, 512), (2048, 4, 512), (1, 40, 512), (8, 16385, 0)])
def test_a_result_longer_than_comfyuis_limit_is_refused_before_anything_is_made(h, w, min_short):
    with pytest.raises(InputError, match=r"Fit to Model Size: the \d+x\d+ px image would become \d+x\d+ px .*above "
                                         r"the 16384 px per side ComfyUI allows.*Crop the image"):
        plan(h, w, 64, min_short)
    assert plan(32, 1024, 64, 512).padded == (512, 16384)  # 1:32 is the thinnest strip TASR's rule takes


def test_samplers_refuse_a_latent_comfyuis_preview_would_shrink_to_nothing():
    from timeaware_sr.samplers.preview_shape import require_previewable

    require_previewable(torch.zeros(1, 4, 4, 4096), "DoSSR Sampler")  # 1024:1 still previews (2 px high)
    require_previewable(torch.zeros(1, 4, 1, 1), "DoSSR Sampler")
    with pytest.raises(InputError, match="DoSSR Sampler: the latent is 8192x4, more than 1024 times longer"):
        require_previewable(torch.zeros(1, 3, 4, 8192), "DoSSR Sampler")
    with pytest.raises(InputError, match="the latent is 1x1025"):
        require_previewable(torch.zeros(1, 3, 1025, 1), "TSS Sampler")


def test_a_nan_image_is_refused_by_both_nodes_with_their_names():
    bad = image(1, 20, 30)
    bad[0, 3, 4, 1] = float("nan")
    with pytest.raises(InputError, match="Fit to Model Size: image contains NaN or infinite values"):
        FitToModelSize.execute(bad, 8, 0, "zeros")
    _, record = fit_to_model(image(1, 20, 30), 8, 0, "zeros")
    with pytest.raises(InputError, match="Restore Size: image contains NaN or infinite values"):
        RestoreSize.execute(torch.full((1, 24, 32, 3), float("nan")), record)
