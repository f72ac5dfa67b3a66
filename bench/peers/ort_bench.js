// Times the exported ViT-B encoder with ONNX Runtime (onnxruntime-node, CPU
// execution provider, all graph optimisations, 2 intra-op threads): median
// of ITERS after one warm-up. Prints one JSON line; writes the embedding to
// OUT/ort_embedding.f32 for the agreement check.
//
// Usage: node bench/peers/ort_bench.js OUT [ITERS]   (NODE_PATH=OUT/node/node_modules)
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

async function main() {
  const out = process.argv[2];
  const iters = parseInt(process.argv[3] || "3", 10);
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(path.join(out, "vit_b_encoder.onnx"), {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    intraOpNumThreads: parseInt(process.env.THREADS || "2", 10),
    interOpNumThreads: 1,
    executionMode: "sequential",
  });
  const buf = fs.readFileSync(path.join(out, "input.f32"));
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const feeds = { input: new ort.Tensor("float32", x, [1, 3, 1024, 1024]) };
  let res = await session.run(feeds); // warm-up
  const samples = [];
  for (let i = 0; i < iters; i++) {
    const t = process.hrtime.bigint();
    res = await session.run(feeds);
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const e = res.embedding.data;
  fs.writeFileSync(path.join(out, "ort_embedding.f32"), Buffer.from(e.buffer, e.byteOffset, e.byteLength));
  const sorted = [...samples].sort((a, b) => a - b);
  console.log(JSON.stringify({
    engine: "onnxruntime", version: require("onnxruntime-node/package.json").version, model: "vit_b",
    threads: parseInt(process.env.THREADS || "2", 10), samples_ms: samples,
    median_ms: sorted[Math.floor(sorted.length / 2)],
    process_s: Number(process.hrtime.bigint() - t0) / 1e9,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
  }));
}
main().catch((e) => { console.error(e); process.exit(1); });
