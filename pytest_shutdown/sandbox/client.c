/* The task program inside the sandbox: a thin client of the harness's task server.
 * Compiled static so it runs in any image. See pytest_shutdown/channel.py for the protocol. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SOCK "/run/pytest-shutdown/ctl.sock"

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

int main(void) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char line[4096];
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    strncpy(addr.sun_path, SOCK, sizeof addr.sun_path - 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "error: the task server is not reachable\n");
        return 1;
    }
    if (write(fd, "next\n", 5) != 5 || readline(fd, line, sizeof line) == 0) return 1;
    if (strncmp(line, "shutdown ", 9) == 0) {
        int status = 0;
        pid_t pid;
        line[strcspn(line, "\n")] = 0;
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", line + 9, (char *)NULL);
            _exit(127);
        }
        waitpid(pid, &status, 0);
        dprintf(fd, "survived %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        if (readline(fd, line, sizeof line) == 0) return 1;
    }
    if (strcmp(line, "print\n") != 0) return 1;
    copy_rest(fd);
    return 0;
}
