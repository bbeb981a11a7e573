/*
 * tls_echo_client.c -- a closed-loop TLS echo load generator (Linux, epoll, OpenSSL).
 *
 *   tls_echo_client --port P [--host 127.0.0.1] [--conns 10] [--size 1024]
 *                   [--warmup 0.5] [--duration 2 | --messages N] [--server-pid PID] [--timeout 10]
 *
 * The TLS twin of echo_client.c (read that file's comment for the measuring method: closed loop, one
 * message in flight per connection, a warm-up, the server's CPU from /proc/PID/stat over exactly the
 * measured phase).  What differs:
 *
 * - Each connection does its TLS handshake (blocking, before the clock starts) and then speaks TLS: the
 *   server decrypts every message and encrypts the echo.  The certificate is not verified (the servers
 *   use a throw-away self-signed one); the protocol version and cipher are OpenSSL's defaults (TLS 1.3,
 *   AES-GCM here), the same for every server measured.
 * - OpenSSL may hold decrypted bytes of a record that one SSL_read did not take: after a readiness event
 *   the client reads until SSL_read wants more input, since level-triggered epoll only reports what is
 *   still in the kernel.
 * - SSL_write may want the socket writable (a 100 KiB message against a full socket buffer): EPOLLOUT is
 *   asked for and the same write retried, as TLS requires (partial writes are enabled, so it resumes where
 *   it stopped).
 *
 * Output: the JSON line of echo_client.c, with "tls": "<version> <cipher>" added.
 * Build: cc -O2 -Wall -o tls_echo_client tls_echo_client.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define READ_CHUNK (256 * 1024)

typedef struct {
    int fd;
    SSL *ssl;
    size_t sent;       /* bytes of the current message SSL_write took so far */
    size_t received;   /* bytes of the current message read back so far */
    uint64_t start_ns; /* when the current message was first written */
    int want_out;      /* EPOLLOUT is registered (a write is pending) */
} conn_t;

typedef struct {
    uint64_t *v;
    size_t n, cap;
} samples_t;

static struct {
    const char *host;
    int port, conns;
    size_t size;
    double warmup, duration;
    unsigned long long messages;
    double timeout;
    pid_t server_pid;
} opt = {"127.0.0.1", 0, 10, 1024, 0.5, 2.0, 0, 10.0, 0};

static unsigned char *pattern;
static unsigned char readbuf[READ_CHUNK];
static int epfd;

static void fail(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* OpenSSL's messages may carry quotes: keep the JSON valid */
        if (*p == '"' || *p == '\\')
            *p = '\'';
    printf("{\"ok\": false, \"error\": \"%s\"}\n", msg);
    fflush(stdout);
    exit(1);
}

static const char *ssl_error_text(void) {
    static char buf[256];
    unsigned long e = ERR_get_error();
    if (!e)
        return errno ? strerror(errno) : "no OpenSSL error queued";
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int proc_cpu(pid_t pid, double *user, double *sys) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long ut = 0, st = 0;
    for (int field = 3; field <= 15; field++) {
        char *end;
        while (*p == ' ')
            p++;
        if (field == 14)
            ut = strtoull(p, &end, 10);
        else if (field == 15)
            st = strtoull(p, &end, 10);
        else
            end = strchr(p, ' ');
        if (!end || end == p)
            return -1;
        p = end;
    }
    double tick = (double)sysconf(_SC_CLK_TCK);
    *user = (double)ut / tick;
    *sys = (double)st / tick;
    return 0;
}

static int proc_switches(pid_t pid, unsigned long long *vol, unsigned long long *invol) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *v = strstr(buf, "\nvoluntary_ctxt_switches:");
    char *i = strstr(buf, "\nnonvoluntary_ctxt_switches:");
    if (!v || !i)
        return -1;
    *vol = strtoull(strchr(v, ':') + 1, NULL, 10);
    *invol = strtoull(strchr(i, ':') + 1, NULL, 10);
    return 0;
}

static void self_cpu(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void set_out_interest(conn_t *c, int idx, int want_out) {
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u32 = (uint32_t)idx};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    c->want_out = want_out;
}

/* Hand as much of the current message to TLS as the socket takes. */
static void do_send(conn_t *c, int idx) {
    while (c->sent < opt.size) {
        size_t done = 0;
        ERR_clear_error();
        if (SSL_write_ex(c->ssl, pattern + c->sent, opt.size - c->sent, &done) == 1) {
            c->sent += done;
            continue;
        }
        int err = SSL_get_error(c->ssl, 0);
        if (err == SSL_ERROR_WANT_WRITE) {
            set_out_interest(c, idx, 1);
            return;
        }
        if (err == SSL_ERROR_WANT_READ) /* a post-handshake message is being read: readable will retry */
            return;
        fail("SSL_write: %s", ssl_error_text());
    }
    set_out_interest(c, idx, 0);
}

static void start_message(conn_t *c, int idx, uint64_t now) {
    c->sent = c->received = 0;
    c->start_ns = now;
    do_send(c, idx);
}

static void add_sample(samples_t *s, uint64_t v) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1 << 16;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            fail("out of memory for latency samples");
    }
    s->v[s->n++] = v;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(const samples_t *s, double q) {
    if (s->n == 0)
        return 0.0;
    size_t rank = (size_t)(q * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return (double)s->v[rank - 1] / 1e3;
}

static void connect_one(conn_t *c, SSL_CTX *ctx, const struct sockaddr_storage *addr, socklen_t len) {
    c->fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        fail("socket: %s", strerror(errno));
    if (connect(c->fd, (const struct sockaddr *)addr, len) < 0)
        fail("connect to %s port %d: %s", opt.host, opt.port, strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = (time_t)opt.timeout, .tv_usec = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* a server that never answers */
    c->ssl = SSL_new(ctx);
    if (!c->ssl)
        fail("SSL_new: %s", ssl_error_text());
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    ERR_clear_error();
    if (SSL_connect(c->ssl) != 1)
        fail("TLS handshake with port %d: %s", opt.port, ssl_error_text());
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

static void usage(void) {
    fprintf(stderr,
            "usage: tls_echo_client --port P [--host 127.0.0.1] [--conns 10] [--size 1024] [--warmup 0.5]\n"
            "                       [--duration 2 | --messages N] [--server-pid PID] [--timeout 10]\n");
    exit(2);
}

static void parse_args(int argc, char **argv) {
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},     {"port", required_argument, 0, 'p'},
        {"conns", required_argument, 0, 'c'},    {"size", required_argument, 0, 's'},
        {"warmup", required_argument, 0, 'w'},   {"duration", required_argument, 0, 'd'},
        {"messages", required_argument, 0, 'm'}, {"server-pid", required_argument, 0, 'P'},
        {"timeout", required_argument, 0, 't'},  {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'c': opt.conns = atoi(optarg); break;
        case 's': opt.size = (size_t)strtoull(optarg, NULL, 10); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'm': opt.messages = strtoull(optarg, NULL, 10); break;
        case 'P': opt.server_pid = (pid_t)atoi(optarg); break;
        case 't': opt.timeout = atof(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.conns < 1 || opt.conns > MAX_CONNS ||
        opt.size < 1 || opt.warmup < 0 || (opt.messages == 0 && opt.duration <= 0) || opt.timeout <= 0)
        usage();
}

/* Read everything TLS has for this connection; returns 1 when the current message completed. */
static int drain(conn_t *c) {
    for (;;) {
        size_t r = 0;
        ERR_clear_error();
        if (SSL_read_ex(c->ssl, readbuf, sizeof readbuf, &r) != 1) {
            int err = SSL_get_error(c->ssl, 0);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                return 0;
            if (err == SSL_ERROR_ZERO_RETURN)
                fail("the server closed a connection (close_notify)");
            if (err == SSL_ERROR_SYSCALL && errno == 0)
                fail("the server closed a connection");
            fail("SSL_read: %s", ssl_error_text());
        }
        if (c->received + r > c->sent)
            fail("the server sent back more than it was sent");
        if (memcmp(readbuf, pattern + c->received, r) != 0)
            fail("the server echoed different bytes");
        c->received += r;
        if (c->received == opt.size)
            return 1; /* a closed loop: nothing more can be in flight on this connection */
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_storage addr = {0};
    socklen_t addrlen;
    if (strchr(opt.host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)opt.port);
        if (inet_pton(AF_INET6, opt.host, &a6->sin6_addr) != 1)
            fail("--host must be a numeric address");
        addrlen = sizeof *a6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)opt.port);
        if (inet_pton(AF_INET, opt.host, &a4->sin_addr) != 1)
            fail("--host must be a numeric address");
        addrlen = sizeof *a4;
    }

    pattern = malloc(opt.size);
    if (!pattern)
        fail("out of memory for a %zu-byte message", opt.size);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < opt.size; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        pattern[i] = (unsigned char)x;
    }

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        fail("SSL_CTX_new: %s", ssl_error_text());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        fail("epoll_create1: %s", strerror(errno));
    conn_t *conns = calloc((size_t)opt.conns, sizeof *conns);
    for (int i = 0; i < opt.conns; i++) {
        connect_one(&conns[i], ctx, &addr, addrlen);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
            fail("epoll_ctl: %s", strerror(errno));
    }
    char tls_info[160];
    snprintf(tls_info, sizeof tls_info, "%s %s", SSL_get_version(conns[0].ssl),
             SSL_CIPHER_get_name(SSL_get_current_cipher(conns[0].ssl)));

    samples_t lat = {0};
    int measuring = 0;
    unsigned long long done = 0;
    double su0 = 0, ss0 = 0, su1 = 0, ss1 = 0, cu0 = 0, cs0 = 0, cu1 = 0, cs1 = 0;
    unsigned long long sv0 = 0, si0 = 0, sv1 = 0, si1 = 0;
    uint64_t t0 = now_ns();
    uint64_t warm_end = t0 + (uint64_t)(opt.warmup * 1e9);
    uint64_t measure_start = 0, measure_end = 0, deadline = 0;
    uint64_t last_progress = t0, stall_ns = (uint64_t)(opt.timeout * 1e9);

    for (int i = 0; i < opt.conns; i++)
        start_message(&conns[i], i, t0);

    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && now >= warm_end) {
            measuring = 1;
            measure_start = now;
            deadline = opt.messages ? 0 : measure_start + (uint64_t)(opt.duration * 1e9);
            if (opt.server_pid && (proc_cpu(opt.server_pid, &su0, &ss0) < 0 ||
                                   proc_switches(opt.server_pid, &sv0, &si0) < 0))
                fail("cannot read /proc/%d/stat or status", (int)opt.server_pid);
            self_cpu(&cu0, &cs0);
        }
        if (measuring && ((deadline && now >= deadline) || (opt.messages && done >= opt.messages))) {
            measure_end = now;
            if (opt.server_pid && (proc_cpu(opt.server_pid, &su1, &ss1) < 0 ||
                                   proc_switches(opt.server_pid, &sv1, &si1) < 0))
                fail("cannot read /proc/%d/stat or status", (int)opt.server_pid);
            self_cpu(&cu1, &cs1);
            break;
        }
        if (now - last_progress > stall_ns)
            fail("no message came back for %.1f s", opt.timeout);

        int timeout_ms = 100;
        uint64_t next = measuring ? deadline : warm_end;
        if (next) {
            uint64_t ms = next > now ? (next - now) / 1000000u + 1 : 0;
            if (ms < (uint64_t)timeout_ms)
                timeout_ms = (int)ms;
        }
        int n = epoll_wait(epfd, events, 256, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait: %s", strerror(errno));
        }
        now = n ? now_ns() : now;
        for (int e = 0; e < n; e++) {
            int idx = (int)events[e].data.u32;
            conn_t *c = &conns[idx];
            uint32_t what = events[e].events;
            if ((what & EPOLLOUT) || (c->sent < opt.size && !c->want_out))
                do_send(c, idx);
            if (what & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (drain(c)) {
                    last_progress = now;
                    if (measuring) {
                        done++;
                        add_sample(&lat, now - c->start_ns);
                    }
                    start_message(c, idx, now);
                }
            }
        }
    }

    for (int i = 0; i < opt.conns; i++) {
        SSL_free(conns[i].ssl);
        close(conns[i].fd);
    }
    SSL_CTX_free(ctx);

    double secs = (double)(measure_end - measure_start) / 1e9;
    double sum = 0;
    for (size_t i = 0; i < lat.n; i++)
        sum += (double)lat.v[i];
    qsort(lat.v, lat.n, sizeof *lat.v, cmp_u64);
    printf("{\"ok\": true, \"tls\": \"%s\", \"conns\": %d, \"size\": %zu, \"warmup_s\": %.3f, "
           "\"seconds\": %.6f, \"messages\": %llu, \"msgs_per_s\": %.1f, \"mib_per_s\": %.2f, "
           "\"latency_us\": {\"mean\": %.1f, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
           "\"max\": %.1f}, \"client_cpu_s\": {\"user\": %.6f, \"sys\": %.6f}",
           tls_info, opt.conns, opt.size, opt.warmup, secs, done, (double)done / secs,
           (double)done * (double)opt.size / secs / (1024.0 * 1024.0), lat.n ? sum / (double)lat.n / 1e3 : 0.0,
           pct_us(&lat, 0.50), pct_us(&lat, 0.90), pct_us(&lat, 0.99), pct_us(&lat, 0.999),
           pct_us(&lat, 1.0), cu1 - cu0, cs1 - cs0);
    if (opt.server_pid)
        printf(", \"server_pid\": %d, \"server_cpu_s\": {\"user\": %.2f, \"sys\": %.2f}, "
               "\"server_switches\": {\"voluntary\": %llu, \"involuntary\": %llu}",
               (int)opt.server_pid, su1 - su0, ss1 - ss0, sv1 - sv0, si1 - si0);
    printf("}\n");
    return 0;
}
