/*
 * echo_client_common.h -- the body of the two echo load generators, echo_client.c (plain TCP) and
 * tls_echo_client.c (TLS): options, connection set-up, the closed-loop epoll main loop, the /proc/PID
 * readers, the latency statistics and the JSON line.  The measuring method is described once, at the top of
 * echo_client.c; keeping its code here, in one copy, keeps it the same for both transports.
 *
 * Static functions only: each client is one translation unit that defines CLIENT_NAME (for the usage
 * text), includes this file and then defines its transport, declared below:
 *
 *   connect_one(c)     opens c->fd with tcp_connect(), sets up the transport on it and makes it non-blocking;
 *   do_send(c, idx)    writes as much of the current message as the socket takes, from c->sent on, and
 *                      asks for EPOLLOUT (set_out_interest) exactly while the socket is what stops it;
 *   do_recv(c)         reads what a readiness event promises, checks it against the pattern and returns 1
 *                      when the current message has come back whole.
 *
 * and a main() that calls setup(), connect_all(), measure(), closes its connections and print_result().
 */
#ifndef ECHO_CLIENT_COMMON_H
#define ECHO_CLIENT_COMMON_H

#ifndef CLIENT_NAME
#error "define CLIENT_NAME before including echo_client_common.h"
#endif

#define _GNU_SOURCE
#include <netdb.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#define READ_CHUNK (256 * 1024) /* as much as one read may take; asyncio and uvloop read 256 KiB too */

typedef struct {
    int fd;
    void *ssl;         /* tls_echo_client: the connection's SSL (an SSL *); unused by echo_client */
    size_t sent;       /* bytes of the current message written so far (TLS: taken by SSL_write) */
    size_t received;   /* bytes of the current message read back so far */
    uint64_t start_ns; /* when the current message's first byte was sent */
    int want_out;      /* EPOLLOUT is registered (a send is pending) */
} conn_t;

typedef struct {
    uint64_t *v;
    size_t n, cap;
} samples_t;

/* What measure() found over the measured phase. */
typedef struct {
    double seconds;
    unsigned long long messages;
    samples_t lat; /* per-message latencies in ns */
    double client_user, client_sys, server_user, server_sys;
    unsigned long long server_vol, server_invol;
} result_t;

static struct {
    const char *host;
    int port, conns;
    size_t size;
    double warmup, duration;
    unsigned long long messages; /* 0: run for --duration */
    double timeout;
    pid_t server_pid;
} opt = {"127.0.0.1", 0, 10, 1024, 0.5, 2.0, 0, 10.0, 0};

static unsigned char *pattern; /* what every message carries */
static unsigned char readbuf[READ_CHUNK];
static int epfd;
static conn_t *conns;
static struct sockaddr_storage server_addr;
static socklen_t server_addrlen;

/* The transport, defined by the including client (see the top of this file). */
static void connect_one(conn_t *c);
static void do_send(conn_t *c, int idx);
static int do_recv(conn_t *c);

static void fail(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Our messages and strerror's carry no quotes or backslashes, OpenSSL's may: keep the JSON valid. */
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '\'';
    printf("{\"ok\": false, \"error\": \"%s\"}\n", msg);
    fflush(stdout);
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* /proc/PID/<name> into buf (NUL-terminated, at most size - 1 bytes); -1 if it cannot be read. */
static int read_proc(pid_t pid, const char *name, char *buf, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* utime and stime of a process, all threads, in seconds; -1 if it cannot be read. */
static int proc_cpu(pid_t pid, double *user, double *sys) {
    char buf[1024];
    if (read_proc(pid, "stat", buf, sizeof buf) < 0)
        return -1;
    /* The command name (field 2) is in parentheses and may contain spaces: fields 3.. follow the last ')'. */
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

/* Context switches of a process's main thread (where an event loop runs): voluntary ones are the times
 * it went to sleep in its poller, so messages / voluntary switches is how many messages one wake-up
 * handled -- the batching that makes a loop's per-message cost smaller on a busy machine. */
static int proc_switches(pid_t pid, unsigned long long *vol, unsigned long long *invol) {
    char buf[4096];
    if (read_proc(pid, "status", buf, sizeof buf) < 0)
        return -1;
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

static void start_message(conn_t *c, int idx, uint64_t now) {
    c->sent = c->received = 0;
    c->start_ns = now;
    do_send(c, idx);
}

/* The next part of the current message has come back: r bytes in readbuf; fails unless they are its
 * bytes.  Returns 1 when the message is complete. */
static int check_echo(conn_t *c, size_t r) {
    if (c->received + r > c->sent)
        fail("the server sent back more than it was sent");
    if (memcmp(readbuf, pattern + c->received, r) != 0)
        fail("the server echoed different bytes");
    c->received += r;
    return c->received == opt.size;
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

/* Nearest-rank percentile of sorted samples, in microseconds. */
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

/* A blocking TCP connection to the server with TCP_NODELAY; connect_one() makes it non-blocking. */
static int tcp_connect(void) {
    int fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail("socket: %s", strerror(errno));
    if (connect(fd, (const struct sockaddr *)&server_addr, server_addrlen) < 0)
        fail("connect to %s port %d: %s", opt.host, opt.port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void usage(void) {
    fprintf(stderr,
            "usage: %s --port P [--host 127.0.0.1] [--conns 10] [--size 1024] [--warmup 0.5]\n"
            "%*s[--duration 2 | --messages N] [--server-pid PID] [--timeout 10]\n",
            CLIENT_NAME, (int)strlen("usage: " CLIENT_NAME " "), ""); /* aligned under "--port" */
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

/* The options, the server's address, the message pattern, the epoll set and the (unopened) connections. */
static void setup(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    /* A numeric address only (no name lookup): IPv4 or IPv6, whichever --host is. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *found;
    char port[8];
    snprintf(port, sizeof port, "%d", opt.port);
    if (getaddrinfo(opt.host, port, &hints, &found) != 0)
        fail("--host must be a numeric address");
    memcpy(&server_addr, found->ai_addr, found->ai_addrlen);
    server_addrlen = found->ai_addrlen;
    freeaddrinfo(found);

    /* A pattern with no short period, so a chunk echoed at the wrong offset does not compare equal. */
    pattern = malloc(opt.size);
    if (!pattern)
        fail("out of memory for a %zu-byte message", opt.size);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < opt.size; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        pattern[i] = (unsigned char)x;
    }

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        fail("epoll_create1: %s", strerror(errno));
    conns = calloc((size_t)opt.conns, sizeof *conns);
    if (!conns)
        fail("out of memory for %d connections", opt.conns);
}

static void connect_all(void) {
    for (int i = 0; i < opt.conns; i++) {
        connect_one(&conns[i]);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
            fail("epoll_ctl: %s", strerror(errno));
    }
}

/* The closed loop: the warm-up, then the measured phase (see the top of echo_client.c). */
static void measure(result_t *res) {
    samples_t lat = {0};
    int measuring = 0;
    unsigned long long done = 0; /* messages completed in the measured phase */
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
            /* A write that stopped without asking for EPOLLOUT waits for input (TLS: SSL_ERROR_WANT_READ)
             * and is retried on any event; a plain send never stops that way. */
            if ((what & EPOLLOUT) || (c->sent < opt.size && !c->want_out))
                do_send(c, idx);
            if ((what & (EPOLLIN | EPOLLHUP | EPOLLERR)) && do_recv(c)) {
                last_progress = now;
                if (measuring) {
                    done++;
                    add_sample(&lat, now - c->start_ns);
                }
                start_message(c, idx, now);
            }
        }
    }

    res->seconds = (double)(measure_end - measure_start) / 1e9;
    res->messages = done;
    res->lat = lat;
    res->client_user = cu1 - cu0;
    res->client_sys = cs1 - cs0;
    res->server_user = su1 - su0;
    res->server_sys = ss1 - ss0;
    res->server_vol = sv1 - sv0;
    res->server_invol = si1 - si0;
}

/* The JSON line; extra: fields of the transport, each with its ", " (the TLS client's "tls"), or "". */
static void print_result(const char *extra, result_t *res) {
    samples_t *lat = &res->lat;
    double secs = res->seconds;
    unsigned long long done = res->messages;
    double sum = 0;
    for (size_t i = 0; i < lat->n; i++)
        sum += (double)lat->v[i];
    qsort(lat->v, lat->n, sizeof *lat->v, cmp_u64);
    printf("{\"ok\": true, %s\"conns\": %d, \"size\": %zu, \"warmup_s\": %.3f, \"seconds\": %.6f, "
           "\"messages\": %llu, \"msgs_per_s\": %.1f, \"mib_per_s\": %.2f, "
           "\"latency_us\": {\"mean\": %.1f, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
           "\"max\": %.1f}, \"client_cpu_s\": {\"user\": %.6f, \"sys\": %.6f}",
           extra, opt.conns, opt.size, opt.warmup, secs, done, (double)done / secs,
           (double)done * (double)opt.size / secs / (1024.0 * 1024.0), lat->n ? sum / (double)lat->n / 1e3 : 0.0,
           pct_us(lat, 0.50), pct_us(lat, 0.90), pct_us(lat, 0.99), pct_us(lat, 0.999), pct_us(lat, 1.0),
           res->client_user, res->client_sys);
    if (opt.server_pid)
        printf(", \"server_pid\": %d, \"server_cpu_s\": {\"user\": %.2f, \"sys\": %.2f}, "
               "\"server_switches\": {\"voluntary\": %llu, \"involuntary\": %llu}",
               (int)opt.server_pid, res->server_user, res->server_sys, res->server_vol, res->server_invol);
    printf("}\n");
}

#endif /* ECHO_CLIENT_COMMON_H */
