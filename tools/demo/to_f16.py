"""The backbone of a mutualnet checkpoint as a small safetensors file: the tensors under
"backbone." renamed to torchvision's names (what model.init expects), stored as F16.

  python3 tools/demo/backbone_f16.py CHECKPOINT OUT.safetensors

Needs only python3 and numpy. Optimiser state and the head are left out; the metadata says
where the weights came from."""
import json
import struct
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    blob = data[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        if e["dtype"] != "F32":
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
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tensors, meta = read(sys.argv[1])
    backbone = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
    if not backbone:
        sys.exit(f"{sys.argv[1]}: no tensor under backbone.")
    worst = max(float(np.max(np.abs(v))) for v in backbone.values())
    if worst > 65504:
        sys.exit(f"{sys.argv[1]}: a value of {worst} does not fit F16")
    config = json.loads(meta.get("config", "{}"))
    out_meta = {"format": "mutualnet-backbone", "backbone": config.get("model", {}).get("backbone", "?"),
                "source_task": meta.get("task", "?"), "source_iteration": meta.get("iteration", "?"),
                "source_classes": meta.get("classes", "?"), "made_by": "tools/demo/make_backbone.sh"}
    write(sys.argv[2], backbone, out_meta)
    n = sum(v.size for v in backbone.values())
    print(f"{sys.argv[2]}: {len(backbone)} tensors, {n} values as F16 ({2 * n / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
