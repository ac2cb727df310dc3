/* Processes: a child's exit code (42), a child killed by a signal, a
 * child that exited before the wait started, and a pid that is no child. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>
#include <xev.h>

#include "check.h"

static xev_cb_action result_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    int *r = ud;
    UNUSED(l);
    UNUSED(c);
    *r = result;
    return XEV_DISARM;
}

static pid_t child(int code) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (code < 0) pause();
        _exit(code);
    }
    return pid;
}

int main(void) {
    xev_loop loop;
    xev_watcher w;
    xev_completion c;
    int r;
    CHECK_EQ(xev_loop_init(&loop), 0);
    printf("backend %s\n", xev_loop_backend(&loop));

    /* Exit code 42. */
    r = -1;
    CHECK_EQ(xev_process_init(&w, child(42)), 0);
    CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK(XEV_PROCESS_EXITED(r));
    CHECK_EQ(XEV_PROCESS_EXIT_CODE(r), 42);
    /* Once known, the status is reported again at once. */
    r = -1;
    CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 42);
    xev_process_deinit(&w);

    /* Killed by SIGKILL while the loop waits. */
    {
        pid_t pid = child(-1);
        r = -1;
        CHECK_EQ(xev_process_init(&w, pid), 0);
        CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_NO_WAIT), 0);
        CHECK_EQ(kill(pid, SIGKILL), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK(XEV_PROCESS_SIGNALED(r));
        CHECK_EQ(XEV_PROCESS_TERM_SIGNAL(r), SIGKILL);
        xev_process_deinit(&w);
    }

    /* A child that exited before the wait (a zombie until reaped). */
    {
        int p[2];
        char byte;
        pid_t pid;
        CHECK_EQ(pipe(p), 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            _exit(0); /* closing the pipe tells the parent it is exiting */
        }
        close(p[1]);
        CHECK_EQ(read(p[0], &byte, 1), 0);
        close(p[0]);
        r = -1;
        CHECK_EQ(xev_process_init(&w, pid), 0);
        CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(r, 0);
        xev_process_deinit(&w);
    }

    /* A wait canceled by deinit. */
    {
        pid_t pid = child(-1);
        r = -1;
        CHECK_EQ(xev_process_init(&w, pid), 0);
        CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_NO_WAIT), 0);
        xev_process_deinit(&w);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(r, -ECANCELED);
        CHECK_EQ(kill(pid, SIGKILL), 0);
        CHECK_EQ(xev_process_init(&w, pid), 0);
        CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(XEV_PROCESS_TERM_SIGNAL(r), SIGKILL);
        xev_process_deinit(&w);
    }

    /* Not a child. */
    CHECK_EQ(xev_process_init(&w, 1), -ECHILD);
    CHECK_EQ(xev_process_init(&w, -5), -EINVAL);

    xev_loop_deinit(&loop);
    printf("process: ok\n");
    return 0;
}
