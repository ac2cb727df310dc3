/* A TCP echo server on 127.0.0.1 (port given, or any free one), with a
 * built-in client: it connects N times (3 unless given), each time sends
 * a line, checks that the same bytes come back, and closes; the server
 * echoes every connection until its end of file. With "--serve PORT" it
 * only serves, forever (try: nc 127.0.0.1 PORT). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xev.h>
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

/* One connection on the server side. */
typedef struct conn {
    xev_watcher tcp;
    xev_completion c;
    char buf[4096];
} conn_t;

static xev_cb_action conn_read(xev_loop *loop, xev_completion *c, int result, void *ud);

static xev_cb_action conn_closed(xev_loop *loop, xev_completion *c, int result, void *ud) {
    conn_t *conn = ud;
    (void)loop;
    (void)c;
    (void)result;
    xev_tcp_deinit(&conn->tcp);
    free(conn);
    return XEV_DISARM;
}

static xev_cb_action conn_written(xev_loop *loop, xev_completion *c, int result, void *ud) {
    conn_t *conn = ud;
    if (result < 0) {
        xev_tcp_close(&conn->tcp, loop, c, conn, conn_closed);
        return XEV_DISARM;
    }
    /* (A short write would need the rest sent; this example's writes fit.) */
    xev_tcp_read(&conn->tcp, loop, c, conn->buf, sizeof conn->buf, conn, conn_read);
    return XEV_DISARM;
}

static xev_cb_action conn_read(xev_loop *loop, xev_completion *c, int result, void *ud) {
    conn_t *conn = ud;
    if (result <= 0) { /* XEV_EOF or an error: done with this one */
        xev_tcp_close(&conn->tcp, loop, c, conn, conn_closed);
        return XEV_DISARM;
    }
    xev_tcp_write(&conn->tcp, loop, c, conn->buf, (size_t)result, conn, conn_written);
    return XEV_DISARM;
}

static xev_cb_action accepted(xev_loop *loop, xev_completion *c, int result, void *ud) {
    conn_t *conn;
    (void)c;
    (void)ud;
    if (result < 0) {
        if (result != -ECANCELED) fprintf(stderr, "accept: %s\n", xev_strerror(result));
        return XEV_DISARM;
    }
    conn = malloc(sizeof *conn);
    if (conn == NULL || xev_tcp_init_fd(&conn->tcp, result) != 0) exit(1);
    xev_tcp_read(&conn->tcp, loop, &conn->c, conn->buf, sizeof conn->buf, conn, conn_read);
    return XEV_REARM; /* accept the next connection */
}

/* The client: connect, send, read the echo back, close; N times. */
typedef struct {
    xev_watcher tcp;
    xev_completion c;
    struct sockaddr_in addr;
    int remaining;
    char line[64];
    size_t len, got;
    char back[64];
    xev_watcher *listener;
    xev_completion *accept_c, cancel_c;
} client_t;

static void client_start(xev_loop *loop, client_t *cl);

static xev_cb_action accept_ended(xev_loop *loop, xev_completion *c, int result, void *ud) {
    (void)loop;
    (void)c;
    (void)result;
    (void)ud;
    return XEV_DISARM;
}

static xev_cb_action client_closed(xev_loop *loop, xev_completion *c, int result, void *ud) {
    client_t *cl = ud;
    (void)c;
    (void)result;
    xev_tcp_deinit(&cl->tcp);
    if (--cl->remaining > 0) {
        client_start(loop, cl);
    } else {
        /* Done: stop accepting, so the loop runs out of work. */
        xev_cancel(loop, cl->accept_c, &cl->cancel_c, NULL, accept_ended);
    }
    return XEV_DISARM;
}

static xev_cb_action client_read(xev_loop *loop, xev_completion *c, int result, void *ud) {
    client_t *cl = ud;
    if (result <= 0) exit(1);
    cl->got += (size_t)result;
    if (cl->got < cl->len) {
        xev_tcp_read(&cl->tcp, loop, c, cl->back + cl->got, sizeof cl->back - cl->got, cl, client_read);
        return XEV_DISARM;
    }
    if (memcmp(cl->back, cl->line, cl->len) != 0) exit(1);
    printf("echoed: %.*s", (int)cl->len, cl->back);
    xev_tcp_close(&cl->tcp, loop, c, cl, client_closed);
    return XEV_DISARM;
}

static xev_cb_action client_sent(xev_loop *loop, xev_completion *c, int result, void *ud) {
    client_t *cl = ud;
    if (result != (int)cl->len) exit(1);
    cl->got = 0;
    xev_tcp_read(&cl->tcp, loop, c, cl->back, sizeof cl->back, cl, client_read);
    return XEV_DISARM;
}

static xev_cb_action client_connected(xev_loop *loop, xev_completion *c, int result, void *ud) {
    client_t *cl = ud;
    if (result != 0) {
        fprintf(stderr, "connect: %s\n", xev_strerror(result));
        exit(1);
    }
    cl->len = (size_t)snprintf(cl->line, sizeof cl->line, "hello number %d\n", cl->remaining);
    xev_tcp_write(&cl->tcp, loop, c, cl->line, cl->len, cl, client_sent);
    return XEV_DISARM;
}

static void client_start(xev_loop *loop, client_t *cl) {
    if (xev_tcp_init(&cl->tcp, AF_INET) != 0) exit(1);
    xev_tcp_connect(&cl->tcp, loop, &cl->c, (struct sockaddr *)&cl->addr, sizeof cl->addr, cl, client_connected);
}

int main(int argc, char **argv) {
    int serve_only = argc > 2 && strcmp(argv[1], "--serve") == 0;
    int port = serve_only ? atoi(argv[2]) : 0;
    int clients = !serve_only && argc > 1 ? atoi(argv[1]) : 3;
    xev_loop loop;
    xev_watcher listener;
    xev_completion accept_c;
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    client_t cl;
    int rc;

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (xev_loop_init(&loop) != 0 || xev_tcp_init(&listener, AF_INET) != 0) return 1;
    if ((rc = xev_tcp_bind(&listener, (struct sockaddr *)&addr, sizeof addr)) != 0 ||
        (rc = xev_tcp_listen(&listener, 128)) != 0) {
        fprintf(stderr, "listen: %s\n", xev_strerror(rc));
        return 1;
    }
    getsockname(xev_watcher_fd(&listener), (struct sockaddr *)&addr, &len);
    printf("echo server on 127.0.0.1:%d (%s)\n", ntohs(addr.sin_port), xev_loop_backend(&loop));
    fflush(stdout);
    xev_tcp_accept(&listener, &loop, &accept_c, NULL, accepted);

    if (!serve_only) {
        memset(&cl, 0, sizeof cl);
        cl.addr = addr;
        cl.remaining = clients;
        cl.listener = &listener;
        cl.accept_c = &accept_c;
        client_start(&loop, &cl);
    }
    if (xev_loop_run(&loop, XEV_RUN_UNTIL_DONE) != 0) return 1;
    xev_tcp_close(&listener, &loop, &accept_c, NULL, accept_ended);
    if (xev_loop_run(&loop, XEV_RUN_UNTIL_DONE) != 0) return 1;
    xev_tcp_deinit(&listener);
    xev_loop_deinit(&loop);
    return 0;
}
