/* Forks and exits without pause, forever: no copy lives long enough for a read of
 * /proc to find it, so only a cgroup freezer stops the chain. Counts on as it runs; a
 * fork refused (the pids limit, before exited copies are reaped) is tried again. */
#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>
int main(void) {
    for (unsigned long n = 1;; n++) {
        if (n % 100 == 0) {
            int fd = open("/home/agent/.chain.count", O_WRONLY | O_APPEND | O_CREAT, 0644);
            if (fd >= 0) { write(fd, "x", 1); close(fd); }
        }
        pid_t child = fork();
        if (child > 0) _exit(0);
    }
}
