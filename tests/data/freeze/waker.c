/* Stops itself, and a POSIX timer wakes it with SIGCONT every 20 ms (SIGCONT is handled,
 * so the kernel keeps re-arming the timer): a stopped state that SIGSTOP from the host
 * can't keep. Counts each wake. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static void on_cont(int s) { (void)s; }
int main(void) {
    signal(SIGCONT, on_cont);
    timer_t tid; struct sigevent ev; memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL; ev.sigev_signo = SIGCONT;
    if (timer_create(CLOCK_MONOTONIC, &ev, &tid)) return 1;
    struct itimerspec its = {{0, 20 * 1000000}, {0, 20 * 1000000}};
    timer_settime(tid, 0, &its, 0);
    for (;;) {
        raise(SIGSTOP);
        int fd = open("/home/agent/.wake.count", O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd >= 0) { write(fd, "x", 1); close(fd); }
    }
}
