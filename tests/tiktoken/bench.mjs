// tiktoken's encoding speed on one file, measured as tests/bench_tokenizer.c measures ours: best
// of several runs of encode_ordinary, in MB/s (10^6 bytes of UTF-8 input per second).
//
// Usage: node bench.mjs FILE [RUNS]
import { encodeText, openGpt2, readUtf8 } from "./encode.mjs";

const [path, runsArg] = process.argv.slice(2);
if (!path) {
  process.stderr.write("usage: node bench.mjs FILE [RUNS]\n");
  process.exit(2);
}
const runs = Number(runsArg ?? 5);
const text = readUtf8(path);
const bytes = Buffer.byteLength(text, "utf8");
const enc = openGpt2();

let best = Infinity;
let nTokens = 0;
for (let run = 0; run < runs; run++) {
  const start = process.hrtime.bigint();
  const ids = encodeText(enc, text, false);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  best = Math.min(best, seconds);
  nTokens = ids.length;
}
enc.free();
console.log(
  `encode: ${(bytes / best / 1e6).toFixed(1)} MB/s (best of ${runs}, ${best.toFixed(3)} s), ` +
    `${bytes} bytes -> ${nTokens} tokens`,
);
