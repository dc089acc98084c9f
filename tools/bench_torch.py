#!/usr/bin/python3
"""PyTorch's side of `mutualnet bench`: the same rows (width x size, forward at batch 1 in eval
mode, a training step at batch 8: forward, cross-entropy, backward, SGD with Nesterov momentum)
for torchvision's MobileNetV2 built at each width (width_mult: a dedicated, unsliced network,
the best case for PyTorch) or ResNet-50. Uses Debian's python3-torch / python3-torchvision.
Inputs are made before the clock starts; each row times `reps` repetitions after two warm-ups
and prints the median, as `mutualnet bench` does.

    /usr/bin/python3 tools/bench_torch.py --threads 2 [--model mobilenet_v2] [--reps 5] [--quick]
                                          [--width W] [--size S] [--only forward|train]
"""
import argparse
import statistics
import time

import torch
import torchvision

WARMUP = 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mobilenet_v2", choices=["mobilenet_v2", "resnet50"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--width", type=float, help="only this width (1.0, 0.5 or 0.35)")
    ap.add_argument("--size", type=int, help="only this input size (224, 160 or 128)")
    ap.add_argument("--only", choices=["forward", "train"], help="time only one of the two columns")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)  # Debian's torch starts with one thread
    widths = [1.0, 0.5] if a.quick else [1.0, 0.5, 0.35]
    sizes = [224] if a.quick else [224, 160, 128]
    if a.width is not None:
        widths = [w for w in widths if abs(w - a.width) < 1e-6]
    if a.size is not None:
        sizes = [s for s in sizes if s == a.size]
    print(f"PyTorch {torch.__version__} {a.model}, {torch.get_num_threads()} threads, median of {a.reps}\n")
    print("| width | size | forward b=1 (ms) | train step b=8 (ms) |\n|---|---|---|---|")
    labels = torch.tensor([1, 7, 42, 100, 3, 999, 500, 0])
    for w in widths:
        if a.model == "mobilenet_v2":
            net = torchvision.models.mobilenet_v2(width_mult=w)
        else:
            if w != 1.0:
                continue
            net = torchvision.models.resnet50()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
        for s in sizes:
            x1 = torch.rand(1, 3, s, s) * 2 - 1
            x8 = torch.rand(8, 3, s, s) * 2 - 1
            fwd, step = [], []
            if a.only != "train":
                net.eval()
                with torch.no_grad():
                    for k in range(a.reps + WARMUP):
                        t0 = time.perf_counter()
                        net(x1)
                        if k >= WARMUP:
                            fwd.append(1e3 * (time.perf_counter() - t0))
            if a.only != "forward":
                net.train()
                for k in range(a.reps + WARMUP):
                    t0 = time.perf_counter()
                    opt.zero_grad()
                    torch.nn.functional.cross_entropy(net(x8), labels).backward()
                    opt.step()
                    if k >= WARMUP:
                        step.append(1e3 * (time.perf_counter() - t0))
            f = f"{statistics.median(fwd):.2f}" if fwd else "-"
            t = f"{statistics.median(step):.1f}" if step else "-"
            print(f"| {w:.2f} | {s} | {f} | {t} |", flush=True)


if __name__ == "__main__":
    main()
