// Runs the ONNX models listed in a golden directory (mutualnet export --golden) in onnxruntime and
// compares every output with the one mutualnet computed from the same input.
//   node check_golden.js DIR [TOLERANCE]
// Exit 0: every output within TOLERANCE (absolute, default 1e-4); 1: a mismatch; 2: bad usage or files;
// 77: onnxruntime-node is not installed (the test then reports a skip).
'use strict';
const fs = require('fs');
const path = require('path');

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  console.log('onnxruntime-node is not installed (npm ci in tests/onnx): ' + e.message);
  process.exit(77);
}

function readFloats(file, count) {
  const buf = fs.readFileSync(file);
  if (buf.length !== 4 * count) throw new Error(`${file}: ${buf.length} bytes, expected ${4 * count}`);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.readFloatLE(4 * i);
  return out;
}

const numel = (shape) => shape.reduce((a, b) => a * b, 1);

async function main() {
  const dir = process.argv[2];
  const tol = process.argv[3] ? Number(process.argv[3]) : 1e-4;
  if (!dir) {
    console.log('usage: node check_golden.js DIR [TOLERANCE]');
    process.exit(2);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  let worst = 0;
  let failed = false;
  for (const g of manifest.graphs) {
    const model = path.join(path.dirname(dir), g.model);
    const session = await ort.InferenceSession.create(model);
    const feeds = {};
    for (const t of g.inputs)
      feeds[t.name] = new ort.Tensor('float32', readFloats(path.join(dir, t.file), numel(t.shape)), t.shape);
    const results = await session.run(feeds);
    for (const t of g.outputs) {
      const want = readFloats(path.join(dir, t.file), numel(t.shape));
      const got = results[t.name];
      if (!got) throw new Error(`${g.model}: no output ${t.name}`);
      if (JSON.stringify(Array.from(got.dims)) !== JSON.stringify(t.shape))
        throw new Error(`${g.model}: ${t.name} has shape [${got.dims}], mutualnet's [${t.shape}]`);
      let diff = 0, at = 0, scale = 0;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(got.data[i] - want[i]);
        if (d > diff) diff = d, at = i;
        scale = Math.max(scale, Math.abs(want[i]));
      }
      worst = Math.max(worst, diff);
      const ok = diff <= tol;
      failed = failed || !ok;
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${g.model} ${t.name} [${t.shape}]: max |onnxruntime - mutualnet| = ` +
                  `${diff.toExponential(2)} at ${at} (values up to ${scale.toExponential(2)})`);
    }
  }
  console.log(`onnxruntime ${require('onnxruntime-node/package.json').version}: worst difference ${worst.toExponential(2)}` +
              `, tolerance ${tol}`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log('error: ' + e.message);
  process.exit(2);
});
