//! Spreading independent jobs (episodes, chains) over worker threads: the top-level parallelism
//! DESIGN.md §2.10 calls for, since the simulation and small models run best one per core.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The machine's core count.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `job(worker, i)` for `i` in `0..count` on one thread per entry of `workers` (each thread
/// owns one worker: a policy, a scratch buffer), and returns the results in index order.
/// Jobs are handed out one at a time, so a slow job does not hold back the others.
pub fn map_with<W: Send, T: Send>(workers: Vec<W>, count: usize, job: impl Fn(&mut W, usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let job = &job;
    let next = &next;
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|mut worker| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return done;
                        }
                        done.push((i, job(&mut worker, i)));
                    }
                })
            })
            .collect();
        // A panicking job is a bug; re-raise it on the caller's thread with its message.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Runs `job(i)` for `i` in `0..count` on all cores, results in index order.
pub fn map<T: Send>(count: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = available_threads().min(count.max(1));
    map_with(vec![(); threads], count, |_, i| job(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_index_order() {
        let offsets = map_with(vec![7usize; 3], 100, |offset, i| i * i + *offset);
        assert_eq!(offsets, (0..100).map(|i| i * i + 7).collect::<Vec<_>>());
        assert_eq!(map(0, |i| i), Vec::<usize>::new());
    }
}
