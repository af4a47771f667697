#!/usr/bin/env python3
"""Times the `xception bench` cases in PyTorch, for a side-by-side comparison.

Not a dependency of the project or of CI: it needs python3 with torch (Debian python3-torch).
The network mirrors the project's Xception (src/models/xception/xception.ts): the same layers,
channel counts (with --width, rounded as xceptionChannels does), strides and output sizes; the
weights are PyTorch's own random initialisation (timing does not depend on them). Everything runs
channels-last; a training step is forward → cross-entropy → backward → SGD (momentum 0.9).

  python3 src/bench/scripts/pytorch_train.py                      # the training cases, each in its own process
  python3 src/bench/scripts/pytorch_train.py --case train-b8-299  # one case in this process

Prints one JSON object per line: {case, torch, threads, imagesPerSec, secondsPerStep, peakRssMB}.
Peak RSS is this process's ru_maxrss (so one case per process).
"""
import argparse
import json
import resource
import subprocess
import sys
import time

CASES = {
    'infer-b1-299': dict(train=False, batch=1, size=299, stem='imagenet'),
    'infer-b8-299': dict(train=False, batch=8, size=299, stem='imagenet'),
    'train-b8-299': dict(train=True, batch=8, size=299, stem='imagenet'),
    'train-b32-64': dict(train=True, batch=32, size=64, stem='small'),
}


def build_xception(torch, nn, stem, width, middle_blocks, classes):
    def ch(n):
        return max(1, round(n * width))

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    def sep(cin, cout):
        # Keras SeparableConv2D, depthwise first, no bias.
        return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False))

    class DownBlock(nn.Module):
        """Two separable convs and a 3×3/2 max pool, plus a strided 1×1 residual (blocks 2–4, 13)."""

        def __init__(self, cin, f1, f2, relu_first):
            super().__init__()
            layers = [nn.ReLU()] if relu_first else []
            layers += [sep(cin, f1), bn(f1), nn.ReLU(), sep(f1, f2), bn(f2), nn.MaxPool2d(3, 2, padding=1)]
            self.body = nn.Sequential(*layers)
            self.residual = nn.Sequential(nn.Conv2d(cin, f2, 1, stride=2, bias=False), bn(f2))

        def forward(self, x):
            return self.body(x) + self.residual(x)

    class MiddleBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = nn.Sequential(*[m for _ in range(3) for m in (nn.ReLU(), sep(c, c), bn(c))])

        def forward(self, x):
            return self.body(x) + x

    small = stem == 'small'
    s0, s1 = ch(32), ch(64)
    e0, e1, e2, mid, x0, x1, f0, f1 = ch(128), ch(256), ch(728), ch(728), ch(728), ch(1024), ch(1536), ch(2048)
    return nn.Sequential(
        nn.Conv2d(3, s0, 3, stride=1 if small else 2, padding=1 if small else 0, bias=False), bn(s0), nn.ReLU(),
        nn.Conv2d(s0, s1, 3, padding=1 if small else 0, bias=False), bn(s1), nn.ReLU(),
        DownBlock(s1, e0, e0, False), DownBlock(e0, e1, e1, True), DownBlock(e1, e2, e2, True),
        *[MiddleBlock(mid) for _ in range(middle_blocks)],
        DownBlock(mid, x0, x1, True),
        sep(x1, f0), bn(f0), nn.ReLU(), sep(f0, f1), bn(f1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(f1, classes),
    )


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def run_case(a):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    spec = CASES[a.case]
    batch = a.batch or spec['batch']
    size = a.size or spec['size']
    stem = a.stem or spec['stem']
    model = build_xception(torch, nn, stem, a.width, a.middle_blocks, a.classes).to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, size, size).mul_(2).sub_(1).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, a.classes, (batch,))
    if spec['train']:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            loss.item()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model(x).numpy()

    last = 0.0
    for _ in range(max(1, a.warmup)):
        t0 = time.perf_counter()
        step()
        last = time.perf_counter() - t0
    steps = max(1, min(10000, -(-a.min_time // max(last, 1e-6)))) if a.min_time > 0 else 1
    steps = int(steps)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps)
    sec = median(times)
    print(json.dumps({
        'case': a.case, 'torch': torch.__version__, 'threads': torch.get_num_threads(), 'batch': batch, 'imageSize': size,
        'imagesPerSec': batch / sec, 'secondsPerStep': sec, 'repeatSeconds': times, 'stepsPerRepeat': steps,
        'peakRssMB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
    }), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--case', choices=sorted(CASES), help='one case in this process (default: every training case, one process each)')
    p.add_argument('--batch', type=int, help="override the case's batch")
    p.add_argument('--size', type=int, help="override the case's image size")
    p.add_argument('--stem', choices=['imagenet', 'small'], help="override the case's stem")
    p.add_argument('--width', type=float, default=1.0)
    p.add_argument('--middle-blocks', type=int, default=8)
    p.add_argument('--classes', type=int, default=1000)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--min-time', type=float, default=1.0, help='seconds each repeat lasts at least')
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    if a.case:
        run_case(a)
        return
    passthrough = [arg for arg in sys.argv[1:]]
    for name, spec in CASES.items():
        if spec['train']:
            subprocess.run([sys.executable, __file__, '--case', name, *passthrough], check=True)


if __name__ == '__main__':
    main()
