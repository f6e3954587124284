//! The database's own threads: at most one per pooled connection, fed from one queue.
//!
//! Every query runs on a blocking thread so that async workers never wait on the
//! database. Tokio's blocking pool would do, but under load it grows a thread per waiting
//! request (64 concurrent reads made 70 threads, each sleeping in the connection pool's
//! lock and woken in turn). Here a request beyond the pool waits in the queue instead,
//! and a thread that finishes a job takes the next one without sleeping.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A job; its argument says whether it waited in the queue longer than the executor's
/// `max_wait` (it should then answer "unavailable" without touching the database).
pub(crate) type Job = Box<dyn FnOnce(bool) + Send>;

struct Queue {
    jobs: VecDeque<(Instant, Job)>,
    /// Threads asleep waiting for a job, and how many of them were already woken.
    idle: usize,
    woken: usize,
    threads: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A job never runs under the lock, so a poisoned lock still guards a sound queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fixed-size set of threads, started as they are needed; dropping it lets them finish
/// the queued jobs and exit.
pub(crate) struct Executor {
    shared: Arc<Shared>,
    max_threads: usize,
    max_wait: Duration,
    name: &'static str,
}

impl Executor {
    pub(crate) fn new(name: &'static str, max_threads: usize, max_wait: Duration) -> Self {
        let queue = Queue { jobs: VecDeque::new(), idle: 0, woken: 0, threads: 0, closed: false };
        Self {
            shared: Arc::new(Shared { queue: Mutex::new(queue), ready: Condvar::new() }),
            max_threads: max_threads.max(1),
            max_wait,
            name,
        }
    }

    /// Queues `job`; it runs on one of the threads, in arrival order.
    pub(crate) fn submit(&self, job: Job) {
        let mut q = self.shared.lock();
        q.jobs.push_back((Instant::now(), job));
        if q.idle > q.woken {
            q.woken += 1;
            drop(q);
            self.shared.ready.notify_one();
        } else if q.threads < self.max_threads {
            q.threads += 1;
            drop(q);
            let shared = Arc::clone(&self.shared);
            let max_wait = self.max_wait;
            let spawned = std::thread::Builder::new().name(self.name.into()).spawn(move || work(&shared, max_wait));
            if let Err(e) = spawned {
                // The job stays queued for the threads already running (there is at
                // least one unless this was the first; then it is answered as stale).
                tracing::error!(error = %e, "cannot start a database thread");
                let mut q = self.shared.lock();
                q.threads -= 1;
                if q.threads == 0 {
                    let stale: Vec<_> = q.jobs.drain(..).collect();
                    drop(q);
                    for (_, job) in stale {
                        job(true);
                    }
                }
            }
        }
        // Otherwise every thread is busy, and the first to finish takes the job.
    }
}

fn work(shared: &Shared, max_wait: Duration) {
    loop {
        let mut q = shared.lock();
        let (queued_at, job) = loop {
            if let Some(next) = q.jobs.pop_front() {
                break next;
            }
            if q.closed {
                q.threads -= 1;
                return;
            }
            q.idle += 1;
            q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
            q.idle -= 1;
            q.woken = q.woken.saturating_sub(1);
        };
        drop(q);
        job(queued_at.elapsed() > max_wait);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn every_job_runs_once_on_no_more_threads_than_allowed() {
        let exec = Executor::new("test-db", 3, Duration::from_secs(60));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        for i in 0..200 {
            let (running, peak, tx) = (Arc::clone(&running), Arc::clone(&peak), tx.clone());
            exec.submit(Box::new(move |stale| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::yield_now();
                running.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send((i, stale));
            }));
        }
        drop(tx);
        let mut seen: Vec<(i32, bool)> = rx.iter().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..200).map(|i| (i, false)).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3, "peak {}", peak.load(Ordering::SeqCst));
        assert_eq!(exec.shared.lock().jobs.len(), 0);
    }

    #[test]
    fn a_job_that_waited_past_the_limit_is_told_so() {
        // No wait is allowed: a job queued behind a running one has waited too long.
        let exec = Executor::new("test-db", 1, Duration::ZERO);
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (tx, rx) = mpsc::channel();
        exec.submit(Box::new(move |_| {
            let _ = gate_rx.recv();
        }));
        exec.submit(Box::new(move |stale| {
            let _ = tx.send(stale);
        }));
        let _ = gate_tx.send(());
        assert_eq!(rx.recv().ok(), Some(true));
    }

    #[test]
    fn dropping_the_executor_stops_its_threads_after_the_queued_jobs() {
        let exec = Executor::new("test-db", 2, Duration::from_secs(60));
        let (tx, rx) = mpsc::channel();
        for _ in 0..10 {
            let tx = tx.clone();
            exec.submit(Box::new(move |_| {
                let _ = tx.send(());
            }));
        }
        let shared = Arc::clone(&exec.shared);
        drop(exec);
        drop(tx);
        assert_eq!(rx.iter().count(), 10);
        // The threads leave once the queue is empty; each decrements the count on its way out.
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.lock().threads > 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(shared.lock().threads, 0);
    }
}
