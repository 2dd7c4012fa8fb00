/*
 * Whole corpus files against tiktoken: runs node on tests/tiktoken/encode.mjs for each file,
 * reads tiktoken's ids from its output, and compares them one by one with ours. Skipped (exit
 * 77) when node, the tiktoken package (npm ci --prefix tests/tiktoken) or the corpus is absent.
 *
 * Usage: test_tokenizer_corpus TIKTOKEN_DIR CORPUS_FILE...
 */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

#define MAX_PATH 4096

static bool node_runs(void) { return system("node --version > /dev/null 2>&1") == 0; }

/* The text around byte offset at, for a mismatch report. */
static void print_context(const char *text, size_t len, size_t at) {
    size_t from = at > 40 ? at - 40 : 0, to = at + 40 < len ? at + 40 : len;
    fprintf(stderr, "  around byte %zu: \"", at);
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\') fputc(c, stderr);
        else fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "\"\n");
}

/* Compares our ids with the ones tiktoken prints, one per line, on the pipe. */
static void compare_ids(const tokenizer *tok, const char *name, const char *text, size_t len,
                        const token_ids *ours, FILE *theirs) {
    size_t i = 0, offset = 0;
    long id;
    while (fscanf(theirs, "%ld", &id) == 1) {
        if (i >= ours->len || ours->ids[i] != id) {
            CHECK(false, "%s: id %zu is %ld in tiktoken, %d in ours", name, i, id,
                  i < ours->len ? (int)ours->ids[i] : -1);
            print_context(text, len, offset);
            return;
        }
        size_t n;
        tokenizer_token_bytes(tok, ours->ids[i++], &n);
        offset += n;
    }
    CHECK(i == ours->len, "%s: tiktoken gave %zu ids, ours %zu", name, i, ours->len);
    if (i == ours->len) printf("%s: %zu tokens (%zu bytes) match tiktoken\n", name, i, len);
}

/* Returns false when the file is absent. */
static bool check_file(const tokenizer *tok, const char *encode_script, const char *path) {
    size_t len;
    char *text = read_whole_file(path, &len);
    if (!text) return false;
    token_ids ours = {0};
    CHECK(tokenizer_encode(tok, text, len, false, &ours) == 0, "%s: encode failed", path);

    /* The paths come from the build; single quotes keep the shell off them. */
    char cmd[3 * MAX_PATH];
    bool quotable = !strchr(encode_script, '\'') && !strchr(path, '\'') &&
                    snprintf(cmd, sizeof cmd, "node '%s' '%s'", encode_script, path) <
                        (int)sizeof cmd;
    CHECK(quotable, "%s: path too long or holding a quote", path);
    FILE *theirs = quotable ? popen(cmd, "r") : NULL;
    CHECK(!quotable || theirs, "cannot run %s", cmd);
    if (theirs) {
        compare_ids(tok, path, text, len, &ours, theirs);
        while (fgetc(theirs) != EOF) continue; /* let node finish writing after a mismatch */
        int status = pclose(theirs);
        CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed", cmd);
    }
    token_ids_free(&ours);
    free(text);
    return true;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TIKTOKEN_DIR CORPUS_FILE...\n", argv[0]);
        return EXIT_FAILURE;
    }
    char encode_script[MAX_PATH], package[MAX_PATH];
    snprintf(encode_script, sizeof encode_script, "%s/encode.mjs", argv[1]);
    snprintf(package, sizeof package, "%s/node_modules/tiktoken/package.json", argv[1]);
    if (!node_runs() || access(package, R_OK) != 0) {
        printf("skipped: needs node and %s (npm ci --prefix tests/tiktoken)\n", package);
        return SKIP_EXIT_CODE;
    }
    tokenizer *tok = tokenizer_create();
    if (!tok) {
        fprintf(stderr, "tokenizer_create failed\n");
        return EXIT_FAILURE;
    }
    int n_checked = 0;
    for (int i = 2; i < argc; i++) {
        if (check_file(tok, encode_script, argv[i])) n_checked++;
        else printf("%s: absent, not compared\n", argv[i]);
    }
    tokenizer_destroy(tok);
    if (n_checked == 0) {
        printf("skipped: no corpus file present\n");
        return SKIP_EXIT_CODE;
    }
    return check_finish("test_tokenizer_corpus");
}
