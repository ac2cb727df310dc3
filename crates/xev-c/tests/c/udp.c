/* UDP: a datagram from one socket to another, whose read reports the
 * sender, and a reply to that sender. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <xev.h>

#include "check.h"
#include "portable.h"

typedef struct {
    xev_watcher a, b;
    xev_completion ca, cb, cw;
    char buf_a[32], buf_b[32];
    struct sockaddr_in addr_a;
    int got_a, got_b, sent;
} udp_t;

static xev_cb_action sent_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    udp_t *u = ud;
    UNUSED(l);
    UNUSED(c);
    CHECK(result > 0);
    u->sent++;
    return XEV_DISARM;
}

static xev_cb_action a_read_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    udp_t *u = ud;
    UNUSED(l);
    UNUSED(c);
    CHECK_EQ(result, 4);
    CHECK(memcmp(u->buf_a, "pong", 4) == 0);
    u->got_a = 1;
    return XEV_DISARM;
}

static xev_cb_action b_read_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    udp_t *u = ud;
    struct sockaddr_storage from;
    size_t len = sizeof from;
    CHECK_EQ(result, 4);
    CHECK(memcmp(u->buf_b, "ping", 4) == 0);
    CHECK_EQ(xev_completion_peer(c, (struct sockaddr *)&from, &len), 0);
    CHECK_EQ(len, sizeof(struct sockaddr_in));
    CHECK_EQ(((struct sockaddr_in *)&from)->sin_port, u->addr_a.sin_port);
    {
        size_t small = 4;
        CHECK_EQ(xev_completion_peer(c, (struct sockaddr *)&from, &small), -EINVAL);
    }
    u->got_b = 1;
    CHECK_EQ(xev_udp_write(&u->b, l, &u->cw, "pong", 4, (struct sockaddr *)&from, len, u, sent_cb), 0);
    return XEV_DISARM;
}

static struct sockaddr_in bound(xev_watcher *w) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(xev_udp_bind(w, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(getsockname(xev_watcher_fd(w), (struct sockaddr *)&a, &len), 0);
    return a;
}

static xev_cb_action closed_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    UNUSED(l);
    UNUSED(c);
    UNUSED(ud);
    CHECK_EQ(result, 0);
    return XEV_DISARM;
}

int main(void) {
    xev_loop loop;
    udp_t u;
    struct sockaddr_in addr_b;
    memset(&u, 0, sizeof u);
    CHECK_EQ(xev_loop_init(&loop), 0);
    printf("backend %s\n", xev_loop_backend(&loop));
    CHECK_EQ(xev_udp_init(&u.a, AF_INET), 0);
    CHECK_EQ(xev_udp_init(&u.b, AF_INET), 0);
    u.addr_a = bound(&u.a);
    addr_b = bound(&u.b);
    CHECK_EQ(xev_udp_read(&u.b, &loop, &u.cb, u.buf_b, sizeof u.buf_b, &u, b_read_cb), 0);
    CHECK_EQ(xev_udp_read(&u.a, &loop, &u.ca, u.buf_a, sizeof u.buf_a, &u, a_read_cb), 0);
    {
        xev_completion cs;
        CHECK_EQ(xev_udp_write(&u.a, &loop, &cs, "ping", 4, (struct sockaddr *)&addr_b, sizeof addr_b, &u, sent_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    }
    CHECK(u.got_a);
    CHECK(u.got_b);
    CHECK_EQ(u.sent, 2);
    {
        struct sockaddr_storage from;
        size_t len = sizeof from;
        xev_completion_zero(&u.cw);
        CHECK_EQ(xev_completion_peer(&u.cw, (struct sockaddr *)&from, &len), -EINVAL);
    }
    CHECK_EQ(xev_udp_close(&u.a, &loop, &u.ca, NULL, closed_cb), 0);
    CHECK_EQ(xev_udp_close(&u.b, &loop, &u.cb, NULL, closed_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    xev_udp_deinit(&u.a);
    xev_udp_deinit(&u.b);
    xev_loop_deinit(&loop);
    printf("udp: ok\n");
    return 0;
}
