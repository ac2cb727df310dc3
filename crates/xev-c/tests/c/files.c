/* Files and streams: a write and a read at offsets (a round trip through
 * a temporary file), end of file past its end, and a pipe carried through
 * the loop until its writer closes. On Windows the file is a CreateFile
 * handle, once opened for synchronous I/O (the loop's pool runs it) and
 * once overlapped (the completion port), and the pipe is CreatePipe's. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <xev.h>

#include "check.h"
#include "portable.h"
#ifndef _WIN32
#include <fcntl.h>
#endif

static xev_cb_action result_cb(xev_loop *l, xev_completion *c, int result, void *ud) {
    int *r = ud;
    UNUSED(l);
    UNUSED(c);
    *r = result;
    return XEV_DISARM;
}

/* A temporary file, deleted when closed. */
static xev_fd temp_file(int overlapped) {
#ifdef _WIN32
    char dir[MAX_PATH], path[MAX_PATH];
    HANDLE h;
    CHECK(GetTempPathA(sizeof dir, dir) > 0);
    CHECK(GetTempFileNameA(dir, "xev", 0, path) != 0);
    h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                    FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE |
                        (overlapped ? FILE_FLAG_OVERLAPPED : 0),
                    NULL);
    CHECK(h != INVALID_HANDLE_VALUE);
    return (xev_fd)h;
#else
    char path[] = "/tmp/xev-c-file-XXXXXX";
    int fd = mkstemp(path);
    UNUSED(overlapped);
    CHECK(fd >= 0);
    CHECK_EQ(unlink(path), 0);
    return fd;
#endif
}

/* Whether fd is still open. */
static int is_open(xev_fd fd) {
#ifdef _WIN32
    DWORD flags;
    return GetHandleInformation((HANDLE)fd, &flags) != 0;
#else
    return fcntl(fd, F_GETFD) != -1;
#endif
}

/* Writes at offsets, reads back, reads past the end, closes. */
static void file_round_trip(xev_loop *loop, xev_fd fd) {
    xev_watcher f;
    xev_completion c;
    char buf[16];
    int r;
    CHECK_EQ(xev_file_init(&f, fd), 0);

    r = -1;
    CHECK_EQ(xev_file_pwrite(&f, loop, &c, "0123456789", 10, 0, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 10);
    r = -1;
    CHECK_EQ(xev_file_pwrite(&f, loop, &c, "ab", 2, 10, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 2);

    memset(buf, 0, sizeof buf);
    CHECK_EQ(xev_file_pread(&f, loop, &c, buf, 4, 3, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 4);
    CHECK(memcmp(buf, "3456", 4) == 0);
    CHECK_EQ(xev_file_pread(&f, loop, &c, buf, sizeof buf, 8, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 4);
    CHECK(memcmp(buf, "89ab", 4) == 0);
    CHECK_EQ(xev_file_pread(&f, loop, &c, buf, sizeof buf, 100, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, XEV_EOF);

    CHECK(is_open(fd));
    CHECK_EQ(xev_file_close(&f, loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 0);
    CHECK(!is_open(fd)); /* closed by the loop */
    xev_file_deinit(&f);
}

int main(void) {
    xev_loop loop;
    xev_watcher f;
    char buf[16];
    CHECK_EQ(xev_loop_init(&loop), 0);
    printf("backend %s\n", xev_loop_backend(&loop));

    file_round_trip(&loop, temp_file(0));
#ifdef _WIN32
    file_round_trip(&loop, temp_file(1));
#endif
    CHECK_EQ(xev_file_init(&f, XEV_INVALID_FD), -EBADF);

    /* A pipe: write, read, then end of file once the writer is closed. */
    {
        int rr = -1, rw = -1;
        xev_fd p[2];
        xev_watcher rd, wr;
        xev_completion cr, cw;
#ifdef _WIN32
        HANDLE h[2];
        CHECK(CreatePipe(&h[0], &h[1], NULL, 0));
        p[0] = (xev_fd)h[0];
        p[1] = (xev_fd)h[1];
#else
        CHECK_EQ(pipe(p), 0);
#endif
        CHECK_EQ(xev_stream_init(&rd, p[0]), 0);
        CHECK_EQ(xev_stream_init(&wr, p[1]), 0);
        memset(buf, 0, sizeof buf);
#ifdef _WIN32
        /* An anonymous pipe is synchronous: its read blocks a thread of the
         * loop's pool until data comes, so the write goes first (a pool of
         * one thread would wait forever otherwise). */
        CHECK_EQ(xev_stream_write(&wr, &loop, &cw, "pipe!", 5, &rw, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(xev_stream_read(&rd, &loop, &cr, buf, sizeof buf, &rr, result_cb), 0);
#else
        CHECK_EQ(xev_stream_read(&rd, &loop, &cr, buf, sizeof buf, &rr, result_cb), 0);
        CHECK_EQ(xev_stream_write(&wr, &loop, &cw, "pipe!", 5, &rw, result_cb), 0);
#endif
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(rw, 5);
        CHECK_EQ(rr, 5);
        CHECK(memcmp(buf, "pipe!", 5) == 0);
        CHECK_EQ(xev_stream_close(&wr, &loop, &cw, &rw, result_cb), 0);
        CHECK_EQ(xev_stream_read(&rd, &loop, &cr, buf, sizeof buf, &rr, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(rw, 0);
        CHECK_EQ(rr, XEV_EOF);
        CHECK_EQ(xev_stream_close(&rd, &loop, &cr, &rr, result_cb), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
        CHECK_EQ(rr, 0);
        xev_stream_deinit(&rd);
        xev_stream_deinit(&wr);
    }

    xev_loop_deinit(&loop);
    printf("files: ok\n");
    return 0;
}
