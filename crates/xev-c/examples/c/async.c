/* An async wakeup: a worker thread computes something and wakes the loop,
 * which prints the answer. */
#include <pthread.h>
#include <stdio.h>
#include <xev.h>

typedef struct {
    xev_watcher wake;
    long answer;
} job_t;

static void *worker(void *arg) {
    job_t *job = arg;
    long sum = 0;
    for (long i = 1; i <= 1000000; i++) sum += i;
    job->answer = sum; /* visible to the loop's callback after the notify */
    xev_async_notify(&job->wake);
    return NULL;
}

static xev_cb_action woken(xev_loop *loop, xev_completion *c, int result, void *userdata) {
    job_t *job = userdata;
    (void)loop;
    (void)c;
    if (result != 0) return XEV_DISARM;
    printf("the worker says: %ld\n", job->answer);
    return XEV_DISARM;
}

int main(void) {
    xev_loop loop;
    xev_completion c;
    job_t job = {{{0}}, 0};
    pthread_t t;
    if (xev_loop_init(&loop) != 0 || xev_async_init(&job.wake) != 0) return 1;
    xev_async_wait(&job.wake, &loop, &c, &job, woken);
    if (pthread_create(&t, NULL, worker, &job) != 0) return 1;
    if (xev_loop_run(&loop, XEV_RUN_UNTIL_DONE) != 0) return 1;
    pthread_join(t, NULL);
    xev_async_deinit(&job.wake);
    xev_loop_deinit(&loop);
    return job.answer == 500000500000L ? 0 : 1;
}
