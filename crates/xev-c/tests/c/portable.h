/* What the C tests need from the platform, on Unix and on Windows: the
 * socket headers, and threads, a mutex and a condition variable (POSIX
 * threads on Unix, the Windows API's own on Windows). */
#ifndef XEV_TEST_PORTABLE_H
#define XEV_TEST_PORTABLE_H

#include <stdlib.h>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

typedef HANDLE thread_t;
typedef DWORD thread_id_t;
typedef SRWLOCK mutex_t;
typedef CONDITION_VARIABLE cond_t;
#define MUTEX_INIT SRWLOCK_INIT
#define COND_INIT CONDITION_VARIABLE_INIT
#define mutex_lock(m) AcquireSRWLockExclusive(m)
#define mutex_unlock(m) ReleaseSRWLockExclusive(m)
#define cond_wait(c, m) SleepConditionVariableSRW((c), (m), INFINITE, 0)
#define cond_broadcast(c) WakeAllConditionVariable(c)
#define thread_self() GetCurrentThreadId()
#define thread_same(a, b) ((a) == (b))

typedef struct {
    void *(*fn)(void *);
    void *arg;
} thread_start_t;

static inline DWORD WINAPI thread_trampoline(LPVOID p) {
    thread_start_t s = *(thread_start_t *)p;
    free(p);
    s.fn(s.arg);
    return 0;
}

/* 0 on success. */
static inline int thread_create(thread_t *t, void *(*fn)(void *), void *arg) {
    thread_start_t *s = malloc(sizeof *s);
    if (!s) return -1;
    s->fn = fn;
    s->arg = arg;
    *t = CreateThread(NULL, 0, thread_trampoline, s, 0, NULL);
    if (!*t) {
        free(s);
        return -1;
    }
    return 0;
}

static inline int thread_join(thread_t t) {
    if (WaitForSingleObject(t, INFINITE) != WAIT_OBJECT_0) return -1;
    CloseHandle(t);
    return 0;
}
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

typedef pthread_t thread_t;
typedef pthread_t thread_id_t;
typedef pthread_mutex_t mutex_t;
typedef pthread_cond_t cond_t;
#define MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
#define COND_INIT PTHREAD_COND_INITIALIZER
#define mutex_lock(m) pthread_mutex_lock(m)
#define mutex_unlock(m) pthread_mutex_unlock(m)
#define cond_wait(c, m) pthread_cond_wait((c), (m))
#define cond_broadcast(c) pthread_cond_broadcast(c)
#define thread_self() pthread_self()
#define thread_same(a, b) pthread_equal((a), (b))
#define thread_create(t, fn, arg) pthread_create((t), NULL, (fn), (arg))
#define thread_join(t) pthread_join((t), NULL)
#endif

#endif
