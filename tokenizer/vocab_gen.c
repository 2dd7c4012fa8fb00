/*
 * Build-time generator: reads OpenAI's vocab.bpe and writes a C source holding the GPT-2
 * vocabulary (token id -> bytes), the arrays declared in tokenizer/vocab_data.h.
 *
 * The ranks are derived exactly as tiktoken's data_gym_to_mergeable_bpe_ranks derives them:
 *   - ranks 0..255 are the single bytes, the printable ones first (0x21..0x7E, 0xA1..0xAC,
 *     0xAE..0xFF, in byte order), then the other 68 in byte order;
 *   - each merge line "A B" after the "#version" header adds the token bytes(A) + bytes(B) at the
 *     next rank, where every character of A and B stands for one byte: a printable byte stands
 *     for itself, and the n-th non-printable byte is written as the character U+0100 + n
 *     (GPT-2's bytes_to_unicode);
 *   - "<|endoftext|>" follows as TOKENIZER_EOT_ID.
 * Token id == rank. Anything unexpected (a malformed line, a duplicate token, a merge count other
 * than GPT-2's) is an error, so a wrong file fails the build instead of encoding differently.
 *
 * Usage: tokenizer_vocab_gen VOCAB_BPE OUTPUT_C
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

#define N_BYTE_TOKENS 256
#define N_MERGES (TOKENIZER_EOT_ID - N_BYTE_TOKENS)
#define EOT_TEXT "<|endoftext|>"
/* bytes_to_unicode writes every byte as a character below U+0100 + 256. */
#define N_DATA_GYM_CHARS 512

/* The file that errors name: vocab.bpe while reading it, the output while writing. */
static const char *current_path;

static void fail(const char *what, long line) {
    if (line > 0)
        fprintf(stderr, "tokenizer_vocab_gen: %s:%ld: %s\n", current_path, line, what);
    else
        fprintf(stderr, "tokenizer_vocab_gen: %s: %s\n", current_path, what);
    exit(EXIT_FAILURE);
}

static bool is_printable_byte(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The vocabulary being built: token i is bytes[offsets[i] .. offsets[i + 1]). */
typedef struct {
    uint8_t *bytes;
    size_t n_bytes, cap_bytes;
    uint32_t offsets[TOKENIZER_VOCAB_SIZE + 1];
    size_t n_tokens;
} vocab;

static void vocab_append_bytes(vocab *v, const uint8_t *p, size_t n) {
    if (v->n_bytes + n > v->cap_bytes) {
        size_t cap = v->cap_bytes ? v->cap_bytes * 2 : 1 << 16;
        while (cap < v->n_bytes + n) cap *= 2;
        uint8_t *grown = realloc(v->bytes, cap);
        if (!grown) fail("out of memory", 0);
        v->bytes = grown;
        v->cap_bytes = cap;
    }
    memcpy(v->bytes + v->n_bytes, p, n);
    v->n_bytes += n;
}

/* Closes the token whose bytes were appended since the previous one. */
static void vocab_end_token(vocab *v) {
    if (v->n_tokens == TOKENIZER_VOCAB_SIZE) fail("too many tokens", 0);
    if (v->n_bytes > UINT32_MAX) fail("vocabulary too large", 0);
    v->offsets[++v->n_tokens] = (uint32_t)v->n_bytes;
}

/* The rank-ordered single bytes and, for each data-gym character, the byte it stands for. */
typedef struct {
    uint8_t byte_of_rank[N_BYTE_TOKENS];
    int byte_of_char[N_DATA_GYM_CHARS]; /* -1 where the character stands for no byte */
} byte_alphabet;

static void build_byte_alphabet(byte_alphabet *a) {
    int rank = 0, n_unprintable = 0;
    for (int c = 0; c < N_DATA_GYM_CHARS; c++) a->byte_of_char[c] = -1;
    for (int b = 0; b < N_BYTE_TOKENS; b++) {
        if (!is_printable_byte(b)) continue;
        a->byte_of_rank[rank++] = (uint8_t)b;
        a->byte_of_char[b] = b;
    }
    for (int b = 0; b < N_BYTE_TOKENS; b++) {
        if (is_printable_byte(b)) continue;
        a->byte_of_rank[rank++] = (uint8_t)b;
        a->byte_of_char[N_BYTE_TOKENS + n_unprintable++] = b;
    }
}

/* Decodes one UTF-8 character of at most two bytes (all that bytes_to_unicode uses). */
static int next_char(const uint8_t **p, const uint8_t *end, long line) {
    const uint8_t *s = *p;
    if (s[0] < 0x80) {
        *p = s + 1;
        return s[0];
    }
    if ((s[0] & 0xE0) != 0xC0 || s[0] < 0xC2 || end - s < 2 || (s[1] & 0xC0) != 0x80)
        fail("a character outside bytes_to_unicode's alphabet", line);
    *p = s + 2;
    return ((s[0] & 0x1F) << 6) | (s[1] & 0x3F);
}

/* Appends the bytes that the data-gym string [p, end) stands for. */
static void append_data_gym(vocab *v, const byte_alphabet *a, const uint8_t *p,
                            const uint8_t *end, long line) {
    while (p < end) {
        int c = next_char(&p, end, line);
        if (c >= N_DATA_GYM_CHARS || a->byte_of_char[c] < 0)
            fail("a character outside bytes_to_unicode's alphabet", line);
        uint8_t b = (uint8_t)a->byte_of_char[c];
        vocab_append_bytes(v, &b, 1);
    }
}

/* Adds the token of one merge line "A B" (exactly two fields separated by one space). */
static void add_merge(vocab *v, const byte_alphabet *a, const uint8_t *line, size_t len,
                      long line_no) {
    const uint8_t *space = memchr(line, ' ', len);
    const uint8_t *end = line + len;
    if (!space || space == line || space + 1 == end || memchr(space + 1, ' ', end - space - 1))
        fail("a merge line is not two space-separated fields", line_no);
    append_data_gym(v, a, line, space, line_no);
    append_data_gym(v, a, space + 1, end, line_no);
    vocab_end_token(v);
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail("cannot open", 0);
    uint8_t *data = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            uint8_t *grown = realloc(data, cap);
            if (!grown) fail("out of memory", 0);
            data = grown;
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    if (ferror(f)) fail("read error", 0);
    fclose(f);
    *len = n;
    return data;
}

/*
 * Like tiktoken's contents.split("\n")[1:-1]: the first line is the "#version" header and the
 * text after the last newline is not a merge.
 */
static void add_merges(vocab *v, const byte_alphabet *a, const uint8_t *text, size_t len) {
    const uint8_t *p = text, *end = text + len;
    const uint8_t *newline = memchr(p, '\n', len);
    if (!newline || len < 8 || memcmp(text, "#version", 8) != 0)
        fail("does not start with a #version line", 1);
    p = newline + 1;
    for (long line_no = 2;; line_no++) {
        newline = memchr(p, '\n', (size_t)(end - p));
        if (!newline) break;
        add_merge(v, a, p, (size_t)(newline - p), line_no);
        p = newline + 1;
    }
    if (v->n_tokens != N_BYTE_TOKENS + N_MERGES) fail("not GPT-2's 50000 merges", 0);
}

static const vocab *sorting_vocab;

static int compare_token_bytes(const void *x, const void *y) {
    uint32_t i = *(const uint32_t *)x, j = *(const uint32_t *)y;
    const vocab *v = sorting_vocab;
    size_t len_i = v->offsets[i + 1] - v->offsets[i], len_j = v->offsets[j + 1] - v->offsets[j];
    int c = memcmp(v->bytes + v->offsets[i], v->bytes + v->offsets[j],
                   len_i < len_j ? len_i : len_j);
    if (c) return c;
    return (len_i > len_j) - (len_i < len_j);
}

/* tiktoken would silently let a repeated token overwrite an earlier rank; refuse instead. */
static void check_no_duplicates(const vocab *v) {
    static uint32_t order[TOKENIZER_VOCAB_SIZE];
    for (uint32_t i = 0; i < v->n_tokens; i++) order[i] = i;
    sorting_vocab = v;
    qsort(order, v->n_tokens, sizeof order[0], compare_token_bytes);
    for (size_t i = 1; i < v->n_tokens; i++)
        if (compare_token_bytes(&order[i - 1], &order[i]) == 0) fail("a token appears twice", 0);
}

static void write_source(const vocab *v, FILE *out) {
    fprintf(out, "/* Generated at build time by tokenizer/vocab_gen.c from weights/vocab.bpe. */\n"
                 "#include \"tokenizer/vocab_data.h\"\n\n"
                 "const uint32_t tokenizer_vocab_offsets[TOKENIZER_VOCAB_SIZE + 1] = {");
    for (size_t i = 0; i <= v->n_tokens; i++)
        fprintf(out, "%s%u,", i % 12 ? " " : "\n    ", (unsigned)v->offsets[i]);
    fprintf(out, "\n};\n\nconst uint8_t tokenizer_vocab_bytes[%zu] = {", v->n_bytes);
    for (size_t i = 0; i < v->n_bytes; i++)
        fprintf(out, "%s%u,", i % 20 ? " " : "\n    ", (unsigned)v->bytes[i]);
    fprintf(out, "\n};\n");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s VOCAB_BPE OUTPUT_C\n", argv[0]);
        return EXIT_FAILURE;
    }
    current_path = argv[1];
    static vocab v;
    byte_alphabet alphabet;
    build_byte_alphabet(&alphabet);
    for (int r = 0; r < N_BYTE_TOKENS; r++) {
        vocab_append_bytes(&v, &alphabet.byte_of_rank[r], 1);
        vocab_end_token(&v);
    }
    size_t len;
    uint8_t *text = read_file(current_path, &len);
    add_merges(&v, &alphabet, text, len);
    free(text);
    vocab_append_bytes(&v, (const uint8_t *)EOT_TEXT, strlen(EOT_TEXT));
    vocab_end_token(&v);
    check_no_duplicates(&v);

    /* Written under a temporary name and renamed, so a failed run leaves no half file. */
    current_path = argv[2];
    char tmp_path[4096];
    if (snprintf(tmp_path, sizeof tmp_path, "%s.tmp", argv[2]) >= (int)sizeof tmp_path)
        fail("output path too long", 0);
    FILE *out = fopen(tmp_path, "w");
    if (!out) fail("cannot create the output file", 0);
    write_source(&v, out);
    if (fclose(out) != 0 || rename(tmp_path, argv[2]) != 0) {
        remove(tmp_path);
        fail("cannot write the output file", 0);
    }
    free(v.bytes);
    return EXIT_SUCCESS;
}
