//! Rayon pools kept between calls.
//!
//! Starting a pool maps a stack per worker, and mapping memory waits for any other thread of the
//! process that is unmapping: right after a frizzle 0.2.8 call, JAX frees its buffers on
//! background threads for ~0.5 s, and on this project's VMs a thread start or a fresh 32 MB
//! buffer then took 0.4 s (measured from Python: `threading.Thread` start and `np.empty` + touch,
//! 0.4-0.5 s right after a frizzle call, < 1 ms 0.6 s later), 20x the arithmetic of a case-a
//! call. So a finished call's pool is kept for the next call with the same thread count.
//!
//! Nothing is shared between calls that run at once: a pool is leased to one call at a time, and
//! a call that finds it leased starts a pool of its own (as every call did before). Pools are
//! keyed by process id too, so a process forked from this one (multiprocessing, Dask) never
//! uses its parent's pool, whose threads it does not have.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuildError, ThreadPoolBuilder};

/// (process id, threads) -> the idle pool.
type Idle = HashMap<(u32, usize), Arc<ThreadPool>>;
static IDLE: Mutex<Option<Idle>> = Mutex::new(None);

/// A pool for one call; an idle pool goes back to [`IDLE`] when the lease ends.
pub struct Lease {
    pool: Arc<ThreadPool>,
    key: (u32, usize),
}

impl Deref for Lease {
    type Target = ThreadPool;
    fn deref(&self) -> &ThreadPool {
        &self.pool
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut idle) = IDLE.lock() {
            idle.get_or_insert_with(HashMap::new)
                .insert(self.key, Arc::clone(&self.pool));
        }
    }
}

/// A pool of `n` workers: the idle one of this process with `n` workers, or a new one.
pub fn lease(n: usize) -> Result<Lease, ThreadPoolBuildError> {
    let key = (std::process::id(), n);
    let idle = IDLE
        .lock()
        .ok()
        .and_then(|mut idle| idle.as_mut().and_then(|m| m.remove(&key)));
    let pool = match idle {
        Some(p) => p,
        None => Arc::new(ThreadPoolBuilder::new().num_threads(n).build()?),
    };
    Ok(Lease { pool, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_is_reused_only_when_idle() {
        let a = lease(3).expect("pool");
        let a_ptr = Arc::as_ptr(&a.pool);
        // Leased: a concurrent call gets another pool.
        let b = lease(3).expect("pool");
        assert_ne!(a_ptr, Arc::as_ptr(&b.pool));
        assert_eq!(b.current_num_threads(), 3);
        drop(b);
        drop(a);
        // Idle again: the next call gets one of the two, not a third.
        let c = lease(3).expect("pool");
        let c_ptr = Arc::as_ptr(&c.pool);
        assert_eq!(c_ptr, a_ptr);
        let d = lease(4).expect("pool");
        assert_eq!(d.current_num_threads(), 4);
        assert_ne!(Arc::as_ptr(&d.pool), c_ptr);
    }
}
