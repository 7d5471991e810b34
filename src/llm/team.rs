//! The engine's threads: a fork-join team for the parallel loops of a forward pass.
//!
//! A decode step runs about a hundred parallel loops of a few tens of microseconds each
//! (every projection of every layer). A general-purpose pool puts its idle threads to sleep
//! within microseconds, and a loop that must first wake one pays a futex round trip; on two
//! cores that was a fifth of a step. The team's threads instead spin between loops and park
//! only after [`SPIN`] without work, so a loop starts on every thread at once.
//!
//! The thread that installed the team ([`Team::install`]) runs tasks alongside it; code under
//! `install` calls [`for_each`] / [`for_each_init`] / [`map`], which run serially where no
//! team is installed (and inside a task, so loops never nest).

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle thread spins (then yields) before it parks.
const SPIN: Duration = Duration::from_millis(2);
/// How long it spins without yielding the core first.
const SPIN_HOT: Duration = Duration::from_micros(50);

/// A loop's body as every participating thread runs it: it pulls task indices from the
/// iterator until there are none left.
type Job<'a> = dyn Fn(&mut dyn Iterator<Item = usize>) + Sync + 'a;

/// A team of `threads` threads: the caller's and `threads − 1` of its own.
pub struct Team {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// One loop at a time: callers on other threads wait here.
    caller: Mutex<()>,
}

struct Shared {
    /// The running loop's task count (high 32 bits) and next unclaimed index (low 32 bits).
    /// A thread claims a task with one `fetch_add`; indices at or past the count claim
    /// nothing. Only the caller stores a new loop here, after the last one has finished.
    ticket: AtomicU64,
    /// The running loop's body: a `*const &Job`, on the caller's stack until the loop ends.
    job: AtomicPtr<()>,
    /// Tasks finished in the running loop.
    done: AtomicUsize,
    /// Worker threads inside the running loop's body.
    active: AtomicUsize,
    /// The first panic of a task on a worker, re-raised by the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Parked workers, and where they park.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
}

thread_local! {
    /// The team whose loops this thread starts (null: none, loops run serially).
    static CURRENT: Cell<*const Team> = const { Cell::new(ptr::null()) };
}

fn has_work(ticket: u64) -> bool {
    (ticket as u32) < (ticket >> 32) as u32
}

impl Shared {
    /// Claims the next task of whatever loop is running, if one is left.
    fn claim(&self) -> Option<usize> {
        let t = self.ticket.fetch_add(1, SeqCst);
        has_work(t).then_some(t as u32 as usize)
    }
}

/// The task indices one thread runs: each index is counted done when the next is asked for
/// (or when the thread leaves the body), so `done` reaches the count only after every task
/// has returned.
struct Claims<'a> {
    shared: &'a Shared,
    first: Option<usize>,
    pending: bool,
}

impl Iterator for Claims<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.finish();
        let i = self.first.take().or_else(|| self.shared.claim())?;
        self.pending = true;
        Some(i)
    }
}

impl Claims<'_> {
    fn finish(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.shared.done.fetch_add(1, SeqCst);
        }
    }
}

impl Team {
    /// A team of `threads` threads (0: one per core).
    pub fn new(threads: usize) -> std::io::Result<Team> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let shared = Arc::new(Shared {
            ticket: AtomicU64::new(0),
            job: AtomicPtr::new(ptr::null_mut()),
            done: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            panic: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("anjeon-llm-{i}"))
                    .spawn(move || work(&shared))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Team {
            shared,
            workers,
            caller: Mutex::new(()),
        })
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f` with this team behind the loops it starts on this thread.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        let previous = CURRENT.with(|c| c.replace(self));
        let _restore = Restore(previous);
        f()
    }

    /// Runs `job` on every thread of the team until `n` tasks are done.
    fn run(&self, n: usize, job: &Job) {
        assert!(n < u32::MAX as usize, "too many tasks for one loop");
        let _one = self.caller.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        s.done.store(0, SeqCst);
        s.job.store(&job as *const &Job as *mut (), SeqCst);
        s.ticket.store((n as u64) << 32, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        // Tasks on this thread start no loops of their own.
        let mine = CURRENT.with(|c| c.replace(ptr::null()));
        let _restore = Restore(mine);
        let mut claims = Claims {
            shared: s,
            first: None,
            pending: false,
        };
        let result = catch_unwind(AssertUnwindSafe(|| job(&mut claims)));
        claims.finish();
        // Every task claimed by a worker holds `done` below n; a worker counts itself active
        // before it finishes its first task, so once all are done `active` covers them all.
        wait_until(|| s.done.load(SeqCst) >= n && s.active.load(SeqCst) == 0);
        s.job.store(ptr::null_mut(), SeqCst);
        if let Err(p) = result {
            resume_unwind(p);
        }
        if let Some(p) = s.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
            resume_unwind(p);
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

struct Restore(*const Team);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Spins on `ready`, yielding the core once the wait grows long.
fn wait_until(ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() < SPIN_HOT {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// A worker: wait for a loop, run tasks from it, repeat until the team is dropped.
fn work(s: &Shared) {
    loop {
        let idle = Instant::now();
        let mut spins = 0u32;
        while !has_work(s.ticket.load(SeqCst)) {
            if s.stop.load(SeqCst) {
                return;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            let waited = idle.elapsed();
            if waited < SPIN_HOT {
                continue;
            }
            if waited < SPIN {
                std::thread::yield_now();
                continue;
            }
            let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, SeqCst);
            while !has_work(s.ticket.load(SeqCst)) && !s.stop.load(SeqCst) {
                g = s.wake.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, SeqCst);
            break;
        }
        let Some(first) = s.claim() else { continue };
        s.active.fetch_add(1, SeqCst);
        // SAFETY: a claimed task keeps `done` below the count, so the caller is still inside
        // `run`, and the job it published before the ticket is alive until we leave `active`.
        let job = unsafe { &*(s.job.load(SeqCst) as *const &Job) };
        let mut claims = Claims {
            shared: s,
            first: Some(first),
            pending: false,
        };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| job(&mut claims))) {
            s.panic
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(p);
        }
        claims.finish();
        s.active.fetch_sub(1, SeqCst);
    }
}

/// Runs `job` on the current team, or serially on this thread.
fn run(n: usize, job: &Job) {
    if n == 0 {
        return;
    }
    let team = CURRENT.with(Cell::get);
    // SAFETY: CURRENT is set only inside `Team::install`, which borrows the team.
    match unsafe { team.as_ref() } {
        Some(team) if n > 1 && team.threads() > 1 => team.run(n, job),
        _ => job(&mut (0..n)),
    }
}

/// `f(i)` for every `i < n`, spread over the current team.
pub fn for_each(n: usize, f: impl Fn(usize) + Sync) {
    run(n, &|tasks: &mut dyn Iterator<Item = usize>| {
        tasks.for_each(&f)
    });
}

/// `f(state, i)` for every `i < n`, each thread making its `state` once with `init`.
pub fn for_each_init<S>(n: usize, init: impl Fn() -> S + Sync, f: impl Fn(&mut S, usize) + Sync) {
    run(n, &|tasks: &mut dyn Iterator<Item = usize>| {
        let mut state = None;
        for i in tasks {
            f(state.get_or_insert_with(&init), i);
        }
    });
}

/// `[f(0), …, f(n − 1)]`, computed over the current team.
pub fn map<T: Send + Sync>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let slots: Vec<OnceLock<T>> = (0..n).map(|_| OnceLock::new()).collect();
    for_each(n, |i| {
        let _ = slots[i].set(f(i));
    });
    slots
        .into_iter()
        .map(|s| s.into_inner().expect("every task ran"))
        .collect()
}

/// Threads of the current team (1 where none is installed).
pub fn current_threads() -> usize {
    let team = CURRENT.with(Cell::get);
    // SAFETY: as in `run`.
    unsafe { team.as_ref() }.map_or(1, Team::threads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_task_runs_once_on_every_size() {
        let team = Team::new(3).unwrap();
        team.install(|| {
            for n in [0, 1, 2, 3, 7, 64, 1000] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                for_each(n, |i| {
                    hits[i].fetch_add(1, SeqCst);
                });
                assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "n = {n}");
            }
        });
    }

    #[test]
    fn tasks_spread_over_the_threads() {
        let team = Team::new(2).unwrap();
        let names = team.install(|| {
            map(64, |_| {
                std::thread::sleep(Duration::from_millis(1));
                std::thread::current().id()
            })
        });
        let mut distinct = names.clone();
        distinct.sort_by_key(|id| format!("{id:?}"));
        distinct.dedup();
        assert_eq!(distinct.len(), 2, "both threads took tasks");
    }

    #[test]
    fn map_keeps_order_and_init_runs_once_per_thread() {
        let team = Team::new(2).unwrap();
        let inits = AtomicUsize::new(0);
        let squares = team.install(|| {
            for_each_init(
                100,
                || inits.fetch_add(1, SeqCst),
                |_, _| std::hint::black_box(()),
            );
            map(100, |i| i * i)
        });
        assert_eq!(squares, (0..100).map(|i| i * i).collect::<Vec<_>>());
        assert!((1..=2).contains(&inits.load(SeqCst)));
    }

    #[test]
    fn loops_inside_a_task_run_serially() {
        let team = Team::new(2).unwrap();
        let sums = team.install(|| map(8, |i| map(i, |j| j).iter().sum::<usize>()));
        assert_eq!(sums, (0..8).map(|i| (0..i).sum()).collect::<Vec<usize>>());
    }

    #[test]
    fn without_a_team_loops_run_on_the_caller() {
        let me = std::thread::current().id();
        assert!(map(5, |_| std::thread::current().id())
            .iter()
            .all(|&id| id == me));
        assert_eq!(current_threads(), 1);
    }

    #[test]
    fn a_task_panic_reaches_the_caller_and_the_team_goes_on() {
        let team = Team::new(2).unwrap();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            team.install(|| {
                for_each(50, |i| {
                    std::thread::sleep(Duration::from_micros(100));
                    assert!(i != 37, "task 37 fails");
                })
            })
        }));
        assert!(caught.is_err());
        assert_eq!(team.install(|| map(10, |i| i)).len(), 10);
    }

    #[test]
    fn parked_workers_wake_for_the_next_loop() {
        let team = Team::new(2).unwrap();
        let start = Instant::now();
        while team.shared.sleepers.load(SeqCst) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the idle worker parks"
            );
            std::thread::sleep(SPIN);
        }
        let ids = team.install(|| {
            map(32, |_| {
                std::thread::sleep(Duration::from_millis(1));
                std::thread::current().id()
            })
        });
        assert!(ids.iter().any(|&id| id != std::thread::current().id()));
    }

    #[test]
    fn callers_on_two_threads_share_one_team() {
        let team = Team::new(2).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        let v = team.install(|| map(16, |i| i + 1));
                        assert_eq!(v.iter().sum::<usize>(), 136);
                    }
                });
            }
        });
    }
}
