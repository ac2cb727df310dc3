/* Files and streams: a write and a read at offsets (a round trip through
 * a temporary file), end of file past its end, and a pipe carried through
 * the loop until its writer closes. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
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

int main(void) {
    xev_loop loop;
    xev_watcher f;
    xev_completion c;
    char path[] = "/tmp/xev-c-file-XXXXXX";
    int fd, r;
    char buf[16];
    CHECK_EQ(xev_loop_init(&loop), 0);
    printf("backend %s\n", xev_loop_backend(&loop));

    fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(xev_file_init(&f, fd), 0);

    r = -1;
    CHECK_EQ(xev_file_pwrite(&f, &loop, &c, "0123456789", 10, 0, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 10);
    r = -1;
    CHECK_EQ(xev_file_pwrite(&f, &loop, &c, "ab", 2, 10, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 2);

    memset(buf, 0, sizeof buf);
    CHECK_EQ(xev_file_pread(&f, &loop, &c, buf, 4, 3, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 4);
    CHECK(memcmp(buf, "3456", 4) == 0);
    CHECK_EQ(xev_file_pread(&f, &loop, &c, buf, sizeof buf, 8, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 4);
    CHECK(memcmp(buf, "89ab", 4) == 0);
    CHECK_EQ(xev_file_pread(&f, &loop, &c, buf, sizeof buf, 100, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, XEV_EOF);

    CHECK_EQ(xev_file_close(&f, &loop, &c, &r, result_cb), 0);
    CHECK_EQ(xev_loop_run(&loop, XEV_RUN_UNTIL_DONE), 0);
    CHECK_EQ(r, 0);
    CHECK_EQ(fcntl(fd, F_GETFD), -1); /* closed by the loop */
    xev_file_deinit(&f);
    CHECK_EQ(xev_file_init(&f, -1), -EBADF);

    /* A pipe: write, read, then end of file once the writer is closed. */
    {
        int p[2], rr = -1, rw = -1;
        xev_watcher rd, wr;
        xev_completion cr, cw;
        CHECK_EQ(pipe(p), 0);
        CHECK_EQ(xev_stream_init(&rd, p[0]), 0);
        CHECK_EQ(xev_stream_init(&wr, p[1]), 0);
        memset(buf, 0, sizeof buf);
        CHECK_EQ(xev_stream_read(&rd, &loop, &cr, buf, sizeof buf, &rr, result_cb), 0);
        CHECK_EQ(xev_stream_write(&wr, &loop, &cw, "pipe!", 5, &rw, result_cb), 0);
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
