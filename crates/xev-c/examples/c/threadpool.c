/* A thread-pool batch: 64 tasks that each sum a slice of numbers, built
 * into one batch and scheduled at once; the last task to finish wakes the
 * loop through an async watcher. */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <xev.h>

#define TASKS 64
#define PER_TASK 100000L

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static xev_watcher all_done;
static atomic_int remaining = TASKS;

typedef struct {
    xev_threadpool_task task;
    long long first;
    long long sum;
} slice_t;

static void sum_slice(xev_threadpool_task *t) {
    slice_t *s = container_of(t, slice_t, task);
    for (long long i = s->first; i < s->first + PER_TASK; i++) s->sum += i;
    if (atomic_fetch_sub(&remaining, 1) == 1) xev_async_notify(&all_done);
}

static xev_cb_action finished(xev_loop *loop, xev_completion *c, int result, void *userdata) {
    (void)loop;
    (void)c;
    (void)result;
    *(int *)userdata = 1;
    return XEV_DISARM;
}

int main(void) {
    static slice_t slices[TASKS];
    xev_threadpool pool;
    xev_threadpool_config cfg;
    xev_threadpool_batch batch;
    xev_loop loop;
    xev_completion c;
    int done = 0;
    long long total = 0, n = TASKS * PER_TASK;

    xev_threadpool_config_init(&cfg);
    xev_threadpool_config_set_max_threads(&cfg, 4);
    if (xev_threadpool_init(&pool, &cfg) != 0) return 1;
    if (xev_loop_init(&loop) != 0 || xev_async_init(&all_done) != 0) return 1;
    xev_async_wait(&all_done, &loop, &c, &done, finished);

    xev_threadpool_batch_init(&batch);
    for (int i = 0; i < TASKS; i++) {
        slices[i].first = i * PER_TASK;
        xev_threadpool_task_init(&slices[i].task, sum_slice);
        xev_threadpool_batch_push_task(&batch, &slices[i].task);
    }
    xev_threadpool_schedule(&pool, &batch);

    if (xev_loop_run(&loop, XEV_RUN_UNTIL_DONE) != 0 || !done) return 1;
    for (int i = 0; i < TASKS; i++) total += slices[i].sum;
    printf("%d tasks summed 0..%lld: %lld\n", TASKS, n - 1, total);
    xev_threadpool_shutdown(&pool);
    xev_threadpool_deinit(&pool);
    xev_async_deinit(&all_done);
    xev_loop_deinit(&loop);
    return total == n * (n - 1) / 2 ? 0 : 1;
}
