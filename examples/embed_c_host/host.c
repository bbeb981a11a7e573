/* A C program with its own epoll loop that embeds CPython and drives a pyloop loop from it.
 *
 * The host owns the main loop, as a C server, Node or a GUI toolkit would.  It waits in
 * epoll_wait on its own fds -- a TCP client socket and a timerfd, a 60 s watchdog that fails
 * the program if it ever fires -- and on pyloop's reactor fd (pyhost_start() returns it), for
 * no longer than pyloop's next timer (pyhost_timeout_ms()); after every wake-up it runs one
 * non-blocking pyloop step (pyhost_step()).  No second thread runs the loop: the Python side
 * runs only inside those calls.  (The app's worker thread answers through
 * call_soon_threadsafe, which makes pyloop's fd readable: with no pyloop timer pending, that
 * is the only thing that can wake the host for it before the watchdog.)
 *
 * The Python side (glue.py, compiled into lib_pyloop_host.so by cffi's embedding mode) is an
 * echo server; the host is its client, in the same thread, so the exchange completes only if
 * both loops really share it.  Linux (epoll, timerfd).  Build and run: see build.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "pyloop_host.h"   /* written by build.py from its API declarations */

#define MESSAGE "hello from C"

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void watch(int ep, int fd, uint32_t events, int add)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0)
        die("epoll_ctl");
}

/* The host's own client: connect, send MESSAGE, half-close, read the reply until EOF. */
struct client {
    int fd;
    size_t sent;
    char reply[256];
    size_t got;
    int finished;
};

static void client_start(struct client *c, int ep, int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        die("connect");
    watch(ep, c->fd, EPOLLOUT, 1);
}

static void client_event(struct client *c, int ep, uint32_t events)
{
    if (events & EPOLLOUT) {
        ssize_t n = send(c->fd, MESSAGE + c->sent, strlen(MESSAGE) - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            die("send");
        if (n > 0)
            c->sent += (size_t)n;
        if (c->sent == strlen(MESSAGE)) {
            shutdown(c->fd, SHUT_WR);
            watch(ep, c->fd, EPOLLIN, 0);
        }
    } else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t n = recv(c->fd, c->reply + c->got, sizeof c->reply - 1 - c->got, 0);
        if (n < 0 && errno != EAGAIN)
            die("recv");
        if (n > 0) {
            c->got += (size_t)n;
        } else if (n == 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
            c->finished = 1;
        }
    }
}

int main(void)
{
    struct client client = {.fd = -1};
    struct epoll_event events[16];
    struct itimerspec watchdog = {.it_value = {60, 0}};
    unsigned long steps = 0;
    int app_done = 0, port = 0;
    char result[256];

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    /* The first call into the library starts the interpreter and runs glue.py. */
    int pyfd = pyhost_start();
    if (pyfd < 0) {
        fprintf(stderr, "host: pyhost_start failed\n");
        return 1;
    }
    watch(ep, pyfd, EPOLLIN, 1);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0 || timerfd_settime(tfd, 0, &watchdog, NULL) < 0)
        die("timerfd");
    watch(ep, tfd, EPOLLIN, 1);

    while (!(app_done && client.finished)) {
        int timeout = pyhost_timeout_ms();   /* -1: pyloop has no timer, wait for fds */
        if (timeout < -1) {
            fprintf(stderr, "host: pyhost_timeout_ms failed\n");
            return 1;
        }
        int n = epoll_wait(ep, events, 16, timeout);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == tfd) {
                fprintf(stderr, "host: the watchdog fired: pyloop never woke the host\n");
                return 1;
            } else if (fd == client.fd) {
                client_event(&client, ep, events[i].events);
            }
            /* pyfd: nothing to do here; the step below handles what is ready. */
        }
        int rc = pyhost_step();
        steps++;
        if (rc < 0) {
            fprintf(stderr, "host: pyhost_step failed\n");
            return 1;
        }
        app_done = rc;
        if (client.fd < 0 && !client.finished && (port = pyhost_port()) > 0) {
            printf("host: pyloop listens on port %d\n", port);
            client_start(&client, ep, port);
        }
    }
    client.reply[client.got] = '\0';
    printf("host: got \"%s\"\n", client.reply);
    printf("host: %lu pyloop steps\n", steps);
    if (pyhost_result(result, sizeof result) < 0)
        return 1;
    printf("pyloop: %s\n", result);
    pyhost_close();
    close(tfd);
    close(ep);
    return 0;
}
