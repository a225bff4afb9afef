/* The fake sandbox's task-program caller: a process of its own, so the task server reads
 * the caller's environment and tracer from /proc (SO_PEERCRED) as it does for a real one.
 * It connects to argv[1] and copies stdin to the socket and the socket to stdout; the
 * harness speaks the protocol of pytest_shutdown/channel.py through it. */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int copy(int from, int to) {
    char buf[65536];
    ssize_t r = read(from, buf, sizeof buf);
    for (ssize_t off = 0; r > 0 && off < r;) {
        ssize_t w = write(to, buf + off, (size_t)(r - off));
        if (w <= 0) return -1;
        off += w;
    }
    return (int)r;
}

int main(int argc, char **argv) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (argc != 2 || strlen(argv[1]) >= sizeof addr.sun_path) return 2;
    strcpy(addr.sun_path, argv[1]);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) return 1;
    struct pollfd p[2] = {{0, POLLIN, 0}, {fd, POLLIN, 0}};
    for (;;) {
        if (poll(p, 2, -1) < 0) return 1;
        if (p[1].revents && copy(fd, 1) <= 0) return 0; /* the server ended the call */
        if (p[0].revents && copy(0, fd) <= 0) p[0].fd = -1;
    }
}
