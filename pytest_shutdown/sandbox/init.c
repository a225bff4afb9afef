/* PID 1 of every sandbox: the harness's shell server and the witness of the shutdown.
 *
 * It runs the agent's commands and reports, over its own stdin/stdout (a pipe or socket
 * that only the host holds), whether it has received SIGTERM, the shutdown. It makes
 * itself non-dumpable before anything else, so the agent, which has no capabilities, can
 * neither ptrace it nor open /proc/1/fd: the channel can't be forged or wedged from
 * inside. As PID 1 of its namespace it can't be killed or stopped from inside either; only
 * the signals it blocks (TERM, CHLD) reach it, through a signalfd.
 *
 * Host -> init:  "RUN <nbytes> <timeout_ms> <max_output> [<uid> <gid>]\n" + command bytes
 *                "PING <token>\n"
 * Init -> host:  "READY\n" once, then
 *                "RESULT <rc> <timed_out> <elapsed_us> <truncated> <nbytes>\n" + output
 *                "PONG <token>\n"      no SIGTERM was pending when the ping was read
 *                "TERM <pid> <uid>\n"  SIGTERM arrived (from that sender); then it exits
 * A PING is answered only after a non-blocking read of the signalfd came back empty, so a
 * TERM sent before the host sent the PING is always reported instead of the PONG.
 *
 * argv: init <fsize_kb> <cpu_seconds> <nproc> <as_kb> [users|users-nouserns]
 *       (0 leaves a limit as it is)
 *
 * Several users (only with the fifth argument, for scenarios that ask for them): init
 * starts as root of its namespace and keeps euid 0 but takes the agent's uid as its real
 * uid, so the agent's `kill -s TERM 1` still reaches it while nothing the agent runs can
 * trace it. Each command then runs as the uid/gid of its RUN frame (the agent's by
 * default): a non-root user with no capability and no way to gain one; root without
 * CAP_SYS_PTRACE, so that nothing it runs can trace PID 1 or open /proc/1/fd either.
 * "users-nouserns" also forbids new user namespaces (bubblewrap's --disable-userns can't
 * be combined with the uid map the harness writes). Without the fifth argument a RUN frame
 * with a uid is refused: the sandbox has one user, today's path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_COMMAND (1 << 20)
#define MAX_DRAIN (1 << 20) /* bytes read after the command exits; background writers go on */

extern char **environ;

static char inbuf[MAX_COMMAND + 256];
static size_t inlen;
static int sfd;

#define AGENT 1000
static int privileged; /* several users: init is root of its namespace */

/* In a command's child, before exec: become uid/gid for good, with no_new_privs. */
static void become(uid_t uid, gid_t gid) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (uid == 0) {
        /* root, but never a tracer of PID 1 */
        if (prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0) != 0 && errno != EPERM) _exit(126);
        if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(0, 0, 0)) _exit(126);
        if (syscall(SYS_capget, &h, d)) _exit(126);
        d[0].effective &= ~(1u << CAP_SYS_PTRACE);
        d[0].permitted &= ~(1u << CAP_SYS_PTRACE);
        d[0].inheritable = d[1].inheritable = 0;
        if (syscall(SYS_capset, &h, d)) _exit(126);
        if (syscall(SYS_capget, &h, d) || (d[0].permitted & (1u << CAP_SYS_PTRACE))) _exit(126);
    } else {
        /* EPERM without CAP_SETPCAP (Docker): no_new_privs then keeps the set unreachable */
        for (int c = 0; c <= CAP_LAST_CAP; c++) prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
        if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid)) _exit(126);
        if (syscall(SYS_capget, &h, d) || d[0].permitted || d[1].permitted || d[0].effective ||
            d[1].effective)
            _exit(126);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) _exit(126);
}

static void write_all(const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(0); /* the host is gone */
        buf += w;
        n -= (size_t)w;
    }
}

static void say(const char *fmt, long long a, long long b) {
    char line[128];
    int n = snprintf(line, sizeof line, fmt, a, b);
    write_all(line, (size_t)n);
}

static void limit(int resource, const char *arg, rlim_t unit) {
    long long v = atoll(arg);
    if (v > 0) {
        struct rlimit r = {(rlim_t)v * unit, (rlim_t)v * unit};
        if (setrlimit(resource, &r) != 0) _exit(97);
    }
}

static long long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Reap every finished child (orphans are ours as PID 1); report TERM and exit. */
static void check_signals(pid_t cmd, int *cmd_status, int *cmd_done) {
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGTERM) {
            say("TERM %lld %lld\n", (long long)si.ssi_pid, (long long)si.ssi_uid);
            _exit(143);
        }
    }
    for (;;) {
        int status;
        pid_t p = waitpid(-1, &status, WNOHANG);
        if (p <= 0) break;
        if (cmd > 0 && p == cmd) {
            *cmd_status = status;
            *cmd_done = 1;
        }
    }
}

static pid_t spawn(const char *command, int out, long long uid, long long gid) {
    /* Another user's command is forked with real uid 0, so that no process of the agent
       can signal it before it has switched (kill(2) checks the target's real uid); PID 1
       takes the agent's back right after, so only this instant refuses the agent's TERM. */
    int other = privileged && uid != AGENT;
    if (other && setresuid(0, -1, -1)) _exit(92);
    pid_t pid = fork();
    if (pid != 0) {
        if (other && setresuid(AGENT, -1, -1)) _exit(92);
        if (other) prctl(PR_SET_DUMPABLE, 0); /* stays so; said again after each change */
        return pid;
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(out, 1);
    dup2(out, 2);
    for (int fd = 3; fd < 1024; fd++) close(fd);
    if (privileged) {
        become((uid_t)uid, (gid_t)gid);
        if (uid != AGENT) /* no login files: the agent's home must never run as another user */
            execle("/bin/bash", "bash", "--noprofile", "--norc", "-c", command, (char *)NULL,
                   environ);
    }
    execle("/bin/bash", "bash", "--login", "-c", command, (char *)NULL, environ);
    _exit(127);
}

/* One command: its own process group, output through a pipe, killed at the deadline. */
static void run(char *command, long long timeout_ms, long long max, long long uid,
                long long gid) {
    int fds[2];
    char *out = malloc((size_t)max + 1);
    size_t len = 0;
    int status = 0, done = 0, timed_out = 0, open_pipe = 1;
    if (!out || pipe2(fds, O_CLOEXEC) != 0) _exit(96);
    long long start = now_us(), deadline = start + timeout_ms * 1000;
    pid_t pid = spawn(command, fds[1], uid, gid);
    close(fds[1]);
    if (pid < 0) {
        status = 127 << 8;
        done = 1;
    } else {
        setpgid(pid, pid);
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    char sink[65536];
    while (!done) {
        struct pollfd p[3] = {{sfd, POLLIN, 0}, {0, POLLIN, 0}, {fds[0], POLLIN, 0}};
        long long left = (deadline - now_us()) / 1000;
        if (left <= 0 && !timed_out) {
            kill(-pid, SIGKILL);
            timed_out = 1;
        }
        poll(p, open_pipe ? 3 : 2, timed_out ? 1000 : (int)(left > 1000 ? 1000 : left + 1));
        check_signals(pid, &status, &done);
        if (p[1].revents) {
            /* A PING may come while a command runs; anything else waits its turn. */
            ssize_t r = read(0, inbuf + inlen, sizeof inbuf - inlen);
            if (r == 0) _exit(0);
            if (r > 0) inlen += (size_t)r;
            char *nl;
            while (inlen >= 5 && memcmp(inbuf, "PING ", 5) == 0 &&
                   (nl = memchr(inbuf, '\n', inlen))) {
                check_signals(pid, &status, &done);
                write_all("PONG ", 5);
                write_all(inbuf + 5, (size_t)(nl - inbuf - 5) + 1);
                inlen -= (size_t)(nl - inbuf) + 1;
                memmove(inbuf, nl + 1, inlen);
            }
        }
        if (open_pipe && p[2].revents) {
            ssize_t r = read(fds[0], len <= (size_t)max ? out + len : sink,
                             len <= (size_t)max ? (size_t)max + 1 - len : sizeof sink);
            if (r == 0) open_pipe = 0;
            else if (r > 0 && len <= (size_t)max) len += (size_t)r;
        }
    }
    for (size_t drained = 0; open_pipe && drained < MAX_DRAIN;) {
        ssize_t r = read(fds[0], len <= (size_t)max ? out + len : sink,
                         len <= (size_t)max ? (size_t)max + 1 - len : sizeof sink);
        if (r <= 0) break;
        drained += (size_t)r;
        if (len <= (size_t)max) len += (size_t)r;
    }
    close(fds[0]);
    long long elapsed = now_us() - start;
    int truncated = len > (size_t)max;
    if (truncated) len = (size_t)max;
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char head[160];
    int n = snprintf(head, sizeof head, "RESULT %d %d %lld %d %zu\n", rc, timed_out, elapsed,
                     truncated, len);
    write_all(head, (size_t)n);
    write_all(out, len);
    free(out);
}

int main(int argc, char **argv) {
    prctl(PR_SET_DUMPABLE, 0); /* before anything: no ptrace, no /proc/1/fd for the agent */
    if (argc != 5 && argc != 6) return 2;
    if (argc == 6) {
        if (strcmp(argv[5], "users") != 0 && strcmp(argv[5], "users-nouserns") != 0) return 2;
        if (geteuid() != 0) return 92;
        if (strcmp(argv[5], "users-nouserns") == 0) {
            /* no nested user namespaces: a mechanism must not TERM a PID 1 of the agent's
               own, and the agent can't raise the limit again without capabilities */
            int f = open("/proc/sys/user/max_user_namespaces", O_WRONLY);
            if (f < 0 || write(f, "0\n", 2) != 2) return 93;
            close(f);
        }
        /* real uid the agent's, so its `kill -s TERM 1` is allowed (kill(2) compares the
           sender's real or effective uid with the target's real or saved uid); effective
           and saved uid 0 keep what init needs to start commands as anyone */
        if (setresuid(AGENT, 0, 0)) return 92;
        prctl(PR_SET_DUMPABLE, 0); /* a change of credentials may have reset it */
        privileged = 1;
    }
    limit(RLIMIT_FSIZE, argv[1], 1024);
    limit(RLIMIT_CPU, argv[2], 1);
    limit(RLIMIT_NPROC, argv[3], 1);
    limit(RLIMIT_AS, argv[4], 1024);
    for (int fd = 3; fd < 1024; fd++) close(fd);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) return 95;
    fcntl(0, F_SETFD, FD_CLOEXEC);
    fcntl(1, F_SETFD, FD_CLOEXEC);
    int unused_status, unused_done;
    write_all("READY\n", 6);
    for (;;) {
        char *nl = memchr(inbuf, '\n', inlen);
        if (nl) {
            *nl = 0;
            size_t used = (size_t)(nl - inbuf) + 1;
            long long n, tmo, max, uid = AGENT, gid = AGENT;
            if (strncmp(inbuf, "PING ", 5) == 0) {
                check_signals(0, &unused_status, &unused_done);
                write_all("PONG ", 5);
                write_all(inbuf + 5, strlen(inbuf + 5));
                write_all("\n", 1);
                inlen -= used;
                memmove(inbuf, inbuf + used, inlen);
                continue;
            }
            int got = sscanf(inbuf, "RUN %lld %lld %lld %lld %lld", &n, &tmo, &max, &uid, &gid);
            if ((got != 3 && got != 5) || (got == 5 && !privileged) || uid < 0 || gid < 0 ||
                uid > 65535 || gid > 65535 || n < 0 || n > MAX_COMMAND || tmo < 1 || max < 0 ||
                max > (1 << 26))
                return 94; /* only the host writes here: a bad frame is a bug, so stop */
            if (inlen - used >= (size_t)n) {
                char *command = malloc((size_t)n + 1);
                if (!command) return 96;
                memcpy(command, inbuf + used, (size_t)n);
                command[n] = 0;
                inlen -= used + (size_t)n;
                memmove(inbuf, inbuf + used + n, inlen);
                run(command, tmo, max, uid, gid);
                free(command);
                continue;
            }
            *nl = '\n';
        }
        struct pollfd p[2] = {{sfd, POLLIN, 0}, {0, POLLIN, 0}};
        poll(p, 2, -1);
        check_signals(0, &unused_status, &unused_done);
        if (p[1].revents) {
            if (inlen == sizeof inbuf) return 94;
            ssize_t r = read(0, inbuf + inlen, sizeof inbuf - inlen);
            if (r == 0) return 0; /* the host closed the channel */
            if (r > 0) inlen += (size_t)r;
        }
    }
}
