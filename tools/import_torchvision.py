#!/usr/bin/python3
"""Convert pretrained weights to a safetensors file that mutualnet reads as `model.init`.

    /usr/bin/python3 tools/import_torchvision.py --arch mobilenet_v2 --weights mobilenet_v2-b0353104.pth \\
        --out mbv2_imagenet.safetensors

--weights takes
  * a torchvision state dict (the ImageNet weights torchvision downloads) of MobileNetV2 or
    ResNet-50: its names are the library's own (features.0.0.weight, ..., classifier.1.weight;
    conv1.weight, layer1.0.conv1.weight, ..., fc.weight) and pass through unchanged;
  * a MutualNet release checkpoint (github.com/taoyang1122/MutualNet: MobileNetV2 or ResNet-50)
    or a US-Net one (github.com/JiahuiYu/slimmable_networks: MobileNetV2): a dict holding the
    state dict under "model" or "state_dict" (or the state dict itself), names prefixed "module."
    by DataParallel, in those projects' own layout, which is mapped here (see RELEASE LAYOUT).
Without --weights the architecture's random initialisation is exported (useful for checks).
torchvision has no MobileNetV1, so there are no ImageNet weights to import for it.
num_batches_tracked buffers are dropped. Needs Debian's python3-torch and python3-torchvision.

RELEASE LAYOUT. Both projects build MobileNetV2 as features.0 (stem conv, BN), features.1-17
(inverted residuals whose layers sit in one Sequential, features.<i>.body.<j>, ReLU6 layers
included in the numbering), features.18 (1x1 conv to 1280, plain BN) and classifier.0 (Linear).
Their slimmable BN keeps no running statistics of its own: it holds one affine-free BN per width of
the training list, features.<i>.body.<j>.bn.<k>.running_mean, and the widest one (the last of the
full channel count) is the statistics of width 1 that torchvision's layout has room for; the
others are dropped (mutualnet re-estimates every width's statistics when it calibrates).
MutualNet's ResNet-50 is features.0 (stem), features.1-16 (bottlenecks: body.0/1 1x1 conv and BN,
body.3/4 3x3, body.6/7 1x1, shortcut.0/1 the projection) and classifier.0."""
import argparse
import json
import os
import re
import struct
import sys

import torch
import torchvision

RESNET50_BLOCKS = [3, 4, 6, 3]

# torchvision module paths of a release block's body layers (j -> name), ReLU indices absent
MBV2_EXPANDED = {0: "conv.0.0", 1: "conv.0.1", 3: "conv.1.0", 4: "conv.1.1", 6: "conv.2", 7: "conv.3"}
MBV2_NO_EXPANSION = {0: "conv.0.0", 1: "conv.0.1", 3: "conv.1", 4: "conv.2"}
RESNET_BODY = {0: "conv1", 1: "bn1", 3: "conv2", 4: "bn2", 6: "conv3", 7: "bn3"}


def load_state(path):
    """The state dict in a checkpoint file, without DataParallel's "module." prefix."""
    obj = torch.load(path, map_location="cpu")
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict (nor a dict holding one under \"model\" or \"state_dict\")")
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


def is_release_layout(state):
    return any(re.match(r"features\.\d+\.(body|shortcut)\.\d+\.", k) for k in state)


def _release_module(module, arch, state):
    """The torchvision module path of a release module path, or None when it has none."""
    if arch == "mobilenet_v2":
        m = re.fullmatch(r"features\.(\d+)\.body\.(\d+)", module)
        if m:
            i, j = int(m.group(1)), int(m.group(2))
            expanded = f"features.{i}.body.6.weight" in state  # t == 1 blocks have no expansion conv
            name = (MBV2_EXPANDED if expanded else MBV2_NO_EXPANSION).get(j)
            return f"features.{i}.{name}" if name else None
        if module == "classifier.0":
            return "classifier.1"
        if re.fullmatch(r"features\.(0|18)\.[01]", module):
            return module
        return None
    m = re.fullmatch(r"features\.(\d+)\.(body|shortcut)\.(\d+)", module)
    if m:
        k, part, j = int(m.group(1)), m.group(2), int(m.group(3))
        s, i = 0, k - 1
        while s < 4 and i >= RESNET50_BLOCKS[s]:
            i -= RESNET50_BLOCKS[s]
            s += 1
        name = RESNET_BODY.get(j) if part == "body" else {0: "downsample.0", 1: "downsample.1"}.get(j)
        return f"layer{s + 1}.{i}.{name}" if s < 4 and name else None
    return {"features.0.0": "conv1", "features.0.1": "bn1", "classifier.0": "fc"}.get(module)


def from_release(state, arch):
    """A MutualNet / US-Net state dict in torchvision's names; returns (dict, notes)."""
    out, per_width, dropped = {}, {}, []
    for key, v in state.items():
        m = re.fullmatch(r"(.+)\.bn\.(\d+)\.(running_mean|running_var|num_batches_tracked)", key)
        if m:  # one affine-free BN per trained width
            per_width.setdefault((m.group(1), m.group(3)), []).append((int(m.group(2)), v))
            continue
        module, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            continue
        target = _release_module(module, arch, state)
        if target is None:
            dropped.append(key)
            continue
        out[f"{target}.{leaf}"] = v
    chosen = set()
    for (module, leaf), entries in sorted(per_width.items()):
        target = _release_module(module, arch, state)
        weight = state.get(f"{module}.weight")
        if leaf == "num_batches_tracked" or target is None or weight is None:
            continue
        full = [(k, v) for k, v in entries if v.shape == weight.shape]
        if not full:
            raise ValueError(f"{module}: no per-width BN statistics of the full {tuple(weight.shape)} channels")
        k, v = max(full, key=lambda e: e[0])  # the widest width's, last in the training list
        out[f"{target}.{leaf}"] = v
        chosen.add(k)
    notes = [f"release layout mapped to torchvision's names ({len(out)} tensors)"]
    if chosen:
        notes.append(f"BN statistics of width 1 taken from the per-width BN {sorted(chosen)} of each layer; "
                     f"the narrower widths' dropped")
    if dropped:
        notes.append(f"{len(dropped)} tensors dropped: {', '.join(dropped[:4])}{' ...' if len(dropped) > 4 else ''}")
    return out, notes


def convert(path, arch):
    """The weights of path (or a random initialisation when None) in torchvision's names, checked
    against torchvision's architecture: returns (dict, notes); ValueError says what does not fit."""
    if arch == "mobilenet_v1":
        raise ValueError("torchvision has no MobileNetV1, so there are no ImageNet weights to import for it; start "
                         "from random weights or from a classification checkpoint of this project")
    model = getattr(torchvision.models, arch)()
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    notes = []
    state = load_state(path) if path else expected
    if is_release_layout(state):
        state, notes = from_release(state, arch)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        raise ValueError(f"{path}: does not match torchvision's {arch}: missing {missing[:5]}, unknown {unknown[:5]}")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"{path}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    return {k: state[k] for k in expected}, notes


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=["mobilenet_v2", "resnet50", "mobilenet_v1"])
    ap.add_argument("--weights", help="state-dict or checkpoint file (.pth, .pt); omit for a random initialisation")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    try:
        tensors, notes = convert(a.weights, a.arch)
    except ValueError as e:
        sys.exit(f"import_torchvision: {e}")
    write_safetensors(a.out, tensors)
    for n in notes:
        print(f"{a.weights}: {n}")
    print(f"wrote {a.out}: {len(tensors)} tensors of {a.arch}")


if __name__ == "__main__":
    main()
