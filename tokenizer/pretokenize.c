/*
 * The gpt2 pattern, alternative by alternative. A regex with leftmost-first alternation tries
 * the alternatives in order at the current position and takes the first that matches; each
 * quantifier is greedy and backtracks only when what follows it fails. At a piece start:
 *
 *  1. 's 't 're 've 'm 'll 'd    A contraction, lowercase only, whatever follows: "it's" ->
 *                                "it" "'s", "'sa" -> "'s" "a", but "'S" -> "'" "S".
 *  2-4.  ?\p{L}+   ?\p{N}+   ?[^\s\p{L}\p{N}]+
 *                                A run of letters, numbers, or "other" characters (punctuation,
 *                                symbols, marks, controls that are not \s), optionally led by
 *                                one U+0020 space (only that one, not a tab or U+00A0). The
 *                                first character after the optional space decides which run:
 *                                " 123" -> " 123", " 's" -> " '" "s" (the run is greedy and
 *                                the contraction is no longer at a piece start), "''s" -> "''"
 *                                "s". Combining marks (Mn, Mc, Me) are "other": "e\u0301" ->
 *                                "e" "\u0301".
 *  5. \s+(?!\S)                  A white space run not followed by a non-space. \s+ first takes
 *                                the whole run; if the text ends there, done. Otherwise a non-
 *                                space follows, so the regex backtracks one character, and there
 *                                the next character is white space, so the lookahead holds: the
 *                                run minus its last character, when that leaves at least one.
 *                                That last character then starts the next piece, where a U+0020
 *                                becomes the prefix of a word: "  123" -> " " " 123", "\n\n hi"
 *                                -> "\n\n" " hi", "a   b" -> "a" "  " " b".
 *  6. \s+                        Otherwise the run is one character followed by a non-space:
 *                                it stands alone: "\tb" -> "\t" "b", "\n\n\tb" -> "\n\n" "\t" "b",
 *                                "\r\nb" -> "\r" "\n" "b".
 *
 * Trailing white space stays one piece ("a  " -> "a" "  "), and a lone U+0020 before a letter
 * never reaches rule 5 because rule 2 takes it first.
 */
#include "tokenizer/pretokenize.h"

#include <stdbool.h>

#include "tokenizer/unicode_class.h"
#include "tokenizer/utf8.h"

/* One character of the input. */
typedef struct {
    char_class cls;
    size_t len; /* bytes */
} text_char;

static inline text_char char_at(const uint8_t *text, size_t len, size_t i) {
    uint8_t b = text[i];
    if (b < 0x80) return (text_char){(char_class)unicode_ascii_class(b), 1};
    utf8_lead lead = utf8_lead_of(b);
    size_t n = utf8_matching_prefix(text + i, len - i, lead);
    if (n == 0 || n < lead.length) return (text_char){CHAR_OTHER, 1}; /* not well-formed */
    return (text_char){unicode_class_of(utf8_code_point(text + i, n)), n};
}

/* The end of the run of characters of class cls that starts at i. */
static size_t run_end(const uint8_t *text, size_t len, size_t i, char_class cls) {
    while (i < len) {
        text_char c = char_at(text, len, i);
        if (c.cls != cls) break;
        i += c.len;
    }
    return i;
}

/* Rule 1: the length of a contraction at i, or 0. */
static size_t contraction_len(const uint8_t *text, size_t len, size_t i) {
    if (text[i] != '\'' || i + 1 == len) return 0;
    uint8_t a = text[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 == len) return 0;
    uint8_t b = text[i + 2];
    bool two_letters = (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l');
    return two_letters ? 3 : 0;
}

/* Rules 5 and 6 for the white space run that starts at start. */
static size_t white_space_end(const uint8_t *text, size_t len, size_t start) {
    size_t last = start, end = start;
    while (end < len) {
        text_char c = char_at(text, len, end);
        if (c.cls != CHAR_SPACE) break;
        last = end;
        end += c.len;
    }
    if (end == len) return end;       /* rule 5, nothing follows */
    return last > start ? last : end; /* rule 5 backtracked one character, else rule 6 */
}

size_t pretoken_end(const uint8_t *text, size_t len, size_t start) {
    size_t contraction = contraction_len(text, len, start);
    if (contraction) return start + contraction;

    /* Rules 2-4: an optional U+0020, then a run of the class of the character after it. */
    size_t run_start = start;
    if (text[start] == ' ' && start + 1 < len) run_start = start + 1;
    text_char first = char_at(text, len, run_start);
    if (first.cls != CHAR_SPACE) return run_end(text, len, run_start + first.len, first.cls);

    return white_space_end(text, len, start);
}
