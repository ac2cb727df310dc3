/* The async watcher: notifies from another thread wake the loop (many
 * notifies coalesce, none is lost), a notify before the wait counts, and
 * a wait can be canceled. */
#include <errno.h>
#include <stdatomic.h>
#include <xev.h>

#include "check.h"
#include "portable.h"

#define NOTIFIES 10000

typedef struct {
    xev_watcher *async;
    atomic_int done;
} shared_t;

static void *notifier(void *arg) {
    shared_t *s = arg;
    for (int i = 0; i < NOTIFIES; i++) CHECK_EQ(xev_async_notify(s->async), 0);
    atomic_store(&s->done, 1);
    CHECK_EQ(xev_async_notify(s->async), 0); /* after the flag: the loop sees it */
    return NULL;
}

typedef struct {
    shared_t *s;
    int wakeups;
} waiter_t;

static xev_cb_action wake_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    waiter_t *w = ud;
    UNUSED(l);
    UNUSED(c);
    CHECK_EQ(result, 0);
    w->wakeups++;
    return atomic_load(&w->s->done) ? XEV_DISARM : XEV_REARM;
}

static xev_cb_action result_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    int *r = ud;
    UNUSED(l);
    UNUSED(c);
    *r = result;
    return XEV_DISARM;
}

int main(void) {
    xev_loop loop;
    xev_watcher a;
    xev_completion c, cc;
    CHECK_EQ(xev_loop_init(&loop), 0);
    CHECK_EQ(xev_async_init(&a), 0);

    /* Notified from a thread while the loop waits. */
    {
        shared_t s = {&a, 0};
        waiter_t w = {&s, 0};
        thread_t t;
        xev_async_wait(&a, &loop, &c, &w, wake_cb);
        CHECK_EQ(thread_create(&t, notifier, &s), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(thread_join(t), 0);
        CHECK(w.wakeups >= 1);
        CHECK(w.wakeups <= NOTIFIES + 1);
    }

    /* A notify made before the wait starts wakes it. */
    {
        int r = 1;
        CHECK_EQ(xev_async_notify(&a), 0);
        xev_async_wait(&a, &loop, &c, &r, result_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(r, 0);
    }

    /* A pending wait can be canceled. */
    {
        int r = 1, rc = 1;
        xev_async_wait(&a, &loop, &c, &r, result_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_NO_WAIT), 0);
        CHECK_EQ(xev_completion_state(&c), XEV_COMPLETION_ACTIVE);
        CHECK_EQ(xev_cancel(&loop, &c, &cc, &rc, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(r, -ECANCELED);
        CHECK_EQ(rc, 0);
    }

    /* Bad input. */
    {
        xev_watcher zeroed;
        memset(&zeroed, 0, sizeof zeroed);
        CHECK_EQ(xev_async_notify(&zeroed), -EINVAL);
        CHECK_EQ(xev_async_notify(NULL), -EINVAL);
        xev_completion_zero(&c);
        xev_async_wait(&zeroed, &loop, &c, NULL, result_cb);
        CHECK_EQ(xev_completion_state(&c), XEV_COMPLETION_DEAD);
    }

    xev_async_deinit(&a);
    CHECK_EQ(xev_async_notify(&a), -EINVAL); /* deinitialised */
    xev_loop_deinit(&loop);
    printf("async: ok\n");
    return 0;
}
