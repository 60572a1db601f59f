use super::*;
use crate::session::LayerStats;
use std::io::{Read, Write};

#[test]
fn the_listen_setting_is_off_a_local_port_or_an_address() {
    assert_eq!(listen_address(" "), Ok(None));
    assert_eq!(
        listen_address("9464"),
        Ok(Some("127.0.0.1:9464".parse().unwrap()))
    );
    assert_eq!(
        listen_address("0.0.0.0:9100"),
        Ok(Some("0.0.0.0:9100".parse().unwrap()))
    );
    assert_eq!(
        listen_address("[::1]:9464"),
        Ok(Some("[::1]:9464".parse().unwrap()))
    );
    let e = listen_address("localhost").unwrap_err();
    assert!(e.contains("\"localhost\" is not a port"), "{e}");
}

fn figures(bytes: u64, octets: [u32; 2]) -> Figures {
    Figures {
        streaming: true,
        estimate_bps: 2_000_000.0,
        video_target_kbps: 1500,
        rtt: Some(Duration::from_millis(40)),
        loss: 0.02,
        video_jitter: Some(Duration::from_millis(3)),
        nacks: 7,
        nacked_packets: 9,
        retransmitted_packets: 11,
        keyframe_requests: 2,
        frames_dropped: 4,
        ice_restarts: 1,
        bytes_sent: bytes,
        layers: octets
            .iter()
            .enumerate()
            .map(|(i, &o)| LayerStats {
                ssrc: i as u32,
                active: i == 0,
                frames: 100 + i as u64,
                packets: 0,
                octets: o,
                resent: 3,
            })
            .collect(),
    }
}

#[test]
fn rates_come_from_the_bytes_between_two_samples_and_survive_a_wrapping_octet_count() {
    let t0 = Instant::now();
    let first = Sample::default().next(figures(1_000, [u32::MAX - 999, 0]), t0);
    assert_eq!(first.sent_bps, 0.0, "no rate from a single sample");
    let second = first.next(
        figures(1_000 + 125_000, [62_500 - 1000, 12_500]),
        t0 + Duration::from_secs(1),
    );
    assert_eq!(second.sent_bps, 1_000_000.0);
    assert_eq!(second.layer_bps, [500_000.0, 100_000.0]);
}

/// An output named `name` streaming two layers, as the endpoint would show it.
fn streaming_output(name: &str) -> Arc<OutputMetrics> {
    let o = OutputMetrics::new(name);
    let t0 = Instant::now();
    let stats = StreamStats {
        layer_rids: vec!["f".into(), "h".into()],
        layer_sizes: vec![(1280, 720), (640, 360)],
        ..Default::default()
    };
    stats.connect_time_ms.store(250, Ordering::Relaxed);
    stats.dropped_frames.store(5, Ordering::Relaxed);
    State::Streaming.store(&stats.state);
    *stats.sample.lock().unwrap() = Sample::default().next(figures(0, [0, 0]), t0).next(
        figures(250_000, [200_000, 50_000]),
        t0 + Duration::from_secs(1),
    );
    o.set_stats(Arc::new(stats));
    o.reconnects.store(2, Ordering::Relaxed);
    o.publish();
    o.publish();
    o
}

#[test]
fn the_exposition_has_every_series_of_each_output_with_its_labels() {
    let _o = streaming_output("adv \"stream\"");
    let text = render();
    let l = "output=\"adv \\\"stream\\\"\"";
    for line in [
        format!("rtc_studio_state{{{l},state=\"streaming\"}} 1"),
        format!("rtc_studio_state{{{l},state=\"connecting\"}} 0"),
        format!("rtc_studio_reconnects_total{{{l}}} 2"),
        format!("rtc_studio_connect_seconds{{{l}}} 0.25"),
        format!("rtc_studio_bandwidth_estimate_bps{{{l}}} 2000000"),
        format!("rtc_studio_video_target_bitrate_bps{{{l}}} 1500000"),
        format!("rtc_studio_sent_bitrate_bps{{{l}}} 2000000"),
        format!("rtc_studio_rtt_seconds{{{l}}} 0.04"),
        format!("rtc_studio_loss_ratio{{{l}}} 0.02"),
        format!("rtc_studio_jitter_seconds{{{l}}} 0.003"),
        format!("rtc_studio_nacks_total{{{l}}} 7"),
        format!("rtc_studio_nacked_packets_total{{{l}}} 9"),
        format!("rtc_studio_retransmitted_packets_total{{{l}}} 11"),
        format!("rtc_studio_keyframe_requests_total{{{l}}} 2"),
        format!("rtc_studio_frames_dropped_total{{{l}}} 9"),
        format!("rtc_studio_queue_packets{{{l}}} 0"),
        format!("rtc_studio_ice_restarts_total{{{l}}} 1"),
        format!("rtc_studio_layer_active{{{l},rid=\"h\"}} 0"),
        format!("rtc_studio_layer_width{{{l},rid=\"f\"}} 1280"),
        format!("rtc_studio_layer_height{{{l},rid=\"h\"}} 360"),
        format!("rtc_studio_layer_frames_total{{{l},rid=\"h\"}} 101"),
        format!("rtc_studio_layer_bitrate_bps{{{l},rid=\"f\"}} 1600000"),
        format!("rtc_studio_layer_retransmitted_packets_total{{{l},rid=\"f\"}} 3"),
    ] {
        assert_eq!(
            text.matches(&format!("{line}\n")).count(),
            1,
            "{line} in:\n{text}"
        );
    }
    assert!(text.contains("# TYPE rtc_studio_nacks_total counter\n"));
    assert!(text.contains("# TYPE rtc_studio_rtt_seconds gauge\n"));
    // Every sample line belongs to a family announced before it.
    let mut family = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap();
        } else if !line.starts_with('#') {
            assert!(
                line.starts_with(&format!("{family}{{")),
                "{line} after {family}"
            );
        }
    }
}

#[test]
fn an_output_that_is_gone_leaves_the_exposition() {
    let o = streaming_output("gone-output");
    assert!(render().contains("output=\"gone-output\""));
    drop(o);
    assert!(!render().contains("output=\"gone-output\""));
}

fn http(addr: SocketAddr, request: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_endpoint_answers_get_metrics_and_nothing_else_while_idle_clients_wait() {
    let _o = streaming_output("served-output");
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    serve(addr).unwrap();
    serve(addr).unwrap();
    // Clients that connect and send nothing take a turn each; a scrape still gets through.
    let idle: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let answer = http(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Content-Type: text/plain; version=0.0.4"));
    assert!(answer.contains("rtc_studio_state{output=\"served-output\",state=\"streaming\"} 1"));
    assert!(http(addr, "GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    drop(idle);
    // The address is this process's now: a second listener elsewhere cannot have it.
    let taken = std::net::TcpListener::bind(addr);
    assert!(taken.is_err());
}

#[test]
fn every_series_the_grafana_dashboard_plots_is_one_the_endpoint_serves() {
    let _o = streaming_output("dashboard-output");
    let text = render();
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/grafana-dashboard.json")).unwrap();
    let mut plotted = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("rtc_studio_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    text.contains(&format!("\n{name}{{")),
                    "{name} ({expr}) is not served"
                );
                plotted += 1;
            }
        }
    }
    assert!(plotted >= 20, "{plotted}");
}
