// Regenerates edge_cases.jsonl, the tokenizer's test vectors: hand-picked texts for every rule
// of the gpt2 pattern, then seeded random mixes of the same ingredients, each with the ids that
// tiktoken gives. One JSON object a line: {"text": ..., "special": bool, "ids": [...]}, where
// "special" says whether "<|endoftext|>" is the special token (else ordinary text).
//
// Usage (from anywhere): node tests/tiktoken/make_edge_cases.mjs
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { encodeText, openGpt2 } from "./encode.mjs";

const OUTPUT = fileURLToPath(new URL("edge_cases.jsonl", import.meta.url));
const SEED = 20240229;
const N_RANDOM_MIXES = 400;
const N_LONG_RUNS = 40;

const EOT = "<|endoftext|>";

const handPicked = [
  // Empty and single characters.
  "", " ", "a", "A", "0", "!", "'", "\n", "\t", "\r", "\u00a0", "\u3000", "é", "中", "😀",
  // Contractions: lowercase only, matched wherever a piece starts.
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ll", "'x", "'l", "'r", "'v",
  "it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "We'Ve",
  "''s", "'''", "' s", " 's", " 't", "  's", "!'s", "'sa", "'sss", "'ll've", "o'clock",
  "rock 'n' roll", "the '90s", "'''s'''", "'\u00e9", "isn\u2019t", "I\u2019m", "Jones's",
  // Spaces before words, numbers and punctuation.
  "hello world", " hello", "  hello", "   hello", "    hello", "hello  world", "a  b   c    d",
  " 123", "  123", "   123", "a  123", "x  !", "  !!", "   ...", " \u00e9t\u00e9", "  \u4e2d\u6587",
  // Trailing white space, and white space alone.
  "hi ", "hi  ", "hi   ", "hi\n", "hi\n\n", "hi \n", "hi\t", "hi \t ", "   ", "\n\n\n", " \n",
  "\n ", " \n ", "\t\t", "\r\n", "\r\n\r\n", "\n\r", " \r\n",
  // White space runs before a non-space: the last character moves to the next piece.
  "\n\n hello", "\n\nhello", "\nhello", "\n hello", " \nhello", "\t hello", "\thello",
  "\t\thello", " \thello", "a\r\nb", "a\r\n\r\nb", "line one\r\nline two\r\n", "a\n\n\nb",
  "a \n b", "a\t\tb", "a \t b", "x\n\n\n\n   y", "col1\tcol2\tcol3\n1\t2\t3\n",
  "end.  Next", "end.\n\nNext", "  \n  \n  x", "\u00a0\u00a0x", " \u00a0x", "\u00a0 x",
  // Unicode white space (\s is White_Space) and look-alikes that are not.
  "a\u00a0b", "a\u00a0\u00a0b", "a \u00a0 b", "a\u3000b", "a\u3000\u3000b", "a\u2028b",
  "a\u2029b", "a\u0085b", "a\u1680b", "a\u2000b", "a\u2009b", "a\u200ab", "a\u202fb",
  "a\u205fb", "a\u000bb", "a\u000cb", "a \u000b\u000c b", "a\u200bb", "a\ufeffb",
  "\ufeffhello", "a\u180eb", "a\u001cb", "a\u001fb", "a\u0000b", "\u0000", "a\u007fb",
  // Numbers: \p{N} includes other scripts' digits and No/Nl characters.
  "1,000", "1,000,000.50", "3.14159", " 123abc", "abc123", "123abc", "v1.2.3", "0x1F",
  "12345678901234567890", "2024-02-29", "$100", "50%", "\u0661\u0662\u0663", "\u0967\u0968",
  "\u00bd", "x\u00b2", "\u2160\u2161", "\u2460\u2461", "\uff11\uff12", "\u4e00\u4e8c\u4e09",
  "1\u00a02", "1 2 3", "  42", "-42", "+1", "1e10", "007",
  // Punctuation runs.
  "!!!", "...", "?!", "--", "---", "!!! ???", " !!!", "a!!!b", "(x)", "[1]", "{}", "<>",
  "\u2014", "word\u2014word", "\u201cquoted\u201d", "\u00abguillemets\u00bb", "***bold***",
  "#hashtag", "@mention", "a_b", "__init__", "~/.bashrc", "C:\\Windows\\System32", "\\n",
  // Code.
  "int main(void) {\n    return 0;\n}\n", "def f(x):\n\treturn x ** 2\n",
  "for (int i = 0; i < n; i++) { a[i] += b[i]; }", "if (a && b || !c) { x->y = z; }",
  "const s = `${a}${b}`;", "  # comment\n  x = 1  # trailing\n", "<div class=\"a\">b</div>",
  "{\"key\": [1, 2, 3], \"n\": null}", "SELECT * FROM t WHERE id = 42;",
  // URLs and e-mail.
  "https://www.example.com/path?q=1&r=two#frag", "http://localhost:8080/", "user@example.org",
  "see https://en.wikipedia.org/wiki/GPT-2.", "ftp://a.b/c_d-e.txt",
  // Emoji: symbols are "other"; ZWJ (Cf), variation selectors (Mn), skin tones (Sk) too.
  "😀😃😄", "hi😀", "😀 hi", " 😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "❤\ufe0f", "🇺🇸🇫🇷", "1️⃣",
  "👩🏾‍💻 coding", "I ❤️ NY", "🤖!", "!🤖", "😀a", "a😀b",
  // CJK, Japanese, Korean.
  "中文", "你好，世界！", "日本語のテキスト", "ひらがなカタカナ", "한국어 텍스트", "漢字と かな",
  "中 文", "中\u3000文", "東京2024", "ｶﾀｶﾅ", "ｆｕｌｌｗｉｄｔｈ",
  // Right-to-left and Indic scripts, with combining marks (Mn, Mc are not \p{L}).
  "مرحبا بالعالم", "السَّلَامُ عَلَيْكُمْ", "שָׁלוֹם", "नमस्ते दुनिया", "हिन्दी", "क्षत्रिय",
  "தமிழ்", "ไทย ภาษา", "ພາສາລາວ", "ქართული", "Ελληνικά", "Русский текст", "Ўзбек",
  // Combining accents and accented Latin.
  "e\u0301", "caf\u00e9", "cafe\u0301", "e\u0301\u0301", " \u0301", "\u0301a", "a\u0300b",
  "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f",
  "na\u00efve r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m", "stra\u00dfe", "\u0130stanbul", "\u01c5",
  "\u1e9e", "\u0149", "\ufb01", "\u02bcs", "x\u02b0",
  // Letters new in Unicode 15.1 and 16.0 are letters to tiktoken (its regex has 16.0 tables);
  // those new in 17.0 are unassigned there, so "other". A contraction after one shows which.
  "a\u{2ebf0}b", "\u1c89\u1c8a", "x\u{105c0}y", "\ua7cb\ua7cc", "\u{13deb}'d", "\u1c89's",
  "\u{2ebf0}'s", "\u{105c0}'ll", "\ua7ce's", "\u088f's", "\u{1e6c0}'s", "a\ua7cf't",
  // The special token, as text and as the token (see "special").
  EOT, `a${EOT}b`, `a ${EOT} b`, `${EOT}${EOT}`, `<|endoftext|`, `<|endoftext|>>`,
  `<<|endoftext|>`, `x<|endoftext|>\n\ny`, "<|endoftext", "<|ENDOFTEXT|>", "<|im_start|>",
  `  ${EOT}  `, `\n${EOT}\n`, `'${EOT}s`,
  // Prose.
  "The quick brown fox jumps over the lazy dog.",
  "It was the best of times, it was the worst of times; it was the age of wisdom...",
  "Mr. O'Neil's 3rd-quarter results: +12.5% (vs. 9.8%) — 'unprecedented,' he said.",
  "He said, \"Don't go!\"\n\nShe replied: 'I won't.'",
  "   Leading spaces and trailing spaces   ",
  "Tabs\tand\tnewlines\nmixed \t \n together\r\n",
];

// Deterministic PRNG (mulberry32), so the file regenerates identically.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = prng(SEED);
const pick = (xs) => xs[Math.floor(random() * xs.length)];
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
const repeat = (f, n) => Array.from({ length: n }, f).join("");
const fromRange = (lo, hi) => String.fromCodePoint(between(lo, hi));

const ingredients = [
  () => pick(["the", "and", "tokenizer", "encode", "GPT", "Hello", "WORLD", "x", "Zebra"]),
  () => repeat(() => fromRange(0x61, 0x7a), between(1, 12)),
  () => pick(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'", "''", "n't"]),
  () => " ".repeat(between(1, 5)),
  () => pick(["\n", "\n\n", "\r\n", "\t", " \n", "\n ", "\t\t", "\u000b", "\u000c", "\r"]),
  () => pick(["\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\u2003", "\u202f", "\u1680"]),
  () => repeat(() => fromRange(0x30, 0x39), between(1, 8)),
  () => pick(["\u0663", "\u00bd", "\u2165", "\u00b3", "\uff15", "\u09e9"]),
  () => repeat(() => pick([..."!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~"]), between(1, 4)),
  () => pick(["—", "…", "«", "»", "“", "”", "•", "©", "€", "°", "¿", "§"]),
  () => pick(["😀", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "❤️", "🇯🇵", "🤖", "🎉🎉", "✨"]),
  () => repeat(() => fromRange(0x4e00, 0x9fff), between(1, 4)),
  () => repeat(() => fromRange(0x3041, 0x3096), between(1, 4)),
  () => repeat(() => fromRange(0xac00, 0xd7a3), between(1, 3)),
  () => pick(["مرحبا", "سَلَام", "नमस्ते", "हिन्दी", "தமிழ்", "Ελλάδα", "Москва", "שלום"]),
  () => pick(["e\u0301", "a\u0308", "\u0301", "\u0327", "\u20dd", "\u093f", "\u0e31"]),
  () => pick(["é", "ß", "Ø", "ñ", "Ł", "ő", "ç", "İ", "ǅ"]),
  () => pick(["\u0000", "\u0001", "\u001b", "\u007f", "\u200b", "\u200d", "\ufeff", "\u00ad"]),
  () => fromRange(0x20, 0x7e),
  () => fromRange(0xa0, 0x2fff),
  () => fromRange(0x10000, 0x1ffff),
  () => EOT,
];

function randomMix() {
  return repeat(() => pick(ingredients)(), between(1, 24));
}

// Long pieces: the merge loop's worst cases and its tie-breaking between equal pairs.
function longRun() {
  const length = between(200, 4000);
  return pick([
    () => repeat(() => fromRange(0x30, 0x39), length),
    () => repeat(() => fromRange(0x61, 0x7a), length),
    () => repeat(() => pick(["a", "b"]), length),
    () => "a".repeat(length),
    () => "ab".repeat(length),
    () => " " + "e".repeat(length),
    () => repeat(() => fromRange(0x4e00, 0x9fff), length / 4),
    () => repeat(() => pick(["😀", "🎉", "👍🏽"]), length / 8),
    () => " ".repeat(length) + "x",
    () => "\n".repeat(length),
    () => repeat(() => pick([..."!?.,;:-"]), length),
    () => repeat(() => fromRange(0x21, 0x7e), length),
  ])();
}

function main() {
  const texts = [...handPicked];
  for (let i = 0; i < N_RANDOM_MIXES; i++) texts.push(randomMix());
  for (let i = 0; i < N_LONG_RUNS; i++) texts.push(longRun());

  const enc = openGpt2();
  const lines = [];
  for (const text of texts) {
    for (const special of text.includes(EOT) ? [false, true] : [false]) {
      const ids = Array.from(encodeText(enc, text, special));
      const idsJson = `[${ids.join(", ")}]`;
      lines.push(`{"text": ${readableJson(text)}, "special": ${special}, "ids": ${idsJson}}`);
    }
  }
  enc.free();
  writeFileSync(OUTPUT, lines.join("\n") + "\n");
  console.log(`wrote ${lines.length} cases to ${OUTPUT}`);
}

// JSON with invisible and separator characters escaped, so every case stays on one visible line.
function readableJson(text) {
  return JSON.stringify(text).replace(
    /[\u0080-\u00a0\u00ad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

main();
