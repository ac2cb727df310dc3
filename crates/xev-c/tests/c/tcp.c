/* TCP on one loop: a server and a client echo a message (accept, connect,
 * write, read, shutdown, end of file, close), a refused connection, and a
 * pending accept canceled. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <xev.h>

#include "check.h"
#include "portable.h"

static const char MESSAGE[] = "hello, xev";

typedef struct {
    xev_watcher listener, conn, client;
    xev_completion c_accept, c_srv, c_cli, c_close1, c_close2, c_close3;
    char srv_buf[64];
    char cli_buf[64];
    size_t cli_got;
    int server_eof, client_eof, closed;
} echo_t;

static xev_cb_action closed_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    echo_t *e = ud;
    UNUSED(l);
    UNUSED(c);
    CHECK_EQ(result, 0);
    e->closed++;
    return XEV_DISARM;
}

static xev_cb_action srv_write_cb(xev_loop *l, xev_completion *c, int result, void *ud);

/* The server echoes what it reads until end of file, then closes. */
static xev_cb_action srv_read_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    echo_t *e = ud;
    UNUSED(c);
    if (result == XEV_EOF) {
        e->server_eof = 1;
        CHECK_EQ(xev_tcp_close(&e->conn, l, &e->c_close1, e, closed_cb), 0);
        return XEV_DISARM;
    }
    CHECK(result > 0);
    CHECK_EQ(xev_tcp_write(&e->conn, l, &e->c_srv, e->srv_buf, (size_t)result, e, srv_write_cb), 0);
    return XEV_DISARM;
}

static xev_cb_action srv_write_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    echo_t *e = ud;
    UNUSED(c);
    CHECK(result > 0);
    CHECK_EQ(xev_tcp_read(&e->conn, l, &e->c_srv, e->srv_buf, sizeof e->srv_buf, e, srv_read_cb), 0);
    return XEV_DISARM;
}

static xev_cb_action accept_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    echo_t *e = ud;
    UNUSED(c);
    CHECK(result >= 0);
    CHECK_EQ(xev_tcp_init_fd(&e->conn, (xev_fd)result), 0);
    CHECK_EQ(xev_watcher_fd(&e->conn), result);
    CHECK_EQ(xev_tcp_read(&e->conn, l, &e->c_srv, e->srv_buf, sizeof e->srv_buf, e, srv_read_cb), 0);
    return XEV_DISARM;
}

static xev_cb_action cli_read_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    echo_t *e = ud;
    UNUSED(c);
    if (result == XEV_EOF) {
        e->client_eof = 1;
        CHECK_EQ(xev_tcp_close(&e->client, l, &e->c_close2, e, closed_cb), 0);
        return XEV_DISARM;
    }
    CHECK(result > 0);
    e->cli_got += (size_t)result;
    if (e->cli_got == sizeof MESSAGE) {
        CHECK(memcmp(e->cli_buf, MESSAGE, sizeof MESSAGE) == 0);
        /* All echoed: shut down our side; the server sees end of file. */
        CHECK_EQ(xev_tcp_shutdown(&e->client, l, &e->c_cli, XEV_SHUTDOWN_WRITE, e, NULL), -EINVAL);
        CHECK_EQ(xev_tcp_shutdown(&e->client, l, &e->c_close3, XEV_SHUTDOWN_WRITE, e, closed_cb), 0);
        e->closed--; /* the shutdown's callback is counted as a close */
    }
    /* Rearm: read the rest (or the end of file) into the same buffer. */
    CHECK_EQ(xev_tcp_read(&e->client, l, c, e->cli_buf + e->cli_got, sizeof e->cli_buf - e->cli_got, e, cli_read_cb), 0);
    return XEV_DISARM;
}

static xev_cb_action cli_write_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    echo_t *e = ud;
    CHECK_EQ(result, (int)sizeof MESSAGE);
    CHECK_EQ(xev_tcp_read(&e->client, l, c, e->cli_buf, sizeof e->cli_buf, e, cli_read_cb), 0);
    return XEV_DISARM;
}

static xev_cb_action connect_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    echo_t *e = ud;
    CHECK_EQ(result, 0);
    CHECK_EQ(xev_tcp_write(&e->client, l, c, MESSAGE, sizeof MESSAGE, e, cli_write_cb), 0);
    return XEV_DISARM;
}

static xev_cb_action result_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    int *r = ud;
    UNUSED(l);
    UNUSED(c);
    *r = result;
    return XEV_DISARM;
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int port_of(xev_watcher *w) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    CHECK_EQ(getsockname(xev_watcher_fd(w), (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

int main(void) {
    xev_loop loop;
    echo_t e;
    struct sockaddr_in addr = loopback(0);
    memset(&e, 0, sizeof e);
    CHECK_EQ(xev_loop_init(&loop), 0);
    printf("backend %s\n", xev_loop_backend(&loop));

    /* The echo. */
    CHECK_EQ(xev_tcp_init(&e.listener, AF_INET), 0);
    CHECK_EQ(xev_tcp_bind(&e.listener, (struct sockaddr *)&addr, sizeof addr), 0);
    CHECK_EQ(xev_tcp_listen(&e.listener, 16), 0);
    addr = loopback(port_of(&e.listener));
    CHECK_EQ(xev_tcp_accept(&e.listener, &loop, &e.c_accept, &e, accept_cb), 0);
    CHECK_EQ(xev_tcp_init(&e.client, AF_INET), 0);
    CHECK_EQ(xev_tcp_connect(&e.client, &loop, &e.c_cli, (struct sockaddr *)&addr, sizeof addr, &e, connect_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(e.cli_got, sizeof MESSAGE);
    CHECK(e.server_eof);
    CHECK(e.client_eof);
    CHECK_EQ(e.closed, 2);
    CHECK_EQ(xev_watcher_fd(&e.client), XEV_INVALID_FD); /* closed */
    CHECK_EQ(xev_tcp_listen(&e.client, 1), -EBADF);
    xev_tcp_deinit(&e.conn);
    xev_tcp_deinit(&e.client);

    /* A pending accept, canceled. */
    {
        int r = 1, rc = 1;
        CHECK_EQ(xev_tcp_accept(&e.listener, &loop, &e.c_accept, &r, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_NO_WAIT), 0);
        CHECK_EQ(xev_cancel(&loop, &e.c_accept, &e.c_cli, &rc, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(r, -ECANCELED);
        CHECK_EQ(rc, 0);
    }

    /* A port with a bound socket that does not listen refuses. */
    {
        int r = 1;
        xev_watcher idle, client;
        struct sockaddr_in any = loopback(0);
        CHECK_EQ(xev_tcp_init(&idle, AF_INET), 0);
        CHECK_EQ(xev_tcp_bind(&idle, (struct sockaddr *)&any, sizeof any), 0);
        any = loopback(port_of(&idle));
        CHECK_EQ(xev_tcp_init(&client, AF_INET), 0);
        CHECK_EQ(xev_tcp_connect(&client, &loop, &e.c_cli, (struct sockaddr *)&any, sizeof any, &r, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(r, -ECONNREFUSED);
        CHECK_EQ(xev_tcp_close(&client, &loop, &e.c_cli, &r, result_cb), 0);
        CHECK_EQ(xev_tcp_close(&idle, &loop, &e.c_close1, &r, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        xev_tcp_deinit(&idle);
        xev_tcp_deinit(&client);
    }

    /* Bad input. */
    {
        xev_watcher w, zw;
        struct sockaddr bad;
        memset(&zw, 0, sizeof zw);
        memset(&bad, 0, sizeof bad);
        CHECK_EQ(xev_tcp_init(&w, 12345), -EAFNOSUPPORT);
        CHECK_EQ(xev_tcp_listen(&zw, 1), -EINVAL);
        CHECK_EQ(xev_tcp_bind(&e.listener, &bad, sizeof bad), -EINVAL);
        CHECK_EQ(xev_tcp_bind(&e.listener, (struct sockaddr *)&addr, 2), -EINVAL);
        CHECK_EQ(xev_tcp_read(&e.listener, &loop, &e.c_cli, NULL, 5, NULL, result_cb), -EINVAL);
        CHECK_EQ(xev_tcp_init_fd(&w, 0) < 0, 1); /* stdin is no socket */
    }

    {
        int r = 1;
        CHECK_EQ(xev_tcp_close(&e.listener, &loop, &e.c_close1, &r, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(r, 0);
        xev_tcp_deinit(&e.listener);
    }
    xev_loop_deinit(&loop);
    printf("tcp: ok\n");
    return 0;
}
