"""Weights I/O: round trips, the released code's checkpoint layouts, and files that must be refused."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

import gvtnet
from gvtnet.weights import CheckpointError


def random_model(preset="light-x8", **kw):
    torch.manual_seed(1)
    model = gvtnet.build_model(preset, **kw).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    return model


def test_safetensors_round_trip_keeps_weights_and_config(tmp_path):
    model = random_model(threshold=0.7, minkowski_p=1.0)
    gvtnet.save_model(model, tmp_path / "m.safetensors")
    loaded = gvtnet.load_model(tmp_path / "m.safetensors")
    assert loaded.cfg == model.cfg and not loaded.training
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not (tmp_path / "m.safetensors.tmp").exists()


def released_state(fixtures_dir):
    return load_file(fixtures_dir / "tiny-x4-weights.safetensors")


@pytest.mark.parametrize("layout", ["params_ema", "params", "bare", "safetensors"])
def test_released_checkpoint_layouts(fixtures_dir, tmp_path, layout):
    state = released_state(fixtures_dir)
    io = load_file(fixtures_dir / "tiny-x4-io.safetensors")
    noise = {k: v + 1 for k, v in state.items() if v.is_floating_point()}
    if layout == "safetensors":
        path = tmp_path / "released.safetensors"
        save_file(state, path)
    else:
        path = tmp_path / "released.pth"
        obj = {"params_ema": state, "params": noise} if layout == "params_ema" else \
              {"params": state} if layout == "params" else state
        torch.save(obj, path)
    model = gvtnet.load_model(path)
    with torch.no_grad():
        assert (model(io["input"]) - io["output"]).abs().max() < 1e-5  # params_ema preferred over params


def test_pickled_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"params": Exploit()}))
    with pytest.raises(CheckpointError, match="refused|not a readable"):
        gvtnet.load_model(path)
    assert not marker.exists()


def test_truncated_and_garbage_files(tmp_path):
    gvtnet.save_model(random_model(), tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint at all")
    (tmp_path / "empty.pth").write_bytes(b"")
    for name in ["cut.safetensors", "junk.pth", "empty.pth"]:
        with pytest.raises(CheckpointError, match="truncated|wrong format|not a readable"):
            gvtnet.load_model(tmp_path / name)
    with pytest.raises(CheckpointError, match="no such file"):
        gvtnet.load_model(tmp_path / "missing.safetensors")


def test_mismatched_weights_name_the_problem(tmp_path, fixtures_dir):
    gvtnet.save_model(random_model("light-x4"), tmp_path / "light.safetensors")
    with pytest.raises(CheckpointError, match="missing|unexpected|wrong shape"):
        gvtnet.load_model(tmp_path / "light.safetensors", preset="official-x4")
    state = released_state(fixtures_dir)
    del state["conv_last.weight"]
    torch.save({"params": state}, tmp_path / "incomplete.pth")
    with pytest.raises(CheckpointError, match="conv_last.weight"):
        gvtnet.load_model(tmp_path / "incomplete.pth")
    torch.save({"params": {"fc.weight": torch.zeros(3)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a GVTNet"):
        gvtnet.load_model(tmp_path / "other.pth")
