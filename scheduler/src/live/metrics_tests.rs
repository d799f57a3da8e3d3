use super::*;

/// The `# TYPE` line of `name`, or `None` when the metric is missing.
fn type_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix("# TYPE ")?.strip_prefix(name)?.strip_prefix(' '))
}

fn sample_lines<'a>(text: &'a str, prefix: &'a str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn every_metric_is_exported_with_its_upstream_name_and_type() {
    let m = Metrics::new();
    // Families with per-call labels are only encoded once they have a series.
    m.register_profile("default-scheduler");
    m.sli(1, 0.5);
    m.queue_incoming(PendingQueue::Active, "PodAdd");
    m.watch_event("Pod");
    m.malformed_object("Pod");
    m.watch_restart("Pod");
    let text = m.encode();
    let expected = [
        ("scheduler_schedule_attempts_total", "counter"),
        ("scheduler_scheduling_attempt_duration_seconds", "histogram"),
        ("scheduler_pending_pods", "gauge"),
        ("scheduler_pod_scheduling_sli_duration_seconds", "histogram"),
        ("scheduler_queue_incoming_pods_total", "counter"),
        ("tessera_binder_conflicts_total", "counter"),
        ("tessera_proposals_total", "counter"),
        ("tessera_snapshot_refreshes_total", "counter"),
        ("tessera_bind_queue_depth", "gauge"),
        ("tessera_bind_requests_total", "counter"),
        ("tessera_bind_duration_seconds", "histogram"),
        ("tessera_watch_events_total", "counter"),
        ("tessera_malformed_objects_total", "counter"),
        ("tessera_watch_restarts_total", "counter"),
        ("tessera_leader", "gauge"),
    ];
    for (name, kind) in expected {
        assert_eq!(type_of(&text, name), Some(kind), "TYPE of {name} in:\n{text}");
    }
    // No doubled suffix from registering a name that already ends in `_total`.
    assert!(!text.contains("_total_total"), "{text}");
}

#[test]
fn fixed_label_series_start_at_zero() {
    let m = Metrics::new();
    m.register_profile("batch");
    let text = m.encode();
    for queue in ["active", "backoff", "unschedulable", "gated"] {
        assert_eq!(
            parse_labelled(&text, &format!(r#"scheduler_pending_pods{{queue="{queue}"}}"#)),
            Some(0.0),
            "{text}"
        );
    }
    for result in ["success", "conflict", "not_found", "retry", "error"] {
        let series = format!(r#"tessera_bind_requests_total{{result="{result}"}}"#);
        assert_eq!(parse_labelled(&text, &series), Some(0.0), "{text}");
    }
    for result in ["scheduled", "unschedulable", "error"] {
        let series = format!(r#"scheduler_schedule_attempts_total{{result="{result}",profile="batch"}}"#);
        assert_eq!(parse_labelled(&text, &series), Some(0.0), "{text}");
    }
}

#[test]
fn schedule_attempts_are_counted_and_timed_per_result_and_profile() {
    let m = Metrics::new();
    m.schedule_attempt("default-scheduler", AttemptResult::Scheduled, 0.0015);
    m.schedule_attempt("default-scheduler", AttemptResult::Scheduled, 0.5);
    m.schedule_attempt("batch", AttemptResult::Unschedulable, 0.002);
    let text = m.encode();
    assert_eq!(
        parse_labelled(&text, r#"scheduler_schedule_attempts_total{result="scheduled",profile="default-scheduler"}"#),
        Some(2.0)
    );
    assert_eq!(
        parse_labelled(&text, r#"scheduler_schedule_attempts_total{result="unschedulable",profile="batch"}"#),
        Some(1.0)
    );
    // 0.0015 s lands in the 2 ms bucket but not the 1 ms one.
    let bucket = |le: &str| {
        parse_labelled(
            &text,
            &format!(
                r#"scheduler_scheduling_attempt_duration_seconds_bucket{{result="scheduled",profile="default-scheduler",le="{le}"}}"#
            ),
        )
    };
    assert_eq!(bucket("0.001"), Some(0.0));
    assert_eq!(bucket("0.002"), Some(1.0));
    assert_eq!(bucket("+Inf"), Some(2.0));
}

#[test]
fn histograms_use_kube_scheduler_buckets() {
    let m = Metrics::new();
    m.schedule_attempt("p", AttemptResult::Error, 0.1);
    m.sli(1, 3.0);
    let text = m.encode();
    let attempt = sample_lines(&text, "scheduler_scheduling_attempt_duration_seconds_bucket");
    // 15 finite buckets (1 ms .. 16.384 s) plus +Inf.
    assert_eq!(attempt.len(), 16, "{attempt:#?}");
    assert!(attempt[0].contains(r#"le="0.001""#), "{}", attempt[0]);
    assert!(attempt[14].contains(r#"le="16.384""#), "{}", attempt[14]);
    let sli = sample_lines(&text, "scheduler_pod_scheduling_sli_duration_seconds_bucket");
    assert_eq!(sli.len(), 21, "{sli:#?}");
    assert!(sli[0].contains(r#"le="0.01""#), "{}", sli[0]);
    assert!(sli[19].contains(r#"le="5242.88""#), "{}", sli[19]);
    let bind = sample_lines(&text, "tessera_bind_duration_seconds_bucket");
    assert_eq!(bind.len(), 16, "{bind:#?}");
}

#[test]
fn sli_attempts_label_is_capped_like_upstream() {
    let m = Metrics::new();
    m.sli(2, 0.2);
    m.sli(15, 1.0);
    m.sli(40, 1.0);
    let text = m.encode();
    assert_eq!(
        parse_labelled(&text, r#"scheduler_pod_scheduling_sli_duration_seconds_count{attempts="2"}"#),
        Some(1.0)
    );
    assert_eq!(
        parse_labelled(&text, r#"scheduler_pod_scheduling_sli_duration_seconds_count{attempts="15+"}"#),
        Some(2.0)
    );
    assert!(!text.contains(r#"attempts="40""#), "{text}");
}

#[test]
fn gauges_and_counters_reflect_the_latest_calls() {
    let m = Metrics::new();
    m.set_pending(PendingQueue::Active, 7);
    m.set_pending(PendingQueue::Gated, 2);
    m.set_pending(PendingQueue::Active, 5);
    m.queue_incoming(PendingQueue::Active, "PodAdd");
    m.binder_conflicts_inc(3);
    m.proposals_inc(10);
    m.proposals_inc(5);
    m.snapshot_refreshes_inc(4);
    m.set_bind_queue_depth(9);
    m.bind_request(BindResult::Success, 0.01);
    m.bind_request(BindResult::NotFound, 0.02);
    m.bind_request(BindResult::NotFound, 0.02);
    m.watch_event("Pod");
    m.watch_event("Pod");
    m.malformed_object("Node");
    m.watch_restart("Pod");
    m.set_leader(true);
    let text = m.encode();
    let cases = [
        (r#"scheduler_pending_pods{queue="active"}"#, 5.0),
        (r#"scheduler_pending_pods{queue="gated"}"#, 2.0),
        (r#"scheduler_queue_incoming_pods_total{queue="active",event="PodAdd"}"#, 1.0),
        (r#"tessera_bind_requests_total{result="success"}"#, 1.0),
        (r#"tessera_bind_requests_total{result="not_found"}"#, 2.0),
        (r#"tessera_watch_events_total{kind="Pod"}"#, 2.0),
        (r#"tessera_malformed_objects_total{kind="Node"}"#, 1.0),
        (r#"tessera_watch_restarts_total{kind="Pod"}"#, 1.0),
    ];
    for (series, want) in cases {
        assert_eq!(parse_labelled(&text, series), Some(want), "{series} in:\n{text}");
    }
    assert_eq!(parse_sample(&text, "tessera_binder_conflicts_total"), Some(3.0));
    assert_eq!(parse_sample(&text, "tessera_proposals_total"), Some(15.0));
    assert_eq!(parse_sample(&text, "tessera_snapshot_refreshes_total"), Some(4.0));
    assert_eq!(parse_sample(&text, "tessera_bind_queue_depth"), Some(9.0));
    assert_eq!(parse_sample(&text, "tessera_bind_duration_seconds_count"), Some(3.0));
    assert_eq!(parse_sample(&text, "tessera_leader"), Some(1.0));
    m.set_leader(false);
    assert_eq!(parse_sample(&m.encode(), "tessera_leader"), Some(0.0));
}

/// The value of one fully spelled-out labelled series.
fn parse_labelled(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn parse_sample_finds_only_the_exact_unlabelled_name() {
    let text = "# HELP x_total Help.\n# TYPE x_total counter\nx_total_extra 9\nx_total{a=\"b\"} 5\nx_total 12.5\n";
    assert_eq!(parse_sample(text, "x_total"), Some(12.5));
    assert_eq!(parse_sample(text, "x_tot"), None);
    assert_eq!(parse_sample(text, "missing"), None);
    assert_eq!(parse_sample("y 3 1700000000000\n", "y"), Some(3.0), "a trailing timestamp is ignored");
    assert_eq!(parse_sample("y NaNish\n", "y"), None);
}

#[test]
fn proc_stat_parsing_survives_odd_command_names() {
    // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime(14) stime(15) cutime cstime priority nice threads itrealvalue starttime(22) vsize ...
    let line = "4242 (tess (era) x) S 1 2 3 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 8 0 12345 1000000 300";
    let stat = ProcStat::parse(line).expect("parses");
    assert_eq!(stat, ProcStat { utime_ticks: 250, stime_ticks: 50, start_ticks_since_boot: 12345 });
    assert!((stat.cpu_seconds() - 3.0).abs() < 1e-9);
    assert_eq!(ProcStat::parse("4242 (truncated) S 1 2"), None);
    assert_eq!(ProcStat::parse("no parenthesis at all"), None);
}

#[test]
fn proc_text_helpers_read_the_right_fields() {
    let status = "Name:\ttessera\nVmSize:\t  2048 kB\nVmRSS:\t   512 kB\nVmRSSx:\t 1 kB\n";
    assert_eq!(status_kb_as_bytes(status, "VmRSS"), Some(512.0 * 1024.0));
    assert_eq!(status_kb_as_bytes(status, "VmSize"), Some(2048.0 * 1024.0));
    assert_eq!(status_kb_as_bytes(status, "VmSwap"), None);
    assert_eq!(boot_time_seconds("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"), Some(1_700_000_000.0));
    let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                  Max open files            1024                 524288               files\n";
    assert_eq!(max_open_files(limits), Some(1024.0));
    assert_eq!(max_open_files("Max open files            unlimited            unlimited            files\n"), None);
}

#[cfg(target_os = "linux")]
#[test]
fn process_metrics_are_present_and_plausible() {
    let text = Metrics::new().encode();
    assert_eq!(type_of(&text, "process_cpu_seconds_total"), Some("counter"), "{text}");
    for gauge in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
    ] {
        assert_eq!(type_of(&text, gauge), Some("gauge"), "{gauge} in:\n{text}");
    }
    let value = |name: &str| parse_sample(&text, name).unwrap_or_else(|| panic!("{name} missing in:\n{text}"));
    let cpu = value("process_cpu_seconds_total");
    assert!(cpu >= 0.0, "cpu {cpu}");
    let rss = value("process_resident_memory_bytes");
    let vsize = value("process_virtual_memory_bytes");
    assert!(rss > 1024.0 * 1024.0 && rss <= vsize, "rss {rss} vsize {vsize}");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs_f64();
    let start = value("process_start_time_seconds");
    // The test binary started within the last day and not in the future (one tick of rounding).
    assert!(start <= now + 1.0 && start > now - 86_400.0, "start {start} now {now}");
    let open = value("process_open_fds");
    assert!(open >= 3.0, "stdin/stdout/stderr at least: {open}");
    let max = value("process_max_fds");
    assert!(max >= open, "max {max} open {open}");
    let local = process_cpu_seconds().expect("linux has /proc");
    assert!(local >= cpu, "cpu time never decreases: {local} < {cpu}");
}

#[test]
fn metrics_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Metrics>();
    let m = std::sync::Arc::new(Metrics::new());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    m.proposals_inc(1);
                    m.watch_event("Pod");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let text = m.encode();
    assert_eq!(parse_sample(&text, "tessera_proposals_total"), Some(1000.0));
    assert_eq!(parse_labelled(&text, r#"tessera_watch_events_total{kind="Pod"}"#), Some(1000.0));
}
