/* An async wakeup: a worker thread computes something and wakes the loop,
 * which prints the answer. */
#include <stdio.h>
#include <xev.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <pthread.h>
#endif

typedef struct {
    xev_watcher wake;
    long long answer;
} job_t;

#ifdef _WIN32
static DWORD WINAPI worker(LPVOID arg) {
#else
static void *worker(void *arg) {
#endif
    job_t *job = arg;
    long long sum = 0;
    for (long long i = 1; i <= 1000000; i++) sum += i;
    job->answer = sum; /* visible to the loop's callback after the notify */
    xev_async_notify(&job->wake);
    return 0;
}

static xev_cb_action woken(xev_loop *loop, xev_completion *c, int result, void *userdata) {
    job_t *job = userdata;
    (void)loop;
    (void)c;
    if (result != 0) return XEV_DISARM;
    printf("the worker says: %lld\n", job->answer);
    return XEV_DISARM;
}

int main(void) {
    xev_loop loop;
    xev_completion c;
    job_t job = {{{0}}, 0};
#ifdef _WIN32
    HANDLE t;
#else
    pthread_t t;
#endif
    if (xev_loop_init(&loop) != 0 || xev_async_init(&job.wake) != 0) return 1;
    xev_async_wait(&job.wake, &loop, &c, &job, woken);
#ifdef _WIN32
    if ((t = CreateThread(NULL, 0, worker, &job, 0, NULL)) == NULL) return 1;
#else
    if (pthread_create(&t, NULL, worker, &job) != 0) return 1;
#endif
    if (xev_loop_run(&loop, XEV_RUN_UNTIL_DONE) != 0) return 1;
#ifdef _WIN32
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
#else
    pthread_join(t, NULL);
#endif
    xev_async_deinit(&job.wake);
    xev_loop_deinit(&loop);
    return job.answer == 500000500000LL ? 0 : 1;
}
