//! `realtime-floor`: the kernel's floor under an SSE fan-out on this machine, with no server
//! software at all — N loopback TCP connection pairs inside this process, writer threads (one
//! per core) writing one SSE frame the size of a `posts` create event to every connection with
//! plain non-blocking writes, and the realtime scenario's lean reader timing each delivery.

use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, TcpStream as StdStream};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::load::{OpError, Stats};
use crate::realtime::{
    GRACE, merge_deliveries, publish_interval, raise_open_files, time_deliveries,
};
use crate::sse::{Framing, SseStream};

/// Bytes of one SSE message, as Warren and PocketBase send a `posts` create event.
const SSE_MESSAGE: usize = 330;
/// Descriptors kept for everything but the connection pairs.
const RESERVED_FILES: u64 = 256;
/// How long a writer waits for a full socket buffer to drain before giving up.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// What to measure.
pub struct FloorConfig {
    /// Connection pairs wanted (capped by the open-files limit).
    pub subscribers: usize,
    /// How long events are published.
    pub duration: Duration,
}

/// CPU seconds, split into user and system time.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    user: f64,
    sys: f64,
}

impl Cpu {
    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user - before.user,
            sys: self.sys - before.sys,
        }
    }
}

/// The user and system time of `/proc/<what>/stat` (`self` or `thread-self`).
fn cpu_of(what: &str) -> Cpu {
    let text = std::fs::read_to_string(format!("/proc/{what}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3 (`state`);
    // utime and stime are fields 14 and 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || {
        fields
            .next()
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let user = next() / USER_HZ;
    let sys = next() / USER_HZ;
    Cpu { user, sys }
}

/// What one writer thread did.
#[derive(Debug, Default)]
struct Tally {
    cpu: Cpu,
    /// Writes that did not go through at once (the socket buffer was full).
    blocked: u64,
}

/// What a run measured.
pub struct FloorReport {
    /// Connection pairs used.
    pub pairs: usize,
    /// Events published.
    pub events: usize,
    /// Deliveries expected but not received.
    pub missing: u64,
    /// Per-delivery latencies, errors (missing deliveries included) and publishing time.
    pub stats: Stats,
    /// The report, as printed.
    pub lines: Vec<String>,
}

/// Runs the measurement.
pub async fn run(cfg: &FloorConfig) -> anyhow::Result<FloorReport> {
    let mut lines = Vec::new();
    let files = raise_open_files();
    let max_pairs = usize::try_from(files.saturating_sub(RESERVED_FILES) / 2).unwrap_or(1);
    let pairs = cfg.subscribers.clamp(1, max_pairs.max(1));
    if pairs < cfg.subscribers {
        lines.push(format!(
            "realtime-floor: capped at {pairs} connection pairs: the open-files limit of {files} \
             allows {max_pairs} (2 descriptors each, {RESERVED_FILES} reserved)"
        ));
    }
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);

    // Connection pairs: the accepted side is written, the connecting side read.
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("binding a loopback listener")?;
    let addr = listener.local_addr()?;
    let mut groups: Vec<Vec<StdStream>> = (0..threads).map(|_| Vec::new()).collect();
    let mut readers = Vec::with_capacity(pairs);
    for k in 0..pairs {
        let client = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting pair {k}"))?;
        let (server, _) = listener.accept().await.context("accepting")?;
        // Servers send events with Nagle off, as Warren and PocketBase do.
        server.set_nodelay(true)?;
        client.set_nodelay(true)?;
        // `into_std` keeps the socket non-blocking.
        groups[k % threads].push(server.into_std()?);
        readers.push(client);
    }
    drop(listener);

    let interval = publish_interval(pairs);
    let max_events = (cfg.duration.as_millis() / interval.as_millis()) as usize + 2;
    let sent: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..max_events).map(|_| OnceLock::new()).collect());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(pairs);
    for stream in readers {
        let sent = Arc::clone(&sent);
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut sse = SseStream::from_body(stream, Framing::Chunked)?;
            time_deliveries(&mut sse, &sent, stop).await
        }));
    }
    let mut senders = Vec::with_capacity(threads);
    let mut writers = Vec::with_capacity(threads);
    for group in groups {
        let (tx, rx) = mpsc::channel::<usize>();
        senders.push(tx);
        // The thread hands its connections back, so they stay open until the readers stop.
        writers.push(std::thread::spawn(move || {
            (write_events(&group, &rx), group)
        }));
    }

    let cpu_before = cpu_of("self");
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let mut tick = tokio::time::interval(interval);
    let mut published = 0usize;
    while published < max_events && Instant::now() < deadline {
        tick.tick().await;
        let _ = sent[published].set(Instant::now());
        if senders.iter().any(|tx| tx.send(published).is_err()) {
            break; // a writer failed; its error is reported below
        }
        published += 1;
    }
    let publish_time = started.elapsed();
    drop(senders);
    let (tallies, conns): (Vec<_>, Vec<_>) = tokio::task::spawn_blocking(move || {
        writers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| (Err(std::io::Error::other("writer panicked")), Vec::new()))
            })
            .unzip()
    })
    .await?;
    tokio::time::sleep(GRACE).await;
    let _ = stop_tx.send(true);
    let mut stats = merge_deliveries(tasks, "reader").await;
    let process = cpu_of("self").since(cpu_before);
    drop(conns);
    let mut writers_cpu = Cpu::default();
    let mut blocked = 0u64;
    for tally in tallies {
        match tally {
            Ok(t) => {
                writers_cpu.user += t.cpu.user;
                writers_cpu.sys += t.cpu.sys;
                blocked += t.blocked;
            }
            Err(err) => stats.record_error(&OpError::other(format!("writer: {err}"))),
        }
    }
    let expected = published as u64 * pairs as u64;
    let missing = expected.saturating_sub(stats.ok);
    stats.errors += missing;
    if stats.first_error.is_none() && missing > 0 {
        stats.first_error = Some(format!("{missing} of {expected} deliveries missing"));
    }
    stats.elapsed = publish_time;

    lines.push(format!(
        "realtime-floor: {pairs} loopback connection pairs in this process (no server), \
         {published} events of {SSE_MESSAGE} B every {} ms, {threads} writer threads; delivery \
         p50 {:.2} ms p99 {:.2} ms; {:.0} deliveries/s; {missing} of {expected} deliveries \
         missing; {blocked} writes found a full socket buffer",
        interval.as_millis(),
        stats.quantile_ms(0.5),
        stats.quantile_ms(0.99),
        stats.ok as f64 / publish_time.as_secs_f64().max(1e-9),
    ));
    let delivered = stats.ok.max(1) as f64;
    let rest = process.since(writers_cpu);
    let us = |s: f64| s * 1e6 / delivered;
    lines.push(format!(
        "realtime-floor: CPU per delivery: writers {:.2} µs (user {:.2}, sys {:.2}); readers and \
         the rest of the process {:.2} µs (user {:.2}, sys {:.2}); process total {:.2} s",
        us(writers_cpu.user + writers_cpu.sys),
        us(writers_cpu.user),
        us(writers_cpu.sys),
        us(rest.user + rest.sys),
        us(rest.user),
        us(rest.sys),
        process.user + process.sys,
    ));
    if let Some(err) = &stats.first_error {
        lines.push(format!("realtime-floor: first error: {err}"));
    }
    Ok(FloorReport {
        pairs,
        events: published,
        missing,
        stats,
        lines,
    })
}

/// One writer thread: for every event number received, writes its frame to every connection
/// of `conns`, then finishes the writes that found a full socket buffer.
fn write_events(conns: &[StdStream], events: &mpsc::Receiver<usize>) -> std::io::Result<Tally> {
    let before = cpu_of("thread-self");
    let mut frame = Vec::with_capacity(SSE_MESSAGE + 16);
    let mut pending: Vec<(usize, usize)> = Vec::new();
    let mut blocked = 0u64;
    while let Ok(n) = events.recv() {
        event_frame(n, &mut frame);
        for (k, mut conn) in conns.iter().enumerate() {
            match conn.write(&frame) {
                Ok(w) if w == frame.len() => {}
                Ok(w) => pending.push((k, w)),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    pending.push((k, 0));
                }
                Err(e) => return Err(e),
            }
        }
        blocked += pending.len() as u64;
        finish_writes(conns, &frame, &mut pending)?;
    }
    Ok(Tally {
        cpu: cpu_of("thread-self").since(before),
        blocked,
    })
}

/// Retries the partial writes in `pending` (connection, bytes written) until all are done.
fn finish_writes(
    conns: &[StdStream],
    frame: &[u8],
    pending: &mut Vec<(usize, usize)>,
) -> std::io::Result<()> {
    let started = Instant::now();
    let mut failure = None;
    while !pending.is_empty() {
        if started.elapsed() > STALL_LIMIT {
            return Err(std::io::Error::other("a reader stopped reading"));
        }
        std::thread::sleep(Duration::from_micros(100));
        pending.retain_mut(|(k, done)| {
            let mut conn = &conns[*k];
            match conn.write(&frame[*done..]) {
                Ok(w) => {
                    *done += w;
                    *done < frame.len()
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    true
                }
                Err(e) => {
                    failure.get_or_insert(e);
                    false
                }
            }
        });
        if let Some(err) = failure.take() {
            return Err(err);
        }
    }
    Ok(())
}

/// Fills `frame` with event `n` as one chunk of a chunked body: an SSE message shaped like a
/// `posts` create event (its title `rt <n>`), padded to [`SSE_MESSAGE`] bytes.
fn event_frame(n: usize, frame: &mut Vec<u8>) {
    let head = format!(
        "id:fl00rcl1ent0000000000000000000000000000\nevent:posts/*\ndata:{{\"action\":\"create\",\
         \"record\":{{\"collectionId\":\"pbc_1125843985\",\"collectionName\":\"posts\",\
         \"id\":\"f{n:014}\",\"owner\":\"u00000000000000\",\"number\":1,\"public\":true,\
         \"body\":\""
    );
    let tail = format!("\",\"title\":\"rt {n}\"}}}}\n\n");
    let pad = SSE_MESSAGE.saturating_sub(head.len() + tail.len());
    let len = head.len() + pad + tail.len();
    frame.clear();
    frame.extend_from_slice(format!("{len:x}\r\n").as_bytes());
    frame.extend_from_slice(head.as_bytes());
    frame.resize(frame.len() + pad, b'x');
    frame.extend_from_slice(tail.as_bytes());
    frame.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::sequence;
    use crate::sse::SseReader;

    #[test]
    fn an_event_frame_is_one_chunk_of_one_sse_message_of_event_size() {
        let mut frame = Vec::new();
        for n in [0, 7, 123_456] {
            event_frame(n, &mut frame);
            let mut reader = SseReader::new(Framing::Chunked, frame.clone()).unwrap();
            let message = reader.next_message().unwrap().to_vec();
            assert_eq!(message.len() + 1, SSE_MESSAGE);
            assert_eq!(sequence(&message), Some(n));
            assert!(reader.next_message().is_none());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_pair_receives_every_event_and_the_figures_are_printed() {
        let report = run(&FloorConfig {
            subscribers: 20,
            duration: Duration::from_secs(1),
        })
        .await
        .unwrap();
        assert_eq!(report.pairs, 20);
        assert!(
            report.events >= 40,
            "{} events in 1 s at 20 ms",
            report.events
        );
        assert_eq!(report.missing, 0);
        assert_eq!(report.stats.errors, 0, "{:?}", report.stats.first_error);
        assert_eq!(report.stats.ok, report.events as u64 * 20);
        assert!(report.stats.quantile_ms(0.99) > 0.0);
        assert!(report.lines.iter().any(|l| l.contains("deliveries/s")));
        assert!(report.lines.iter().any(|l| l.contains("CPU per delivery")));
    }

    #[test]
    fn a_write_that_finds_a_full_buffer_is_finished_once_the_reader_reads() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut reader = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (writer, _) = listener.accept().unwrap();
        writer.set_nonblocking(true).unwrap();
        let mut frame = Vec::new();
        event_frame(1, &mut frame);
        // Fill the socket buffers until a write no longer goes through whole.
        let mut written = 0usize;
        let partial = loop {
            match (&writer).write(&frame) {
                Ok(w) if w == frame.len() => written += w,
                Ok(w) => break w,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break 0,
                Err(e) => panic!("{e}"),
            }
        };
        let total = written + frame.len();
        let drain = std::thread::spawn(move || {
            let mut got = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            while got < total {
                let n = reader.read(&mut buf).unwrap();
                assert!(n > 0);
                got += n;
            }
            got
        });
        let mut pending = vec![(0, partial)];
        finish_writes(std::slice::from_ref(&writer), &frame, &mut pending).unwrap();
        assert!(pending.is_empty());
        assert_eq!(drain.join().unwrap(), total);
    }

    #[test]
    fn this_process_cpu_time_is_read() {
        let before = cpu_of("self");
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        let used = cpu_of("thread-self");
        assert!(used.user + used.sys > 0.0);
        assert!(cpu_of("self").user >= before.user);
    }
}
