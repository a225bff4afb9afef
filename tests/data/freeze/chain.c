/* Forks and exits without pause, forever: no copy lives long enough for a read of
 * /proc to find it, so only a cgroup freezer stops the chain. Counts on as it runs. */
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    for (unsigned long n = 1;; n++) {
        if (n % 2000 == 0) {
            int fd = open("/home/agent/.chain.count", O_WRONLY | O_APPEND | O_CREAT, 0644);
            if (fd >= 0) { write(fd, "x", 1); close(fd); }
        }
        if (fork()) _exit(0);
    }
}
