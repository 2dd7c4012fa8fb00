/*
 * The default model lookup (tools/cli.c): a folder counts as a model only with a config.json in
 * it, so the empty weights/gpt2/ that an old failed download left behind does not hide the
 * "no model" help; -m and $GPT2_MODEL are taken as given (the loader then says what is wrong).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/check.h"
#include "tools/cli.h"

static char *join(const char *dir, const char *name) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);
    if (!path) exit(EXIT_FAILURE);
    snprintf(path, len, "%s/%s", dir, name);
    return path;
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    char *dir = join(tmp && *tmp ? tmp : "/tmp", "test_cli_model_dir_XXXXXX");
    if (!mkdtemp(dir)) return EXIT_FAILURE;
    char *config = join(dir, "config.json");

    CHECK(!cli_is_model_dir(dir), "an empty folder is a model");
    CHECK(!cli_is_model_dir(config), "a missing path is a model");
    CHECK(mkdir(config, 0700) == 0, "mkdir");
    CHECK(!cli_is_model_dir(dir), "a folder whose config.json is a folder is a model");
    CHECK(rmdir(config) == 0, "rmdir");
    FILE *f = fopen(config, "w");
    CHECK(f && fputs("{}", f) >= 0 && fclose(f) == 0, "cannot write %s", config);
    CHECK(cli_is_model_dir(dir), "a folder with config.json is not a model");
    CHECK(!cli_is_model_dir(config), "a file is a model");

    CHECK(strcmp(cli_model_dir("test", "/some/flag"), "/some/flag") == 0, "-m not taken as given");
    setenv("GPT2_MODEL", dir, 1);
    CHECK(strcmp(cli_model_dir("test", NULL), dir) == 0, "$GPT2_MODEL not taken as given");

    unlink(config);
    rmdir(dir);
    free(config);
    free(dir);
    return check_finish("test_cli_model_dir");
}
