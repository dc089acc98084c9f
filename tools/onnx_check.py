#!/usr/bin/env python3
"""Checks ONNX files written by `mutualnet export` with onnx.checker (full check, shape inference).

    tools/onnx_check.py DIR_OR_FILE...

Used by CI on the models the export test leaves in build/tests/onnx-out; needs Debian's python3-onnx.
Exit 0 when every file passes, 1 otherwise."""
import pathlib
import sys

import onnx


def main(args):
    files = []
    for a in args:
        p = pathlib.Path(a)
        files += sorted(p.glob('*.onnx')) if p.is_dir() else [p]
    if not files:
        print('onnx_check: no .onnx files in', ' '.join(args))
        return 1
    bad = 0
    for f in files:
        try:
            m = onnx.load(str(f))
            onnx.checker.check_model(m, full_check=True)
            ops = sorted({n.op_type for n in m.graph.node})
            print(f'ok   {f}: opset {m.opset_import[0].version}, {len(m.graph.node)} nodes ({", ".join(ops)})')
        except Exception as e:  # the checker's own exception types vary by version
            print(f'FAIL {f}: {e}')
            bad += 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
