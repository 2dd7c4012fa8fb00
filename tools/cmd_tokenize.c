/* gpt2 tokenize / detokenize: text to ids on one line, and ids back to the exact bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/commands.h"

typedef struct {
    const char *text, *path;
    bool allow_special, json;
} text_options;

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(const char *cmd, const char *help, bool takes_special, int argc,
                         char **argv, text_options *opt) {
    *opt = (text_options){0};
    cli_args args = {.cmd = cmd, .argc = argc, .argv = argv};
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            puts(help);
            return 2;
        } else if (cli_flag(&args, "-p")) opt->text = cli_value(&args);
        else if (cli_flag(&args, "-f")) opt->path = cli_value(&args);
        else if (takes_special && cli_flag(&args, "--special")) opt->allow_special = true;
        else if (takes_special && cli_flag(&args, "--json")) opt->json = true;
        else return cli_unknown(&args);
    }
    return args.failed ? 1 : 0;
}

static void print_ids(const token_ids *ids, bool json) {
    if (json) printf("{\"tokens\":%zu,\"ids\":[", ids->len);
    for (size_t i = 0; i < ids->len; i++) printf(i ? (json ? ",%d" : " %d") : "%d", ids->ids[i]);
    puts(json ? "]}" : "");
}

int cmd_tokenize(int argc, char **argv) {
    static const char help[] =
        "usage: gpt2 tokenize [-p TEXT | -f FILE] [--special] [--json]   (no -p/-f: stdin)\n"
        "  prints the GPT-2 token ids, space-separated on one line\n"
        "  --special          read <|endoftext|> as the special token 50256\n"
        "  --json             print {\"tokens\": N, \"ids\": [...]}";
    text_options opt;
    int rc = parse_options("tokenize", help, true, argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    size_t len = 0;
    char *text = cli_read_text("tokenize", opt.text, opt.path, &len);
    if (!text) return 1;
    tokenizer *tok = tokenizer_create();
    token_ids ids = {0};
    rc = tok && tokenizer_encode(tok, text, len, opt.allow_special, &ids) == 0
             ? 0 : cli_error("tokenize", "out of memory");
    if (rc == 0) print_ids(&ids, opt.json);
    token_ids_free(&ids);
    tokenizer_destroy(tok);
    free(text);
    return rc;
}

int cmd_detokenize(int argc, char **argv) {
    static const char help[] =
        "usage: gpt2 detokenize [-p \"IDS\" | -f FILE]   (no -p/-f: stdin)\n"
        "  reads token ids separated by spaces, commas or newlines and writes the exact bytes";
    text_options opt;
    int rc = parse_options("detokenize", help, false, argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    size_t len = 0;
    char *text = cli_read_text("detokenize", opt.text, opt.path, &len);
    if (!text) return 1;
    token_ids ids = {0};
    tokenizer *tok = tokenizer_create();
    char *bytes = NULL;
    size_t n_bytes = 0, bad_index = 0;
    rc = cli_parse_ids("detokenize", text, len, TOKENIZER_VOCAB_SIZE, &ids) ? 1 : 0;
    if (rc == 0 && (!tok || tokenizer_decode(tok, ids.ids, ids.len, &bytes, &n_bytes, &bad_index)))
        rc = cli_error("detokenize", "out of memory");
    if (rc == 0 && fwrite(bytes, 1, n_bytes, stdout) != n_bytes)
        rc = cli_error("detokenize", "write to stdout failed: %s", strerror(errno ? errno : EIO));
    free(bytes);
    tokenizer_destroy(tok);
    token_ids_free(&ids);
    free(text);
    return rc;
}
