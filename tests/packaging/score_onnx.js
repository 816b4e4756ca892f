// Scores rows with an exported flowship ONNX file in ONNX Runtime for Node.js.
// usage: INPUT_ORDER=[...] INPUT_DTYPE=float64 node score_onnx.js MODEL.onnx ROWS.json
// ROWS.json holds {"columns": [...], "data": [[...], ...]}; the columns are reordered to
// the file's flowship.input_order, as an application embedding the file would.
const fs = require("fs");
const ort = require("onnxruntime-node");

async function main() {
  const [modelPath, rowsPath] = process.argv.slice(2);
  const rows = JSON.parse(fs.readFileSync(rowsPath, "utf8"));
  const session = await ort.InferenceSession.create(modelPath);
  // The column order and element type come from the file's flowship.* metadata (read in
  // Python by the test; an application would hard-code them or read them with onnx tools).
  const order = JSON.parse(process.env.INPUT_ORDER);
  const dtype = process.env.INPUT_DTYPE;
  const index = order.map((name) => rows.columns.indexOf(name));
  const flat = [];
  for (const row of rows.data) for (const i of index) flat.push(row[i]);
  const values = dtype === "float64" ? Float64Array.from(flat) : Float32Array.from(flat);
  const input = new ort.Tensor(dtype, values, [rows.data.length, order.length]);
  const results = await session.run({ [session.inputNames[0]]: input });
  const outputs = {};
  for (const name of session.outputNames) {
    outputs[name] = Array.from(results[name].data, (v) => (typeof v === "bigint" ? Number(v) : v));
  }
  process.stdout.write(JSON.stringify({ inputs: session.inputNames, outputs }));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
