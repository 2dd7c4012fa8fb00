/*
 * Runs a libFuzzer harness over files and directories of inputs without libFuzzer, so that the
 * seed corpus (and any crash reproducer added to it) is replayed by ctest with the normal
 * compiler. usage: replay <file-or-dir>...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds one file to the harness in an exactly sized buffer. Returns 0, or -1 if unreadable. */
static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = -1;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            size = (size_t)end;
            data = malloc(size ? size : 1);
            if (data && fread(data, 1, size, f) == size) rc = 0;
        }
    }
    fclose(f);
    if (rc == 0) LLVMFuzzerTestOneInput(data, size);
    free(data);
    return rc;
}

/* Replays path, or every regular file directly inside it. Returns the count, or -1. */
static int replay_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) return replay_file(path) == 0 ? 1 : -1;
    DIR *dir = opendir(path);
    if (!dir) return -1;
    int count = 0;
    struct dirent *entry;
    while (count >= 0 && (entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        size_t len = strlen(path) + strlen(entry->d_name) + 2;
        char *file = malloc(len);
        if (!file) {
            count = -1;
            break;
        }
        snprintf(file, len, "%s/%s", path, entry->d_name);
        if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
            count = replay_file(file) == 0 ? count + 1 : -1;
        free(file);
    }
    closedir(dir);
    return count;
}

int main(int argc, char **argv) {
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int n = replay_path(argv[i]);
        if (n < 0) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return EXIT_FAILURE;
        }
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no inputs\n");
        return EXIT_FAILURE;
    }
    printf("replay: %d inputs ran cleanly\n", total);
    return EXIT_SUCCESS;
}
