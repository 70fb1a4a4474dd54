//! Downloads run ahead of the writer, a bounded number at a time, and are handed over in the
//! order they were asked for, so that output stays deterministic however they finish.
//!
//! The bound is a count of permits: a job takes one when it starts and its result keeps it
//! until the caller drops the result (or the job drops it itself, when it keeps nothing). So
//! at most `limit` objects are downloading or held, not `limit` in flight plus whatever waits
//! to be written.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// A started job, aborted when dropped (a message given up, or a run stopped by an error).
struct Task<T>(JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Jobs tagged with a group (a message), started in order while permits last, their results
/// taken in the same order.
pub(crate) struct Ordered<J, T, F> {
    permits: Arc<Semaphore>,
    waiting: VecDeque<(usize, J)>,
    running: VecDeque<(usize, Task<T>)>,
    start: F,
}

impl<J, T, F, Fut> Ordered<J, T, F>
where
    F: FnMut(J, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    /// `jobs` in the order their results will be taken; `start` runs one, given its permit.
    /// A `limit` of 0 counts as 1.
    pub(crate) fn new(limit: usize, jobs: impl IntoIterator<Item = (usize, J)>, start: F) -> Self {
        Ordered {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            waiting: jobs.into_iter().collect(),
            running: VecDeque::new(),
            start,
        }
    }

    fn spawn(&mut self, permit: OwnedSemaphorePermit) {
        if let Some((group, job)) = self.waiting.pop_front() {
            let task = tokio::spawn((self.start)(job, permit));
            self.running.push_back((group, Task(task)));
        }
    }

    /// The next result, in job order, with its group; `None` when every job was taken. While
    /// it waits for that one, later jobs start as permits come free. The caller must hold fewer
    /// than `limit` results that keep their permits when it asks, or the next job could never
    /// start: a message of at most `limit` objects holds them all only once it has them all.
    pub(crate) async fn next(&mut self) -> Option<(usize, T)> {
        loop {
            while !self.waiting.is_empty() {
                match self.permits.clone().try_acquire_owned() {
                    Ok(permit) => self.spawn(permit),
                    Err(_) => break,
                }
            }
            let Some((_, front)) = self.running.front_mut() else {
                // Nothing running, jobs waiting and no permit free: only when the caller holds
                // `limit` results, against the rule above. Wait until it drops one.
                if self.waiting.is_empty() {
                    return None;
                }
                let permit = self.permits.clone().acquire_owned().await.ok()?;
                self.spawn(permit);
                continue;
            };
            let more = !self.waiting.is_empty();
            tokio::select! {
                biased;
                joined = &mut front.0 => {
                    let (group, _) = self.running.pop_front()?;
                    return Some((group, unwrap_joined(joined)));
                }
                permit = self.permits.clone().acquire_owned(), if more => {
                    if let Ok(permit) = permit {
                        self.spawn(permit);
                    }
                }
            }
        }
    }

    /// Forgets the jobs of `group` not taken yet: those not started are dropped, those
    /// running are aborted (their permits come back).
    pub(crate) fn drop_group(&mut self, group: usize) {
        self.waiting.retain(|(g, _)| *g != group);
        self.running.retain(|(g, _)| *g != group);
    }
}

/// A job's result; a job that panicked panics here, as it would have run inline.
fn unwrap_joined<T>(joined: Result<T, tokio::task::JoinError>) -> T {
    match joined {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Tasks are only aborted when their `Task` is dropped, after which they are not awaited.
        Err(error) => unreachable!("a job awaited after it was aborted: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Counts jobs running at once, and the most at any time.
    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    type Job = Pin<Box<dyn Future<Output = (usize, OwnedSemaphorePermit)> + Send>>;

    /// A job that sleeps the longer the earlier it is, so that jobs finish in reverse order;
    /// it keeps its permit in its result, as a kept download does.
    fn job(gauge: &Arc<Gauge>, job: usize, permit: OwnedSemaphorePermit) -> Job {
        let gauge = gauge.clone();
        Box::pin(async move {
            let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
            gauge.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5 * (20 - job as u64))).await;
            gauge.now.fetch_sub(1, Ordering::SeqCst);
            (job, permit)
        })
    }

    #[tokio::test]
    async fn results_come_in_job_order_with_at_most_limit_held() {
        for limit in [1, 3, 4] {
            let gauge = Arc::new(Gauge::default());
            // Twelve jobs, `limit` to a group.
            let jobs = (0..12).map(|j| (j / limit, j));
            let mut ordered = Ordered::new(limit, jobs, |j, p| job(&gauge, j, p));
            let mut taken = Vec::new();
            // Each group's results are held until the group is complete, as a message's are.
            let mut held = Vec::new();
            while let Some((group, (j, permit))) = ordered.next().await {
                assert_eq!(group, j / limit);
                taken.push(j);
                held.push(permit);
                if j % limit == limit - 1 {
                    held.clear();
                }
            }
            assert_eq!(taken, (0..12).collect::<Vec<_>>(), "limit {limit}");
            assert_eq!(
                gauge.most.load(Ordering::SeqCst),
                limit,
                "limit {limit}: never more at once, and that many when there is work"
            );
        }
    }

    #[tokio::test]
    async fn a_dropped_group_is_skipped_and_its_permits_come_back() {
        let gauge = Arc::new(Gauge::default());
        let jobs = (0..9).map(|j| (j / 3, j));
        let mut ordered = Ordered::new(2, jobs, |j, p| job(&gauge, j, p));
        let (group, first) = ordered.next().await.unwrap();
        assert_eq!((group, first.0), (0, 0));
        // Job 1 is running and holds the other permit; dropping the group aborts it.
        ordered.drop_group(0);
        drop(first);
        let mut taken = Vec::new();
        while let Some((_, (j, _permit))) = ordered.next().await {
            taken.push(j);
        }
        assert_eq!(taken, [3, 4, 5, 6, 7, 8]);
        assert_eq!(ordered.permits.available_permits(), 2);
    }
}
