"""Reference slimmable backbones in PyTorch, written independently of the C code from the
rules in mutualnet-spec.md §2, used to make parity fixtures (tools/fixtures/gen_backbone.py).

Parameters are full-width tensors named as torchvision names them; a forward pass at width w
slices them (leading channels) exactly as the C library does. Weights come from a
deterministic formula of the parameter's name (det_fill) so fixtures need not store them."""
import math

import torch
import torch.nn.functional as F


def make_divisible(v, divisor=8, min_value=1):
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def channels(base, w, ratio=1.0):
    return int(make_divisible(base * w / ratio) * ratio)


def fnv1a(name):
    h = 2166136261
    for ch in name.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


def hash_uniform(seed, n):
    """n values in [-1, 1) from a 32-bit integer hash of (seed, k): exact in any language."""
    m = 0xFFFFFFFF
    h = (torch.arange(n, dtype=torch.int64) * 2654435761 + seed) & m
    for _ in range(2):
        h = h ^ (h >> 16)
        h = (h * 0x45D9F3B) & m
    h = h ^ (h >> 16)
    return h.double() / 2147483648.0 - 1.0


def det_fill(name, shape):
    """value[k] = amp * u(k), u a uniform hash of (fnv1a(name), k) in [-1, 1), float64 then float32.
    Pseudo-random (not periodic) values keep training-mode BN well conditioned."""
    n = 1
    for s in shape:
        n *= s
    base = hash_uniform(fnv1a(name), n)
    if name.endswith("running_var"):
        v = 1.0 + 0.5 * base.abs()
    elif name.endswith("running_mean"):
        v = 0.1 * base
    elif len(shape) == 1 and name.endswith("weight"):  # BN gamma
        v = 1.0 + 0.1 * base
    elif name.endswith("bias"):
        v = 0.05 * base
    elif len(shape) == 4:
        v = math.sqrt(2.0 / (shape[2] * shape[3] * shape[0])) * base * 1.7
    else:
        v = 0.05 * base
    return v.float().reshape(shape)


class Slim:
    """Holds named full-width parameters and runs slimmable layers on prefixes of them."""

    def __init__(self):
        self.p = {}

    def param(self, name, shape):
        t = det_fill(name, shape).requires_grad_(not name.startswith("~"))
        self.p[name] = t
        return t

    def conv_params(self, name, cin, cout, k, depthwise=False):
        self.param(name + ".weight", (cout, 1 if depthwise else cin, k, k))

    def bn_params(self, name, c):
        self.param(name + ".weight", (c,))
        self.param(name + ".bias", (c,))
        self.p[name + ".running_mean"] = det_fill(name + ".running_mean", (c,))
        self.p[name + ".running_var"] = det_fill(name + ".running_var", (c,))

    def conv(self, name, x, cout, stride, dil, depthwise=False):
        w = self.p[name + ".weight"]
        cin = x.shape[1]
        k = w.shape[2]
        pad = dil * (k - 1) // 2
        if depthwise:
            return F.conv2d(x, w[:cin], None, stride, pad, dil, groups=cin)
        return F.conv2d(x, w[:cout, :cin], None, stride, pad, dil)

    def bn(self, name, x, training):
        c = x.shape[1]
        return F.batch_norm(x, self.p[name + ".running_mean"][:c].clone(), self.p[name + ".running_var"][:c].clone(),
                            self.p[name + ".weight"][:c], self.p[name + ".bias"][:c], training, 0.1, 1e-5)

    def cba(self, name, x, cout, stride, dil, training, act, depthwise=False):
        y = self.bn(name + ".1", self.conv(name + ".0", x, cout, stride, dil, depthwise), training)
        return F.relu6(y) if act == 6 else F.relu(y) if act == 1 else y


MBV2_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1)]


class MobileNetV2(Slim):
    def __init__(self, num_classes):
        super().__init__()
        self.conv_params("features.0.0", 3, 32, 3)
        self.bn_params("features.0.1", 32)
        self.blocks = []
        inp, b = 32, 1
        for t, c, n, s in MBV2_SETTINGS:
            for i in range(n):
                part, name = 0, f"features.{b}.conv"
                if t != 1:
                    self.conv_params(f"{name}.0.0", inp, inp * t, 1)
                    self.bn_params(f"{name}.0.1", inp * t)
                    part = 1
                self.conv_params(f"{name}.{part}.0", inp * t, inp * t, 3, depthwise=True)
                self.bn_params(f"{name}.{part}.1", inp * t)
                self.conv_params(f"{name}.{part + 1}", inp * t, c, 1)
                self.bn_params(f"{name}.{part + 2}", c)
                self.blocks.append((name, inp, c, t, s if i == 0 else 1))
                inp, b = c, b + 1
        self.conv_params("features.18.0", 320, 1280, 1)
        self.bn_params("features.18.1", 1280)
        self.param("classifier.1.weight", (num_classes, 1280))
        self.param("classifier.1.bias", (num_classes,))

    def forward(self, x, w, training):
        h = self.cba("features.0", x, channels(32, w), 2, 1, training, 6)
        for name, inp, c, t, s in self.blocks:
            hidden, out = channels(inp, w) * t, channels(c, w)
            y, part = h, 0
            if t != 1:
                y = self.cba(f"{name}.0", y, hidden, 1, 1, training, 6)
                part = 1
            y = self.cba(f"{name}.{part}", y, hidden, s, 1, training, 6, depthwise=True)
            y = self.bn(f"{name}.{part + 2}", self.conv(f"{name}.{part + 1}", y, out, 1, 1), training)
            h = h + y if (s == 1 and inp == c) else y
        h = self.cba("features.18", h, 1280, 1, 1, training, 6)
        h = h.mean((2, 3))
        return F.linear(h, self.p["classifier.1.weight"], self.p["classifier.1.bias"])


MBV1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
               (512, 1), (1024, 2), (1024, 1)]


class MobileNetV1(Slim):
    def __init__(self, num_classes):
        super().__init__()
        self.conv_params("features.0.0", 3, 32, 3)
        self.bn_params("features.0.1", 32)
        inp = 32
        for b, (c, s) in enumerate(MBV1_BLOCKS, 1):
            self.conv_params(f"features.{b}.dw.0", inp, inp, 3, depthwise=True)
            self.bn_params(f"features.{b}.dw.1", inp)
            self.conv_params(f"features.{b}.pw.0", inp, c, 1)
            self.bn_params(f"features.{b}.pw.1", c)
            inp = c
        self.param("classifier.weight", (num_classes, 1024))
        self.param("classifier.bias", (num_classes,))

    def forward(self, x, w, training):
        h = self.cba("features.0", x, channels(32, w), 2, 1, training, 1)
        for b, (c, s) in enumerate(MBV1_BLOCKS, 1):
            h = self.cba(f"features.{b}.dw", h, h.shape[1], s, 1, training, 1, depthwise=True)
            h = self.cba(f"features.{b}.pw", h, channels(c, w), 1, 1, training, 1)
        h = h.mean((2, 3))
        return F.linear(h, self.p["classifier.weight"][:, :h.shape[1]], self.p["classifier.bias"])


class ResNet50(Slim):
    def __init__(self, num_classes):
        super().__init__()
        self.conv_params("conv1", 3, 64, 7)
        self.bn_params("bn1", 64)
        self.blocks = []
        inp = 64
        for s, (n, out) in enumerate(zip([3, 4, 6, 3], [256, 512, 1024, 2048])):
            for i in range(n):
                name, mid = f"layer{s + 1}.{i}", out // 4
                self.conv_params(name + ".conv1", inp, mid, 1)
                self.bn_params(name + ".bn1", mid)
                self.conv_params(name + ".conv2", mid, mid, 3)
                self.bn_params(name + ".bn2", mid)
                self.conv_params(name + ".conv3", mid, out, 1)
                self.bn_params(name + ".bn3", out)
                if i == 0:
                    self.conv_params(name + ".downsample.0", inp, out, 1)
                    self.bn_params(name + ".downsample.1", out)
                self.blocks.append((name, out, (2 if s > 0 else 1) if i == 0 else 1, i == 0))
                inp = out
        self.param("fc.weight", (num_classes, 2048))
        self.param("fc.bias", (num_classes,))

    def unit(self, conv, bn, x, cout, stride, training, relu):
        y = self.bn(bn, self.conv(conv, x, cout, stride, 1), training)
        return F.relu(y) if relu else y

    def forward(self, x, w, training, stages=4, with_fc=True):
        h = self.unit("conv1", "bn1", x, channels(64, w, 0.25), 2, training, True)
        h = F.max_pool2d(h, 3, 2, 1)
        for name, out, st, down in self.blocks:
            if int(name[5]) > stages:
                break
            mid, o = channels(out // 4, w, 0.25), channels(out, w)
            y = self.unit(name + ".conv1", name + ".bn1", h, mid, 1, training, True)
            y = self.unit(name + ".conv2", name + ".bn2", y, mid, st, training, True)
            y = self.unit(name + ".conv3", name + ".bn3", y, o, 1, training, False)
            skip = self.unit(name + ".downsample.0", name + ".downsample.1", h, o, st, training, False) if down else h
            h = F.relu(y + skip)
        if not with_fc:
            return h
        h = h.mean((2, 3))
        return F.linear(h, self.p["fc.weight"][:, :h.shape[1]], self.p["fc.bias"])


class DeepLabV3Plus(MobileNetV2):
    """MobileNetV2 (output stride 16 by dilation) + ASPP + V3+ decoder, every layer slimmable
    but the classifier's outputs, named as heads/seg/deeplab.c names them."""

    def __init__(self, num_classes, aspp=256, low=48):
        super().__init__(10)
        self.aspp, self.low, self.k = aspp, low, num_classes
        for i, (k, name) in enumerate([(1, "head.aspp.0"), (3, "head.aspp.1"), (3, "head.aspp.2"), (3, "head.aspp.3"),
                                       (1, "head.aspp.4")]):
            self.conv_params(name + ".0", 320, aspp, k)
            self.bn_params(name + ".1", aspp)
        self.conv_params("head.aspp.project.0", 5 * aspp, aspp, 1)
        self.bn_params("head.aspp.project.1", aspp)
        self.conv_params("head.low_level.0", 24, low, 1)
        self.bn_params("head.low_level.1", low)
        self.conv_params("head.decoder.0.0", aspp + low, aspp, 3)
        self.bn_params("head.decoder.0.1", aspp)
        self.conv_params("head.decoder.1.0", aspp, aspp, 3)
        self.bn_params("head.decoder.1.1", aspp)
        self.param("head.classifier.weight", (num_classes, aspp, 1, 1))
        self.param("head.classifier.bias", (num_classes,))
        for n in [n for n in self.p if n.startswith("classifier.") or n.startswith("features.18")]:
            del self.p[n]
        # the library registers the backbone under "backbone.": refill those under their full names
        self.p = {n: v for n, v in self.p.items() if not n.startswith("features.")} | {
            "backbone." + n: det_fill("backbone." + n, tuple(v.shape)).requires_grad_("running" not in n)
            for n, v in self.p.items() if n.startswith("features.")}

    def conv(self, name, x, cout, stride, dil, depthwise=False):
        return super().conv(name if name.startswith("head.") else "backbone." + name, x, cout, stride, dil, depthwise)

    def bn(self, name, x, training):
        return super().bn(name if name.startswith("head.") else "backbone." + name, x, training)

    def forward_raw(self, x, w, training):
        h = self.cba("features.0", x, channels(32, w), 2, 1, training, 6)
        stride, dil, low = 2, 1, None
        for b, (name, inp, c, t, s) in enumerate(self.blocks, 1):
            d = dil
            if s == 2 and stride >= 16:  # output stride 16: dilate instead of striding
                dil, s = dil * 2, 1
            elif s == 2:
                stride *= 2
            hidden, out = channels(inp, w) * t, channels(c, w)
            y, part = h, 0
            if t != 1:
                y = self.cba(f"{name}.0", y, hidden, 1, 1, training, 6)
                part = 1
            y = self.cba(f"{name}.{part}", y, hidden, s, d, training, 6, depthwise=True)
            y = self.bn(f"{name}.{part + 2}", self.conv(f"{name}.{part + 1}", y, out, 1, 1), training)
            h = h + y if (s == 1 and inp == c) else y
            if b == 3:
                low = h
        A, L = channels(self.aspp, w), channels(self.low, w)
        br = [self.cba("head.aspp.0", h, A, 1, 1, training, 1)]
        for i, rate in enumerate([6, 12, 18], 1):
            br.append(self.cba(f"head.aspp.{i}", h, A, 1, rate, training, 1))
        pooled = self.cba("head.aspp.4", h.mean((2, 3), keepdim=True), A, 1, 1, training, 1)
        br.append(F.interpolate(pooled, size=h.shape[2:], mode="bilinear", align_corners=False))
        y = self.cba("head.aspp.project", torch.cat(br, 1), A, 1, 1, training, 1)
        lo = self.cba("head.low_level", low, L, 1, 1, training, 1)
        y = F.interpolate(y, size=lo.shape[2:], mode="bilinear", align_corners=False)
        y = self.cba("head.decoder.0", torch.cat([y, lo], 1), A, 1, 1, training, 1)
        y = self.cba("head.decoder.1", y, A, 1, 1, training, 1)
        wc = self.p["head.classifier.weight"]
        return F.conv2d(y, wc[:, :A], self.p["head.classifier.bias"])
