#define _POSIX_C_SOURCE 200809L
#include "tests/child_case.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void child_case_run(child_outcome *out, int (*body)(void), const char *shake_seed,
                    int timeout_seconds) {
    memset(out, 0, sizeof *out);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(EXIT_FAILURE);
    }
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        if (shake_seed) setenv("GPT2_EMU_SHAKE_SEED", shake_seed, 1);
        const int code = body();
        fflush(NULL);
        _exit(code);
    }
    close(fds[1]);
    size_t used = 0;
    const time_t deadline = time(NULL) + timeout_seconds;
    bool eof = false;
    while (!eof && time(NULL) < deadline) {
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0) continue;
        char chunk[4096];
        const ssize_t got = read(fds[0], chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) eof = true;
        for (ssize_t i = 0; i < got && used + 1 < sizeof out->err; i++) out->err[used++] = chunk[i];
    }
    close(fds[0]);
    if (!eof) kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    out->finished = eof;
    out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}
