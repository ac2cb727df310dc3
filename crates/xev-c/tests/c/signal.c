/* Signals: a raised signal is delivered to two watchers on one loop,
 * occurrences raised before the wait are kept and coalesce, a rearmed
 * wait sees the next one, a canceled wait ends with -ECANCELED, and a
 * signal that cannot be watched is -EINVAL. On Windows (where wine cannot
 * raise console events) only the errors are checked. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <xev.h>

#include "check.h"
#ifndef _WIN32
#include <signal.h>
#endif

/* What one watcher's waits saw: the last result and the occurrences so
 * far; its wait rearms until `want` occurrences are in (the process-wide
 * dispatcher may hand them over in one delivery or several). */
struct seen {
    int last;
    int got;
    int want;
};

static xev_cb_action count_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    struct seen *s = ud;
    UNUSED(l);
    UNUSED(c);
    s->last = result;
    if (result <= 0) return XEV_DISARM;
    s->got += result;
    return s->got < s->want ? XEV_REARM : XEV_DISARM;
}

static xev_cb_action cancel_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    UNUSED(l);
    UNUSED(c);
    UNUSED(result);
    UNUSED(ud);
    return XEV_DISARM;
}

int main(void) {
    xev_loop loop;
    xev_watcher a, b;
    xev_completion ca, cb, cancel;
    struct seen ra = {0, 0, 0}, rb = {0, 0, 0};
    CHECK_EQ(xev_loop_init(&loop), 0);
    printf("backend %s\n", xev_loop_backend(&loop));
#ifdef _WIN32
    CHECK_EQ(xev_signal_init(&a, 3), -EINVAL);
    CHECK_EQ(xev_signal_init(&a, XEV_CTRL_BREAK), 0);
    xev_signal_deinit(&a);
    UNUSED(b);
    UNUSED(ca);
    UNUSED(cb);
    UNUSED(cancel);
    UNUSED(ra);
    UNUSED(rb);
    UNUSED(count_cb);
    UNUSED(cancel_cb);
#else
    CHECK_EQ(xev_signal_init(&a, SIGKILL), -EINVAL);
    CHECK_EQ(xev_signal_init(&a, SIGUSR1), 0);
    CHECK_EQ(xev_signal_init(&b, SIGUSR1), 0);

    /* Raised twice before anyone waits: kept (and coalesced, or not,
     * depending on when the dispatcher ran). Both watchers see both. */
    ra.want = rb.want = 2;
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(xev_signal_wait(&a, &loop, &ca, &ra, count_cb), 0);
    CHECK_EQ(xev_signal_wait(&b, &loop, &cb, &rb, count_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(ra.got, 2);
    CHECK_EQ(rb.got, 2);

    /* One more, after the waits are added again. */
    ra.want = rb.want = 3;
    CHECK_EQ(xev_signal_wait(&a, &loop, &ca, &ra, count_cb), 0);
    CHECK_EQ(xev_signal_wait(&b, &loop, &cb, &rb, count_cb), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(ra.last, 1);
    CHECK_EQ(rb.got, 3);

    /* A wait canceled before any occurrence. */
    ra.want = 4;
    CHECK_EQ(xev_signal_wait(&a, &loop, &ca, &ra, count_cb), 0);
    CHECK_EQ(xev_cancel(&loop, &ca, &cancel, NULL, cancel_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(ra.last, -ECANCELED);

    xev_signal_deinit(&a);
    xev_signal_deinit(&b);
#endif
    xev_loop_deinit(&loop);
    printf("signal: ok\n");
    return 0;
}
