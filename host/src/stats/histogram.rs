//! Request latency as counts per bucket: cheap to add to from any process,
//! and enough to estimate percentiles and to print a Prometheus histogram.

use std::sync::atomic::{AtomicU64, Ordering};

/// Finite buckets. Bucket `i` holds durations up to [`upper_bound_us`]`(i)`;
/// one more bucket holds everything longer.
pub(crate) const BUCKETS: usize = 40;

/// The first bucket's upper bound. Each later bound is √2 times the one
/// before, so the last finite one is about 52 s and an estimate is within
/// a factor of √2 of the truth.
const FIRST_BOUND_US: f64 = 50.0;

/// The upper bound of finite bucket `i`, in microseconds.
pub fn upper_bound_us(i: usize) -> f64 {
    FIRST_BOUND_US * 2f64.powf(i as f64 / 2.0)
}

/// The bucket a duration of `us` microseconds falls in; [`BUCKETS`] for
/// longer than the last bound.
pub fn bucket_of(us: u64) -> usize {
    if (us as f64) <= FIRST_BOUND_US {
        return 0;
    }
    let i = (2.0 * (us as f64 / FIRST_BOUND_US).log2()).ceil() as usize;
    // Rounding may put a duration exactly on a bound one bucket too far.
    let i = if i > 0 && (us as f64) <= upper_bound_us(i - 1) {
        i - 1
    } else {
        i
    };
    i.min(BUCKETS)
}

/// Counts per bucket, in shared memory.
#[repr(C)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Counts one request that took `us` microseconds.
    pub fn record(&self, us: u64) {
        self.counts[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counts now, the last one for longer than every bound.
    pub fn counts(&self) -> [u64; BUCKETS + 1] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }

    /// The sum of every recorded duration.
    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Ordering::Relaxed)
    }
}

/// The duration below which a fraction `q` (0 to 1) of the requests
/// counted in `counts` finished, interpolated within its bucket; `None`
/// without requests.
pub fn quantile_us(counts: &[u64; BUCKETS + 1], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).max(1.0);
    let mut below = 0u64;
    for (i, &count) in counts.iter().enumerate() {
        if count > 0 && (below + count) as f64 >= rank {
            if i == BUCKETS {
                // Unbounded: all that is known is the lower bound.
                return Some(upper_bound_us(BUCKETS - 1));
            }
            let low = if i == 0 { 0.0 } else { upper_bound_us(i - 1) };
            let within = (rank - below as f64) / count as f64;
            return Some(low + (upper_bound_us(i) - low) * within);
        }
        below += count;
    }
    Some(upper_bound_us(BUCKETS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_bucket_whose_bound_covers_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(50), 0);
        assert_eq!(bucket_of(51), 1);
        assert_eq!(bucket_of(71), 2); // 50√2 ≈ 70.7
        assert_eq!(bucket_of(100), 2);
        assert_eq!(bucket_of(101), 3);
        assert_eq!(bucket_of(u64::MAX), BUCKETS);
        for i in 0..BUCKETS {
            let bound = upper_bound_us(i).floor() as u64;
            assert_eq!(bucket_of(bound), i, "bound of bucket {i}");
        }
    }

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut counts = [0u64; BUCKETS + 1];
        assert_eq!(quantile_us(&counts, 0.5), None);
        // 90 fast requests (≤ 50 µs) and 10 slow ones (1 ms, in the bucket
        // from 800 to 1131 µs).
        counts[0] = 90;
        counts[bucket_of(1000)] = 10;
        assert_eq!(bucket_of(1000), 9);
        assert!(quantile_us(&counts, 0.5).unwrap() <= 50.0);
        let p99 = quantile_us(&counts, 0.99).unwrap();
        assert!(p99 > upper_bound_us(8) && p99 <= upper_bound_us(9), "{p99}");
        counts[BUCKETS] = 1000;
        assert_eq!(
            quantile_us(&counts, 0.99),
            Some(upper_bound_us(BUCKETS - 1))
        );
    }
}
