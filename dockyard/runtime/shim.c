/*
 * dockyard-shim: the per-container monitor (like conmon).
 *
 *   dockyard-shim --id ID --dir STATE_DIR --pid PID --log-path FILE [--tty] [--stdin]
 *                 [--log-max-size BYTES] [--log-max-file N] [--log-compress]
 *
 * Exec'd by P0 after it forked the container init (PID), so PID is our child. Inherited fds:
 *   3 = container stdout read end (the pty master with --tty)
 *   4 = container stderr read end (absent with --tty)
 *   5 = container stdin write end (only with --stdin and no tty)
 *   6 = "ready" pipe: one byte is written, then it is closed, once attach.sock listens.
 *
 * Output is appended to FILE in Docker's json-file format and broadcast to every client of
 * STATE_DIR/attach.sock as stdcopy frames ([kind:u8][0,0,0][len:u32 BE][payload]). Clients send
 * kind 0 = stdin bytes, 1 = close stdin, 2 = resize (rows u16 BE, cols u16 BE); a resize is answered,
 * to its sender only, by an empty kind 3 frame once the size is set. When PID has exited
 * and the output reached EOF, the log is flushed, STATE_DIR/exit is written atomically and the shim
 * exits 0. An empty --log-path ("") means no log at all (exec processes: Docker does not log them).
 * Plain C, libc only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define PARTIAL_MAX (16 * 1024)          /* a partial line is logged once this much accumulates */
#define CLIENT_MAX_BEHIND (4u << 20)     /* drop an attach client that falls this far behind */
#define CLIENT_MAX_FRAME (1u << 20)      /* largest frame a client may send us */
#define STDIN_HIGH_WATER (1u << 20)      /* stop reading clients while this much stdin is queued */
#define READ_CHUNK 65536

enum { K_STDIN = 0, K_STDOUT = 1, K_STDERR = 2, K_RESIZED = 3 };
enum { C_STDIN = 0, C_CLOSE_STDIN = 1, C_RESIZE = 2 };

struct buf {
    unsigned char *data;
    size_t len, cap, off; /* bytes [off, len) are pending */
};

struct stream {
    int fd;          /* -1 once at EOF */
    int kind;        /* K_STDOUT / K_STDERR */
    const char *name;
    char partial[PARTIAL_MAX];
    size_t plen;
};

struct client {
    int fd;
    int in_eof; /* the client shut down its sending side; it still receives output */
    struct buf out;
    struct buf in;
};

/* configuration */
static const char *opt_id = "", *opt_dir, *opt_log;
static char log_path_abs[2 * PATH_MAX + 2];
static pid_t opt_pid = -1;
static int opt_tty, opt_stdin;
static long long opt_log_max_size;
static int opt_log_max_file = 1;
static int opt_log_compress; /* rotated files are gzipped: FILE.1.gz ... (the local log driver) */

/* state */
static struct stream streams[2];
static int nstreams;
static int master_fd = -1;  /* tty master (also streams[0].fd until EOF) */
static int stdin_fd = -1;   /* fd 5 without a tty, master_fd with one */
static int stdin_close_pending;
static struct buf stdin_buf;
static int listen_fd = -1;
static struct client **clients;
static size_t nclients, cap_clients;
static int log_fd = -1;
static long long log_size;
static struct buf log_buf;
static int child_exited;
static int child_status;

static void logmsg(const char *fmt, ...)
{
    char ts[64];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s dockyard-shim[%d] %.12s: ", ts, (int)getpid(), opt_id);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static void die(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logmsg("fatal: %s", msg);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        die("out of memory");
    return q;
}

static void buf_compact(struct buf *b)
{
    if (b->off == 0)
        return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

static void buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        buf_compact(b);
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->len + n)
                cap *= 2;
            b->data = xrealloc(b->data, cap);
            b->cap = cap;
        }
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static size_t buf_pending(const struct buf *b) { return b->len - b->off; }

static void buf_free(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- time ---- */

static void rfc3339nano(char *out, size_t n)
{
    struct timespec now;
    struct tm tm;
    char base[32];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%09ldZ", base, (long)now.tv_nsec);
}

/* ---- writing whole buffers ---- */

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- the json-file log ---- */

static void log_open(int truncate)
{
    if (!opt_log[0])
        return; /* no log */
    int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0);
    log_fd = open(log_path_abs, flags, 0640);
    if (log_fd < 0) {
        logmsg("open %s: %s", log_path_abs, strerror(errno));
        return;
    }
    struct stat st;
    log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

static void log_flush(void)
{
    size_t n = buf_pending(&log_buf);
    if (n == 0)
        return;
    if (log_fd >= 0 && write_all(log_fd, log_buf.data + log_buf.off, n) < 0)
        logmsg("write %s: %s", log_path_abs, strerror(errno));
    log_size += (long long)n;
    log_buf.off = log_buf.len = 0;
}

/* gzip FILE into `to` (via `to`.tmp and a rename, so readers never see half a file); 0 on success. */
static int log_gzip(const char *to)
{
    char tmp[sizeof log_path_abs + 32], chunk[65536];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    int in = open(log_path_abs, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    gzFile out = gzopen(tmp, "wb1");
    int ok = out != NULL;
    ssize_t n;
    while (ok && (n = read(in, chunk, sizeof chunk)) > 0)
        ok = gzwrite(out, chunk, (unsigned)n) == (int)n;
    close(in);
    if (out && gzclose(out) != Z_OK)
        ok = 0;
    if (!ok || rename(tmp, to) < 0) {
        logmsg("compressing %s failed", log_path_abs);
        unlink(tmp);
        return -1;
    }
    unlink(log_path_abs);
    return 0;
}

/* FILE -> FILE.1, shifting FILE.1 -> FILE.2 ... up to FILE.(max-file - 1); with max-file 1 truncate.
 * With --log-compress the rotated names end in .gz and FILE is compressed into FILE.1.gz. */
static void log_rotate(void)
{
    char from[sizeof log_path_abs + 16], to[sizeof log_path_abs + 16];
    const char *ext = opt_log_compress ? ".gz" : "";
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    if (opt_log_max_file >= 2) {
        for (int i = opt_log_max_file - 1; i >= 2; i--) {
            snprintf(from, sizeof from, "%s.%d%s", log_path_abs, i - 1, ext);
            snprintf(to, sizeof to, "%s.%d%s", log_path_abs, i, ext);
            if (rename(from, to) < 0 && errno != ENOENT)
                logmsg("rename %s: %s", from, strerror(errno));
        }
        snprintf(to, sizeof to, "%s.1%s", log_path_abs, ext);
        if (!opt_log_compress || log_gzip(to) < 0) {
            snprintf(to, sizeof to, "%s.1", log_path_abs);
            if (rename(log_path_abs, to) < 0 && errno != ENOENT)
                logmsg("rename %s: %s", log_path_abs, strerror(errno));
        }
    }
    log_open(1);
}

static const char hexdigits[] = "0123456789abcdef";

/* Append one json-file record for `data` (one line, or a partial one) to the log buffer. */
static void log_record(const char *stream, const char *data, size_t len)
{
    /* worst case every byte becomes \u00XX */
    static char rec[PARTIAL_MAX * 6 + 256];
    char ts[64];
    size_t o = 0;
    o += (size_t)sprintf(rec, "{\"log\":\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        switch (c) {
        case '"': rec[o++] = '\\'; rec[o++] = '"'; break;
        case '\\': rec[o++] = '\\'; rec[o++] = '\\'; break;
        case '\n': rec[o++] = '\\'; rec[o++] = 'n'; break;
        case '\r': rec[o++] = '\\'; rec[o++] = 'r'; break;
        case '\t': rec[o++] = '\\'; rec[o++] = 't'; break;
        case '\b': rec[o++] = '\\'; rec[o++] = 'b'; break;
        case '\f': rec[o++] = '\\'; rec[o++] = 'f'; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                memcpy(rec + o, "\\u00", 4);
                o += 4;
                rec[o++] = hexdigits[c >> 4];
                rec[o++] = hexdigits[c & 15];
            } else {
                rec[o++] = (char)c;
            }
        }
    }
    rfc3339nano(ts, sizeof ts);
    o += (size_t)sprintf(rec + o, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", stream, ts);

    if (opt_log_max_size > 0 &&
        log_size + (long long)buf_pending(&log_buf) + (long long)o > opt_log_max_size &&
        log_size + (long long)buf_pending(&log_buf) > 0) {
        log_flush();
        log_rotate();
    }
    buf_append(&log_buf, rec, o);
}

/* Feed output bytes of a stream into its line splitter; full lines become records. */
static void log_feed(struct stream *s, const char *data, size_t len)
{
    if (!opt_log[0])
        return; /* no log */
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) + 1 : len;
        if (take > PARTIAL_MAX - s->plen)
            take = PARTIAL_MAX - s->plen;
        memcpy(s->partial + s->plen, data, take);
        s->plen += take;
        data += take;
        len -= take;
        if (s->partial[s->plen - 1] == '\n' || s->plen == PARTIAL_MAX) {
            log_record(s->name, s->partial, s->plen);
            s->plen = 0;
        }
    }
}

static void log_end_stream(struct stream *s)
{
    if (s->plen > 0)
        log_record(s->name, s->partial, s->plen);
    s->plen = 0;
}

/* ---- attach clients ---- */

static void client_drop(size_t i)
{
    struct client *c = clients[i];
    close(c->fd);
    buf_free(&c->out);
    buf_free(&c->in);
    free(c);
    clients[i] = clients[--nclients];
}

/* Try to write a client's pending output; returns -1 if the client must be dropped. */
static int client_flush(struct client *c)
{
    while (buf_pending(&c->out) > 0) {
        ssize_t w = send(c->fd, c->out.data + c->out.off, buf_pending(&c->out), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->out.off += (size_t)w;
    }
    c->out.off = c->out.len = 0;
    return 0;
}

static void broadcast(int kind, const char *data, size_t len)
{
    unsigned char hdr[8] = {(unsigned char)kind, 0, 0, 0, (unsigned char)(len >> 24),
                            (unsigned char)(len >> 16), (unsigned char)(len >> 8), (unsigned char)len};
    for (size_t i = 0; i < nclients;) {
        struct client *c = clients[i];
        buf_append(&c->out, hdr, sizeof hdr);
        buf_append(&c->out, data, len);
        if (client_flush(c) < 0 || buf_pending(&c->out) > CLIENT_MAX_BEHIND) {
            logmsg("dropping attach client fd %d (%s)", c->fd,
                   buf_pending(&c->out) > CLIENT_MAX_BEHIND ? "too far behind" : strerror(errno));
            client_drop(i);
            continue;
        }
        i++;
    }
}

static void accept_clients(void)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                logmsg("accept: %s", strerror(errno));
            return;
        }
        if (nclients == cap_clients) {
            cap_clients = cap_clients ? cap_clients * 2 : 8;
            clients = xrealloc(clients, cap_clients * sizeof *clients);
        }
        struct client *c = calloc(1, sizeof *c);
        if (!c)
            die("out of memory");
        c->fd = fd;
        clients[nclients++] = c;
    }
}

static void close_stdin(void)
{
    if (opt_tty)
        return; /* a tty's stdin stays open as long as the tty */
    if (stdin_fd >= 0)
        close(stdin_fd);
    stdin_fd = -1;
    stdin_close_pending = 0;
    buf_free(&stdin_buf);
}

static void flush_stdin(void)
{
    while (stdin_fd >= 0 && buf_pending(&stdin_buf) > 0) {
        ssize_t w = write(stdin_fd, stdin_buf.data + stdin_buf.off, buf_pending(&stdin_buf));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* EPIPE: the container closed its stdin; EIO: the tty is gone */
            if (!opt_tty) {
                close_stdin();
            } else {
                buf_free(&stdin_buf);
            }
            return;
        }
        stdin_buf.off += (size_t)w;
    }
    if (buf_pending(&stdin_buf) == 0)
        stdin_buf.off = stdin_buf.len = 0;
    if (stdin_close_pending)
        close_stdin();
}

static void handle_frame(struct client *c, int kind, const unsigned char *p, uint32_t len)
{
    static const unsigned char resized[8] = {K_RESIZED, 0, 0, 0, 0, 0, 0, 0};
    switch (kind) {
    case C_STDIN:
        if (stdin_fd >= 0 && !stdin_close_pending)
            buf_append(&stdin_buf, p, len);
        break;
    case C_CLOSE_STDIN:
        stdin_close_pending = 1;
        break;
    case C_RESIZE:
        if (master_fd >= 0 && len >= 4) {
            struct winsize ws = {0};
            ws.ws_row = (unsigned short)((p[0] << 8) | p[1]);
            ws.ws_col = (unsigned short)((p[2] << 8) | p[3]);
            if (ioctl(master_fd, TIOCSWINSZ, &ws) < 0)
                logmsg("TIOCSWINSZ: %s", strerror(errno));
        }
        buf_append(&c->out, resized, sizeof resized); /* flushed when the client is writable */
        break;
    default:
        logmsg("ignoring client frame of kind %d", kind);
    }
}

/* Read what a client sent; returns -1 when the client must be dropped. */
static int client_read(struct client *c)
{
    unsigned char tmp[READ_CHUNK];
    ssize_t r = recv(c->fd, tmp, sizeof tmp, 0);
    if (r < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    if (r == 0) {
        c->in_eof = 1;
        return 0;
    }
    buf_append(&c->in, tmp, (size_t)r);
    while (buf_pending(&c->in) >= 8) {
        const unsigned char *h = c->in.data + c->in.off;
        uint32_t len = ((uint32_t)h[4] << 24) | ((uint32_t)h[5] << 16) | ((uint32_t)h[6] << 8) | h[7];
        if (len > CLIENT_MAX_FRAME) {
            logmsg("attach client sent a %u-byte frame; dropping it", len);
            return -1;
        }
        if (buf_pending(&c->in) < 8 + (size_t)len)
            break;
        handle_frame(c, h[0], h + 8, len);
        c->in.off += 8 + (size_t)len;
    }
    buf_compact(&c->in);
    flush_stdin();
    return 0;
}

/* ---- the container process ---- */

static void reap(void)
{
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p <= 0)
            return;
        if (p == opt_pid) {
            child_exited = 1;
            child_status = st;
        }
    }
}

static void write_exit_record(void)
{
    char ts[64], rec[256];
    int code, sig = 0;
    if (WIFSIGNALED(child_status)) {
        sig = WTERMSIG(child_status);
        code = 128 + sig;
    } else {
        code = WEXITSTATUS(child_status);
    }
    rfc3339nano(ts, sizeof ts);
    int n = snprintf(rec, sizeof rec, "{\"exit_code\": %d, \"signal\": %d, \"finished_at\": \"%s\"}\n",
                     code, sig, ts);
    int fd = open("exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open exit.tmp: %s", strerror(errno));
    if (write_all(fd, rec, (size_t)n) < 0 || fsync(fd) < 0)
        die("write exit.tmp: %s", strerror(errno));
    close(fd);
    if (rename("exit.tmp", "exit") < 0)
        die("rename exit.tmp: %s", strerror(errno));
    int dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

/* Give clients up to two seconds to take what is queued for them, then close them all. */
static void close_clients(void)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct pollfd pfds[64];
        size_t n = 0;
        for (size_t i = 0; i < nclients && n < 64; i++) {
            if (buf_pending(&clients[i]->out) > 0) {
                pfds[n].fd = clients[i]->fd;
                pfds[n].events = POLLOUT;
                n++;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (n == 0 || elapsed >= 2000)
            break;
        if (poll(pfds, n, (int)(2000 - elapsed)) <= 0)
            break;
        for (size_t i = 0; i < nclients;) {
            if (client_flush(clients[i]) < 0) {
                client_drop(i);
                continue;
            }
            i++;
        }
    }
    while (nclients > 0)
        client_drop(0);
}

/* ---- set-up ---- */

static void usage(void)
{
    fprintf(stderr, "usage: dockyard-shim --id ID --dir STATE_DIR --pid PID --log-path FILE [--tty] [--stdin]"
                    " [--log-max-size BYTES] [--log-max-file N] [--log-compress]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tty")) {
            opt_tty = 1;
        } else if (!strcmp(a, "--stdin")) {
            opt_stdin = 1;
        } else if (!strcmp(a, "--log-compress")) {
            opt_log_compress = 1;
        } else if (!v) {
            usage();
        } else if (!strcmp(a, "--id")) {
            opt_id = v, i++;
        } else if (!strcmp(a, "--dir")) {
            opt_dir = v, i++;
        } else if (!strcmp(a, "--pid")) {
            opt_pid = (pid_t)atoi(v), i++;
        } else if (!strcmp(a, "--log-path")) {
            opt_log = v, i++;
        } else if (!strcmp(a, "--log-max-size")) {
            opt_log_max_size = atoll(v), i++;
        } else if (!strcmp(a, "--log-max-file")) {
            opt_log_max_file = atoi(v), i++;
        } else {
            usage();
        }
    }
    if (!opt_dir || !opt_log || opt_pid <= 0)
        usage();
    if (opt_log_max_file < 1)
        opt_log_max_file = 1;
}

static void close_other_fds(void)
{
    if (syscall(SYS_close_range, 7u, ~0u, 0u) < 0) {
        for (int fd = 7; fd < 65536; fd++)
            close(fd);
    }
    if (opt_tty) {
        close(4);
        close(5);
    } else if (!opt_stdin) {
        close(5);
    }
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static int setup_listener(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    /* we chdir'ed to STATE_DIR: a relative name avoids sun_path's 108-byte limit */
    strcpy(sa.sun_path, "attach.sock");
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind %s/attach.sock: %s", opt_dir, strerror(errno));
    chmod(sa.sun_path, 0600);
    if (listen(fd, 64) < 0)
        die("listen: %s", strerror(errno));
    return fd;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    close_other_fds();
    prctl(PR_SET_NAME, "dockyard-shim", 0, 0, 0);

    /* the shim outlives terminals and the daemon; containers are signalled directly */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGHUP, &ign, NULL);
    sigaction(SIGPIPE, &ign, NULL);
    sigaction(SIGTERM, &ign, NULL);
    sigaction(SIGQUIT, &ign, NULL);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGCHLD, &dfl, NULL);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL); /* only SIGCHLD blocked, it is read from a signalfd */
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        die("signalfd: %s", strerror(errno));

    if (!opt_log[0]) {
        log_path_abs[0] = 0;
    } else if (opt_log[0] == '/') {
        snprintf(log_path_abs, sizeof log_path_abs, "%s", opt_log);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            die("getcwd: %s", strerror(errno));
        snprintf(log_path_abs, sizeof log_path_abs, "%s/%s", cwd, opt_log);
    }
    if (chdir(opt_dir) < 0)
        die("chdir %s: %s", opt_dir, strerror(errno));
    log_open(0);

    set_nonblock(3);
    streams[0] = (struct stream){.fd = 3, .kind = K_STDOUT, .name = "stdout"};
    nstreams = 1;
    if (opt_tty) {
        master_fd = 3;
        stdin_fd = 3;
    } else {
        set_nonblock(4);
        streams[1] = (struct stream){.fd = 4, .kind = K_STDERR, .name = "stderr"};
        nstreams = 2;
        if (opt_stdin) {
            set_nonblock(5);
            stdin_fd = 5;
        }
    }

    listen_fd = setup_listener();
    if (write_all(6, "R", 1) < 0)
        logmsg("ready pipe: %s", strerror(errno));
    close(6);

    reap(); /* the child may have exited before SIGCHLD was blocked */

    static char chunk[READ_CHUNK];
    for (;;) {
        int open_streams = 0;
        for (int i = 0; i < nstreams; i++)
            open_streams += streams[i].fd >= 0;
        if (child_exited && open_streams == 0)
            break;

        /* pollfds: signalfd, listener, streams, stdin, clients */
        size_t n = 0, max = 4 + (size_t)nstreams + nclients;
        struct pollfd *pfds = xrealloc(NULL, max * sizeof *pfds);
        pfds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        pfds[n++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        size_t stream_at = n;
        for (int i = 0; i < nstreams; i++)
            pfds[n++] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
        size_t stdin_at = n;
        pfds[n++] = (struct pollfd){.fd = (stdin_fd >= 0 && buf_pending(&stdin_buf) > 0) ? stdin_fd : -1,
                                    .events = POLLOUT};
        size_t client_at = n;
        int want_input = buf_pending(&stdin_buf) < STDIN_HIGH_WATER;
        for (size_t i = 0; i < nclients; i++) {
            short ev = (short)((want_input && !clients[i]->in_eof ? POLLIN : 0) |
                               (buf_pending(&clients[i]->out) ? POLLOUT : 0));
            pfds[n++] = (struct pollfd){.fd = clients[i]->fd, .events = ev};
        }

        int r = poll(pfds, n, -1);
        if (r < 0) {
            free(pfds);
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }

        if (pfds[0].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si)
                ;
            reap();
        }
        /* Accept before reading the streams: a client whose connect() completed before the
         * container wrote (the daemon connects attachers before "go") must get that output. */
        accept_clients();
        for (int i = 0; i < nstreams; i++) {
            struct stream *s = &streams[i];
            if (s->fd < 0 || !pfds[stream_at + (size_t)i].revents)
                continue;
            ssize_t got = read(s->fd, chunk, sizeof chunk);
            if (got > 0) {
                log_feed(s, chunk, (size_t)got);
                log_flush();
                broadcast(s->kind, chunk, (size_t)got);
            } else if (got == 0 || (errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK)) {
                /* EOF; with a tty, EIO once the slave side is gone */
                log_end_stream(s);
                log_flush();
                if (s->fd != master_fd)
                    close(s->fd);
                s->fd = -1;
            }
        }
        if (pfds[stdin_at].revents)
            flush_stdin();
        /* clients: iterate over the snapshot taken for poll; drops reorder the array */
        {
            size_t polled = n - client_at;
            int *fds = xrealloc(NULL, (polled + 1) * sizeof *fds);
            short *rev = xrealloc(NULL, (polled + 1) * sizeof *rev);
            for (size_t i = 0; i < polled; i++) {
                fds[i] = pfds[client_at + i].fd;
                rev[i] = pfds[client_at + i].revents;
            }
            for (size_t k = 0; k < polled; k++) {
                if (!rev[k])
                    continue;
                for (size_t i = 0; i < nclients; i++) {
                    if (clients[i]->fd != fds[k])
                        continue;
                    int bad = 0;
                    if (rev[k] & POLLOUT)
                        bad = client_flush(clients[i]) < 0;
                    if (!bad && (rev[k] & POLLIN))
                        bad = client_read(clients[i]) < 0;
                    /* POLLHUP on a unix stream socket: the peer closed both directions */
                    if (rev[k] & (POLLHUP | POLLERR) && !(rev[k] & POLLIN && !clients[i]->in_eof))
                        bad = 1;
                    if (bad)
                        client_drop(i);
                    break;
                }
            }
            free(fds);
            free(rev);
        }
        free(pfds);
    }

    /* the container is gone and its output drained */
    close(listen_fd);
    unlink("attach.sock");
    log_flush();
    if (log_fd >= 0) {
        fsync(log_fd);
        close(log_fd);
    }
    write_exit_record();
    close_clients();
    logmsg("container exited (status 0x%x)", child_status);
    return 0;
}
