/* The libxev-compatible loop, completion and timer functions: run modes,
 * the clock, completion states, timers that fire in order, resets from
 * outside and from inside a callback, cancels, rearm, and bad input. */
#include <errno.h>
#include <stdint.h>
#include <xev.h>

#include "check.h"

typedef struct {
    int fired;
    int last_result;
    int order[8];
    int norder;
} counter_t;

static xev_cb_action count_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    counter_t *k = ud;
    UNUSED(l);
    CHECK_EQ(xev_completion_state(c), XEV_COMPLETION_DEAD); /* dead in its own callback */
    k->fired++;
    k->last_result = result;
    return XEV_DISARM;
}

typedef struct {
    counter_t *k;
    int id;
} tagged_t;

static xev_cb_action order_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    tagged_t *t = ud;
    UNUSED(l);
    UNUSED(c);
    CHECK_EQ(result, 0);
    t->k->order[t->k->norder++] = t->id;
    return XEV_DISARM;
}

/* Rearms three times: fires four times in all. */
static xev_cb_action rearm_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    int *n = ud;
    UNUSED(l);
    UNUSED(c);
    CHECK_EQ(result, 0);
    (*n)++;
    return *n < 4 ? XEV_REARM : XEV_DISARM;
}

/* Restarts its own completion from its callback (the libxev way to repeat
 * after an interval): three runs in all. */
typedef struct {
    xev_watcher *w;
    int runs;
    int64_t started;
} again_t;

static xev_cb_action again_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    again_t *a = ud;
    CHECK_EQ(result, 0);
    a->runs++;
    if (a->runs < 3) {
        xev_timer_run(a->w, l, c, 2, a, again_cb);
        CHECK_EQ(xev_completion_state(c), XEV_COMPLETION_ACTIVE);
    }
    return XEV_DISARM;
}

/* Resets its own timer from the callback: a dead completion is run again. */
typedef struct {
    xev_watcher *w;
    xev_completion *cancel;
    int runs;
} reset_self_t;

static xev_cb_action reset_self_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    reset_self_t *r = ud;
    CHECK_EQ(result, 0);
    r->runs++;
    if (r->runs == 1) xev_timer_reset(r->w, l, c, r->cancel, 1, r, reset_self_cb);
    return XEV_DISARM;
}

static xev_cb_action stop_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    int *n = ud;
    UNUSED(c);
    CHECK_EQ(result, 0);
    (*n)++;
    xev_loop_stop(l);
    return XEV_DISARM;
}

/* Runs the loop again from inside a callback (nested). */
static xev_cb_action nested_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    counter_t *k = ud;
    xev_watcher w;
    xev_completion inner;
    UNUSED(c);
    CHECK_EQ(result, 0);
    CHECK_EQ(xev_timer_init(&w), 0);
    xev_timer_run(&w, l, &inner, 1, k, count_cb);
    CHECK_EQ(xev_loop_run(l, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(k->fired, 1);
    xev_timer_deinit(&w);
    return XEV_DISARM;
}

int main(void) {
    xev_loop loop;
    xev_watcher w;
    xev_completion c1, c2, c3, cc;
    counter_t k;

    CHECK_EQ(xev_loop_init(&loop), 0);
    CHECK(xev_loop_backend(&loop) != NULL);
    printf("backend %s\n", xev_loop_backend(&loop));
    CHECK_EQ(xev_timer_init(&w), 0);

    /* An idle loop returns at once in every mode. */
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_NO_WAIT), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_ONCE), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);

    /* The clock: monotonic; update_now refreshes it. */
    {
        int64_t a = xev_loop_now(&loop);
        xev_loop_update_now(&loop);
        CHECK(xev_loop_now(&loop) >= a);
    }

    /* A zeroed completion is dead; a timer is active until it fires. */
    memset(&k, 0, sizeof k);
    xev_completion_zero(&c1);
    CHECK_EQ(xev_completion_state(&c1), XEV_COMPLETION_DEAD);
    {
        int64_t start = xev_loop_now(&loop);
        xev_timer_run(&w, &loop, &c1, 5, &k, count_cb);
        CHECK_EQ(xev_completion_state(&c1), XEV_COMPLETION_ACTIVE);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(k.fired, 1);
        CHECK_EQ(k.last_result, 0);
        CHECK(xev_loop_now(&loop) - start >= 5);
        CHECK_EQ(xev_completion_state(&c1), XEV_COMPLETION_DEAD);
    }

    /* Timers fire in deadline order, whatever the order they were added. */
    {
        tagged_t t[3] = {{&k, 3}, {&k, 1}, {&k, 2}};
        memset(&k, 0, sizeof k);
        xev_timer_run(&w, &loop, &c1, 30, &t[0], order_cb);
        xev_timer_run(&w, &loop, &c2, 10, &t[1], order_cb);
        xev_timer_run(&w, &loop, &c3, 20, &t[2], order_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(k.norder, 3);
        CHECK_EQ(k.order[0], 1);
        CHECK_EQ(k.order[1], 2);
        CHECK_EQ(k.order[2], 3);
    }

    /* XEV_RUN_ONCE returns after a callback ran, with the rest pending. */
    {
        memset(&k, 0, sizeof k);
        xev_timer_run(&w, &loop, &c1, 1, &k, count_cb);
        xev_timer_run(&w, &loop, &c2, 100000, &k, count_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_ONCE), 0);
        CHECK_EQ(k.fired, 1);
        CHECK_EQ(xev_completion_state(&c2), XEV_COMPLETION_ACTIVE);

        /* Reset from outside a callback moves the pending timer earlier:
         * it fires once, with the new callback and user data. */
        {
            counter_t k2;
            memset(&k2, 0, sizeof k2);
            xev_completion_zero(&cc);
            xev_timer_reset(&w, &loop, &c2, &cc, 1, &k2, count_cb);
            CHECK_EQ(xev_completion_state(&c2), XEV_COMPLETION_ACTIVE);
            CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
            CHECK_EQ(k2.fired, 1);
            CHECK_EQ(k.fired, 1);
        }
    }

    /* Reset of a dead timer runs it. */
    {
        memset(&k, 0, sizeof k);
        xev_completion_zero(&c1);
        xev_timer_reset(&w, &loop, &c1, &cc, 1, &k, count_cb);
        CHECK_EQ(xev_completion_state(&c1), XEV_COMPLETION_ACTIVE);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(k.fired, 1);
    }

    /* Reset moves a pending timer later: it does not fire at its old time.
     * A short timer that fires first proves the old deadline passed. */
    {
        counter_t early;
        memset(&k, 0, sizeof k);
        memset(&early, 0, sizeof early);
        xev_timer_run(&w, &loop, &c1, 1, &k, count_cb);
        xev_timer_reset(&w, &loop, &c1, &cc, 40, &k, count_cb);
        xev_timer_run(&w, &loop, &c2, 10, &early, count_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_ONCE), 0);
        CHECK_EQ(early.fired, 1);
        CHECK_EQ(k.fired, 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(k.fired, 1);
    }

    /* Reset from inside the timer's own callback. */
    {
        reset_self_t r = {&w, &cc, 0};
        xev_timer_run(&w, &loop, &c1, 1, &r, reset_self_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(r.runs, 2);
    }

    /* Cancel: the timer's callback gets -ECANCELED, the cancel's gets 0. */
    {
        counter_t kc;
        memset(&k, 0, sizeof k);
        memset(&kc, 0, sizeof kc);
        xev_timer_run(&w, &loop, &c1, 100000, &k, count_cb);
        xev_timer_cancel(&w, &loop, &c1, &cc, &kc, count_cb);
        CHECK_EQ(xev_completion_state(&cc), XEV_COMPLETION_ACTIVE);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(k.fired, 1);
        CHECK_EQ(k.last_result, -ECANCELED);
        CHECK_EQ(kc.fired, 1);
        CHECK_EQ(kc.last_result, 0);

        /* Cancel of a completion with nothing active: -ENOENT. */
        memset(&kc, 0, sizeof kc);
        xev_timer_cancel(&w, &loop, &c1, &cc, &kc, count_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(kc.fired, 1);
        CHECK_EQ(kc.last_result, -ENOENT);
        memset(&kc, 0, sizeof kc);
        xev_completion_zero(&c3);
        CHECK_EQ(xev_cancel(&loop, &c3, &cc, &kc, count_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(kc.last_result, -ENOENT);
    }

    /* XEV_REARM fires again; restarting from the callback repeats with an
     * interval. */
    {
        int n = 0;
        again_t a = {&w, 0, 0};
        xev_timer_run(&w, &loop, &c1, 1, &n, rearm_cb);
        xev_timer_run(&w, &loop, &c2, 1, &a, again_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(n, 4);
        CHECK_EQ(a.runs, 3);
    }

    /* xev_loop_stop ends XEV_RUN_UNTIL_DONE with work still active. */
    {
        int n = 0;
        memset(&k, 0, sizeof k);
        xev_timer_run(&w, &loop, &c1, 1, &n, stop_cb);
        xev_timer_run(&w, &loop, &c2, 100000, &k, count_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(n, 1);
        CHECK_EQ(xev_completion_state(&c2), XEV_COMPLETION_ACTIVE);
        {
            counter_t kc;
            memset(&kc, 0, sizeof kc);
            xev_timer_cancel(&w, &loop, &c2, &cc, &kc, count_cb);
            CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
            CHECK_EQ(k.fired, 1);
            CHECK_EQ(k.last_result, -ECANCELED);
            CHECK_EQ(kc.last_result, 0);
        }
    }

    /* A nested run from a callback. */
    {
        memset(&k, 0, sizeof k);
        xev_timer_run(&w, &loop, &c1, 1, &k, nested_cb);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(k.fired, 1);
    }

    /* Bad input: error codes, not crashes. */
    {
        xev_loop zeroed;
        xev_watcher zw;
        memset(&zeroed, 0, sizeof zeroed);
        memset(&zw, 0, sizeof zw);
        CHECK_EQ(xev_loop_run(&zeroed, XEV_RUN_NO_WAIT), -EINVAL);
        CHECK_EQ(xev_loop_run(NULL, XEV_RUN_NO_WAIT), -EINVAL);
        CHECK_EQ(xev_loop_run(&loop, (xev_run_mode_t)7), -EINVAL);
        CHECK_EQ(xev_loop_now(&zeroed), 0);
        CHECK(xev_loop_backend(&zeroed) == NULL);
        CHECK_EQ(xev_completion_state(NULL), XEV_COMPLETION_DEAD);
        xev_loop_deinit(&zeroed); /* ignored, with a message */
        CHECK_EQ(xev_timer_init(NULL), -EINVAL);
        /* A timer on an uninitialised watcher or loop does not start. */
        xev_completion_zero(&c1);
        xev_timer_run(&zw, &loop, &c1, 1, &k, count_cb);
        CHECK_EQ(xev_completion_state(&c1), XEV_COMPLETION_DEAD);
        xev_timer_run(&w, &zeroed, &c1, 1, &k, count_cb);
        CHECK_EQ(xev_completion_state(&c1), XEV_COMPLETION_DEAD);
        xev_timer_run(&w, &loop, &c1, 1, &k, NULL);
        CHECK_EQ(xev_completion_state(&c1), XEV_COMPLETION_DEAD);
        CHECK(strcmp(xev_strerror(0), "success") == 0);
        CHECK(strcmp(xev_strerror(XEV_EOF), "end of file") == 0);
        CHECK(strlen(xev_strerror(-ECANCELED)) > 0);
        CHECK(xev_strerror(-ECANCELED) == xev_strerror(-ECANCELED));
        CHECK(strlen(xev_strerror(-100000)) > 0);
    }

    xev_timer_deinit(&w);
    xev_loop_deinit(&loop);
    xev_loop_deinit(&loop); /* a second deinit is ignored */
    printf("timer: ok\n");
    return 0;
}
