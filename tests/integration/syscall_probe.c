/* syscall_probe: calls one syscall with harmless arguments and prints how it went.
 *
 * Usage: syscall_probe NAME [PID]. Prints "OK" (exit 0) or "ERR <ERRNO NAME>" (exit 1); the
 * breakout suite (test_breakout.py) copies it into containers to see what seccomp and the
 * capability set let through. Arguments are chosen so that an allowed call fails harmlessly
 * (EINVAL, ENOENT, EBADF...) instead of changing anything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long probe(const char *name, const char *arg) {
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0);
    if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "dockyard-probe", "x", 1, -2);
    if (!strcmp(name, "request_key")) return syscall(SYS_request_key, "user", "dockyard-none", NULL, 0);
    if (!strcmp(name, "bpf")) return syscall(SYS_bpf, 0, NULL, 0);
    if (!strcmp(name, "perf_event_open")) return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
    if (!strcmp(name, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, NULL, 0);
    if (!strcmp(name, "init_module")) return syscall(SYS_init_module, NULL, 0, "");
    if (!strcmp(name, "finit_module")) return syscall(SYS_finit_module, -1, "", 0);
    if (!strcmp(name, "delete_module")) return syscall(SYS_delete_module, "dockyard_none", 0);
    if (!strcmp(name, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1, NULL, 0);
    if (!strcmp(name, "setns")) return syscall(SYS_setns, -1, 0);
    if (!strcmp(name, "unshare_user")) return syscall(SYS_unshare, CLONE_NEWUSER);
    if (!strcmp(name, "pivot_root")) return syscall(SYS_pivot_root, "/nonexistent-a", "/nonexistent-b");
    if (!strcmp(name, "swapon")) return syscall(SYS_swapon, "/nonexistent-swap", 0);
    if (!strcmp(name, "acct")) return syscall(SYS_acct, "/nonexistent-dir/acct");
    if (!strcmp(name, "reboot")) return syscall(SYS_reboot, 0, 0, 0, NULL);  /* bad magic: EINVAL */
    if (!strcmp(name, "umount2")) return syscall(SYS_umount2, "/nonexistent-mnt", 0);
    if (!strcmp(name, "mount")) return syscall(SYS_mount, "none", "/nonexistent-mnt", "tmpfs", 0, NULL);
    if (!strcmp(name, "ptrace")) return ptrace(PTRACE_ATTACH, (pid_t)atoi(arg ? arg : "1"), NULL, NULL);
    if (!strcmp(name, "clone_newns")) {
        long pid = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid((pid_t)pid, NULL, 0);
        return pid < 0 ? -1 : 0;
    }
    fprintf(stderr, "unknown probe %s\n", name);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: syscall_probe NAME [ARG]\n");
        return 2;
    }
    errno = 0;
    long rc = probe(argv[1], argc > 2 ? argv[2] : NULL);
    if (rc < 0) {
        printf("ERR %s\n", strerrorname_np(errno));
        return 1;
    }
    printf("OK\n");
    return 0;
}
