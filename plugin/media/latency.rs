//! Delay distributions with fixed memory: 0.1 ms buckets up to 10 s (a stream of any length costs 400 KB), for the
//! capture → hand-off → wire latencies the plugin reports when a stream ends.

const BUCKET_USEC: i64 = 100;
const BUCKETS: usize = 100_000;

#[derive(Clone)]
pub struct LatencyHistogram {
    buckets: Vec<u32>,
    /// Samples beyond the last bucket (counted there).
    over: u64,
    count: u64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: vec![0; BUCKETS],
            over: 0,
            count: 0,
        }
    }
}

impl LatencyHistogram {
    /// Records one delay in microseconds (negative clamps to 0).
    pub fn record(&mut self, usec: i64) {
        let i = (usec.max(0) / BUCKET_USEC) as usize;
        if i >= BUCKETS {
            self.over += 1;
        }
        self.buckets[i.min(BUCKETS - 1)] = self.buckets[i.min(BUCKETS - 1)].saturating_add(1);
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1) in milliseconds, to the bucket's upper edge; None without samples.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return Some(((i as i64 + 1) * BUCKET_USEC) as f64 / 1000.0);
            }
        }
        None
    }

    /// "p50 X ms, p99 Y ms, max Z ms (N)" for logs.
    pub fn summary(&self) -> String {
        match (
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.quantile_ms(1.0),
        ) {
            (Some(p50), Some(p99), Some(max)) => {
                format!(
                    "p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} packets)",
                    self.count
                )
            }
            _ => "no packets".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_recorded_delays() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for ms in 1..=100 {
            h.record(ms * 1000 - 50); // just under each whole millisecond
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile_ms(0.5), Some(50.0));
        assert_eq!(h.quantile_ms(0.99), Some(99.0));
        assert_eq!(h.quantile_ms(1.0), Some(100.0));
        h.record(-5);
        h.record(60_000_000); // a minute: counted in the last bucket
        assert_eq!(h.quantile_ms(0.0), Some(0.1));
        assert_eq!(h.quantile_ms(1.0), Some(10_000.0));
        assert!(h.summary().contains("(102 packets)"));
    }
}
