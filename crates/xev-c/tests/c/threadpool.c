/* The thread pool: configuration, batches (pushed task by task and merged),
 * the thread limit (one thread runs tasks in push order; a limit of two is
 * never exceeded), the stack size, shutdown, and a loop that runs its file
 * work on a caller's pool. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <xev.h>

#include "check.h"
#include "portable.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define TASKS 256

typedef struct {
    xev_threadpool_task task;
    int index;
    thread_id_t thread;
    size_t stack;
} job_t;

static atomic_int done;
static mutex_t lock = MUTEX_INIT;
static cond_t cond = COND_INIT;
static int order[TASKS];
static int norder;

static void job_cb(xev_threadpool_task *t) {
    job_t *j = container_of(t, job_t, task);
    j->thread = thread_self();
#ifdef __linux__
    {
        pthread_attr_t attr;
        CHECK_EQ(pthread_getattr_np(pthread_self(), &attr), 0);
        CHECK_EQ(pthread_attr_getstacksize(&attr, &j->stack), 0);
        pthread_attr_destroy(&attr);
    }
#endif
    mutex_lock(&lock);
    order[norder++] = j->index;
    atomic_fetch_add(&done, 1);
    cond_broadcast(&cond);
    mutex_unlock(&lock);
}

static void wait_for(int n) {
    mutex_lock(&lock);
    while (atomic_load(&done) < n) cond_wait(&cond, &lock);
    mutex_unlock(&lock);
}

static void reset(void) {
    mutex_lock(&lock);
    atomic_store(&done, 0);
    norder = 0;
    mutex_unlock(&lock);
}

static job_t jobs[TASKS];

/* Schedules jobs [0, n) in batches of three merged into one. */
static void schedule_all(xev_threadpool *pool, int n) {
    xev_threadpool_batch all, part;
    xev_threadpool_batch_init(&all);
    xev_threadpool_batch_init(&part);
    for (int i = 0; i < n; i++) {
        jobs[i].index = i;
        xev_threadpool_task_init(&jobs[i].task, job_cb);
        xev_threadpool_batch_push_task(&part, &jobs[i].task);
        if (i % 3 == 2) xev_threadpool_batch_push_batch(&all, &part);
    }
    xev_threadpool_batch_push_batch(&all, &part);
    xev_threadpool_schedule(pool, &all);
    /* Scheduling emptied the batch: scheduling it again does nothing. */
    xev_threadpool_schedule(pool, &all);
}

int main(void) {
    /* Defaults (a NULL config); every task runs once. */
    {
        xev_threadpool pool;
        CHECK_EQ(xev_threadpool_init(&pool, NULL), 0);
        reset();
        schedule_all(&pool, TASKS);
        wait_for(TASKS);
        xev_threadpool_shutdown(&pool);
        xev_threadpool_deinit(&pool);
        CHECK_EQ(atomic_load(&done), TASKS);
    }

    /* One thread: tasks run in push order, all on one thread, with the
     * configured stack size. */
    {
        xev_threadpool_config cfg;
        xev_threadpool pool;
        xev_threadpool_config_init(&cfg);
        xev_threadpool_config_set_max_threads(&cfg, 1);
        xev_threadpool_config_set_stack_size(&cfg, 4 * 1024 * 1024);
        CHECK_EQ(xev_threadpool_init(&pool, &cfg), 0);
        reset();
        schedule_all(&pool, 100);
        wait_for(100);
        for (int i = 0; i < 100; i++) {
            CHECK_EQ(order[i], i);
            CHECK(thread_same(jobs[i].thread, jobs[0].thread));
#ifdef __linux__
            CHECK(jobs[i].stack >= 4 * 1024 * 1024);
#endif
        }
        xev_threadpool_deinit(&pool);
        xev_threadpool_shutdown(&pool); /* after deinit: ignored */
    }

    /* Two threads at most. */
    {
        xev_threadpool_config cfg;
        xev_threadpool pool;
        thread_id_t seen[2];
        int nseen = 0;
        xev_threadpool_config_init(&cfg);
        xev_threadpool_config_set_max_threads(&cfg, 2);
        CHECK_EQ(xev_threadpool_init(&pool, &cfg), 0);
        reset();
        schedule_all(&pool, TASKS);
        wait_for(TASKS);
        for (int i = 0; i < TASKS; i++) {
            int known = 0;
            for (int k = 0; k < nseen; k++) known |= thread_same(seen[k], jobs[i].thread);
            if (!known) {
                CHECK(nseen < 2);
                seen[nseen++] = jobs[i].thread;
            }
        }
        /* After shutdown, new batches are refused; deinit runs nothing more. */
        xev_threadpool_shutdown(&pool);
        reset();
        schedule_all(&pool, 10);
        xev_threadpool_deinit(&pool);
        CHECK_EQ(atomic_load(&done), 0);
    }

    /* Bad input. */
    {
        xev_threadpool_config cfg;
        xev_threadpool pool;
        xev_threadpool_task zeroed;
        xev_threadpool_batch b;
        memset(&cfg, 0, sizeof cfg);
        CHECK_EQ(xev_threadpool_init(&pool, &cfg), -EINVAL); /* not initialised */
        xev_threadpool_config_init(&cfg);
        xev_threadpool_config_set_max_threads(&cfg, 0);
        CHECK_EQ(xev_threadpool_init(&pool, &cfg), -EINVAL);
        CHECK_EQ(xev_threadpool_init(NULL, NULL), -EINVAL);
        memset(&pool, 0, sizeof pool);
        xev_threadpool_deinit(&pool); /* ignored */
        memset(&zeroed, 0, sizeof zeroed);
        xev_threadpool_batch_init(&b);
        xev_threadpool_batch_push_task(&b, &zeroed); /* refused */
        CHECK_EQ(xev_threadpool_init(&pool, NULL), 0);
        reset();
        xev_threadpool_schedule(&pool, &b); /* empty */
        xev_threadpool_deinit(&pool);
        CHECK_EQ(atomic_load(&done), 0);
    }

    /* A loop whose work runs on the caller's pool. */
    {
        xev_threadpool pool;
        xev_loop loop;
        CHECK_EQ(xev_threadpool_init(&pool, NULL), 0);
        CHECK_EQ(xev_loop_init_with_threadpool(&loop, &pool), 0);
        CHECK_EQ(xev_loop_run(&loop, XEV_RUN_NO_WAIT), 0);
        xev_loop_deinit(&loop);
        xev_threadpool_deinit(&pool);
        memset(&pool, 0, sizeof pool);
        CHECK_EQ(xev_loop_init_with_threadpool(&loop, &pool), -EINVAL);
    }

    printf("threadpool: ok\n");
    return 0;
}
