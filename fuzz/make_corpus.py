#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (run once; the files are
committed). Usage: fuzz/make_corpus.py MUTUALNET   (the built tool, for `synth` images and COCO files).

Seeds are small valid inputs of every shape each parser accepts, plus a few near misses; the fuzzers
grow the rest. Only the standard library is used."""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def png(w, h, colour, depth, rows, palette=None):
    """A PNG with the given IHDR colour type and bit depth; rows are raw bytes without filter bytes."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    if palette:
        out += chunk(b"PLTE", bytes(palette))
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def bmp(w, h, bpp):
    """An uncompressed bottom-up BMP (24 or 32 bits per pixel)."""
    stride = (w * bpp // 8 + 3) // 4 * 4
    pixels = b"".join(bytes((x * 40 + y * 7 + c * 50) % 256 for x in range(w) for c in range(bpp // 8)).ljust(stride, b"\0")
                      for y in range(h))
    header = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bpp, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(header) + len(pixels), 0, 0, 14 + len(header)) + header + pixels


def safetensors(items, meta=None):
    """items: (name, dtype, shape, raw bytes); offsets laid out in order."""
    header, blob = {}, b""
    for name, dtype, shape, raw in items:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if meta:
        header["__metadata__"] = meta
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + blob


def main():
    tool = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "tools", "mutualnet")
    tmp = tempfile.mkdtemp(prefix="mn_corpus_")
    subprocess.run([tool, "synth", "--out", tmp + "/jpg", "--images", "5", "--size", "32x32", "--max-objects", "3"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([tool, "synth", "--out", tmp + "/png", "--images", "3", "--size", "32x40", "--format", "png",
                    "--seed", "3"], check=True, stdout=subprocess.DEVNULL)

    # configuration JSON: the shipped recipes and a minimal one
    for f in sorted(os.listdir(os.path.join(ROOT, "configs"))):
        if f.endswith(".json"):
            put("config", f, open(os.path.join(ROOT, "configs", f), "rb").read())
    put("config", "minimal.json", '{"task": "segmentation", "data": {"kind": "folder", "root": "r"}}')
    put("config", "with_sets.json", '{"task": "detection"}\0train.seed=18446744073709551615\0mutual.scales=[1, 0.5]'
        '\0optim.lr=1e-3\0data.crop=[64, 96]')

    # COCO instances: synth's files (polygons, ring keyholes), the evaluator's fixture, RLE and crowd cases
    inst = [open(os.path.join(tmp, "jpg/annotations/instances_train.json")).read(),
            open(os.path.join(tmp, "png/annotations/instances_train.json")).read(),
            open(os.path.join(ROOT, "tests/data/coco_eval/gt.json")).read()]
    rle = json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 12, "height": 10},
                   {"id": 2, "file_name": "sub/b.png", "width": 8, "height": 4}],
        "categories": [{"id": 3, "name": "x"}, {"id": 9, "name": "y"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [4, 0, 8, 10], "area": 80, "iscrowd": 1,
             "segmentation": {"size": [10, 12], "counts": "X1n05FN2"}},
            {"id": 2, "image_id": 2, "category_id": 9, "bbox": [0, 0, 2, 4], "area": 8, "iscrowd": 0,
             "segmentation": {"size": [4, 8], "counts": [0, 8, 24]}},
            {"id": 3, "image_id": 1, "category_id": 9, "bbox": [1.5, 2, 3, 3.5], "area": 6,
             "segmentation": [[1.5, 2, 4.5, 2, 4.5, 5.5], [0, 0, 1, 0, 1, 1, 0, 1]]},
            {"id": 4, "image_id": 2, "category_id": 3, "bbox": [7, 3, 0, 1], "area": 0, "iscrowd": False}]})
    inst.append(rle)
    for i, text in enumerate(inst):
        put("coco_gt", "instances%d.json" % i, text)
        put("coco_dataset", "instances%d.json" % i, text)

    # COCO results against fuzz_coco_dets.c's fixed ground truth
    dets = [
        [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
         {"image_id": 1, "category_id": 3, "bbox": [55, 55, 10, 10], "score": 0.8},
         {"image_id": 2, "category_id": 7, "bbox": [0.5, 0.5, 3, 3], "score": 0.5, "area": 9, "id": 4}],
        [{"image_id": 2, "category_id": 0, "bbox": [5, 5, 40, 40], "score": 1},
         {"image_id": 5, "category_id": 3, "bbox": [1, 1, 1, 1], "score": 0.25, "segmentation": []}],
        [],
    ]
    for i, d in enumerate(dets):
        put("coco_dets", "results%d.json" % i, json.dumps(d))
    put("coco_dets", "results_fixture.json", open(os.path.join(ROOT, "tests/data/coco_eval/results.json")).read())

    # safetensors: every dtype, metadata, an empty tensor, a scalar
    f32 = struct.pack("<6f", 1, -2, 0.5, 3e-3, 1e30, -0.0)
    put("safetensors", "dtypes.safetensors", safetensors([
        ("a.weight", "F32", [2, 3], f32), ("b", "I32", [3], struct.pack("<3i", 1, -2, 3)),
        ("c", "I64", [1, 2], struct.pack("<2q", 7, -9)), ("d", "U8", [4], b"\x00\x01\xfe\xff")],
        {"format": "pt", "iteration": "12"}))
    put("safetensors", "empty_and_scalar.safetensors", safetensors([
        ("e", "F32", [0, 4], b""), ("s", "F32", [], struct.pack("<f", 2.5)), ("t", "F32", [1, 1, 1, 2], f32[:8])]))
    put("safetensors", "meta_only.safetensors", safetensors([], {"config": "{\"task\": \"detection\"}"}))

    # images: synth's JPEGs and PNGs, BMPs, grey / palette / 16-bit / alpha PNGs
    for kind in ("jpg", "png"):
        d = os.path.join(tmp, kind, "images", "train")
        for f in sorted(os.listdir(d))[:3]:
            put("image", kind + "_" + f, open(os.path.join(d, f), "rb").read())
    put("image", "rgb24.bmp", bmp(5, 3, 24))
    put("image", "rgba32.bmp", bmp(3, 2, 32))
    put("image", "grey.png", png(4, 3, 0, 8, [bytes([0, 64, 128, 255])] * 3))
    put("image", "rgba.png", png(2, 2, 6, 8, [bytes(range(8)), bytes(range(8, 16))]))
    put("image", "grey16.png", png(2, 2, 0, 16, [b"\x00\x01\xff\xfe", b"\x80\x00\x00\x80"]))
    put("image", "palette4.png", png(4, 2, 3, 4, [b"\x01\x23", b"\x30\x21"], palette=[0, 0, 0, 128, 0, 0, 0, 128, 0, 224, 224, 192]))

    # label PNGs: synth's (8-bit grey with 255 borders), VOC-style palette, and refused kinds
    for kind in ("jpg", "png"):
        d = os.path.join(tmp, kind, "labels", "train")
        for f in sorted(os.listdir(d))[:3]:
            put("labels", kind + "_" + f, open(os.path.join(d, f), "rb").read())
    voc_palette = []
    for i in range(256):
        r = g = b = 0
        for j in range(8):
            r |= ((i >> (3 * j)) & 1) << (7 - j)
            g |= ((i >> (3 * j + 1)) & 1) << (7 - j)
            b |= ((i >> (3 * j + 2)) & 1) << (7 - j)
        voc_palette += [r, g, b]
    put("labels", "voc_palette.png", png(4, 2, 3, 8, [b"\x00\x01\x02\xff", b"\x0f\x14\x00\x00"], palette=voc_palette))
    put("labels", "grey8.png", png(3, 3, 0, 8, [b"\x00\x01\x02", b"\xff\x03\x04", b"\x00\x00\x00"]))
    put("labels", "rgb_refused.png", png(1, 1, 2, 8, [b"\x01\x02\x03"]))

    # class lists: every format, comments, CRLF, gaps
    put("classes", "camvid.txt", open(os.path.join(ROOT, "configs/camvid_classes.txt"), "rb").read())
    put("classes", "synth.txt", open(os.path.join(tmp, "jpg/classes.txt"), "rb").read())
    put("classes", "names.txt", "background\naeroplane\nbicycle\n\n# comment\ntraffic light\n")
    put("classes", "crlf_gap.txt", "0 bg\r\n 2 cat \r\n3\tdog\r\n")
    put("classes", "numeric.txt", "0\n1\n001.Black_footed_Albatross\n")

    # split lists: synth's, VOC detection-style two columns, blanks
    put("splits", "synth.txt", open(os.path.join(tmp, "jpg/splits/train.txt"), "rb").read())
    put("splits", "voc.txt", "2007_000032\n2007_000039\n\n2007_000063  1\r\n 2008_000001\t-1\n")

    subprocess.run(["rm", "-rf", tmp], check=True)
    total = 0
    for d, _, files in os.walk(os.path.join(HERE, "corpus")):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print("corpus: %d bytes" % total)


if __name__ == "__main__":
    main()
