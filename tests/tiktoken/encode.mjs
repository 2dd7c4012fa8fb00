// tiktoken's gpt2 encoding (npm package tiktoken, pinned in package.json): the reference that
// the tokenizer tests compare against.
//
// As a script: node encode.mjs [--allow-special] INPUT
// writes the ids of the UTF-8 file INPUT to stdout, one per line. Without --allow-special the
// text "<|endoftext|>" is ordinary text (encode_ordinary); with it, it is the special token.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);
const { get_encoding } = require("tiktoken");

export function openGpt2() {
  return get_encoding("gpt2");
}

export function encodeText(enc, text, allowSpecial) {
  return allowSpecial ? enc.encode(text, "all") : enc.encode_ordinary(text);
}

// Strict: invalid UTF-8 is an error (tiktoken only sees strings), and a BOM is kept as text.
export function readUtf8(path) {
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(readFileSync(path));
}

function main(args) {
  const allowSpecial = args[0] === "--allow-special";
  const paths = allowSpecial ? args.slice(1) : args;
  if (paths.length !== 1) {
    process.stderr.write("usage: node encode.mjs [--allow-special] INPUT\n");
    process.exit(2);
  }
  const enc = openGpt2();
  const ids = encodeText(enc, readUtf8(paths[0]), allowSpecial);
  enc.free();
  process.stdout.write(ids.length ? ids.join("\n") + "\n" : "");
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
