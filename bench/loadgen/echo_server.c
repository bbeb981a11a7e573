/*
 * echo_server.c -- a plain C epoll echo server: the ceiling the Python servers are compared with.
 *
 *   echo_server [--host 127.0.0.1] [--port 0] [--backlog 128]
 *
 * Binds, prints the bound port on stdout (one line, flushed), then echoes every connection until SIGINT
 * or SIGTERM.  It does the least a correct non-blocking echo server can: level-triggered epoll, one
 * read() per readiness event into one shared buffer, the bytes written straight back, and only when the
 * socket does not take them all (large messages) the rest is copied aside and the connection switches
 * from EPOLLIN to EPOLLOUT until it is flushed -- so a client that does not read cannot make us buffer
 * without bound.  Per message of up to 256 KiB that is one epoll_wait (shared by every ready connection),
 * one read and one write: what is left is the kernel's cost, which no event loop can avoid.
 *
 * The sockets get TCP_NODELAY, as asyncio, uvloop and pyloop set it on their TCP transports.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024)

typedef struct {
    char *pending; /* bytes read but not yet written back (NULL: none) */
    size_t len, off;
} conn_t;

static conn_t *conns; /* indexed by fd */
static int nconns;
static int epfd;
static char buf[READ_CHUNK];
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void die(const char *what) {
    fprintf(stderr, "echo_server: %s: %s\n", what, strerror(errno));
    exit(1);
}

static conn_t *conn_for(int fd) {
    if (fd >= nconns) {
        int n = nconns ? nconns : 64;
        while (n <= fd)
            n *= 2;
        conns = realloc(conns, (size_t)n * sizeof *conns);
        if (!conns)
            die("realloc");
        memset(conns + nconns, 0, (size_t)(n - nconns) * sizeof *conns);
        nconns = n;
    }
    return &conns[fd];
}

static void drop(int fd) {
    conn_t *c = conn_for(fd);
    free(c->pending);
    memset(c, 0, sizeof *c);
    close(fd); /* also removes it from the epoll set */
}

static void watch(int fd, int op, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, op, fd, &ev) < 0)
        die("epoll_ctl");
}

/* Write data back; keep what the socket does not take and wait for EPOLLOUT.  -1: drop the connection. */
static int write_back(int fd, conn_t *c, const char *data, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL);
        if (n > 0)
            done += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else
            return -1;
    }
    if (done == len)
        return 0;
    char *rest = malloc(len - done);
    if (!rest)
        return -1;
    memcpy(rest, data + done, len - done);
    c->pending = rest;
    c->len = len - done;
    c->off = 0;
    watch(fd, EPOLL_CTL_MOD, EPOLLOUT);
    return 0;
}

static int on_readable(int fd, conn_t *c) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    if (n == 0)
        return -1; /* the peer is done: an echo server has nothing left to say */
    return write_back(fd, c, buf, (size_t)n);
}

static int on_writable(int fd, conn_t *c) {
    while (c->off < c->len) {
        ssize_t n = send(fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n > 0)
            c->off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    free(c->pending);
    c->pending = NULL;
    c->len = c->off = 0;
    watch(fd, EPOLL_CTL_MOD, EPOLLIN);
    return 0;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, backlog = 128;
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},
        {"port", required_argument, 0, 'p'},
        {"backlog", required_argument, 0, 'b'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'b': backlog = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: echo_server [--host 127.0.0.1] [--port 0] [--backlog 128]\n");
            return 2;
        }
    }

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "echo_server: --host must be a numeric IPv4 address\n");
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(lfd, backlog) < 0)
        die("listen");
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    watch(lfd, EPOLL_CTL_ADD, EPOLLIN);

    struct epoll_event events[256];
    while (!stop) {
        int n = epoll_wait(epfd, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_for(cfd);
                    watch(cfd, EPOLL_CTL_ADD, EPOLLIN);
                }
                continue;
            }
            conn_t *c = conn_for(fd);
            uint32_t what = events[i].events;
            int rc = 0;
            if (c->pending)
                rc = (what & (EPOLLOUT | EPOLLERR | EPOLLHUP)) ? on_writable(fd, c) : 0;
            else if (what & (EPOLLIN | EPOLLERR | EPOLLHUP))
                rc = on_readable(fd, c);
            if (rc < 0)
                drop(fd);
        }
    }
    close(lfd);
    return 0;
}
