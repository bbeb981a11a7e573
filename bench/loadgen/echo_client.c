/*
 * echo_client.c -- a closed-loop echo load generator (Linux, epoll).
 *
 *   echo_client --port P [--host 127.0.0.1] [--conns 10] [--size 1024]
 *               [--warmup 0.5] [--duration 2 | --messages N] [--server-pid PID] [--timeout 10]
 *
 * Opens --conns TCP connections to an echo server.  Each connection has exactly one message of --size
 * bytes in flight: it sends the message, reads until all --size bytes have come back (checking that they
 * are the bytes it sent), and only then sends the next one.  So the offered load adapts to the server
 * (closed loop) and the number of messages per second is the server's throughput at a concurrency of
 * --conns, not a rate we picked.
 *
 * The run has two phases.  During --warmup seconds nothing is counted (connections settle, the server's
 * interpreter specialises, buffers grow).  Then the measured phase runs for --duration seconds, or until
 * --messages messages have completed.  Messages are counted when their last byte comes back, so a message
 * in flight at a phase boundary counts in the phase where it completes; in a closed loop that is exact
 * in the long run and off by at most --conns messages in any run.
 *
 * With --server-pid the client reads the server's utime and stime from /proc/PID/stat at the two
 * instants that bound the measured phase, so the server's CPU is taken over exactly the interval whose
 * messages are counted (sampling it from the outside, around the whole client run, would add the
 * warm-up and connection set-up).  /proc/PID/stat counts every thread of the process, in clock ticks
 * (sysconf(_SC_CLK_TCK), 100 per second on Linux): each figure is good to one tick, 10 ms, so measured
 * phases of a second or more keep that error to about a percent of the total.  It also reads the context
 * switches of the server's main thread from /proc/PID/status (see proc_switches).
 *
 * At the end it prints one JSON line on stdout:
 *   {"ok": true, "conns": .., "size": .., "seconds": .., "messages": .., "msgs_per_s": .., "mib_per_s": ..,
 *    "latency_us": {"mean", "p50", "p90", "p99", "p999", "max"},
 *    "client_cpu_s": {"user", "sys"},
 *    "server_cpu_s": {"user", "sys"}, "server_switches": {"voluntary", "involuntary"}}   (with --server-pid)
 * or {"ok": false, "error": "..."} with exit status 1 (2 for a bad option).  Latency is from the first byte
 * sent to the last byte received, per message, over the measured phase.
 *
 * Why it is written this way:
 * - Level-triggered epoll and one read per readiness event: the client should cost as little CPU per
 *   message as the server it drives, or it, not the server, sets the throughput.  EPOLLOUT is asked for
 *   only while a message could not be written in one go (100 KiB messages against a full socket buffer).
 * - The client reads while a send is still pending: an echo server that writes back the first half of a
 *   large message before reading the second half would otherwise deadlock against us.
 * - TCP_NODELAY on every connection, as the servers under test set it: otherwise Nagle plus delayed ACKs
 *   put 40 ms pauses into the partial writes of the large messages.
 *
 * The code of all this but the transport is in echo_client_common.h, shared with tls_echo_client.c (the
 * same method over TLS; its comment says what differs).  This file holds the plain TCP transport only.
 */
#define CLIENT_NAME "echo_client"
#include "echo_client_common.h"

static void connect_one(conn_t *c) {
    c->fd = tcp_connect();
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

/* Write as much of the current message as the socket takes. */
static void do_send(conn_t *c, int idx) {
    while (c->sent < opt.size) {
        ssize_t n = send(c->fd, pattern + c->sent, opt.size - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out_interest(c, idx, 1);
            return;
        } else {
            fail("send: %s", n < 0 ? strerror(errno) : "wrote nothing");
        }
    }
    set_out_interest(c, idx, 0);
}

/* One read per readiness event; returns 1 when the current message completed. */
static int do_recv(conn_t *c) {
    ssize_t r = recv(c->fd, readbuf, sizeof readbuf, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (r < 0)
        fail("recv: %s", strerror(errno));
    if (r == 0)
        fail("the server closed a connection");
    return check_echo(c, (size_t)r);
}

int main(int argc, char **argv) {
    setup(argc, argv);
    connect_all();
    result_t res;
    measure(&res);
    for (int i = 0; i < opt.conns; i++)
        close(conns[i].fd);
    print_result("", &res);
    return 0;
}
