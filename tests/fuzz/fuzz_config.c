/*
 * libFuzzer harness for the JSON parser and config.json validation. Parsed documents are walked
 * to check the DOM's promises (terminated strings, sorted key index, lookups that find every
 * member); any broken promise aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "model/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value(const json_value *v) {
    switch (v->type) {
    case JSON_STRING:
        if (v->as.string.chars[v->as.string.len] != '\0') abort();
        break;
    case JSON_NUMBER:
        if (v->as.number.is_int && (double)v->as.number.int_value != v->as.number.value) abort();
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < v->as.array.count; i++) check_value(json_array_at(v, i));
        if (json_array_at(v, v->as.array.count) != NULL) abort();
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < v->as.object.count; i++) {
            const json_member *m = &v->as.object.members[i];
            if (m->key[m->key_len] != '\0') abort();
            /* Keys with an embedded NUL cannot be looked up by C string. */
            if (strlen(m->key) == m->key_len && json_object_get(v, m->key) != &m->value) abort();
            if (i > 0) {
                const json_member *a = v->as.object.by_key[i - 1], *b = v->as.object.by_key[i];
                size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
                int c = memcmp(a->key, b->key, n);
                if (c > 0 || (c == 0 && a->key_len >= b->key_len)) abort();
            }
            check_value(&m->value);
        }
        break;
    case JSON_NULL:
    case JSON_BOOL: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256] = "";
    json_document *doc = json_parse((const char *)data, size, err, sizeof err);
    if (!doc) {
        if (err[0] == '\0' || strchr(err, '\n')) abort();
    } else {
        check_value(json_root(doc));
        json_free(doc);
    }
    gpt2_config config;
    err[0] = '\0';
    if (gpt2_config_parse(&config, (const char *)data, size, err, sizeof err) < 0) {
        if (err[0] == '\0' || strchr(err, '\n')) abort();
    } else if (config.n_embd != config.n_head * 64 || config.n_layer <= 0 ||
               config.n_positions <= 0 || config.vocab_size <= 0 || !(config.layer_norm_eps > 0)) {
        abort();
    }
    return 0;
}
