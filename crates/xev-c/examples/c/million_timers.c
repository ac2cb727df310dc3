/* The million-timers benchmark (libuv's, as libxev ports it): add N timers
 * (1,000,000 unless given) with deadlines spread over N/1000 ms, run the
 * loop until all fired, and print how long adding, dispatching and
 * cleaning up took. Every callback must run exactly once. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <xev.h>
#ifdef _WIN32
#include <windows.h>
#endif

static long fired;

static xev_cb_action on_timer(xev_loop *loop, xev_completion *c, int result, void *userdata) {
    (void)loop;
    (void)c;
    (void)userdata;
    if (result == 0) fired++;
    return XEV_DISARM;
}

static double seconds(void) {
#ifdef _WIN32
    LARGE_INTEGER now, freq;
    QueryPerformanceCounter(&now);
    QueryPerformanceFrequency(&freq);
    return (double)now.QuadPart / (double)freq.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000L;
    xev_watcher timer; /* timers keep nothing in their watcher: one is enough */
    xev_completion *completions = malloc((size_t)n * sizeof *completions);
    xev_loop loop;
    double start, added, ran, freed;
    uint64_t timeout = 1;
    if (n <= 0 || completions == NULL) return 1;
    if (xev_loop_init(&loop) != 0 || xev_timer_init(&timer) != 0) return 1;

    start = seconds();
    for (long i = 0; i < n; i++) {
        if (i % 1000 == 0) timeout++;
        xev_timer_run(&timer, &loop, &completions[i], timeout, NULL, on_timer);
    }
    added = seconds();
    if (xev_loop_run(&loop, XEV_RUN_UNTIL_DONE) != 0) return 1;
    ran = seconds();
    xev_loop_deinit(&loop);
    free(completions);
    freed = seconds();

    printf("%ld timers on %s\n", n, "xev");
    printf("%.2f seconds total\n", freed - start);
    printf("%.2f seconds init\n", added - start);
    printf("%.2f seconds dispatch\n", ran - added);
    printf("%.2f seconds cleanup\n", freed - ran);
    return fired == n ? 0 : 1;
}
