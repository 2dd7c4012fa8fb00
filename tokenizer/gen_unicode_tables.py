#!/usr/bin/env python3
"""Generates tokenizer/unicode_tables.c, the character classes of GPT-2's pre-tokenizer.

The pre-tokenizer pattern only asks three questions of a code point: is it a letter (\\p{L}:
general categories Lu Ll Lt Lm Lo), a number (\\p{N}: Nd Nl No), or white space (\\s, which in
Rust's regex crate is the Unicode White_Space property)? Everything else, including combining
marks, unassigned code points and surrogates, is "other".

The classes must be those of the Unicode version that tiktoken's regex engine was built with:
tiktoken 1.0.22 (npm) embeds regex-syntax 0.8.5, whose tables are Unicode 16.0. A character
assigned later is unassigned there, so "other". The generator therefore reads a Unicode
Character Database of that version or newer and drops every code point whose DerivedAge is
newer than the target.

The table is a two-level lookup: the high bits of the code point (cp >> 8) pick a 256-entry
block, and identical blocks are stored once. Run from the repository root:

    python3 tokenizer/gen_unicode_tables.py UCD_DIR > tokenizer/unicode_tables.c

UCD_DIR holds UnicodeData.txt, PropList.txt and DerivedAge.txt, e.g. /usr/share/unicode from
Debian's unicode-data package, version 16.0 or newer (Debian 12 has 15.0; a newer package can be
unpacked anywhere: apt-get download unicode-data from a newer suite, then dpkg-deb -x).
"""

import argparse
import os
import re
import sys

# The Unicode version of the \p{L}, \p{N} and \s tables inside tiktoken's regex engine.
TARGET_VERSION = "16.0"

MAX_CODE_POINT = 0x10FFFF
BLOCK_SHIFT = 8
BLOCK_SIZE = 1 << BLOCK_SHIFT

# Must match enum char_class in tokenizer/unicode_class.h.
OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
CLASS_OF_CATEGORY = {
    "Lu": LETTER, "Ll": LETTER, "Lt": LETTER, "Lm": LETTER, "Lo": LETTER,
    "Nd": NUMBER, "Nl": NUMBER, "No": NUMBER,
}


def read_general_categories(path, classes):
    """Marks letters and numbers from UnicodeData.txt (large ranges come as First/Last pairs)."""
    range_start = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split(";")
            cp, name, category = int(fields[0], 16), fields[1], fields[2]
            if name.endswith(", First>"):
                range_start = cp
                continue
            first = range_start if name.endswith(", Last>") else cp
            range_start = None
            char_class = CLASS_OF_CATEGORY.get(category, OTHER)
            for c in range(first, cp + 1):
                classes[c] = char_class


def read_ranged_property(path):
    """Yields (first, last, value) for each data line of a UCD file like PropList.txt."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            data = line.split("#", 1)[0].split(";")
            if len(data) != 2:
                continue
            bounds = data[0].strip().split("..")
            yield int(bounds[0], 16), int(bounds[-1], 16), data[1].strip()


def read_white_space(path, classes):
    for first, last, prop in read_ranged_property(path):
        if prop != "White_Space":
            continue
        for c in range(first, last + 1):
            if classes[c] != OTHER:
                sys.exit(f"U+{c:04X} is White_Space and a letter or number")
            classes[c] = SPACE


def drop_newer_than(path, target, classes):
    """Makes every code point assigned after the target version "other" (unassigned there)."""
    for first, last, age in read_ranged_property(path):
        if version_tuple(age) > version_tuple(target):
            for c in range(first, last + 1):
                classes[c] = OTHER


def version_tuple(version):
    return tuple(int(part) for part in version.split("."))


def ucd_version(path):
    """The version in the header line of a UCD file, e.g. "# PropList-17.0.0.txt"."""
    with open(path, encoding="utf-8") as f:
        header = re.match(r"# \w+-([0-9.]+)\.txt", f.readline())
    if not header:
        sys.exit(f"{path}: no version header")
    return header.group(1)


def split_into_blocks(classes):
    """Returns (block number per 256 code points, list of distinct blocks).

    Blocks are numbered in order of first appearance, so block 0 covers U+0000..U+00FF: the ASCII
    fast path in unicode_class.h relies on that.
    """
    distinct = {}
    index = []
    for start in range(0, MAX_CODE_POINT + 1, BLOCK_SIZE):
        block = tuple(classes[start:start + BLOCK_SIZE])
        index.append(distinct.setdefault(block, len(distinct)))
    return index, list(distinct)


def c_array_body(values, per_line):
    lines = []
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(str(v) for v in values[i:i + per_line]) + ",")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ucd_dir", help="folder with UnicodeData.txt, PropList.txt, DerivedAge.txt")
    parser.add_argument("--target", default=TARGET_VERSION,
                        help=f"Unicode version to reproduce (default {TARGET_VERSION})")
    args = parser.parse_args()
    ucd = {name: os.path.join(args.ucd_dir, name + ".txt")
           for name in ("UnicodeData", "PropList", "DerivedAge")}
    source_version = ucd_version(ucd["PropList"])
    if version_tuple(source_version) < version_tuple(args.target):
        sys.exit(f"the UCD in {args.ucd_dir} is {source_version}, older than {args.target}")

    classes = [OTHER] * (MAX_CODE_POINT + 1)
    read_general_categories(ucd["UnicodeData"], classes)
    read_white_space(ucd["PropList"], classes)
    drop_newer_than(ucd["DerivedAge"], args.target, classes)
    index, blocks = split_into_blocks(classes)
    if len(blocks) > 256:
        sys.exit("more than 256 distinct blocks: widen unicode_block_index")

    counts = [classes.count(c) for c in (LETTER, NUMBER, SPACE)]
    out = sys.stdout
    out.write(f"""/*
 * Generated by tokenizer/gen_unicode_tables.py: the classes of Unicode {args.target}, read from the
 * Unicode {source_version} UnicodeData.txt, PropList.txt and DerivedAge.txt. Do not edit: rerun
 * the generator.
 *
 * {counts[0]} letters, {counts[1]} numbers, {counts[2]} white space code points;
 * {len(blocks)} distinct blocks of {BLOCK_SIZE}.
 */
#include "tokenizer/unicode_class.h"

const char unicode_tables_version[] = "{args.target}";

const uint8_t unicode_block_index[UNICODE_BLOCK_COUNT] = {{
{c_array_body(index, 24)}
}};

const uint8_t unicode_block_classes[][UNICODE_BLOCK_SIZE] = {{
""")
    for number, block in enumerate(blocks):
        out.write(f"    {{ /* block {number} */\n{c_array_body(block, 32)}\n    }},\n")
    out.write("};\n")


if __name__ == "__main__":
    main()
