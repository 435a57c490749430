/* dockyard-init: the tiny init that `--init` runs as PID 1 at /sbin/docker-init.
 *
 * Usage: docker-init [--] COMMAND [ARG...]
 * It runs COMMAND as its child, forwards every catchable signal it receives to that child,
 * reaps every zombie re-parented to it, and exits with the child's status (128+N when the child
 * was killed by signal N). Exit 127 when COMMAND is not found, 126 when it cannot be executed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_forwarded(int sig) {
    return sig != SIGCHLD && sig != SIGKILL && sig != SIGSTOP && sig != SIGTTIN && sig != SIGTTOU &&
           sig != SIGTSTP && sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE && sig != SIGILL &&
           sig != SIGABRT && sig != SIGTRAP && sig != SIGSYS;
}

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0)
        first = 2;
    if (first >= argc) {
        fprintf(stderr, "docker-init: usage: docker-init [--] COMMAND [ARG...]\n");
        return 1;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);

    pid_t child = fork();
    if (child < 0) {
        perror("docker-init: fork");
        return 1;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[first], argv + first);
        int code = (errno == ENOENT) ? 127 : 126;
        fprintf(stderr, "docker-init: exec %s failed: %s\n", argv[first], strerror(errno));
        _exit(code);
    }

    int exit_code = -1;
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            perror("docker-init: sigwaitinfo");
            return 1;
        }
        if (sig != SIGCHLD) {
            if (is_forwarded(sig))
                kill(child, sig);
            continue;
        }
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                break;
            if (pid == child)
                exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (exit_code >= 0)
            return exit_code;
    }
}
