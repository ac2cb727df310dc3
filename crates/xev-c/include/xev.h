/*
 * xev.h: the C API of xev (crates/xev-c), a Rust completion-based event
 * loop modelled on libxev.
 *
 * The first part of this header is source-compatible with libxev's xev.h:
 * the same types, sizes, constants, callback types and functions, so a C
 * program written against libxev compiles unchanged against it. The
 * second part ("Beyond libxev") adds TCP, UDP, streams, files, processes,
 * cancellation and error strings in the same style.
 *
 * Each function's contract is written on its definition in the xev-c
 * crate (cargo doc -p xev-c); the README's C section summarises them.
 *
 * Conventions:
 *  - All storage is the caller's: xev_loop, xev_completion, xev_watcher and
 *    the thread-pool types are opaque blocks of XEV_SIZEOF_* bytes that the
 *    caller allocates (stack, heap or static) and must not move while in use.
 *  - Errors are negative numbers: a negated errno value (compare with
 *    -ECANCELED, -ECONNREFUSED, ... from <errno.h>) or one of the XEV_E*
 *    codes below. xev_strerror() describes any of them.
 *  - A completion must stay allocated and untouched while it is active
 *    (xev_completion_state() == XEV_COMPLETION_ACTIVE): from the call that
 *    starts an operation until its callback returns XEV_DISARM.
 *  - Descriptors are xev_fd: an int on Unix; on Windows a SOCKET or a
 *    HANDLE as uintptr_t (see "Beyond libxev").
 */
#ifndef XEV_H
#define XEV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* The libxev-compatible API                                           */
/* ------------------------------------------------------------------ */

/* Sizes of the opaque types, in bytes (the same values as libxev's). */
#define XEV_SIZEOF_LOOP 512
#define XEV_SIZEOF_COMPLETION 320
#define XEV_SIZEOF_WATCHER 256
#define XEV_SIZEOF_THREADPOOL 64
#define XEV_SIZEOF_THREADPOOL_BATCH 24
#define XEV_SIZEOF_THREADPOOL_TASK 24
#define XEV_SIZEOF_THREADPOOL_CONFIG 64

/* Every opaque type is aligned as the platform's most aligned scalar, and
 * is at least XEV_SIZEOF_* bytes (a union, so that no size depends on
 * sizeof(XEV_ALIGN_T), which is 32 bytes on some platforms). */
#if (defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L) || \
    (defined(__cplusplus) && __cplusplus >= 201103L)
typedef max_align_t XEV_ALIGN_T;
#else
typedef long double XEV_ALIGN_T;
#endif

#define XEV_OPAQUE_(name, size) \
    typedef union { XEV_ALIGN_T _align; uint8_t data[size]; } name

XEV_OPAQUE_(xev_loop, XEV_SIZEOF_LOOP);
XEV_OPAQUE_(xev_completion, XEV_SIZEOF_COMPLETION);
XEV_OPAQUE_(xev_watcher, XEV_SIZEOF_WATCHER);
XEV_OPAQUE_(xev_threadpool, XEV_SIZEOF_THREADPOOL);
XEV_OPAQUE_(xev_threadpool_batch, XEV_SIZEOF_THREADPOOL_BATCH);
XEV_OPAQUE_(xev_threadpool_task, XEV_SIZEOF_THREADPOOL_TASK);
XEV_OPAQUE_(xev_threadpool_config, XEV_SIZEOF_THREADPOOL_CONFIG);

/* What a callback asks for: end the operation, or run it again. */
typedef enum { XEV_DISARM = 0, XEV_REARM = 1 } xev_cb_action;

typedef void (*xev_task_cb)(xev_threadpool_task *t);
typedef xev_cb_action (*xev_timer_cb)(xev_loop *l, xev_completion *c, int result, void *userdata);
typedef xev_cb_action (*xev_async_cb)(xev_loop *l, xev_completion *c, int result, void *userdata);

typedef enum {
    XEV_RUN_NO_WAIT = 0,
    XEV_RUN_ONCE = 1,
    XEV_RUN_UNTIL_DONE = 2
} xev_run_mode_t;

typedef enum {
    XEV_COMPLETION_DEAD = 0,
    XEV_COMPLETION_ACTIVE = 1
} xev_completion_state_t;

int xev_loop_init(xev_loop *loop);
void xev_loop_deinit(xev_loop *loop);
int xev_loop_run(xev_loop *loop, xev_run_mode_t mode);
int64_t xev_loop_now(xev_loop *loop);
void xev_loop_update_now(xev_loop *loop);

void xev_completion_zero(xev_completion *c);
xev_completion_state_t xev_completion_state(xev_completion *c);

void xev_threadpool_config_init(xev_threadpool_config *config);
void xev_threadpool_config_set_stack_size(xev_threadpool_config *config, uint32_t v);
void xev_threadpool_config_set_max_threads(xev_threadpool_config *config, uint32_t v);

int xev_threadpool_init(xev_threadpool *pool, xev_threadpool_config *config);
void xev_threadpool_deinit(xev_threadpool *pool);
void xev_threadpool_shutdown(xev_threadpool *pool);
void xev_threadpool_schedule(xev_threadpool *pool, xev_threadpool_batch *batch);

void xev_threadpool_task_init(xev_threadpool_task *t, xev_task_cb cb);
void xev_threadpool_batch_init(xev_threadpool_batch *b);
void xev_threadpool_batch_push_task(xev_threadpool_batch *b, xev_threadpool_task *t);
void xev_threadpool_batch_push_batch(xev_threadpool_batch *b, xev_threadpool_batch *other);

int xev_timer_init(xev_watcher *w);
void xev_timer_deinit(xev_watcher *w);
void xev_timer_run(xev_watcher *w, xev_loop *loop, xev_completion *c, uint64_t next_ms,
                   void *userdata, xev_timer_cb cb);
void xev_timer_reset(xev_watcher *w, xev_loop *loop, xev_completion *c, xev_completion *c_cancel,
                     uint64_t next_ms, void *userdata, xev_timer_cb cb);
void xev_timer_cancel(xev_watcher *w, xev_loop *loop, xev_completion *c, xev_completion *c_cancel,
                      void *userdata, xev_timer_cb cb);

int xev_async_init(xev_watcher *w);
void xev_async_deinit(xev_watcher *w);
int xev_async_notify(xev_watcher *w);
void xev_async_wait(xev_watcher *w, xev_loop *loop, xev_completion *c, void *userdata,
                    xev_async_cb cb);

/* ------------------------------------------------------------------ */
/* Beyond libxev                                                       */
/* ------------------------------------------------------------------ */

/* Error codes of xev's own (everything else is a negated errno value). */
#define XEV_EOF (-4095)           /* end of file: the peer closed, or the file ended */
#define XEV_ENOTHREADPOOL (-4094) /* the operation needs a thread pool; the loop has none */
#define XEV_EUNSUPPORTED (-4093)  /* this backend cannot do this on this platform */
#define XEV_EPANIC (-4092)        /* a bug in xev was caught at the C boundary */
#define XEV_EUNKNOWN (-4091)      /* an error with no errno value */

/* On Windows the errno values are those of the C runtime's <errno.h>
 * (MSVC's and mingw-w64's agree): Win32 and WinSock error codes are mapped
 * to them, so -ECONNREFUSED, -ECANCELED... mean the same everywhere; a
 * Windows error with no errno equivalent is XEV_EUNKNOWN. */

/* A description of any result code (static storage; never NULL). */
const char *xev_strerror(int code);

/* The callback of every operation below: `result` is a count, a
 * descriptor or 0 on success, or a negative error code. */
typedef xev_cb_action (*xev_cb)(xev_loop *l, xev_completion *c, int result, void *userdata);

struct sockaddr; /* from <sys/socket.h> (or <winsock2.h>) */

/* What the functions below take as a descriptor. On Unix a file
 * descriptor (int). On Windows a SOCKET, or a HANDLE cast to uintptr_t
 * (a file opened with CreateFile, either end of a pipe...): SOCKET is
 * already a uintptr_t, and (xev_fd)handle converts a HANDLE. The
 * descriptor a TCP accept gives its callback (an int `result`) is
 * converted the same way: (xev_fd)result. XEV_INVALID_FD names none
 * (INVALID_SOCKET, INVALID_HANDLE_VALUE, or -1 on Unix). */
#ifdef _WIN32
typedef uintptr_t xev_fd;
#define XEV_INVALID_FD ((xev_fd)~(uintptr_t)0)
#else
typedef int xev_fd;
#define XEV_INVALID_FD (-1)
#endif

/* A loop that runs file work (where the backend needs threads for it) on
 * `pool` instead of a pool of its own; `pool` must outlive the loop. */
int xev_loop_init_with_threadpool(xev_loop *loop, xev_threadpool *pool);
/* Ends the current xev_loop_run after the running callback returns. */
void xev_loop_stop(xev_loop *loop);
/* The backend's name: "io_uring", "epoll", "kqueue" or "iocp" (NULL when
 * `loop` is not initialised). */
const char *xev_loop_backend(xev_loop *loop);

/* Cancels the active operation of `target`, whose callback then runs with
 * -ECANCELED. `cb` gets 0, -ENOENT (nothing active to cancel) or -EALREADY
 * (the target's result was already in). */
int xev_cancel(xev_loop *loop, xev_completion *target, xev_completion *c, void *userdata,
               xev_cb cb);

/* The descriptor of a TCP, UDP, stream or file watcher: on Unix -1 once
 * closed, -EINVAL for another watcher; on Windows XEV_INVALID_FD for
 * both. */
xev_fd xev_watcher_fd(const xev_watcher *w);

/* shutdown(2) directions. */
typedef enum { XEV_SHUTDOWN_READ = 0, XEV_SHUTDOWN_WRITE = 1, XEV_SHUTDOWN_BOTH = 2 } xev_shutdown_how;

/* TCP. init creates a non-blocking, close-on-exec (on Windows,
 * non-inheritable, overlapped) socket of `family` (AF_INET or AF_INET6);
 * init_fd adopts a stream socket. The descriptor belongs to the watcher
 * until xev_tcp_close (deinit does not close it). bind sets SO_REUSEADDR
 * first on Unix, not on Windows (where it would let another socket take
 * the port). */
int xev_tcp_init(xev_watcher *w, int family);
int xev_tcp_init_fd(xev_watcher *w, xev_fd fd);
void xev_tcp_deinit(xev_watcher *w);
int xev_tcp_bind(xev_watcher *w, const struct sockaddr *addr, size_t addrlen);
int xev_tcp_listen(xev_watcher *w, int backlog);
/* result: the accepted socket's descriptor (non-blocking, close-on-exec;
 * on Windows a SOCKET, which fits in an int: (xev_fd)result). */
int xev_tcp_accept(xev_watcher *w, xev_loop *loop, xev_completion *c, void *userdata, xev_cb cb);
int xev_tcp_connect(xev_watcher *w, xev_loop *loop, xev_completion *c,
                    const struct sockaddr *addr, size_t addrlen, void *userdata, xev_cb cb);
/* result: bytes read into buf (which must stay valid until the callback),
 * or XEV_EOF. */
int xev_tcp_read(xev_watcher *w, xev_loop *loop, xev_completion *c, void *buf, size_t len,
                 void *userdata, xev_cb cb);
/* result: bytes written (possibly fewer than len). buf is copied at once. */
int xev_tcp_write(xev_watcher *w, xev_loop *loop, xev_completion *c, const void *buf, size_t len,
                  void *userdata, xev_cb cb);
int xev_tcp_shutdown(xev_watcher *w, xev_loop *loop, xev_completion *c, xev_shutdown_how how,
                     void *userdata, xev_cb cb);
int xev_tcp_close(xev_watcher *w, xev_loop *loop, xev_completion *c, void *userdata, xev_cb cb);

/* UDP. */
int xev_udp_init(xev_watcher *w, int family);
int xev_udp_init_fd(xev_watcher *w, xev_fd fd);
void xev_udp_deinit(xev_watcher *w);
int xev_udp_bind(xev_watcher *w, const struct sockaddr *addr, size_t addrlen);
/* result: the datagram's length; the sender is xev_completion_peer(c). */
int xev_udp_read(xev_watcher *w, xev_loop *loop, xev_completion *c, void *buf, size_t len,
                 void *userdata, xev_cb cb);
int xev_udp_write(xev_watcher *w, xev_loop *loop, xev_completion *c, const void *buf, size_t len,
                  const struct sockaddr *to, size_t tolen, void *userdata, xev_cb cb);
int xev_udp_close(xev_watcher *w, xev_loop *loop, xev_completion *c, void *userdata, xev_cb cb);
/* In a UDP read's callback: copies the sender's address into `out` (room
 * for *len bytes; *len becomes its length). 0, or -EINVAL. */
int xev_completion_peer(const xev_completion *c, struct sockaddr *out, size_t *len);

/* Streams: pipes, ttys, any descriptor, blocking or not (its mode is left
 * as it is). The descriptor stays the caller's until xev_stream_close.
 * On Windows: a socket or a HANDLE; a handle opened for synchronous I/O
 * (an anonymous pipe from CreatePipe, say) is read and written on the
 * loop's thread pool, an overlapped one through the completion port. */
int xev_stream_init(xev_watcher *w, xev_fd fd);
void xev_stream_deinit(xev_watcher *w);
int xev_stream_read(xev_watcher *w, xev_loop *loop, xev_completion *c, void *buf, size_t len,
                    void *userdata, xev_cb cb);
int xev_stream_write(xev_watcher *w, xev_loop *loop, xev_completion *c, const void *buf,
                     size_t len, void *userdata, xev_cb cb);
int xev_stream_close(xev_watcher *w, xev_loop *loop, xev_completion *c, void *userdata,
                     xev_cb cb);

/* Files: positional reads and writes (in the kernel on io_uring, on the
 * loop's thread pool on epoll and kqueue). On Windows a HANDLE from
 * CreateFile: through the completion port when opened with
 * FILE_FLAG_OVERLAPPED, else on the loop's thread pool. (A C runtime
 * descriptor's _get_osfhandle works too, but xev_file_close closes the
 * handle under the descriptor: _close it yourself instead.) */
int xev_file_init(xev_watcher *w, xev_fd fd);
void xev_file_deinit(xev_watcher *w);
int xev_file_pread(xev_watcher *w, xev_loop *loop, xev_completion *c, void *buf, size_t len,
                   uint64_t offset, void *userdata, xev_cb cb);
int xev_file_pwrite(xev_watcher *w, xev_loop *loop, xev_completion *c, const void *buf,
                    size_t len, uint64_t offset, void *userdata, xev_cb cb);
int xev_file_close(xev_watcher *w, xev_loop *loop, xev_completion *c, void *userdata, xev_cb cb);

/* Processes: wait for a child to exit (and reap it). The callback's result
 * is decoded with the macros below, or is a negative error code. On
 * Windows `pid` is a process id (from CreateProcess's PROCESS_INFORMATION
 * or GetProcessId): the watcher opens the process itself; the result is
 * the 32-bit exit code with its top bit cleared (an exception status such
 * as 0xC0000005 arrives as 0x40000005), and no process is "signaled". */
int xev_process_init(xev_watcher *w, int pid);
void xev_process_deinit(xev_watcher *w);
int xev_process_wait(xev_watcher *w, xev_loop *loop, xev_completion *c, void *userdata,
                     xev_cb cb);
#ifdef _WIN32
#define XEV_PROCESS_EXITED(r) ((r) >= 0)
#define XEV_PROCESS_EXIT_CODE(r) (r)
#define XEV_PROCESS_SIGNALED(r) ((void)(r), 0)
#define XEV_PROCESS_TERM_SIGNAL(r) ((void)(r), 0)
#else
#define XEV_PROCESS_EXITED(r) ((r) >= 0 && (r) < 256)
#define XEV_PROCESS_EXIT_CODE(r) (r)
#define XEV_PROCESS_SIGNALED(r) ((r) >= 256)
#define XEV_PROCESS_TERM_SIGNAL(r) ((r) - 256)
#endif

/* Signals: a watcher subscribed to one signal (on Windows one of the
 * XEV_CTRL_* console events) whose waits complete once per delivery; the
 * callback's result is how many occurrences it stands for (at least 1),
 * or a negative error code. Every watcher, on every loop, sees every
 * occurrence; occurrences while nobody waits are kept and coalesce. The
 * last watcher of a signal deinitialised (and its waits ended) restores
 * the signal's previous action. Deinit does not end a wait in flight:
 * xev_cancel it first, or it ends with -ECANCELED at the next occurrence. */
int xev_signal_init(xev_watcher *w, int signo);
void xev_signal_deinit(xev_watcher *w);
int xev_signal_wait(xev_watcher *w, xev_loop *loop, xev_completion *c, void *userdata,
                    xev_cb cb);
#ifdef _WIN32
#define XEV_CTRL_C 0
#define XEV_CTRL_BREAK 1
#define XEV_CTRL_CLOSE 2
#define XEV_CTRL_LOGOFF 5
#define XEV_CTRL_SHUTDOWN 6
#endif

#ifdef __cplusplus
}
#endif

#endif /* XEV_H */
