//! Unit tests of the pool: scheduling from many threads, FIFO order on one
//! worker, on-demand spawning up to the limit, stack size, shutdown running
//! every pending task, self-rescheduling and panicking tasks, the last handle
//! dropped on a worker, and the ring buffer's stealing and overflow.

use std::collections::HashSet;
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::queue::{Worker, BUFFER_CAP};
use super::worker::MAX_THREADS;
use super::{lock, Batch, Config, Task, ThreadPool};

/// Task that counts its runs.
#[repr(C)]
struct Counted {
    task: Task,
    runs: AtomicUsize,
    done: Arc<AtomicUsize>,
}

unsafe fn count(task: NonNull<Task>) {
    // SAFETY: tasks using this function are the first field of a
    // `#[repr(C)] Counted` that the test keeps alive until they ran.
    let counted = unsafe { task.cast::<Counted>().as_ref() };
    counted.runs.fetch_add(1, Ordering::Relaxed);
    // Last access: the test may free the node once `done` moves.
    counted.done.fetch_add(1, Ordering::Release);
}

fn counted(n: usize, done: &Arc<AtomicUsize>) -> Vec<Counted> {
    (0..n)
        .map(|_| Counted {
            task: Task::new(count),
            runs: AtomicUsize::new(0),
            done: Arc::clone(done),
        })
        .collect()
}

fn task_of<T>(node: &T) -> NonNull<Task> {
    // Derived from the whole node, so `run` may reach its other fields.
    NonNull::from(node).cast::<Task>()
}

fn pool(max_threads: usize) -> ThreadPool {
    ThreadPool::new(Config::default().max_threads(max_threads)).unwrap()
}

fn schedule_each<T>(pool: &ThreadPool, nodes: &[T], batch_size: usize) {
    for chunk in nodes.chunks(batch_size) {
        let mut batch = Batch::new();
        for node in chunk {
            // SAFETY: the test keeps every node alive (and unborrowed
            // mutably) until all of them ran; each is scheduled once.
            unsafe { batch.push(task_of(node)) };
        }
        assert_eq!(batch.len(), chunk.len());
        // SAFETY: as above.
        unsafe { pool.schedule(batch) };
    }
}

fn wait_for(counter: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while counter.load(Ordering::Acquire) < target {
        assert!(Instant::now() < deadline, "tasks did not run in time");
        thread::sleep(Duration::from_millis(1));
    }
}

fn assert_ran_once(nodes: &[Counted]) {
    assert!(nodes.iter().all(|n| n.runs.load(Ordering::Relaxed) == 1));
}

#[test]
fn handle_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<ThreadPool>();
}

#[test]
fn config_defaults_and_validation() {
    let config = Config::default();
    assert!(config.max_threads >= 1);
    assert_eq!(config.stack_size, 1024 * 1024);
    let err = ThreadPool::new(Config::default().max_threads(0)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let big = ThreadPool::new(Config::default().max_threads(usize::MAX)).unwrap();
    assert_eq!(big.max_threads(), MAX_THREADS);
    let pool = pool(3);
    assert_eq!(pool.max_threads(), 3);
    assert_eq!(pool.spawned_threads(), 0);
    assert!(format!("{pool:?}").contains("max_threads: 3"));
}

#[test]
fn empty_batch_is_a_no_op() {
    let pool = pool(2);
    let batch = Batch::new();
    assert!(batch.is_empty());
    // SAFETY: no task in it.
    unsafe { pool.schedule(batch) };
    assert_eq!(pool.spawned_threads(), 0);
}

#[test]
fn many_producers_each_task_runs_once() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = if cfg!(miri) { 60 } else { 25_000 };
    let done = Arc::new(AtomicUsize::new(0));
    let nodes: Vec<Vec<Counted>> = (0..PRODUCERS)
        .map(|_| counted(PER_PRODUCER, &done))
        .collect();
    let pool = pool(4);
    thread::scope(|s| {
        for (i, mine) in nodes.iter().enumerate() {
            let pool = pool.clone();
            s.spawn(move || {
                // Mix single-task schedules with batches of various sizes.
                let sizes = [1, 7, 64, 300];
                let mut start = 0;
                let mut k = i;
                while start < mine.len() {
                    let end = (start + sizes[k % sizes.len()]).min(mine.len());
                    schedule_each(&pool, &mine[start..end], end - start);
                    start = end;
                    k += 1;
                }
            });
        }
    });
    wait_for(&done, PRODUCERS * PER_PRODUCER);
    assert!(pool.spawned_threads() <= 4);
    drop(pool);
    assert_eq!(done.load(Ordering::Relaxed), PRODUCERS * PER_PRODUCER);
    for mine in &nodes {
        assert_ran_once(mine);
    }
}

/// Records the order tasks run in.
#[repr(C)]
struct Ordered {
    task: Task,
    index: usize,
    log: Arc<Mutex<Vec<usize>>>,
}

unsafe fn record(task: NonNull<Task>) {
    // SAFETY: only used for `Ordered` nodes the test keeps alive.
    let node = unsafe { task.cast::<Ordered>().as_ref() };
    lock(&node.log).push(node.index);
}

#[test]
fn single_worker_runs_batches_in_fifo_order() {
    let n = if cfg!(miri) { 40 } else { 2_000 };
    let log = Arc::new(Mutex::new(Vec::new()));
    let nodes: Vec<Ordered> = (0..n)
        .map(|index| Ordered {
            task: Task::new(record),
            index,
            log: Arc::clone(&log),
        })
        .collect();
    let pool = pool(1);
    // Batches larger than the ring buffer exercise the overflow chain.
    let mut start = 0;
    for size in [1, 3, 700, 1, 50].iter().cycle() {
        if start == n {
            break;
        }
        let end = (start + size).min(n);
        schedule_each(&pool, &nodes[start..end], end - start);
        start = end;
    }
    drop(pool);
    let log = lock(&log);
    assert_eq!(*log, (0..n).collect::<Vec<_>>());
}

/// `Batch::append` (the C API's `xev_threadpool_batch_push_batch`): the
/// appended tasks run after the batch's own, in their order; appending an
/// empty batch, or to one, changes nothing else.
#[test]
fn appended_batches_run_after_in_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let nodes: Vec<Ordered> = (0..7)
        .map(|index| Ordered {
            task: Task::new(record),
            index,
            log: Arc::clone(&log),
        })
        .collect();
    let batch_of = |range: std::ops::Range<usize>| {
        let mut b = Batch::new();
        for node in &nodes[range] {
            // SAFETY: the nodes outlive the pool (dropped below, which
            // runs every task first); each is pushed once.
            unsafe { b.push(task_of(node)) };
        }
        b
    };
    let mut first = Batch::new();
    first.append(batch_of(0..2));
    first.append(Batch::new());
    first.append(batch_of(2..3));
    first.append(batch_of(3..7));
    assert_eq!(first.len(), 7);
    let pool = pool(1);
    // SAFETY: as above.
    unsafe { pool.schedule(first) };
    drop(pool);
    assert_eq!(*lock(&log), (0..7).collect::<Vec<_>>());
}

#[test]
fn spawn_limit_is_respected() {
    let n = if cfg!(miri) { 20 } else { 400 };
    let done = Arc::new(AtomicUsize::new(0));
    let nodes = counted(n, &done);
    let pool = pool(2);
    for node in nodes.chunks(1) {
        schedule_each(&pool, node, 1);
        assert!(pool.spawned_threads() <= 2);
    }
    wait_for(&done, n);
    let spawned = pool.spawned_threads();
    assert!((1..=2).contains(&spawned), "spawned {spawned}");
    drop(pool);
    assert_ran_once(&nodes);
}

/// Task that blocks until released, to keep workers busy.
#[repr(C)]
struct Blocker {
    task: Task,
    started: AtomicUsize,
    release: AtomicBool,
    threads: Mutex<Vec<thread::ThreadId>>,
}

unsafe fn block(task: NonNull<Task>) {
    // SAFETY: only used for `Blocker` nodes the test keeps alive.
    let node = unsafe { task.cast::<Blocker>().as_ref() };
    lock(&node.threads).push(thread::current().id());
    node.started.fetch_add(1, Ordering::SeqCst);
    while !node.release.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn threads_are_spawned_on_demand_up_to_the_limit() {
    let pool = pool(3);
    // One blocker per task node: each node is its own task.
    let blockers: Vec<Blocker> = (0..5)
        .map(|_| Blocker {
            task: Task::new(block),
            started: AtomicUsize::new(0),
            release: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        })
        .collect();
    // While the first blocks, a second task needs a second thread.
    schedule_each(&pool, &blockers[..1], 1);
    wait_for(&blockers[0].started, 1);
    assert_eq!(pool.spawned_threads(), 1);
    schedule_each(&pool, &blockers[1..2], 1);
    wait_for(&blockers[1].started, 1);
    assert_eq!(pool.spawned_threads(), 2);
    // Three more blocking tasks with a limit of three threads: only one
    // of them can start until the others are released.
    schedule_each(&pool, &blockers[2..], 3);
    let started = || {
        blockers
            .iter()
            .filter(|b| b.started.load(Ordering::SeqCst) > 0)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while started() < 3 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 50 }));
    assert_eq!(started(), 3);
    assert_eq!(pool.spawned_threads(), 3);
    for b in &blockers {
        b.release.store(true, Ordering::SeqCst);
    }
    drop(pool);
    assert!(blockers
        .iter()
        .all(|b| b.started.load(Ordering::SeqCst) == 1));
    // Each ran on a pool thread, and there were at most three of them.
    let ids: HashSet<_> = blockers
        .iter()
        .flat_map(|b| lock(&b.threads).clone())
        .collect();
    assert!(!ids.contains(&thread::current().id()));
    assert!(ids.len() <= 3);
}

/// Uses a large stack frame.
#[repr(C)]
struct DeepStack {
    task: Task,
    sum: AtomicUsize,
    done: AtomicUsize,
}

unsafe fn use_big_stack(task: NonNull<Task>) {
    // SAFETY: only used for the `DeepStack` node the test keeps alive.
    let node = unsafe { task.cast::<DeepStack>().as_ref() };
    let mut buf = [0u8; 8 << 20];
    for (i, byte) in buf.iter_mut().enumerate().step_by(4096) {
        *byte = (i / 4096) as u8;
    }
    let buf = std::hint::black_box(&buf);
    let sum = buf.iter().step_by(4096).map(|&b| b as usize).sum();
    node.sum.store(sum, Ordering::Relaxed);
    node.done.store(1, Ordering::Release);
}

#[test]
#[cfg_attr(miri, ignore = "8 MiB stack frame is too slow under Miri")]
fn stack_size_is_honoured() {
    let pool = ThreadPool::new(Config::default().max_threads(1).stack_size(32 << 20)).unwrap();
    let node = Box::new(DeepStack {
        task: Task::new(use_big_stack),
        sum: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    let mut batch = Batch::new();
    // SAFETY: `node` outlives the pool, which is dropped (and joined)
    // below before `node`.
    unsafe { batch.push(task_of(&*node)) };
    // SAFETY: as above.
    unsafe { pool.schedule(batch) };
    drop(pool);
    assert_eq!(node.done.load(Ordering::Acquire), 1);
    let expected: usize = (0..(8 << 20) / 4096).map(|i| (i as u8) as usize).sum();
    assert_eq!(node.sum.load(Ordering::Relaxed), expected);
}

/// Sleeps a little, to keep work pending at shutdown.
#[repr(C)]
struct Slow {
    task: Task,
    runs: AtomicUsize,
}

unsafe fn slow(task: NonNull<Task>) {
    // SAFETY: only used for `Slow` nodes the test keeps alive.
    let node = unsafe { task.cast::<Slow>().as_ref() };
    thread::sleep(Duration::from_micros(200));
    node.runs.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn shutdown_runs_every_pending_task() {
    let n = if cfg!(miri) { 30 } else { 1_000 };
    let nodes: Vec<Slow> = (0..n)
        .map(|_| Slow {
            task: Task::new(slow),
            runs: AtomicUsize::new(0),
        })
        .collect();
    let pool = pool(2);
    let other = pool.clone();
    schedule_each(&pool, &nodes[..n / 2], 10);
    schedule_each(&other, &nodes[n / 2..], 1);
    drop(other);
    // Dropping the last handle waits for all of them.
    drop(pool);
    assert!(nodes
        .iter()
        .all(|node| node.runs.load(Ordering::Relaxed) == 1));
}

#[test]
fn dropping_an_idle_or_unused_pool_returns() {
    drop(pool(4));
    let done = Arc::new(AtomicUsize::new(0));
    let nodes = counted(3, &done);
    let pool = pool(4);
    schedule_each(&pool, &nodes, 3);
    wait_for(&done, 3);
    // Let the workers go to sleep before shutting down.
    thread::sleep(Duration::from_millis(10));
    drop(pool);
    assert_ran_once(&nodes);
}

/// Reschedules itself `remaining` times, reusing its own memory.
#[repr(C)]
struct Chain {
    task: Task,
    remaining: AtomicUsize,
    pool: ThreadPool,
    done: AtomicBool,
}

unsafe fn chain(task: NonNull<Task>) {
    // SAFETY: only used for `Chain` nodes the test keeps alive.
    let node = unsafe { task.cast::<Chain>().as_ref() };
    if node.remaining.fetch_sub(1, Ordering::Relaxed) == 0 {
        node.done.store(true, Ordering::Release);
        return;
    }
    // Schedule through a local handle: once the task is queued it may
    // run and finish on another thread, and the test may free the node
    // (and the handle inside it) before `schedule` returns.
    let pool = node.pool.clone();
    let mut batch = Batch::new();
    // SAFETY: the pool handed the task back by calling `run`, so it may
    // be scheduled again; the test keeps it alive until `done`.
    unsafe { batch.push(task) };
    // SAFETY: as above; `pool` is not inside the task's memory.
    unsafe { pool.schedule(batch) };
}

#[test]
fn tasks_can_reschedule_themselves() {
    let rounds = if cfg!(miri) { 20 } else { 2_000 };
    let pool = pool(2);
    let nodes: Vec<Chain> = (0..3)
        .map(|_| Chain {
            task: Task::new(chain),
            remaining: AtomicUsize::new(rounds),
            pool: pool.clone(),
            done: AtomicBool::new(false),
        })
        .collect();
    schedule_each(&pool, &nodes, 3);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !nodes.iter().all(|n| n.done.load(Ordering::Acquire)) {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(1));
    }
    // Drop the nodes' handles, wait for workers to drop the local handles
    // they scheduled with, so that ours is the last one and joins them.
    drop(nodes);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Arc::strong_count(&pool.inner) > 1 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(1));
    }
    drop(pool);
}

/// Panics when run.
#[repr(C)]
struct Bomb {
    task: Task,
}

unsafe fn explode(_: NonNull<Task>) {
    panic!("task panicked on purpose (expected by the test)");
}

#[test]
fn a_panicking_task_does_not_take_the_pool_down() {
    let pool = pool(1);
    let bomb = Box::new(Bomb {
        task: Task::new(explode),
    });
    let done = Arc::new(AtomicUsize::new(0));
    let nodes = counted(5, &done);
    let mut batch = Batch::new();
    // SAFETY: `bomb` outlives the pool (dropped below first).
    unsafe { batch.push(task_of(&*bomb)) };
    // SAFETY: as above.
    unsafe { pool.schedule(batch) };
    schedule_each(&pool, &nodes, 2);
    wait_for(&done, 5);
    assert_eq!(pool.spawned_threads(), 1);
    drop(pool);
    assert_ran_once(&nodes);
}

/// Drops the pool handle it holds when run.
#[repr(C)]
struct LastHandle {
    task: Task,
    pool: Mutex<Option<ThreadPool>>,
    dropped: AtomicBool,
}

unsafe fn drop_handle(task: NonNull<Task>) {
    // SAFETY: only used for the `LastHandle` node the test keeps alive.
    let node = unsafe { task.cast::<LastHandle>().as_ref() };
    // Wait until the test has handed over its handle, then drop it: this
    // is the last handle.
    let pool = loop {
        if let Some(pool) = lock(&node.pool).take() {
            break pool;
        }
        thread::sleep(Duration::from_millis(1));
    };
    drop(pool);
    node.dropped.store(true, Ordering::Release);
}

#[test]
#[cfg_attr(miri, ignore = "leaves a detached worker thread behind")]
fn last_handle_dropped_inside_a_task() {
    let done = Arc::new(AtomicUsize::new(0));
    let nodes = counted(200, &done);
    let node = Box::new(LastHandle {
        task: Task::new(drop_handle),
        pool: Mutex::new(None),
        dropped: AtomicBool::new(false),
    });
    let pool = pool(2);
    let core = Arc::downgrade(&pool.inner.core);
    let mut batch = Batch::new();
    // SAFETY: `node` is kept alive until the pool's threads are gone.
    unsafe { batch.push(task_of(&*node)) };
    // SAFETY: as above.
    unsafe { pool.schedule(batch) };
    schedule_each(&pool, &nodes, 50);
    *lock(&node.pool) = Some(pool);
    // The worker that drops the last handle cannot join itself; shutdown
    // must still complete and every task still run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !node.dropped.load(Ordering::Acquire) || core.strong_count() > 0 {
        assert!(Instant::now() < deadline, "pool did not shut down");
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(done.load(Ordering::Acquire), 200);
    assert_ran_once(&nodes);
}

fn has_work(worker: &Worker) -> bool {
    let buffer = &worker.buffer;
    buffer.head.load(Ordering::Relaxed) != buffer.tail.load(Ordering::Relaxed)
        || !worker.overflow.load(Ordering::Relaxed).is_null()
}

#[test]
fn buffer_steal_takes_half_and_keeps_order() {
    let done = Arc::new(AtomicUsize::new(0));
    let nodes = counted(10, &done);
    let victim = Worker::new();
    let thief = Worker::new();
    // Build a FIFO chain by hand.
    for pair in nodes.windows(2) {
        pair[0]
            .task
            .next
            .store(task_of(&pair[1]).as_ptr(), Ordering::Relaxed);
    }
    let first = task_of(&nodes[0]);
    let (task, more) = victim.adopt(first.as_ptr()).unwrap();
    assert_eq!(task, first);
    assert!(more);
    assert!(has_work(&victim));
    // Nine queued: the thief takes five (runs one, keeps four).
    let (stolen, more) = victim.buffer.steal_into(&thief.buffer).unwrap();
    assert!(more);
    assert_eq!(stolen, task_of(&nodes[1]));
    let mut thief_tasks = Vec::new();
    while let Some(t) = thief.buffer.pop() {
        thief_tasks.push(t);
    }
    let expect: Vec<_> = nodes[2..6].iter().map(task_of).collect();
    assert_eq!(thief_tasks, expect);
    let mut victim_tasks = Vec::new();
    while let Some(t) = victim.buffer.pop() {
        victim_tasks.push(t);
    }
    let expect: Vec<_> = nodes[6..].iter().map(task_of).collect();
    assert_eq!(victim_tasks, expect);
    assert!(victim.buffer.steal_into(&thief.buffer).is_none());
    assert!(!has_work(&victim));
}

#[test]
fn overflow_holds_what_the_buffer_cannot() {
    let done = Arc::new(AtomicUsize::new(0));
    let n = BUFFER_CAP + 10;
    let nodes = counted(n, &done);
    for pair in nodes.windows(2) {
        pair[0]
            .task
            .next
            .store(task_of(&pair[1]).as_ptr(), Ordering::Relaxed);
    }
    let worker = Worker::new();
    let (first, _) = worker.adopt(task_of(&nodes[0]).as_ptr()).unwrap();
    let mut order = vec![first];
    while let Some(t) = worker.buffer.pop() {
        order.push(t);
    }
    assert_eq!(order.len(), BUFFER_CAP + 1);
    let rest = worker.overflow.swap(ptr::null_mut(), Ordering::Acquire);
    let (t, more) = worker.adopt(rest).unwrap();
    assert!(more);
    order.push(t);
    while let Some(t) = worker.buffer.pop() {
        order.push(t);
    }
    let expect: Vec<_> = nodes.iter().map(task_of).collect();
    assert_eq!(order, expect);
}
