"""load_sr_model: any SR architecture spandrel detects, read by our safe loaders; and the bf16 fast path of
plain inference."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import gvtnet
from analysis import lam
from gvtnet import inference
from gvtnet.compat import import_spandrel
from gvtnet.data import image_files
from gvtnet.images import center_square, degrade, open_image
from gvtnet.inference import super_resolve, to_tensor
from gvtnet.metrics import psnr
from gvtnet.sr_models import SpandrelSR, describe_model, has_graph, load_sr_model, model_name, scale_of
from gvtnet.weights import CheckpointError

ASSETS = os.path.join(os.path.dirname(__file__), "..", "assets")


def small_nets() -> dict[str, torch.nn.Module]:
    """spandrel's SwinIR, HAT and RRDB (ESRGAN) at small random configurations, x4."""
    import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.HAT import HAT
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    window = dict(img_size=16, window_size=4, embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler="pixelshuffle")
    return {"SwinIR": SwinIR(upscale=4, depths=[2], **window).eval(),
            "HAT": HAT(upscale=4, depths=[1], compress_ratio=3, squeeze_factor=4, **window).eval(),
            "ESRGAN": ESRGAN(num_filters=8, num_blocks=1, scale=4).eval()}


@pytest.fixture(scope="module")
def nets():
    return small_nets()


def _save(net: torch.nn.Module, path) -> None:
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if str(path).endswith(".safetensors"):
        save_file(state, path)
    else:
        torch.save({"params_ema": state}, path)  # the BasicSR layout most released .pth files use


@pytest.mark.parametrize("arch", ["SwinIR", "HAT", "ESRGAN"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_lam_through_load_sr_model_equals_lam_of_the_module(nets, arch, suffix, tmp_path):
    net = nets[arch]
    path = tmp_path / f"{arch}{suffix}"
    _save(net, path)
    model = load_sr_model(path)
    assert isinstance(model, SpandrelSR) and model.architecture == arch and scale_of(model) == 4
    assert not has_graph(model) and model_name(model) == arch and arch in describe_model(model)
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))  # meets every size requirement
    direct = lam.local_attribution_map(net, lr, 20, 24, window=16, fold=3, batch_size=3)
    loaded = lam.local_attribution_map(model, lr, 20, 24, window=16, fold=3, batch_size=3)
    assert np.abs(direct.attribution).max() > 0
    np.testing.assert_allclose(loaded.attribution, direct.attribution, rtol=1e-5, atol=1e-7)
    assert loaded.di == pytest.approx(direct.di, abs=1e-6)


@pytest.mark.parametrize("arch", ["SwinIR", "HAT", "ESRGAN"])
def test_output_equals_spandrel_call_at_any_size(nets, arch, tmp_path):
    """An odd-sized input is padded to the architecture's size requirements and cropped back, as spandrel's
    own (inference-only, clamping) call does."""
    path = tmp_path / f"{arch}.safetensors"
    _save(nets[arch], path)
    model = load_sr_model(path)
    x = torch.rand(1, 3, 10, 13, generator=torch.Generator().manual_seed(2))
    reference = import_spandrel().ModelLoader().load_from_state_dict(dict(nets[arch].state_dict()))(x)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 3, 40, 52)
    torch.testing.assert_close(out.clamp(0, 1), reference, rtol=0, atol=1e-6)


def test_our_files_load_as_gvtnet():
    model = load_sr_model(os.path.join(ASSETS, "gvtnet-light-x4.safetensors"))
    assert isinstance(model, gvtnet.GVTNet) and scale_of(model) == 4 and has_graph(model)
    base = load_sr_model(os.path.join(ASSETS, "swinir-light-x8.safetensors"))
    assert isinstance(base, gvtnet.GVTNet) and scale_of(base) == 8 and model_name(base) == "SwinIR"


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker file
        return (open, (self.marker, "w"))


def test_pickle_carrying_file_is_refused(nets, tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"params_ema": dict(nets["ESRGAN"].state_dict()), "extra": _Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_sr_model(path)
    assert not marker.exists()


def test_unknown_architecture_names_what_it_saw(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"encoder.stem.weight": torch.zeros(4, 3, 3, 3), "head.bias": torch.zeros(4)}, path)
    with pytest.raises(CheckpointError, match=r"no known super-resolution architecture.*2 tensors.*encoder\.stem\.weight"):
        load_sr_model(path)


def test_non_sr_spandrel_model_is_refused(tmp_path):
    """A 1x restoration network (an RRDB without upsampling) is an architecture spandrel knows, not SR."""
    import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    path = tmp_path / "restorer.safetensors"
    save_file({k: v.contiguous() for k, v in ESRGAN(num_filters=8, num_blocks=1, scale=1).state_dict().items()}, path)
    with pytest.raises(CheckpointError, match="ESRGAN model for Restoration, not RGB super-resolution"):
        load_sr_model(path)


# ----------------------------------------------------------------------------------------------------
# precision


@pytest.mark.parametrize("speedup, expected", [(2.5, "bf16"), (1.3, "bf16"), (1.1, "fp32"), (0.35, "fp32")])
def test_auto_precision_is_what_measures_faster(monkeypatch, speedup, expected):
    monkeypatch.setattr(inference, "bf16_speedup", lambda device_type="cpu": speedup)
    assert inference.resolve_precision("auto") == expected
    assert inference.resolve_precision("fp32") == "fp32" and inference.resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="unknown precision"):
        inference.resolve_precision("fp16")


def test_the_bf16_measurement_sees_this_cpu():
    """bf16_speedup is a real measurement: a positive ratio, the same for the process once made, and above
    1 only where the CPU's flags say bf16 is native (AMX or AVX512-BF16; emulated bf16 is several times
    slower on the CPUs seen here)."""
    speedup = inference.bf16_speedup()
    assert speedup > 0 and inference.bf16_speedup() == speedup
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if "amx_bf16" not in flags and "avx512_bf16" not in flags:
        assert speedup < inference.BF16_MIN_SPEEDUP and inference.resolve_precision("auto") == "fp32"


def test_bf16_inference_within_0_05_db_on_real_faces(celeba_test):
    """The shipped light x8 GVTNet on 16 CelebA faces: PSNR against the original with bf16 autocast within
    0.05 dB of fp32, face by face (mean and worst)."""
    model = gvtnet.load_model(os.path.join(ASSETS, "gvtnet-light-x8.safetensors"))
    hrs = [center_square(open_image(p).convert("RGB")) for p in image_files(celeba_test)[:16]]
    lr = torch.cat([to_tensor(degrade(hr, 8)) for hr in hrs])
    out = {p: super_resolve(model, lr, precision=p) for p in ("fp32", "bf16")}
    assert out["bf16"].dtype == torch.float32
    assert (out["bf16"] - out["fp32"]).abs().max() > 0  # bf16 really ran
    gaps = [psnr(inference.to_uint8(out["bf16"][i : i + 1])[0], np.asarray(hr)) -
            psnr(inference.to_uint8(out["fp32"][i : i + 1])[0], np.asarray(hr)) for i, hr in enumerate(hrs)]
    assert abs(np.mean(gaps)) < 0.05 and max(map(abs, gaps)) < 0.05
    img = gvtnet.upscale(model, inference.to_image(lr[:1]), precision="auto")
    assert img.size == (128, 128)


