/* gpt2: the command line of the gpt2-cuda engine. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tools/commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"generate", cmd_generate, "stream text from a prompt"},
    {"ppl", cmd_ppl, "sliding-window perplexity of a text file"},
    {"logits", cmd_logits, "write the float32 logits of every position to a file"},
    {"kvcompare", cmd_kvcompare, "accuracy of a KV cache format: KL, top-1, logit error"},
    {"tokenize", cmd_tokenize, "print the GPT-2 token ids of some text"},
    {"detokenize", cmd_detokenize, "write the exact bytes of some token ids"},
    {"plot", cmd_plot, "draw PNG charts from a saved result JSON"},
    {"analyze", cmd_analyze, "weight analyses: K/V cosine similarity between layers, charted"},
    {"bench", cmd_bench, "benchmarks: e2e (decode speed against batch, TTFT), ops (kernels side by side)"},
};

/*
 * A command's output is only complete once stdout is flushed without error: a full disk or
 * `> /dev/full` must fail the command instead of exiting 0 with the output lost. Returns the
 * command's exit code, or 1 after printing the write error. cmd is NULL for gpt2's own help.
 */
static int finish_stdout(const char *cmd, int rc) {
    if (rc != 0) { /* the command has printed its error, a failed write to stdout included */
        fflush(stdout);
        return rc;
    }
    errno = 0;
    bool flushed = fflush(stdout) == 0;
    if (flushed && !ferror(stdout)) return rc;
    fprintf(stderr, "gpt2%s%s: write to stdout failed: %s\n", cmd ? " " : "", cmd ? cmd : "",
            strerror(errno ? errno : EIO));
    return 1;
}

static void print_usage(FILE *out) {
    fprintf(out, "usage: gpt2 <command> [options]   (gpt2 <command> --help for its options)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "gpt2: missing command (see gpt2 --help)\n");
        return 1;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return finish_stdout(NULL, 0);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return finish_stdout(commands[i].name, commands[i].run(argc - 2, argv + 2));
    fprintf(stderr, "gpt2: unknown command '%s' (see gpt2 --help)\n", argv[1]);
    return 1;
}
