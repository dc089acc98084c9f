"""torchvision's MobileNetV2 trained from scratch on an image folder with the recipe of a mutualnet
classification configuration, for side-by-side curves (issue 16, docs/RESULTS.md).

Run with Debian's torch and torchvision:
  /usr/bin/python3 tools/ref/train_cls.py --config configs/cls_shapes_mbv2.json [--out DIR]

What it takes from the configuration: data.root / train_split / val_split, data.crop,
data.crop_area, data.crop_ratio, data.hflip, data.eval_size, data.eval_crop, optim.* (SGD,
Nesterov, weight decay on conv and linear kernels except depthwise ones, linear warm-up from
lr x warmup_factor, then cosine or poly per iteration), train.batch_size, train.iterations,
train.seed, train.log_every, train.eval_every. It trains ONE network at width 1 (mutualnet's
mutual.mode "independent" at width 1 is the like-for-like run). Writes metrics.jsonl lines of the
same keys as mutualnet train: {"iter", "lr", "loss", "train_top1"} and {"iter", "val_top1"}."""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torchvision
from torchvision import transforms as T


def load_config(path):
    with open(path) as f:
        c = json.load(f)
    d = {"data": {"train_split": "train", "val_split": "val", "crop": [320, 320], "eval_size": [320, 320],
                  "crop_area": [0.08, 1.0], "crop_ratio": [3 / 4, 4 / 3], "hflip": True, "eval_crop": 0.875,
                  "workers": 2},
         "optim": {"lr": 0.01, "momentum": 0.9, "weight_decay": 4e-5, "nesterov": True, "schedule": "cosine",
                   "power": 0.9, "warmup_iters": 0, "warmup_factor": 0.1},
         "train": {"batch_size": 16, "iterations": 1000, "seed": 0, "log_every": 20, "eval_every": 0}}
    for sec, vals in d.items():
        for k, v in vals.items():
            c.setdefault(sec, {}).setdefault(k, v)
    return c


def lr_at(o, it, total):
    """mutualnet's schedule (train/schedule.c): linear warm-up, then cosine or poly to 0."""
    base, warm = o["lr"], o["warmup_iters"]
    if it < warm:
        a = it / warm
        return base * (o["warmup_factor"] * (1 - a) + a)
    t = min(1.0, (it - warm) / max(1.0, total - warm))
    if o["schedule"] == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * t))
    return base * (1 - t) ** o["power"]


def param_groups(model, wd):
    """Decay on conv and linear kernels, not on BN, biases or depthwise kernels (as mutualnet)."""
    decay, plain = [], []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            depthwise = isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
            (plain if depthwise else decay).append(m.weight)
            if m.bias is not None:
                plain.append(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            plain += [m.weight, m.bias]
    return [{"params": decay, "weight_decay": wd}, {"params": plain, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", default=None, help="run folder (default: train.out_dir + '_torch')")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    c = load_config(a.config)
    d, o, tr = c["data"], c["optim"], c["train"]
    out = a.out or tr["out_dir"] + "_torch"
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(int(tr["seed"]))

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    train_tf = [T.RandomResizedCrop(tuple(d["crop"]), scale=tuple(d["crop_area"]), ratio=tuple(d["crop_ratio"]),
                                    antialias=False)]
    if d["hflip"]:
        train_tf.append(T.RandomHorizontalFlip())
    train_tf = T.Compose([T.ToTensor()] + train_tf + [T.Normalize(mean, std)])
    eh, ew = d["eval_size"]
    resize = round(min(eh, ew) / d["eval_crop"])
    val_tf = T.Compose([T.ToTensor(), T.Resize(resize, antialias=False), T.CenterCrop((eh, ew)), T.Normalize(mean, std)])
    root = d["root"]
    train_set = torchvision.datasets.ImageFolder(os.path.join(root, d["train_split"]), train_tf)
    val_set = torchvision.datasets.ImageFolder(os.path.join(root, d["val_split"]), val_tf)
    loader = torch.utils.data.DataLoader(train_set, batch_size=tr["batch_size"], shuffle=True, drop_last=True,
                                         num_workers=d["workers"], persistent_workers=d["workers"] > 0)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=tr["batch_size"], num_workers=d["workers"])

    model = torchvision.models.mobilenet_v2(num_classes=len(train_set.classes))
    opt = torch.optim.SGD(param_groups(model, o["weight_decay"]), lr=o["lr"], momentum=o["momentum"],
                          nesterov=o["nesterov"])
    total, log_every, eval_every = tr["iterations"], tr["log_every"], tr["eval_every"]
    metrics = open(os.path.join(out, "metrics.jsonl"), "w")

    def evaluate(it):
        model.eval()
        right = n = 0
        with torch.no_grad():
            for x, y in val_loader:
                right += (model(x).argmax(1) == y).sum().item()
                n += len(y)
        model.train()
        metrics.write(json.dumps({"iter": it, "val_top1": right / n}) + "\n")
        metrics.flush()
        print(f"iteration {it}: validation top-1 {100 * right / n:.2f}%", flush=True)

    it, t0 = 0, time.time()
    model.train()
    while it < total:
        for x, y in loader:
            lr = lr_at(o, it, total)
            for g in opt.param_groups:
                g["lr"] = lr
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            it += 1
            if it % log_every == 0 or it == total:
                top1 = (logits.argmax(1) == y).float().mean().item()
                metrics.write(json.dumps({"iter": it, "lr": lr, "loss": loss.item(), "train_top1": top1,
                                          "seconds": round(time.time() - t0, 3)}) + "\n")
                metrics.flush()
                t0 = time.time()
            if (eval_every and it % eval_every == 0) or it == total:
                evaluate(it)
            if it == total:
                break
    metrics.close()


if __name__ == "__main__":
    main()
