/*
 * tls_echo_client.c -- a closed-loop TLS echo load generator (Linux, epoll, OpenSSL).
 *
 *   tls_echo_client --port P [--host 127.0.0.1] [--conns 10] [--size 1024]
 *                   [--warmup 0.5] [--duration 2 | --messages N] [--server-pid PID] [--timeout 10]
 *
 * The TLS twin of echo_client.c: the same measuring method (read that file's comment: closed loop, one
 * message in flight per connection, a warm-up, the server's CPU from /proc/PID/stat over exactly the
 * measured phase), from the same code (echo_client_common.h).  This file holds the TLS transport only.
 * What differs:
 * - Each connection does its TLS handshake (blocking, before the clock starts) and then speaks TLS: the
 *   server decrypts every message and encrypts the echo.  The certificate is not verified (the servers
 *   use a throw-away self-signed one); the protocol version and cipher are OpenSSL's defaults (TLS 1.3,
 *   AES-GCM here), the same for every server measured.
 * - OpenSSL may hold decrypted bytes of a record that one SSL_read did not take: after a readiness event
 *   the client reads until SSL_read wants more input, since level-triggered epoll only reports what is
 *   still in the kernel.
 * - SSL_write may want the socket writable (a 100 KiB message against a full socket buffer): EPOLLOUT is
 *   asked for and the same write retried, as TLS requires (partial writes are enabled, so it resumes where
 *   it stopped).  When it wants input instead (a post-handshake message), the next event retries it.
 *
 * Output: the JSON line of echo_client.c, with "tls": "<version> <cipher>" added.
 * Build: cc -O2 -Wall -o tls_echo_client tls_echo_client.c -lssl -lcrypto
 */
#define CLIENT_NAME "tls_echo_client"
#include "echo_client_common.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx;

static const char *ssl_error_text(void) {
    static char buf[256];
    unsigned long e = ERR_get_error();
    if (!e)
        return errno ? strerror(errno) : "no OpenSSL error queued";
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

static void connect_one(conn_t *c) {
    c->fd = tcp_connect();
    struct timeval tv = {.tv_sec = (time_t)opt.timeout, .tv_usec = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* a server that never answers */
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        fail("SSL_new: %s", ssl_error_text());
    c->ssl = ssl;
    SSL_set_fd(ssl, c->fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    ERR_clear_error();
    if (SSL_connect(ssl) != 1)
        fail("TLS handshake with port %d: %s", opt.port, ssl_error_text());
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
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
        if (err == SSL_ERROR_WANT_READ) /* a post-handshake message is being read: any event retries */
            return;
        fail("SSL_write: %s", ssl_error_text());
    }
    set_out_interest(c, idx, 0);
}

/* Read everything TLS has for this connection; returns 1 when the current message completed. */
static int do_recv(conn_t *c) {
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
        if (check_echo(c, r))
            return 1; /* a closed loop: nothing more can be in flight on this connection */
    }
}

int main(int argc, char **argv) {
    setup(argc, argv);
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        fail("SSL_CTX_new: %s", ssl_error_text());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    connect_all();

    char tls_info[200];
    snprintf(tls_info, sizeof tls_info, "\"tls\": \"%s %s\", ", SSL_get_version(conns[0].ssl),
             SSL_CIPHER_get_name(SSL_get_current_cipher(conns[0].ssl)));
    result_t res;
    measure(&res);
    for (int i = 0; i < opt.conns; i++) {
        SSL_free(conns[i].ssl);
        close(conns[i].fd);
    }
    SSL_CTX_free(ctx);
    print_result(tls_info, &res);
    return 0;
}
