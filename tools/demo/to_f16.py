"""The weights of a mutualnet checkpoint as a small safetensors file for model.init: the tensors
under "backbone." renamed to torchvision's names (so that any model with this backbone takes
them), the head's tensors under their own names (a model with the same head takes them too), all
stored as F16. Optimiser state and per-configuration BN statistics are left out.

  python3 tools/demo/to_f16.py [--backbone-only] CHECKPOINT OUT.safetensors

Needs only python3 and numpy. The metadata says where the weights came from."""
import json
import struct
import sys

import numpy as np

SKIP = ("optim.", "bn_bank.")


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    blob = data[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        if e["dtype"] != "F32" or name.startswith(SKIP):
            continue
        a, b = e["data_offsets"]
        tensors[name] = np.frombuffer(blob[a:b], dtype="<f4").reshape(e["shape"])
    return tensors, meta


def write(path, tensors, meta):
    header, chunks, at = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        raw = tensors[name].astype("<f2").tobytes()
        header[name] = {"dtype": "F16", "shape": list(tensors[name].shape), "data_offsets": [at, at + len(raw)]}
        chunks.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def main():
    args = sys.argv[1:]
    backbone_only = "--backbone-only" in args
    args = [a for a in args if a != "--backbone-only"]
    if len(args) != 2:
        sys.exit(__doc__)
    tensors, meta = read(args[0])
    out = {}
    for k, v in tensors.items():
        if k.startswith("backbone."):
            out[k[len("backbone."):]] = v
        elif not backbone_only:
            out[k] = v
    if not any(k.startswith("backbone.") for k in tensors):
        sys.exit(f"{args[0]}: no tensor under backbone.")
    worst = max(float(np.max(np.abs(v))) for v in out.values())
    if worst > 65504:
        sys.exit(f"{args[0]}: a value of {worst} does not fit F16")
    config = json.loads(meta.get("config", "{}"))
    out_meta = {"format": "mutualnet-init", "backbone": config.get("model", {}).get("backbone", "?"),
                "head": "none" if backbone_only else meta.get("task", "?"),
                "source_task": meta.get("task", "?"), "source_iteration": meta.get("iteration", "?"),
                "source_classes": meta.get("classes", "?"), "made_by": "tools/demo/make_pretrained.sh"}
    write(args[1], out, out_meta)
    n = sum(v.size for v in out.values())
    print(f"{args[1]}: {len(out)} tensors, {n} values as F16 ({2 * n / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
