//! Exactness of the RTP clock: no drift over a day at every common rate, re-anchoring, lip sync.
use super::*;
use proptest::prelude::*;

/// The exact RTP tick count of frame `n` at `fps_num/fps_den`, computed independently with u128 and
/// round-half-up.
fn exact_video_ticks(n: i64, fps_num: i64, fps_den: i64) -> i64 {
    let num = n as i128 * fps_den as i128 * 90_000;
    ((2 * num + fps_num as i128) / (2 * fps_num as i128)) as i64
}

#[test]
fn thirty_fps_is_three_thousand_ticks_per_frame() {
    let mut c = SessionClock::new(0, 0);
    for n in 0..10 {
        let s = c.stamp(MediaKind::Video, n, n, 1, 30, 0);
        assert_eq!(s.rtp, (n * 3000) as u32);
        assert!(s.discontinuity.is_none());
    }
}

#[test]
fn no_drift_after_24_hours_at_common_rates() {
    // (timebase num, den) as OBS gives it: 1/fps, or 1001/60000 for 59.94.
    for (num, den) in [
        (1, 24),
        (1, 25),
        (1, 30),
        (1, 50),
        (1001, 60000),
        (1001, 30000),
        (1, 60),
    ] {
        let mut c = SessionClock::new(0x1234_5678, 0);
        let frames_per_day = 24 * 3600 * den as i64 / num as i64;
        // Stamp the whole first second, then every ~2 s (under the jump limit) across the day.
        let stride = 2 * den as i64 / num as i64;
        let mut n = 0;
        while n < frames_per_day {
            let s = c.stamp(MediaKind::Video, n, n, num, den, 0);
            let expect =
                0x1234_5678u32.wrapping_add(exact_video_ticks(n, den as i64, num as i64) as u32);
            assert_eq!(s.rtp, expect, "frame {n} at {num}/{den}");
            assert!(s.discontinuity.is_none(), "frame {n} at {num}/{den}");
            n += if n < den as i64 { 1 } else { stride };
        }
        let last = frames_per_day;
        let s = c.stamp(MediaKind::Video, last, last, num, den, 0);
        assert_eq!(
            s.ticks,
            exact_video_ticks(last, den as i64, num as i64),
            "last frame at {num}/{den}"
        );
        if (24 * 3600 * den as i64) % num as i64 == 0 {
            // A whole number of frames per day: exactly 24·3600·90000 ticks later, modulo 2³².
            let day_ticks = 24u64 * 3600 * 90_000;
            assert_eq!(s.ticks as u64, day_ticks, "{num}/{den}");
            assert_eq!(s.rtp, 0x1234_5678u32.wrapping_add(day_ticks as u32));
        }
    }
}

#[test]
fn audio_and_video_share_the_capture_timeline() {
    let mut c = SessionClock::new(1000, 2000);
    // Both captured at the same instant; audio's packet merely arrives later.
    let v = c.stamp(MediaKind::Video, 0, 0, 1, 30, 5_000_000);
    let a = c.stamp(MediaKind::Audio, 0, 0, 1, 48_000, 5_000_000);
    assert_eq!((v.ticks, a.ticks), (0, 0));
    // One second in (by pts), both clocks are one second in, whatever the wall clock says now.
    let v = c.stamp(MediaKind::Video, 30, 30, 1, 30, 0);
    let a = c.stamp(MediaKind::Audio, 48_000, 48_000, 1, 48_000, 0);
    assert_eq!((v.ticks, a.ticks), (90_000, 48_000));
    assert_eq!((v.rtp, a.rtp), (91_000, 50_000));
}

#[test]
fn streams_rebased_differently_by_obs_are_aligned_by_capture_time() {
    // After a reconnect libobs restarts each stream's pts at 0, although audio's first packet was captured
    // 12.5 ms after video's: the capture clock places audio 12.5 ms (600 ticks at 48 kHz) later.
    let mut c = SessionClock::new(0, 0);
    let v = c.stamp(MediaKind::Video, 0, 0, 1, 30, 7_000_000);
    let a = c.stamp(MediaKind::Audio, 0, 0, 1, 48_000, 7_012_500);
    assert_eq!((v.ticks, a.ticks), (0, 600));
    let a = c.stamp(MediaKind::Audio, 960, 960, 1, 48_000, 0);
    assert_eq!(a.ticks, 1560, "then exact pts steps");
}

#[test]
fn a_b_frame_streams_first_keyframe_is_placed_at_its_sys_dts() {
    // x264 with B-frames starts at pts 0, dts −2; libobs gives it the capture time of frame 0 as sys_dts.
    let mut c = SessionClock::new(0, 0);
    let a = c.stamp(MediaKind::Audio, 0, 0, 1, 48_000, 10_000_000);
    let v = c.stamp(MediaKind::Video, 0, -2, 1, 30, 10_000_000);
    assert_eq!((a.ticks, v.ticks), (0, 0));
    // Then pts rules: the next packet in decode order is P3 (pts 3).
    assert_eq!(c.stamp(MediaKind::Video, 3, -1, 1, 30, 0).ticks, 9000);
}

#[test]
fn origin_is_the_first_packet_even_when_it_is_not_zero() {
    let mut c = SessionClock::new(0, 0);
    let a = c.stamp(MediaKind::Audio, 96_000, 96_000, 1, 48_000, 2_000_000); // 2 s
    let v = c.stamp(MediaKind::Video, 61, 61, 1, 30, 2_033_333); // 2.0333 s
    assert_eq!(a.ticks, 0);
    assert_eq!(v.ticks, 3000);
}

#[test]
fn b_frames_follow_pts_and_keep_dts_order() {
    let mut c = SessionClock::new(0, 0);
    // x264 bframes=2 decode order: I0 P3 B1 B2 P6 B4 B5 (dts 0..6, shifted by -2 as x264 does).
    let order = [(0, -2), (3, -1), (1, 0), (2, 1), (6, 2), (4, 3), (5, 4)];
    let ticks: Vec<i64> = order
        .iter()
        .map(|&(p, d)| c.stamp(MediaKind::Video, p, d, 1, 30, 0))
        .map(|s| s.ticks)
        .collect();
    assert_eq!(ticks, vec![0, 9000, 3000, 6000, 18000, 12000, 15000]);
}

#[test]
fn wraps_around_32_bits() {
    let mut c = SessionClock::new(u32::MAX - 2999, 0);
    assert_eq!(
        c.stamp(MediaKind::Video, 0, 0, 1, 30, 0).rtp,
        u32::MAX - 2999
    );
    assert_eq!(c.stamp(MediaKind::Video, 1, 1, 1, 30, 0).rtp, 0);
    assert_eq!(c.stamp(MediaKind::Video, 2, 2, 1, 30, 0).rtp, 3000);
}

#[test]
fn encoder_restart_reanchors_one_frame_later_and_reports_once() {
    let mut c = SessionClock::new(0, 0);
    for n in 0..100 {
        c.stamp(MediaKind::Video, n, n, 1, 30, 0);
    }
    let s = c.stamp(MediaKind::Video, 0, 0, 1, 30, 0);
    assert_eq!(s.ticks, 100 * 3000, "continues one frame after frame 99");
    let d = s.discontinuity.unwrap();
    assert_eq!(d.kind, DiscontinuityKind::Backwards);
    assert_eq!(d.jump_ms, Some(-3300));
    let s = c.stamp(MediaKind::Video, 1, 1, 1, 30, 0);
    assert_eq!(s.ticks, 101 * 3000);
    assert!(s.discontinuity.is_none());
}

#[test]
fn forward_jump_reanchors_without_a_huge_gap() {
    let mut c = SessionClock::new(0, 0);
    for n in 0..10 {
        c.stamp(MediaKind::Audio, n * 960, n * 960, 1, 48_000, 0);
    }
    let s = c.stamp(
        MediaKind::Audio,
        3_600 * 48_000,
        3_600 * 48_000,
        1,
        48_000,
        0,
    );
    assert_eq!(s.discontinuity.unwrap().kind, DiscontinuityKind::Forward);
    assert_eq!(s.ticks, 10 * 960);
    // A gap within the limit (a second of lost audio) is kept as real time.
    let s = c.stamp(
        MediaKind::Audio,
        3_601 * 48_000,
        3_601 * 48_000,
        1,
        48_000,
        0,
    );
    assert!(s.discontinuity.is_none());
    assert_eq!(s.ticks, 10 * 960 + 48_000);
}

#[test]
fn garbage_timestamps_never_panic() {
    let mut c = SessionClock::new(7, 7);
    let s = c.stamp(MediaKind::Video, i64::MAX, i64::MIN, i32::MAX, 1, 0);
    assert!(s.discontinuity.is_some());
    let s = c.stamp(MediaKind::Video, 5, 5, 0, 0, 0);
    assert_eq!(
        s.discontinuity.unwrap().kind,
        DiscontinuityKind::BadTimebase
    );
}

#[test]
fn sender_reports_put_both_streams_on_one_wall_clock() {
    let mut c = SessionClock::new(100, 200);
    let wall0 = 1_700_000_000_000_000;
    c.stamp(MediaKind::Video, 0, 0, 1, 30, wall0);
    c.stamp(MediaKind::Audio, 0, 0, 1, 48_000, wall0);
    let (ntp_v, rtp_v) = c
        .sender_report(MediaKind::Video, wall0 + 2_000_000)
        .unwrap();
    let (ntp_a, rtp_a) = c
        .sender_report(MediaKind::Audio, wall0 + 2_000_000)
        .unwrap();
    assert_eq!(ntp_v, ntp_a);
    assert_eq!(rtp_v, 100 + 180_000);
    assert_eq!(rtp_a, 200 + 96_000);
    assert_eq!(unix_usec_from_ntp(ntp_v), wall0 + 2_000_000);
}

#[test]
fn ntp_conversion_known_value() {
    // 2024-01-01T00:00:00Z = 1704067200 Unix = 3913056000 NTP seconds.
    assert_eq!(
        ntp_from_unix_usec(1_704_067_200_000_000 + 500_000),
        (3_913_056_000u64 << 32) | 0x8000_0000
    );
}

proptest! {
    #[test]
    fn stamps_match_the_exact_formula(
        tb in prop_oneof![Just((1, 24)), Just((1, 25)), Just((1, 30)), Just((1001, 30000)),
                          Just((1001, 60000)), Just((1, 60)), Just((1, 48000)), Just((1, 90000))],
        start in 0i64..1_000_000,
        steps in proptest::collection::vec(1i64..4, 1..200),
        initial: u32,
    ) {
        let mut c = SessionClock::new(initial, initial);
        let mut n = start;
        c.stamp(MediaKind::Video, n, n, tb.0, tb.1, 0);
        for s in steps {
            n += s;
            let got = c.stamp(MediaKind::Video, n, n, tb.0, tb.1, 0);
            let exact = {
                let num = (n - start) as i128 * tb.0 as i128 * 90_000;
                ((2 * num + tb.1 as i128) / (2 * tb.1 as i128)) as i64
            };
            prop_assert_eq!(got.ticks, exact);
            prop_assert_eq!(got.rtp, initial.wrapping_add(exact as u32));
            prop_assert!(got.discontinuity.is_none());
        }
    }

    #[test]
    fn any_input_sequence_is_safe_and_dts_stays_monotonic(
        packets in proptest::collection::vec((any::<i64>(), any::<i64>(), -2i32..100_000, -2i32..100_000), 1..100)
    ) {
        let mut c = SessionClock::new(0, 0);
        let mut last: Option<i64> = None;
        for (pts, dts, num, den) in packets {
            c.stamp(MediaKind::Audio, pts, dts, num, den, 0);
            let now = c.audio.last_dts.unwrap();
            if let Some(l) = last { prop_assert!(now >= l, "dts ticks went back: {} -> {}", l, now); }
            last = Some(now);
        }
    }
}
