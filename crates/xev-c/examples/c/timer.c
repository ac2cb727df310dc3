/* A timer that ticks five times, 10 ms apart, by restarting itself from
 * its callback; then the loop has nothing left and returns. */
#include <stdio.h>
#include <xev.h>

typedef struct {
    xev_watcher *timer;
    int ticks;
} state_t;

static xev_cb_action tick(xev_loop *loop, xev_completion *c, int result, void *userdata) {
    state_t *s = userdata;
    if (result != 0) {
        fprintf(stderr, "timer: %s\n", xev_strerror(result));
        return XEV_DISARM;
    }
    s->ticks++;
    printf("tick %d at %lld ms\n", s->ticks, (long long)xev_loop_now(loop));
    if (s->ticks < 5) xev_timer_run(s->timer, loop, c, 10, s, tick);
    return XEV_DISARM;
}

int main(void) {
    xev_loop loop;
    xev_watcher timer;
    xev_completion c;
    state_t s = {&timer, 0};
    if (xev_loop_init(&loop) != 0 || xev_timer_init(&timer) != 0) return 1;
    xev_timer_run(&timer, &loop, &c, 10, &s, tick);
    if (xev_loop_run(&loop, XEV_RUN_UNTIL_DONE) != 0) return 1;
    xev_timer_deinit(&timer);
    xev_loop_deinit(&loop);
    return s.ticks == 5 ? 0 : 1;
}
