"""Reference Faster R-CNN + FPN on the slimmable MobileNetV2, assembled from torchvision's own
detection modules (FeaturePyramidNetwork, RPNHead, MultiScaleRoIAlign, TwoMLPHead,
FastRCNNPredictor, RegionProposalNetwork, RoIHeads, GeneralizedRCNNTransform), used to make the
parity fixtures of tools/fixtures/gen_det.py.

Every parameter is held at full width under the C library's name and filled by det_fill (so
fixtures need not store weights). A sub-network at width w runs torchvision's modules through
torch.nn.utils.stateless.functional_call on channel-prefix slices of those tensors, so gradients
land in the full-width tensors exactly as the C layers accumulate them."""
import os
import sys
from collections import OrderedDict

import torch
from torch.nn.utils import stateless
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ref.slimmable import MobileNetV2, channels, det_fill  # noqa: E402

LEVEL_BLOCKS = (3, 6, 13, 17)     # MobileNetV2 blocks ending at strides 4, 8, 16, 32
LEVEL_CHANNELS = (24, 32, 96, 320)
ANCHOR_SIZES = ((32,), (64,), (128,), (256,), (512,))
ASPECT_RATIOS = ((0.5, 1.0, 2.0),) * 5


def anchor_generator():
    return AnchorGenerator(ANCHOR_SIZES, ASPECT_RATIOS)


class Detector:
    """Full-width parameters named as the C detector registers them, and the forward pass of
    backbone, FPN, RPN head and box head on given RoIs."""

    def __init__(self, num_classes, fpn_channels, box_hidden, roi_size=7):
        self.K, self.C, self.H, self.S = num_classes, fpn_channels, box_hidden, roi_size
        self.bb = MobileNetV2(10)
        # the C detector's backbone is a feature extractor (no 1280-channel tail, no classifier);
        # det_fill hashes the prefixed names
        for k in [k for k in self.bb.p if k.startswith("classifier") or k.startswith("features.18")]:
            del self.bb.p[k]
        self.p = OrderedDict()
        for k, v in list(self.bb.p.items()):
            t = det_fill("backbone." + k, tuple(v.shape))
            self.bb.p[k] = t
            self.p["backbone." + k] = t
        C = fpn_channels
        for i, cin in enumerate(LEVEL_CHANNELS):
            self._param(f"neck.inner_blocks.{i}.weight", (C, cin, 1, 1))
            self._param(f"neck.inner_blocks.{i}.bias", (C,))
        for i in range(4):
            self._param(f"neck.layer_blocks.{i}.weight", (C, C, 3, 3))
            self._param(f"neck.layer_blocks.{i}.bias", (C,))
        A = 3
        self._param("rpn.conv.weight", (C, C, 3, 3))
        self._param("rpn.conv.bias", (C,))
        self._param("rpn.cls_logits.weight", (A, C, 1, 1))
        self._param("rpn.cls_logits.bias", (A,))
        self._param("rpn.bbox_pred.weight", (4 * A, C, 1, 1))
        self._param("rpn.bbox_pred.bias", (4 * A,))
        self._param("roi.fc6.weight", (box_hidden, C * roi_size * roi_size))
        self._param("roi.fc6.bias", (box_hidden,))
        self._param("roi.fc7.weight", (box_hidden, box_hidden))
        self._param("roi.fc7.bias", (box_hidden,))
        self._param("roi.cls_score.weight", (num_classes, box_hidden))
        self._param("roi.cls_score.bias", (num_classes,))
        self._param("roi.bbox_pred.weight", (4 * num_classes, box_hidden))
        self._param("roi.bbox_pred.bias", (4 * num_classes,))

    def _param(self, name, shape):
        self.p[name] = det_fill(name, shape)

    def to(self, dtype):
        """Fresh leaf tensors of this dtype (trainable ones require grad)."""
        for k in list(self.p):
            t = self.p[k].detach().to(dtype).requires_grad_("running" not in k)
            self.p[k] = t
            if k.startswith("backbone."):
                self.bb.p[k[len("backbone."):]] = t

    def trainable(self):
        return [k for k in self.p if "running" not in k]

    def backbone(self, x, w, training):
        """Feature maps after blocks 3, 6, 13, 17 (strides 4..32), as the C backbone exposes them."""
        bb = self.bb
        h = bb.cba("features.0", x, channels(32, w), 2, 1, training, 6)
        feats = []
        for b, (name, inp, c, t, s) in enumerate(bb.blocks, start=1):
            hidden, out = channels(inp, w) * t, channels(c, w)
            y, part = h, 0
            if t != 1:
                y = bb.cba(f"{name}.0", y, hidden, 1, 1, training, 6)
                part = 1
            y = bb.cba(f"{name}.{part}", y, hidden, s, 1, training, 6, depthwise=True)
            y = bb.bn(f"{name}.{part + 2}", bb.conv(f"{name}.{part + 1}", y, out, 1, 1), training)
            h = h + y if (s == 1 and inp == c) else y
            if b in LEVEL_BLOCKS:
                feats.append(h)
        return feats

    def widths(self, w, slim_head):
        c = channels(self.C, w) if slim_head else self.C
        hid = channels(self.H, w) if slim_head else self.H
        return c, hid

    def fpn(self, feats, w, slim_head):
        c, _ = self.widths(w, slim_head)
        cins = [f.shape[1] for f in feats]
        mod = FeaturePyramidNetwork(cins, c, extra_blocks=LastLevelMaxPool()).to(feats[0].dtype)
        P = self.p
        params = {}
        for i, cin in enumerate(cins):
            params[f"inner_blocks.{i}.0.weight"] = P[f"neck.inner_blocks.{i}.weight"][:c, :cin]
            params[f"inner_blocks.{i}.0.bias"] = P[f"neck.inner_blocks.{i}.bias"][:c]
            params[f"layer_blocks.{i}.0.weight"] = P[f"neck.layer_blocks.{i}.weight"][:c, :c]
            params[f"layer_blocks.{i}.0.bias"] = P[f"neck.layer_blocks.{i}.bias"][:c]
        x = OrderedDict((str(i), f) for i, f in enumerate(feats))
        return stateless.functional_call(mod, params, (x,))

    def rpn_head(self, pyramid, w, slim_head):
        c, _ = self.widths(w, slim_head)
        mod = RPNHead(c, 3).to(next(iter(pyramid.values())).dtype)
        P = self.p
        params = {
            "conv.0.0.weight": P["rpn.conv.weight"][:c, :c], "conv.0.0.bias": P["rpn.conv.bias"][:c],
            "cls_logits.weight": P["rpn.cls_logits.weight"][:, :c], "cls_logits.bias": P["rpn.cls_logits.bias"],
            "bbox_pred.weight": P["rpn.bbox_pred.weight"][:, :c], "bbox_pred.bias": P["rpn.bbox_pred.bias"],
        }
        return stateless.functional_call(mod, params, (list(pyramid.values()),))

    def box_head(self, pyramid, rois, image_shapes, w, slim_head):
        """rois: list (per image) of (R_i, 4) boxes -> class logits (R, K), box regression (R, 4K)."""
        c, hid = self.widths(w, slim_head)
        pooler = MultiScaleRoIAlign(["0", "1", "2", "3"], self.S, 2)
        pooled = pooler(pyramid, rois, image_shapes)
        dtype = pooled.dtype
        P = self.p
        head = TwoMLPHead(c * self.S * self.S, hid).to(dtype)
        hp = {"fc6.weight": P["roi.fc6.weight"][:hid, :c * self.S * self.S], "fc6.bias": P["roi.fc6.bias"][:hid],
              "fc7.weight": P["roi.fc7.weight"][:hid, :hid], "fc7.bias": P["roi.fc7.bias"][:hid]}
        x = stateless.functional_call(head, hp, (pooled,))
        pred = FastRCNNPredictor(hid, self.K).to(dtype)
        pp = {"cls_score.weight": P["roi.cls_score.weight"][:, :hid], "cls_score.bias": P["roi.cls_score.bias"],
              "bbox_pred.weight": P["roi.bbox_pred.weight"][:, :hid], "bbox_pred.bias": P["roi.bbox_pred.bias"]}
        return stateless.functional_call(pred, pp, (x,))

    def forward_heads(self, x, w, slim_head, rois, training=True):
        feats = self.backbone(x, w, training)
        pyramid = self.fpn(feats, w, slim_head)
        obj, deltas = self.rpn_head(pyramid, w, slim_head)
        shapes = [tuple(x.shape[-2:])] * x.shape[0]
        cls, box = self.box_head(pyramid, rois, shapes, w, slim_head)
        return obj, deltas, cls, box


def rpn_module(pre_train=2000, post_train=2000, pre_test=1000, post_test=1000, batch=256, fraction=0.5):
    """torchvision's RegionProposalNetwork with the detector's settings (its head is not used:
    the fixtures call the stages directly)."""
    return RegionProposalNetwork(anchor_generator(), RPNHead(8, 3), 0.7, 0.3, batch, fraction,
                                 dict(training=pre_train, testing=pre_test),
                                 dict(training=post_train, testing=post_test), 0.7)


def roi_module(batch=512, fraction=0.25):
    return RoIHeads(None, None, None, 0.5, 0.5, batch, fraction, None, 0.05, 0.5, 100)


def image_list(n, padded_hw, valid_hw):
    return ImageList(torch.zeros(n, 3, *padded_hw), list(valid_hw))


class FixedSampler:
    """Stands in for BalancedPositiveNegativeSampler: returns the given per-image masks."""

    def __init__(self, pos_masks, neg_masks):
        self.pos, self.neg = pos_masks, neg_masks

    def __call__(self, labels):
        return self.pos, self.neg
