"""The benchmark's floor measurement replays exactly the arithmetic of a forward pass."""
import torch
from torch.utils.flop_counter import FlopCounterMode

import gvtnet
from benchmarks.bench_models import dense_replay


def test_dense_replay_holds_every_matmul_and_conv_of_the_forward():
    model = gvtnet.build_model("light-x8").eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    replay, ops, gflops = dense_replay(model, x)
    # first conv; 4 groups x (2 blocks x (4 linear + 2 depthwise convs + 2 attention matmuls), the graph's
    # Gram matrix, the group's conv); the conv after the body and the upsampler's
    assert ops == 1 + 4 * (2 * (4 + 2 + 2) + 1 + 1) + 2
    assert gflops * 1e9 == counter.get_total_flops()
    replay()
