"""Data, training and evaluation on real faces."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio

import gvtnet
from conftest import ASSETS, ROOT, need
from gvtnet.data import FacePairs, image_files, split_files
from gvtnet.evaluate import evaluate_pairs
from gvtnet.inference import super_resolve

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def few_faces(faces_train, tmp_path):
    """A folder of 40 real training faces plus one unreadable file."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for f in image_files(faces_train)[:40]:
        shutil.copy(f, folder / f.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return folder


def test_degradation_is_pil_bicubic(few_faces):
    files = image_files(few_faces)
    pairs = FacePairs.from_files(files, scale=4, progress=False)
    assert pairs.skipped == 1 and len(pairs) == 40
    hr = Image.open(files[0]).convert("RGB")
    assert hr.size == (128, 128)
    expected = np.asarray(hr.resize((32, 32), Image.BICUBIC))
    assert np.array_equal(pairs.lr[0].permute(1, 2, 0).numpy(), expected)
    assert np.array_equal(pairs.hr[0].permute(1, 2, 0).numpy(), np.asarray(hr))


def test_zoomed_out_faces_are_the_resized_face_then_degraded(few_faces):
    files = image_files(few_faces)
    pairs = FacePairs.from_files(files[:3], scale=4, hr_size=64, progress=False)
    hr = Image.open(files[0]).convert("RGB").resize((64, 64), Image.BICUBIC)
    assert np.array_equal(pairs.hr[0].permute(1, 2, 0).numpy(), np.asarray(hr))
    assert np.array_equal(pairs.lr[0].permute(1, 2, 0).numpy(), np.asarray(hr.resize((16, 16), Image.BICUBIC)))


def test_mosaics_tile_whole_faces_and_are_degraded_as_one_image():
    # 40 "faces" of one flat grey level each, so that the tiling can be read back from the pixels
    hr = torch.arange(1, 41, dtype=torch.uint8).mul(6).view(40, 1, 1, 1).expand(40, 3, 64, 64).contiguous()
    pairs = FacePairs(hr, hr[:, :, ::8, ::8].contiguous(), scale=8)
    lr, mosaic = pairs.sample_mosaic(6, torch.Generator().manual_seed(0), canvas=128)
    assert lr.shape == (6, 3, 16, 16) and mosaic.shape == (6, 3, 128, 128)
    offsets = set()
    for low, high in zip(lr, mosaic):
        img = (high * 255).round().byte().permute(1, 2, 0).numpy()
        expected = np.asarray(Image.fromarray(img).resize((16, 16), Image.BICUBIC))
        assert np.array_equal((low * 255).round().byte().permute(1, 2, 0).numpy(), expected)
        grey = img[..., 0].astype(int)
        assert set(np.unique(grey)) <= set(range(6, 241, 6))
        # whole 64-pixel faces: the level changes only on one column (and one row) out of every 64
        cols = {x % 64 for x in np.nonzero((np.diff(grey, axis=1) != 0).any(0))[0]}
        rows = {y % 64 for y in np.nonzero((np.diff(grey, axis=0) != 0).any(1))[0]}
        assert len(cols) == 1 and len(rows) == 1
        offsets.add((rows.pop(), cols.pop()))
    assert len(offsets) > 1  # cropped at random offsets


def test_faces_of_any_size_are_centre_cropped(tmp_path):
    Image.new("RGB", (300, 200), (200, 10, 10)).save(tmp_path / "wide.png")
    pairs = FacePairs.from_files(image_files(tmp_path), scale=8, progress=False)
    assert pairs.hr.shape == (1, 3, 128, 128) and pairs.lr.shape == (1, 3, 16, 16)


def test_split_is_deterministic_and_disjoint(few_faces):
    files = image_files(few_faces)
    train, val = split_files(files, 10)
    assert (train, val) == split_files(files, 10)
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == len(files)


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="holds no images"):
        image_files(tmp_path)


def test_augmentation_keeps_pairs_aligned(few_faces):
    pairs = FacePairs.from_files(image_files(few_faces), scale=4, progress=False)
    lr, hr = pairs.sample(32, torch.Generator().manual_seed(0))
    down = torch.nn.functional.avg_pool2d(hr, 4)
    # an aligned pair's LR is close to the block mean of its HR; a misaligned one is not
    assert (down - lr).abs().mean() < 0.03


def run_train(args, **kw):
    return subprocess.run([sys.executable, "-m", "gvtnet.train", "--no-progress", "--threads", "1", *args],
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_a_few_steps_lower_the_loss(few_faces, tmp_path):
    torch.manual_seed(0)
    pairs = FacePairs.from_files(image_files(few_faces), scale=8, progress=False)
    model = gvtnet.build_model("light-x8")
    opt = torch.optim.Adam(model.parameters(), 3e-4)
    gen = torch.Generator().manual_seed(0)
    fixed_lr, fixed_hr = pairs.sample(16, torch.Generator().manual_seed(1), augment=False)

    def loss():
        with torch.no_grad():
            return torch.nn.functional.l1_loss(model(fixed_lr), fixed_hr).item()

    before = loss()
    for _ in range(40):
        lr, hr = pairs.sample(8, gen)
        opt.zero_grad()
        torch.nn.functional.l1_loss(model(lr), hr).backward()
        opt.step()
    assert loss() < 0.97 * before  # from plain bicubic (light presets start there)


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_weights(few_faces, tmp_path):
    common = ["--preset", "light-x8", "--data", str(few_faces), "--steps", "8", "--batch", "4",
              "--val-count", "8", "--val-every", "4", "--ckpt-every", "2", "--seed", "3", "--hr-sizes", "128", "64",
              "--canvas", "128"]
    whole = run_train([*common, "--out", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "gvtnet.train", "--no-progress", "--threads", "1", *common,
                             "--out", str(out)], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert step < 8 and not (out / "model.safetensors").exists()
    resumed = run_train([*common, "--out", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("val_psnr_y" in r for r in logged)


@pytest.mark.slow
def test_sigterm_stops_resumably(few_faces, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gvtnet.train", "--no-progress", "--threads", "1",
                             "--preset", "light-x8", "--data", str(few_faces), "--steps", "100000", "--batch", "2",
                             "--val-count", "4", "--ckpt-every", "100000", "--out", str(out)],
                            env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (out / "log.jsonl").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "continue with --resume" in output
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] > 0


@pytest.mark.slow
def test_ddp_on_two_gloo_processes(few_faces, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         "-m", "gvtnet.train", "--no-progress", "--threads", "1", "--preset", "light-x8", "--data", str(few_faces),
         "--steps", "3", "--batch", "4", "--val-count", "4", "--out", str(out)],
        env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and len(ckpt["generators"]) == 2  # each rank's sampler state
    assert not torch.equal(ckpt["generators"][0], ckpt["generators"][1])
    gvtnet.load_model(out / "model.safetensors")


def test_bicubic_row_equals_direct_scikit_image(celeba_test):
    files = image_files(celeba_test)[:12]
    pairs = FacePairs.from_files(files, scale=4, progress=False)
    ours = evaluate_pairs(None, pairs)
    direct = []
    for f in files:
        hr = Image.open(f).convert("RGB")
        up = hr.resize((32, 32), Image.BICUBIC).resize((128, 128), Image.BICUBIC)
        y = [rgb2ycbcr(np.asarray(im))[..., 0] for im in (hr, up)]
        direct.append(peak_signal_noise_ratio(y[0], y[1], data_range=255))
    assert ours["psnr_y"] == pytest.approx(np.mean(direct), abs=1e-9)


class _Upsample(torch.nn.Module):
    """x4 nearest upsampling (equivariant to every flip and transpose) plus a fixed `bias` image, which
    is not: an ensemble's mean over the transforms must undo each one exactly."""

    def __init__(self, bias):
        super().__init__()
        self.register_buffer("bias", bias)

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest") + self.bias


@pytest.mark.parametrize("ensemble", [None, "flip", "d8"])
def test_self_ensembles_average_over_their_transforms(ensemble):
    lr = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0)) * 0.5
    ramp = torch.linspace(0, 0.4, 24).expand(24, 24)  # brighter to the right
    out = super_resolve(_Upsample(ramp), lr, ensemble)
    up = torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")
    mirrored = (ramp + ramp.flip(-1)) / 2
    expected = {None: ramp, "flip": mirrored, "d8": (mirrored + mirrored.T) / 2}[ensemble]
    torch.testing.assert_close(out, up + expected, rtol=0, atol=1e-6)


def test_unknown_self_ensemble_is_a_clear_error():
    with pytest.raises(ValueError, match="flip, d8"):
        super_resolve(_Upsample(torch.zeros(24, 24)), torch.zeros(1, 3, 6, 6), "rot90")


@pytest.mark.parametrize("name,scale", [("gvtnet-light-x4", 4), ("gvtnet-light-x8", 8),
                                        ("swinir-light-x4", 4), ("swinir-light-x8", 8),
                                        ("strided-light-x8", 8)])
def test_shipped_weights_beat_bicubic(celeba_test, name, scale):
    model = gvtnet.load_model(need(ASSETS / f"{name}.safetensors"))
    assert model.cfg.upscale == scale
    pairs = FacePairs.from_files(image_files(celeba_test)[:24], scale=scale, progress=False)
    assert evaluate_pairs(model, pairs)["psnr_y"] > evaluate_pairs(None, pairs)["psnr_y"] + 0.5


def test_shipped_graph_free_gvtnet_is_gvtnet_without_its_graph():
    """strided-light-x8: GVTNet's layout (strided windows, per-group shift, depthwise q/k/v) and size, with
    no graph block (docs/ABLATION.md)."""
    model = gvtnet.load_model(need(ASSETS / "strided-light-x8.safetensors"))
    shipped = gvtnet.load_model(need(ASSETS / "gvtnet-light-x8.safetensors"))
    assert {blk.kind for g in model.layers for blk in g.blocks} == {"S"}
    assert model.cfg == dataclasses.replace(shipped.cfg, block_pattern="S")


@pytest.mark.slow
def test_init_starts_from_given_weights(few_faces, tmp_path):
    torch.manual_seed(5)
    start = gvtnet.build_model("light-x8")
    for p in start.parameters():
        p.data.normal_(0, 0.02)
    gvtnet.save_model(start, tmp_path / "start.safetensors")
    result = run_train(["--preset", "light-x8", "--data", str(few_faces), "--steps", "0", "--val-count", "4",
                        "--init", str(tmp_path / "start.safetensors"), "--out", str(tmp_path / "run")])
    assert result.returncode == 0, result.stderr
    a, b = load_file(tmp_path / "start.safetensors"), load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
