/* Processes: a child's exit code (42), a child killed by a signal (on
 * Windows: terminated with an exit code), a child that exited before the
 * wait started, a wait canceled by deinit, and a pid that is no child.
 * On Windows the children are `cmd /c exit 42` and this program itself,
 * run with `--exit N` or `--wait-forever`. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <xev.h>

#include "check.h"
#ifdef _WIN32
#include <windows.h>
#else
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>
#endif

static xev_cb_action result_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    int *r = ud;
    UNUSED(l);
    UNUSED(c);
    *r = result;
    return XEV_DISARM;
}

#ifndef _WIN32
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
#endif

#ifdef _WIN32
/* Starts `cmdline` (which CreateProcess may modify). */
static PROCESS_INFORMATION spawn(char *cmdline) {
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    CHECK(CreateProcessA(NULL, cmdline, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi));
    CloseHandle(pi.hThread);
    return pi;
}

/* Starts this program with `args`. */
static PROCESS_INFORMATION spawn_self(const char *args) {
    char path[MAX_PATH], cmdline[MAX_PATH + 64];
    DWORD n = GetModuleFileNameA(NULL, path, sizeof path);
    CHECK(n > 0 && n < sizeof path);
    snprintf(cmdline, sizeof cmdline, "\"%s\" %s", path, args);
    return spawn(cmdline);
}

int main(int argc, char **argv) {
    xev_loop loop;
    xev_watcher w;
    xev_completion c;
    PROCESS_INFORMATION pi;
    int r;
    if (argc == 2 && strcmp(argv[1], "--wait-forever") == 0) {
        Sleep(INFINITE);
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "--exit") == 0) return atoi(argv[2]);

    CHECK_EQ(xev_loop_init(&loop), 0);
    printf("backend %s\n", xev_loop_backend(&loop));

    /* Exit code 42, from cmd. */
    {
        char cmdline[] = "cmd.exe /c exit 42";
        pi = spawn(cmdline);
    }
    r = -1;
    CHECK_EQ(xev_process_init(&w, (int)pi.dwProcessId), 0);
    CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK(XEV_PROCESS_EXITED(r));
    CHECK(!XEV_PROCESS_SIGNALED(r));
    CHECK_EQ(XEV_PROCESS_EXIT_CODE(r), 42);
    /* Once known, the status is reported again at once. */
    r = -1;
    CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 42);
    xev_process_deinit(&w);
    CloseHandle(pi.hProcess);

    /* Exit codes wider than 8 bits, and an exception status (top bit
     * cleared). */
    {
        static const char *const args[] = {"--exit 300", "--exit -1073741819"};
        static const int want[] = {300, 0x40000005};
        int i;
        for (i = 0; i < 2; i++) {
            pi = spawn_self(args[i]);
            r = -1;
            CHECK_EQ(xev_process_init(&w, (int)pi.dwProcessId), 0);
            CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
            CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
            CHECK_EQ(r, want[i]);
            xev_process_deinit(&w);
            CloseHandle(pi.hProcess);
        }
    }

    /* Terminated while the loop waits. */
    pi = spawn_self("--wait-forever");
    r = -1;
    CHECK_EQ(xev_process_init(&w, (int)pi.dwProcessId), 0);
    CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_NO_WAIT), 0);
    CHECK(TerminateProcess(pi.hProcess, 9));
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 9);
    xev_process_deinit(&w);
    CloseHandle(pi.hProcess);

    /* A child that exited before the wait (its id stays valid while a
     * handle of it is open). */
    pi = spawn_self("--exit 7");
    CHECK_EQ(WaitForSingleObject(pi.hProcess, INFINITE), WAIT_OBJECT_0);
    r = -1;
    CHECK_EQ(xev_process_init(&w, (int)pi.dwProcessId), 0);
    CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 7);
    xev_process_deinit(&w);
    CloseHandle(pi.hProcess);

    /* A wait canceled by deinit. */
    pi = spawn_self("--wait-forever");
    r = -1;
    CHECK_EQ(xev_process_init(&w, (int)pi.dwProcessId), 0);
    CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_NO_WAIT), 0);
    xev_process_deinit(&w);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, -ECANCELED);
    CHECK(TerminateProcess(pi.hProcess, 9));
    CHECK_EQ(xev_process_init(&w, (int)pi.dwProcessId), 0);
    CHECK_EQ(xev_process_wait(&w, &loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 9);
    xev_process_deinit(&w);
    CloseHandle(pi.hProcess);

    /* No such process (process ids are multiples of 4). */
    CHECK_EQ(xev_process_init(&w, 1), -ECHILD);
    CHECK_EQ(xev_process_init(&w, -5), -EINVAL);

    xev_loop_deinit(&loop);
    printf("process: ok\n");
    return 0;
}
#endif
