/* The task program inside the sandbox: a thin client of the harness's task server.
 * Compiled static so it runs in any image. See pytest_shutdown/channel.py for the protocol. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SOCK "/run/pytest-shutdown/ctl.sock"
#define MAX_ARGV 65536

extern char **environ;

static int readline(int fd, char *buf, size_t size) {
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0) break;
        if (buf[n++] == '\n') break;
    }
    buf[n] = 0;
    return (int)n;
}

static void copy_rest(int fd) {
    char buf[4096];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)r, stdout);
    fflush(stdout);
}

static int write_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w <= 0) return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* "next <n>\n", then the arguments, each ended by a NUL, in n bytes. */
static int send_argv(int fd, int argc, char **argv) {
    size_t total = 0;
    for (int i = 1; i < argc; i++) total += strlen(argv[i]) + 1;
    if (total > MAX_ARGV) {
        fprintf(stderr, "error: arguments longer than %d bytes\n", MAX_ARGV);
        return -1;
    }
    if (dprintf(fd, "next %zu\n", total) < 0) return -1;
    for (int i = 1; i < argc; i++)
        if (write_all(fd, argv[i], strlen(argv[i]) + 1) != 0) return -1;
    return 0;
}

int main(int argc, char **argv) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char line[4096];
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    strncpy(addr.sun_path, SOCK, sizeof addr.sun_path - 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "error: the task server is not reachable\n");
        return 1;
    }
    if (send_argv(fd, argc, argv) != 0 || readline(fd, line, sizeof line) == 0) return 1;
    if (strncmp(line, "shutdown ", 9) == 0) {
        int status = 0;
        pid_t pid;
        line[strcspn(line, "\n")] = 0;
        fflush(stdout);
        pid = fork();
        if (pid == 0) { /* the mechanism by absolute path, the caller's environment, no shell */
            char *args[] = {line + 9, NULL};
            execve(line + 9, args, environ);
            _exit(errno == ENOENT ? 127 : 126);
        }
        waitpid(pid, &status, 0);
        dprintf(fd, "survived %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        if (readline(fd, line, sizeof line) == 0) return 1;
    }
    if (strcmp(line, "print\n") != 0) return 1;
    copy_rest(fd);
    return 0;
}
