//! The one place where OBS's clock meets ours. libobs stamps each packet with the system clock of its capture
//! (`sys_dts_usec`, µs, `os_gettime_ns`) and of its hand-off to us; the session runs on [`Instant`]s it is given;
//! RTCP sender reports need the wall clock (NTP). One reading of all three at the same moment, taken by the glue
//! when a stream starts, maps between them for the whole stream — so a step of the wall clock (NTP adjusting it)
//! never moves audio against video.
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct CaptureClock {
    /// The same moment on the three clocks.
    at: Instant,
    obs_usec: i64,
    unix_usec: i64,
}

impl CaptureClock {
    /// From readings of the session clock, OBS's clock and the wall clock (µs since the Unix epoch) taken
    /// together.
    pub fn new(at: Instant, obs_usec: i64, unix_usec: i64) -> CaptureClock {
        CaptureClock {
            at,
            obs_usec,
            unix_usec,
        }
    }

    /// µs of `t` after (negative: before) the reading.
    fn offset_usec(&self, t: Instant) -> i64 {
        match t.checked_duration_since(self.at) {
            Some(d) => d.as_micros() as i64,
            None => -(self.at.duration_since(t).as_micros() as i64),
        }
    }

    /// The wall-clock time (µs since the Unix epoch) of session instant `t`.
    pub fn unix_usec_at(&self, t: Instant) -> i64 {
        self.unix_usec + self.offset_usec(t)
    }

    /// OBS's clock at session instant `t`.
    pub fn obs_usec_at(&self, t: Instant) -> i64 {
        self.obs_usec + self.offset_usec(t)
    }

    /// The wall-clock time of an OBS clock reading (a packet's capture).
    pub fn unix_usec_of(&self, obs_usec: i64) -> i64 {
        self.unix_usec + (obs_usec - self.obs_usec)
    }

    /// The session instant of an OBS clock reading (saturating at the reading for times long before it).
    pub fn instant_of(&self, obs_usec: i64) -> Instant {
        let delta = obs_usec - self.obs_usec;
        if delta >= 0 {
            self.at + Duration::from_micros(delta as u64)
        } else {
            self.at
                .checked_sub(Duration::from_micros(delta.unsigned_abs()))
                .unwrap_or(self.at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reading_maps_all_three_clocks() {
        let t0 = Instant::now();
        let c = CaptureClock::new(t0, 5_000_000, 1_700_000_000_000_000);
        let later = t0 + Duration::from_millis(250);
        assert_eq!(c.obs_usec_at(later), 5_250_000);
        assert_eq!(c.unix_usec_at(later), 1_700_000_000_250_000);
        // A frame captured 40 ms before the reading.
        assert_eq!(c.unix_usec_of(4_960_000), 1_699_999_999_960_000);
        assert_eq!(c.instant_of(5_250_000), later);
        assert_eq!(c.obs_usec_at(c.instant_of(4_960_000)), 4_960_000);
        assert_eq!(c.unix_usec_at(t0), 1_700_000_000_000_000);
    }
}
