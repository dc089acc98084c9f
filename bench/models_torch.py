#!/usr/bin/python3
"""PyTorch's side of `mutualnet bench --model deeplabv3plus|faster_rcnn`: the same rows, built
from torchvision 0.14's own modules at the configuration the run file gives (Debian's
python3-torch / python3-torchvision; run with /usr/bin/python3).

Segmenter: DeepLabV3+ on torchvision's MobileNetV2 features without the 1280-channel tail, the
last stride-2 stage dilated for output stride 16 as backbone/mobilenet_v2.c does it (the first
block of a dilated stage keeps the previous dilation); torchvision's ASPP (rates 6/12/18 at OS 16)
without its dropout (ours has none), the V3+ decoder of heads/seg/deeplab.c (1x1 projection of
the stride-4 features, two 3x3 convs, a 1x1 classifier with bias). Slimmable head: at width w
the head has make_divisible(256 w, 8) / make_divisible(48 w, 8) channels. The sandwich runs four
dedicated networks (one per width: the best case for PyTorch, no slicing), accumulating
gradients, and one SGD step on the full network (the parameters a shared-weight step updates).

Detector: torchvision's FasterRCNN with MobileNetV2 features, BackboneWithFPN (C2..C5 from
features 3, 6, 13, 17; FeaturePyramidNetwork with the configured channels; LastLevelMaxPool),
AnchorGenerator (det.anchor_size x 2^l, ratios 0.5/1/2), RPNHead, MultiScaleRoIAlign(7, 2),
TwoMLPHead(det.box_hidden), FastRCNNPredictor, and the configured proposal and sample counts.
Its transform's resize and normalisation are switched off: the images arrive resized and
normalised, as ours come from the data loader, so both time the network alone.

    /usr/bin/python3 bench/models_torch.py --model deeplabv3plus|faster_rcnn --threads 2
        [--config FILE] [--classes K] [--batch B] [--reps N] [--quick] [--size HxW]
        [--at HxW (segmenter) | --short-side S (detector)]
        [--only forward|train|sandwich]
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import AnchorGenerator, RPNHead
from torchvision.models.segmentation.deeplabv3 import ASPP
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

WARMUP = 2
IGNORE = 255
# MobileNetV2's stages (t, c, n, s), torchvision's table
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def make_divisible(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def round32(v):
    return max(32, int(v / 32.0 + 0.5) * 32)


def load_config(path):
    """The keys both sides read, with the project's defaults (model/config.c) under the file's."""
    c = {"model": {"backbone": "mobilenet_v2", "output_stride": 16, "decoder": "v3plus", "slim_head": True,
                   "aspp_channels": 256, "low_level_channels": 48},
         "mutual": {"width_min": 0.35, "width_max": 1.0, "scales": [1.0, 0.8, 0.6, 0.4], "distill": "kl",
                    "gt_weight": 1.0, "distill_weight": 1.0},
         "optim": {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 4e-5},
         "train": {"batch_size": 8},
         "det": {"short_side": 800, "max_side": 1333, "anchor_size": 32, "fpn_channels": 256, "box_hidden": 1024,
                 "rpn_pre_nms_train": 2000, "rpn_post_nms_train": 2000, "rpn_pre_nms_test": 1000,
                 "rpn_post_nms_test": 1000, "rpn_batch": 256, "roi_batch": 512, "score_thresh": 0.05,
                 "detections_per_img": 100}}
    with open(path) as f:
        user = json.load(f)
    for sec, vals in user.items():
        if isinstance(vals, dict) and sec in c:
            c[sec].update(vals)
    if c["model"]["backbone"] != "mobilenet_v2":
        raise SystemExit("models_torch.py: only model.backbone mobilenet_v2 has a twin here")
    return c


def mbv2_features(width, output_stride):
    """torchvision's MobileNetV2 features without the tail, stages past output_stride dilated."""
    feats = torchvision.models.mobilenet_v2(width_mult=width).features[:-1]
    stride, dil, b = 2, 1, 1
    for t, c, n, s in SETTINGS:
        prev = dil
        dilate = s == 2 and stride >= output_stride
        if dilate:
            dil *= 2
        else:
            stride *= s
        for i in range(n):
            dw = feats[b].conv[-3][0]  # the depthwise 3x3 of the block
            d = prev if i == 0 else dil
            if i == 0 and dilate:
                dw.stride = (1, 1)
            dw.dilation, dw.padding = (d, d), (d, d)
            b += 1
    return feats


class DeepLabV3Plus(nn.Module):
    def __init__(self, c, classes, width):
        super().__init__()
        m = c["model"]
        hw = width if m["slim_head"] else 1.0
        A, L = make_divisible(m["aspp_channels"] * hw), make_divisible(m["low_level_channels"] * hw)
        os_ = m["output_stride"]
        self.features = mbv2_features(width, os_)
        low, high = make_divisible(24 * width), make_divisible(320 * width)
        base = 12 if os_ == 8 else 6
        self.aspp = ASPP(high, [base, 2 * base, 3 * base], A)
        self.aspp.project[3] = nn.Identity()  # the project's ASPP has no dropout
        self.low_proj = nn.Sequential(nn.Conv2d(low, L, 1, bias=False), nn.BatchNorm2d(L), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            nn.Conv2d(A + L, A, 3, padding=1, bias=False), nn.BatchNorm2d(A), nn.ReLU(inplace=True),
            nn.Conv2d(A, A, 3, padding=1, bias=False), nn.BatchNorm2d(A), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(A, classes, 1)

    def forward_raw(self, x):
        low = self.features[:4](x)
        y = self.aspp(self.features[4:](low))
        low = self.low_proj(low)
        y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.decoder(torch.cat([y, low], 1)))

    def forward(self, x):
        return F.interpolate(self.forward_raw(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


def sandwich(c):
    """The fixed sandwich of tools/bench_models.c: full network, widths evenly down to width_min
    at the configured scales in order."""
    lo, hi, sc = c["mutual"]["width_min"], c["mutual"]["width_max"], c["mutual"]["scales"]
    return [(hi, 1.0)] + [(hi - (hi - lo) * k / 3.0, sc[min(k - 1, len(sc) - 1)]) for k in (1, 2, 3)]


def labels_of(n, h, w, classes):
    """The label pattern of tools/bench_models.c: classes in 8x8 blocks, every 16th ignored."""
    y = torch.arange(h).view(h, 1) // 8
    x = torch.arange(w).view(1, w) // 8
    blk = y * 131 + x
    lab = torch.where(blk % 16 == 15, torch.full_like(blk, IGNORE), blk % classes)
    return lab.expand(n, h, w).contiguous()


def det_size(c, s):
    """A 480x640 image at short side s, the long side capped at the configuration's ratio
    (det.max_side / det.short_side), as tools/bench_models.c: valid and padded size."""
    f = min(s / 480.0, s * c["det"]["max_side"] / c["det"]["short_side"] / 640.0)
    vh, vw = int(math.floor(480 * f)), int(math.floor(640 * f))
    return vh, vw, (vh + 31) // 32 * 32, (vw + 31) // 32 * 32


def build_detector(c, classes):
    d = c["det"]
    C = d["fpn_channels"]
    body = torchvision.models.mobilenet_v2().features
    backbone = BackboneWithFPN(body, return_layers={"3": "0", "6": "1", "13": "2", "17": "3"},
                               in_channels_list=[24, 32, 96, 320], out_channels=C, extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(sizes=tuple((d["anchor_size"] << l,) for l in range(5)),
                              aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    net = FasterRCNN(backbone, num_classes=None, min_size=800, max_size=d["max_side"],
                     rpn_anchor_generator=anchors, rpn_head=RPNHead(C, 3),
                     rpn_pre_nms_top_n_train=d["rpn_pre_nms_train"], rpn_pre_nms_top_n_test=d["rpn_pre_nms_test"],
                     rpn_post_nms_top_n_train=d["rpn_post_nms_train"], rpn_post_nms_top_n_test=d["rpn_post_nms_test"],
                     rpn_batch_size_per_image=d["rpn_batch"],
                     box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2),
                     box_head=TwoMLPHead(C * 49, d["box_hidden"]),
                     box_predictor=FastRCNNPredictor(d["box_hidden"], classes),
                     box_batch_size_per_image=d["roi_batch"], box_score_thresh=d["score_thresh"],
                     box_detections_per_img=d["detections_per_img"])
    # the images come resized and normalised, as ours do from the loader
    net.transform.resize = lambda image, target=None: (image, target)
    net.transform.normalize = lambda image: image
    return net


def det_inputs(n, vh, vw, classes):
    at = [(.10, .10, .40, .50), (.50, .20, .90, .60), (.20, .55, .45, .95), (.60, .65, .80, .90)]
    imgs = [torch.rand(3, vh, vw) * 2 - 1 for _ in range(n)]
    tg = [{"boxes": torch.tensor([[a[0] * vw, a[1] * vh, a[2] * vw, a[3] * vh] for a in at]),
           "labels": torch.tensor([1 + (k * 17 + i) % (classes - 1) for k in range(4)])} for i in range(n)]
    return imgs, tg


def timed(fn, reps):
    v = []
    for k in range(reps + WARMUP):
        t0 = time.perf_counter()
        fn()
        if k >= WARMUP:
            v.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(v)


def sgd(c, params):
    o = c["optim"]
    return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"],
                           weight_decay=o["weight_decay"])


def seg_rows(a, c, classes, batch):
    if a.at:
        h, w = a.at
        return [("forward", h, w, 1), ("train", h, w, batch), ("sandwich", h, w, batch)]
    if a.quick:
        return [("forward", 128, 256, 1), ("train", 128, 128, batch), ("sandwich", 128, 128, batch)]
    return [("forward", 512, 512, 1), ("forward", 512, 1024, 1), ("forward", 1024, 2048, 1),
            ("train", 512, 512, batch), ("train", 512, 1024, batch),
            ("sandwich", 512, 512, batch), ("sandwich", 512, 1024, batch)]


def run_seg(a, c, classes, batch, full):
    sw = sandwich(c)
    nets = [full] + [DeepLabV3Plus(c, classes, w) for w, _ in sw[1:]]
    opt = sgd(c, nets[0].parameters())
    mu = c["mutual"]
    kl = mu["distill"] == "kl"
    for kind, h, w, n in seg_rows(a, c, classes, batch):
        if (a.only and a.only != kind) or (a.size and a.size != (h, w)):
            continue
        x = torch.rand(n, 3, h, w) * 2 - 1
        lab = labels_of(n, h, w, classes)

        def step():
            for m in nets:
                m.zero_grad(set_to_none=False)
            p = None
            for k, (width, scale) in enumerate(sw[:4 if kind == "sandwich" else 1]):
                xs, ls = x, lab
                if scale != 1.0:
                    hs, ws = round32(h * scale), round32(w * scale)
                    xs = F.interpolate(x, size=(hs, ws), mode="bilinear", align_corners=True)
                    ls = F.interpolate(lab[:, None].float(), size=(hs, ws), mode="nearest")[:, 0].long()
                raw = nets[k].forward_raw(xs)
                up = F.interpolate(raw, size=xs.shape[-2:], mode="bilinear", align_corners=False)
                loss = F.cross_entropy(up, ls, ignore_index=IGNORE)
                if k == 0:
                    if kl:
                        p = torch.softmax(raw.detach(), 1)
                else:
                    loss = loss * mu["gt_weight"]
                    if kl:
                        s = raw if raw.shape[-2:] == p.shape[-2:] else \
                            F.interpolate(raw, size=p.shape[-2:], mode="bilinear", align_corners=False)
                        d = F.kl_div(F.log_softmax(s, 1), p, reduction="none").sum(1).mean()
                        loss = loss + mu["distill_weight"] * d
                loss.backward()
            opt.step()

        if kind == "forward":
            nets[0].eval()
            with torch.no_grad():
                ms = timed(lambda: nets[0](x), a.reps)
        else:
            for m in nets:
                m.train()
            ms = timed(step, a.reps)
        print(f"| {kind} | {h}x{w} | {n} | {ms:.1f} |", flush=True)


def run_det(a, c, classes, batch, net):
    opt = sgd(c, net.parameters())
    sides = [a.short_side] if a.short_side else [128] if a.quick else [512, 800]
    for kind in ("forward", "train"):
        for s in sides:
            vh, vw, ph, pw = det_size(c, s)
            n = 1 if kind == "forward" else batch
            if (a.only and a.only != kind) or (a.size and a.size != (ph, pw)):
                continue
            imgs, tg = det_inputs(n, vh, vw, classes)
            if kind == "forward":
                net.eval()
                with torch.no_grad():
                    ms = timed(lambda: net(imgs), a.reps)
            else:
                net.train()

                def step():
                    opt.zero_grad(set_to_none=False)
                    sum(net(imgs, tg).values()).backward()
                    opt.step()

                ms = timed(step, a.reps)
            print(f"| {kind} | {ph}x{pw} | {n} | {ms:.1f} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=["deeplabv3plus", "faster_rcnn"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config")
    ap.add_argument("--classes", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")))
    ap.add_argument("--only", choices=["forward", "train", "sandwich"])
    ap.add_argument("--at", type=lambda s: tuple(int(v) for v in s.split("x")))
    ap.add_argument("--short-side", type=int)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)  # Debian's torch starts with one thread
    det = a.model == "faster_rcnn"
    cfg = a.config or ("configs/det_coco128_mbv2.json" if det else "configs/seg_cityscapes_mbv2.json")
    c = load_config(cfg)
    classes = a.classes or (81 if det else 19)
    batch = a.batch or (min(2, c["train"]["batch_size"]) if a.quick else c["train"]["batch_size"])
    torch.manual_seed(1)
    net = build_detector(c, classes) if det else DeepLabV3Plus(c, classes, 1.0)
    params = sum(p.numel() for p in net.parameters())
    print(f"PyTorch {torch.__version__} / torchvision {torchvision.__version__} {a.model} ({cfg}, {classes} classes, "
          f"{params} parameters), {torch.get_num_threads()} threads, median of {a.reps}\n")
    print("| row | input | batch | ms |\n|---|---|---|---|")
    (run_det if det else run_seg)(a, c, classes, batch, net)


if __name__ == "__main__":
    main()
