#!/usr/bin/python3
"""Export torchvision (or MutualNet-release) backbone weights to a safetensors file that
mutualnet reads: `model.init` in a training configuration, or `mutualnet flops`/tests.

    /usr/bin/python3 tools/import_torchvision.py --arch mobilenet_v2 --weights mobilenet_v2-b0353104.pth \
        --out mbv2_imagenet.safetensors

--weights takes a torchvision state-dict file (the ImageNet weights torchvision downloads) or
a MutualNet release checkpoint (a dict with "model" or "state_dict", names prefixed "module.");
without --weights the architecture's random initialisation is exported (useful for checks).
Parameter names are torchvision's, which are the library's own (features.0.0.weight, ...,
classifier.1.weight for MobileNetV2; conv1.weight, layer1.0.conv1.weight, ..., fc.weight for
ResNet-50); num_batches_tracked buffers are dropped. Needs Debian's python3-torch and
python3-torchvision only."""
import argparse
import json
import os
import struct
import sys

import torch
import torchvision


def load_state(path):
    obj = torch.load(path, map_location="cpu")
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        sys.exit(f"{path}: not a state dict")
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


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
    ap.add_argument("--arch", required=True, choices=["mobilenet_v2", "resnet50"])
    ap.add_argument("--weights", help="state-dict file (.pth); omit for a random initialisation")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    model = getattr(torchvision.models, a.arch)()
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state = load_state(a.weights) if a.weights else expected
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        sys.exit(f"{a.weights}: does not match torchvision's {a.arch}: missing {missing[:5]}, unknown {unknown[:5]}")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            sys.exit(f"{a.weights}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    write_safetensors(a.out, {k: state[k] for k in expected})
    print(f"wrote {a.out}: {len(expected)} tensors of {a.arch}")


if __name__ == "__main__":
    main()
