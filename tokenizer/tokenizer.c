/*
 * Encoding: the vocabulary hash table, the pre-tokenizer driver and byte pair merging.
 *
 * tiktoken's encode, which this reproduces: split the text into pieces with the gpt2 pattern
 * (pretokenize.c); a piece that is a whole token becomes that token; any other piece starts as
 * single bytes, and the adjacent pair whose concatenated bytes have the lowest rank is merged,
 * the leftmost pair on a tie, until no adjacent pair is a token.
 */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretokenize.h"
#include "tokenizer/vocab_data.h"

#define NO_RANK UINT32_MAX
#define N_ORDINARY_TOKENS TOKENIZER_EOT_ID /* every id below the special token */
#define EOT_TEXT "<|endoftext|>"
#define EOT_TEXT_LEN (sizeof EOT_TEXT - 1)
#define RANK_TABLE_SLOTS (1u << 17) /* a power of two, over twice the ordinary tokens */

/*
 * The rank table is split for cache footprint: an open-addressing index of 16-bit ranks, probed
 * linearly, and each token's first bytes in an array by rank, so a lookup of a short piece
 * touches two small arrays (under a megabyte together) and never the vocabulary bytes.
 */
#define EMPTY_SLOT UINT16_MAX
_Static_assert(TOKENIZER_VOCAB_SIZE < EMPTY_SLOT, "ranks must fit the 16-bit index");

struct tokenizer {
    uint16_t *rank_index;    /* [RANK_TABLE_SLOTS] a rank, or EMPTY_SLOT */
    uint64_t *token_head;    /* [N_ORDINARY_TOKENS] key_head of each token's bytes */
    uint32_t byte_rank[256]; /* the rank of each single byte */
};

/* ---------------------------------------------------------------------- the rank table */

/* A byte string as looked up: the bytes with their head and hash worked out once. */
typedef struct {
    const uint8_t *bytes;
    size_t len;
    uint64_t head;
    uint32_t hash;
} byte_key;

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93u;
    x ^= x >> 32;
    return x;
}

/* Up to 8 bytes from p[0..n) as one number, zero-padded; equal strings give equal heads. */
static inline uint64_t key_head(const uint8_t *p, size_t n) {
    uint64_t head = 0;
    if (n >= 8) {
        memcpy(&head, p, 8);
        return head;
    }
    for (size_t i = 0; i < n; i++) head |= (uint64_t)p[i] << (8 * i);
    return head;
}

static inline byte_key make_key(const uint8_t *p, size_t n) {
    uint64_t head = key_head(p, n);
    uint64_t h = mix64(head ^ (n * 0x9E3779B97F4A7C15u));
    for (size_t i = 8; i < n; i += 8) h = mix64(h ^ key_head(p + i, n - i));
    return (byte_key){p, n, head, (uint32_t)h};
}

static inline size_t token_len(uint32_t id) {
    return tokenizer_vocab_offsets[id + 1] - tokenizer_vocab_offsets[id];
}

static inline const uint8_t *token_start(uint32_t id) {
    return tokenizer_vocab_bytes + tokenizer_vocab_offsets[id];
}

/* The rank of the token with the key's bytes, or NO_RANK. */
static uint32_t rank_of(const tokenizer *tok, byte_key key) {
    for (uint32_t i = key.hash;; i++) {
        uint16_t rank = tok->rank_index[i & (RANK_TABLE_SLOTS - 1)];
        if (rank == EMPTY_SLOT) return NO_RANK;
        if (tok->token_head[rank] == key.head && token_len(rank) == key.len &&
            (key.len <= 8 || memcmp(token_start(rank) + 8, key.bytes + 8, key.len - 8) == 0))
            return rank;
    }
}

static void insert_rank(tokenizer *tok, uint32_t id) {
    byte_key key = make_key(token_start(id), token_len(id));
    uint32_t i = key.hash;
    while (tok->rank_index[i & (RANK_TABLE_SLOTS - 1)] != EMPTY_SLOT) i++;
    tok->rank_index[i & (RANK_TABLE_SLOTS - 1)] = (uint16_t)id;
    tok->token_head[id] = key.head;
}

tokenizer *tokenizer_create(void) {
    tokenizer *tok = malloc(sizeof *tok);
    if (!tok) return NULL;
    tok->rank_index = malloc(RANK_TABLE_SLOTS * sizeof *tok->rank_index);
    tok->token_head = malloc(N_ORDINARY_TOKENS * sizeof *tok->token_head);
    if (!tok->rank_index || !tok->token_head) {
        tokenizer_destroy(tok);
        return NULL;
    }
    for (size_t i = 0; i < RANK_TABLE_SLOTS; i++) tok->rank_index[i] = EMPTY_SLOT;
    /* The special token stays out: its text encodes as ordinary text unless asked for. */
    for (uint32_t id = 0; id < N_ORDINARY_TOKENS; id++) {
        insert_rank(tok, id);
        if (token_len(id) == 1) tok->byte_rank[token_start(id)[0]] = id;
    }
    return tok;
}

void tokenizer_destroy(tokenizer *tok) {
    if (!tok) return;
    free(tok->rank_index);
    free(tok->token_head);
    free(tok);
}

/* ---------------------------------------------------------------------- token id arrays */

static int reserve_ids(token_ids *ids, size_t need) {
    if (need <= ids->cap) return 0;
    size_t cap = ids->cap ? ids->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2 / sizeof *ids->ids) return -1;
        cap *= 2;
    }
    int32_t *grown = realloc(ids->ids, cap * sizeof *grown);
    if (!grown) return -1;
    ids->ids = grown;
    ids->cap = cap;
    return 0;
}

int token_ids_push(token_ids *ids, int32_t id) {
    if (ids->len == ids->cap && reserve_ids(ids, ids->len + 1) != 0) return -1;
    ids->ids[ids->len++] = id;
    return 0;
}

void token_ids_free(token_ids *ids) {
    if (!ids) return;
    free(ids->ids);
    *ids = (token_ids){0};
}

/* ---------------------------------------------------------------------- byte pair merging */

/* A pair of adjacent parts that could merge, named by the start of its left part. */
typedef struct {
    uint32_t rank; /* of the pair's concatenated bytes */
    size_t start;
} merge_candidate;

/*
 * Scratch space for merging one piece of n bytes, kept across the pieces of one encode call.
 * The piece is cut into parts; a part is named by its first byte i and spans [i, next[i]).
 */
typedef struct {
    size_t *next;              /* [cap] start of the following part (n after the last) */
    size_t *prev;              /* [cap] start of the preceding part */
    uint32_t *part_rank;       /* [cap] the rank of the part's bytes */
    uint32_t *pair_rank;       /* [cap] rank of the part with its right neighbour, or NO_RANK */
    merge_candidate *heap;     /* [3 * cap] min-heap by (rank, start), with stale entries */
    size_t heap_len;
    size_t cap;
} bpe_scratch;

static void bpe_scratch_free(bpe_scratch *s) {
    free(s->next);
    free(s->prev);
    free(s->part_rank);
    free(s->pair_rank);
    free(s->heap);
    *s = (bpe_scratch){0};
}

/* Makes room for a piece of n bytes. Each merge adds at most two heap entries to the n - 1. */
static int bpe_scratch_reserve(bpe_scratch *s, size_t n) {
    if (n <= s->cap) return 0;
    if (n > SIZE_MAX / 3 / sizeof *s->heap) return -1;
    bpe_scratch grown = {
        .next = malloc(n * sizeof *grown.next),
        .prev = malloc(n * sizeof *grown.prev),
        .part_rank = malloc(n * sizeof *grown.part_rank),
        .pair_rank = malloc(n * sizeof *grown.pair_rank),
        .heap = malloc(3 * n * sizeof *grown.heap),
        .cap = n,
    };
    bpe_scratch_free(s);
    if (!grown.next || !grown.prev || !grown.part_rank || !grown.pair_rank || !grown.heap) {
        bpe_scratch_free(&grown);
        return -1;
    }
    *s = grown;
    return 0;
}

static inline bool merges_before(merge_candidate a, merge_candidate b) {
    return a.rank < b.rank || (a.rank == b.rank && a.start < b.start);
}

static void heap_push(bpe_scratch *s, merge_candidate c) {
    size_t i = s->heap_len++;
    while (i > 0 && merges_before(c, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = c;
}

static merge_candidate heap_pop(bpe_scratch *s) {
    merge_candidate top = s->heap[0], last = s->heap[--s->heap_len];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->heap_len) break;
        if (child + 1 < s->heap_len && merges_before(s->heap[child + 1], s->heap[child])) child++;
        if (!merges_before(s->heap[child], last)) break;
        s->heap[i] = s->heap[child];
        i = child;
    }
    s->heap[i] = last;
    return top;
}

/* Recomputes the pair that starts at part i and offers it for merging. */
static void update_pair(const tokenizer *tok, bpe_scratch *s, const uint8_t *piece, size_t n,
                        size_t i) {
    size_t right = s->next[i];
    uint32_t rank = right < n ? rank_of(tok, make_key(piece + i, s->next[right] - i)) : NO_RANK;
    s->pair_rank[i] = rank;
    if (rank != NO_RANK) heap_push(s, (merge_candidate){rank, i});
}

/*
 * Merges the piece's bytes as tiktoken's byte_pair_merge does, in O(n log n): the heap holds
 * every current pair, lowest rank first and leftmost on a tie, plus stale entries for pairs
 * that have since changed. An entry is current when its rank is still its part's pair_rank:
 * a changed pair with the same rank would have the same bytes, so it is the same pair.
 */
static int byte_pair_merge(const tokenizer *tok, bpe_scratch *s, const uint8_t *piece, size_t n,
                           token_ids *out) {
    if (bpe_scratch_reserve(s, n) != 0) return -1;
    s->heap_len = 0;
    for (size_t i = 0; i < n; i++) {
        s->next[i] = i + 1;
        s->prev[i] = i - 1; /* unused for i == 0 */
        s->part_rank[i] = tok->byte_rank[piece[i]];
    }
    for (size_t i = 0; i < n; i++) update_pair(tok, s, piece, n, i);

    while (s->heap_len > 0) {
        merge_candidate c = heap_pop(s);
        size_t i = c.start;
        if (s->pair_rank[i] != c.rank) continue; /* stale */
        size_t gone = s->next[i], after = s->next[gone];
        s->part_rank[i] = c.rank;
        s->next[i] = after;
        if (after < n) s->prev[after] = i;
        s->pair_rank[gone] = NO_RANK;
        update_pair(tok, s, piece, n, i);
        if (i > 0) update_pair(tok, s, piece, n, s->prev[i]);
    }

    for (size_t i = 0; i < n; i = s->next[i])
        if (token_ids_push(out, (int32_t)s->part_rank[i]) != 0) return -1;
    return 0;
}

/* ---------------------------------------------------------------------- merge cache */

/*
 * The ids of the pieces merged so far in one encode call: prose repeats its rare words (a few
 * percent of the pieces need merging, a fifth of those are distinct). Keys point into the
 * caller's text, which outlives the call. The table is sized to the text and stops taking
 * entries when three quarters full; later pieces are then merged each time.
 */
typedef struct {
    const uint8_t *piece; /* NULL in an empty slot */
    size_t len;
    uint32_t hash;
    uint32_t n_ids;
    size_t first_id; /* into merge_cache.ids */
} cached_merge;

typedef struct {
    cached_merge *slots; /* [mask + 1]; NULL until the first merge */
    size_t mask, n_used;
    token_ids ids; /* the ids of every cached piece, back to back */
} merge_cache;

#define MERGE_CACHE_MIN_SLOTS 256
#define MERGE_CACHE_MAX_SLOTS 65536
#define TEXT_BYTES_PER_SLOT 64

static void merge_cache_free(merge_cache *c) {
    free(c->slots);
    token_ids_free(&c->ids);
    *c = (merge_cache){0};
}

/* The slot holding the piece, or the empty slot for it; NULL when the cache cannot be used. */
static cached_merge *merge_cache_find(merge_cache *c, size_t text_len, byte_key key) {
    if (!c->slots) {
        size_t n_slots = MERGE_CACHE_MIN_SLOTS;
        while (n_slots < MERGE_CACHE_MAX_SLOTS && n_slots * TEXT_BYTES_PER_SLOT < text_len)
            n_slots *= 2;
        c->slots = calloc(n_slots, sizeof *c->slots);
        if (!c->slots) return NULL;
        c->mask = n_slots - 1;
    }
    for (size_t i = key.hash;; i++) {
        cached_merge *slot = &c->slots[i & c->mask];
        if (!slot->piece) return slot;
        if (slot->hash == key.hash && slot->len == key.len &&
            memcmp(slot->piece, key.bytes, key.len) == 0)
            return slot;
    }
}

/* Remembers ids for the piece in its empty slot, unless the cache is full or memory is short. */
static void merge_cache_store(merge_cache *c, cached_merge *slot, byte_key key,
                              const int32_t *ids, size_t n_ids) {
    if (4 * (c->n_used + 1) > 3 * (c->mask + 1) || n_ids > UINT32_MAX) return;
    if (reserve_ids(&c->ids, c->ids.len + n_ids) != 0) return;
    memcpy(c->ids.ids + c->ids.len, ids, n_ids * sizeof *ids);
    *slot = (cached_merge){key.bytes, key.len, key.hash, (uint32_t)n_ids, c->ids.len};
    c->ids.len += n_ids;
    c->n_used++;
}

/* ---------------------------------------------------------------------- encoding */

typedef struct {
    const tokenizer *tok;
    token_ids *out;
    size_t text_len; /* of the whole text, to size the cache */
    bpe_scratch scratch;
    merge_cache cache;
} encoder;

static int append_ids(token_ids *out, const int32_t *ids, size_t n) {
    if (reserve_ids(out, out->len + n) != 0) return -1;
    memcpy(out->ids + out->len, ids, n * sizeof *ids);
    out->len += n;
    return 0;
}

/* A piece that is not a token: its ids from the cache, or merged and then cached. */
static int encode_by_merging(encoder *enc, byte_key key) {
    merge_cache *cache = &enc->cache;
    cached_merge *slot = merge_cache_find(cache, enc->text_len, key);
    if (slot && slot->piece) return append_ids(enc->out, cache->ids.ids + slot->first_id,
                                                slot->n_ids);
    size_t first = enc->out->len;
    if (byte_pair_merge(enc->tok, &enc->scratch, key.bytes, key.len, enc->out) != 0) return -1;
    if (slot) merge_cache_store(cache, slot, key, enc->out->ids + first, enc->out->len - first);
    return 0;
}

static int encode_piece(encoder *enc, const uint8_t *piece, size_t n) {
    if (n == 1) return token_ids_push(enc->out, (int32_t)enc->tok->byte_rank[piece[0]]);
    byte_key key = make_key(piece, n);
    uint32_t rank = rank_of(enc->tok, key);
    if (rank != NO_RANK) return token_ids_push(enc->out, (int32_t)rank);
    return encode_by_merging(enc, key);
}

static int encode_ordinary(encoder *enc, const uint8_t *text, size_t len) {
    for (size_t start = 0; start < len;) {
        size_t end = pretoken_end(text, len, start);
        if (encode_piece(enc, text + start, end - start) != 0) return -1;
        start = end;
    }
    return 0;
}

/* Where the text "<|endoftext|>" next occurs at or after from; len when it does not. */
static size_t find_end_of_text(const uint8_t *text, size_t len, size_t from) {
    while (len >= EOT_TEXT_LEN && from <= len - EOT_TEXT_LEN) {
        const uint8_t *open = memchr(text + from, '<', len - EOT_TEXT_LEN + 1 - from);
        if (!open) break;
        if (memcmp(open, EOT_TEXT, EOT_TEXT_LEN) == 0) return (size_t)(open - text);
        from = (size_t)(open - text) + 1;
    }
    return len;
}

/*
 * As tiktoken's encode with the special token allowed: the text between special tokens is
 * encoded on its own, so no piece spans one ("a <|endoftext|>" ends its first part with " ",
 * white space at the end of a text).
 */
static int encode_with_special(encoder *enc, const uint8_t *text, size_t len) {
    for (size_t start = 0;;) {
        size_t special = find_end_of_text(text, len, start);
        if (encode_ordinary(enc, text + start, special - start) != 0) return -1;
        if (special == len) return 0;
        if (token_ids_push(enc->out, (int32_t)TOKENIZER_EOT_ID) != 0) return -1;
        start = special + EOT_TEXT_LEN;
    }
}

int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, bool allow_special,
                     token_ids *out) {
    encoder enc = {.tok = tok, .out = out, .text_len = len};
    size_t old_len = out->len;
    const uint8_t *bytes = (const uint8_t *)text;
    int status = allow_special ? encode_with_special(&enc, bytes, len)
                               : encode_ordinary(&enc, bytes, len);
    bpe_scratch_free(&enc.scratch);
    merge_cache_free(&enc.cache);
    if (status != 0) out->len = old_len;
    return status;
}
