//! TXT lookups over UDP against one configured resolver (custom-domain verification).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

const TXT: u16 = 16;
const TRIES: usize = 2;
const TIMEOUT: Duration = Duration::from_secs(2);

/// The first `nameserver` of /etc/resolv.conf, or 127.0.0.1:53.
pub fn system_resolver() -> SocketAddr {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    conf.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 53)))
}

/// The TXT strings of `name` (each record's strings joined). An empty list when the name has
/// none or does not exist.
pub async fn txt(resolver: SocketAddr, name: &str) -> Result<Vec<String>, String> {
    let id: u16 = rand::random();
    let query = encode_query(id, name)?;
    let bind: SocketAddr = if resolver.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("DNS socket: {e}"))?;
    socket
        .connect(resolver)
        .await
        .map_err(|e| format!("DNS resolver {resolver}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..TRIES {
        socket
            .send(&query)
            .await
            .map_err(|e| format!("DNS query: {e}"))?;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(format!("DNS answer: {e}")),
                Ok(Ok(n)) => {
                    if let Some(answer) = decode_answer(id, &buf[..n]) {
                        return answer;
                    }
                }
            }
        }
    }
    Err(format!("the DNS resolver {resolver} did not answer"))
}

fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return Err("not a DNS name".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("not a DNS name".into());
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&TXT.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    Ok(out)
}

/// `None` when the packet is not the answer to query `id` (keep waiting).
fn decode_answer(id: u16, packet: &[u8]) -> Option<Result<Vec<String>, String>> {
    if packet.len() < 12 || u16::from_be_bytes([packet[0], packet[1]]) != id {
        return None;
    }
    if packet[2] & 0x80 == 0 {
        return None;
    }
    match packet[3] & 0x0f {
        0 => {}
        3 => return Some(Ok(Vec::new())),
        code => return Some(Err(format!("the DNS resolver answered with error {code}"))),
    }
    let questions = u16::from_be_bytes([packet[4], packet[5]]);
    let answers = u16::from_be_bytes([packet[6], packet[7]]);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(packet, at)? + 4;
    }
    let mut found = Vec::new();
    for _ in 0..answers {
        at = skip_name(packet, at)?;
        let header = packet.get(at..at + 10)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let len = u16::from_be_bytes([header[8], header[9]]) as usize;
        at += 10;
        let data = packet.get(at..at + len)?;
        at += len;
        if kind != TXT {
            continue;
        }
        let mut text = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let n = data[i] as usize;
            text.extend_from_slice(data.get(i + 1..i + 1 + n)?);
            i += 1 + n;
        }
        found.push(String::from_utf8_lossy(&text).into_owned());
    }
    Some(Ok(found))
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *packet.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + l as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: u16, rcode: u8, records: &[&[&str]]) -> Vec<u8> {
        let mut p = encode_query(id, "_warren.app.example.com").unwrap();
        p[2] = 0x81;
        p[3] = 0x80 | rcode;
        p[7] = records.len() as u8;
        for strings in records {
            p.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
            let data: Vec<u8> = strings
                .iter()
                .flat_map(|s| std::iter::once(s.len() as u8).chain(s.bytes()))
                .collect();
            p.extend_from_slice(&(data.len() as u16).to_be_bytes());
            p.extend_from_slice(&data);
        }
        p
    }

    #[test]
    fn reads_txt_records() {
        let packet = answer(7, 0, &[&["abc", "def"], &["other"]]);
        assert_eq!(
            decode_answer(7, &packet).unwrap().unwrap(),
            ["abcdef", "other"]
        );
    }

    #[test]
    fn other_ids_wait_and_nxdomain_is_empty() {
        assert!(decode_answer(8, &answer(7, 0, &[])).is_none());
        assert_eq!(
            decode_answer(7, &answer(7, 3, &[])).unwrap().unwrap().len(),
            0
        );
        assert!(decode_answer(7, &answer(7, 2, &[])).unwrap().is_err());
        let mut truncated = answer(7, 0, &[&["abc"]]);
        truncated.truncate(truncated.len() - 2);
        assert!(decode_answer(7, &truncated).is_none());
    }

    #[test]
    fn refuses_bad_names() {
        assert!(encode_query(1, "").is_err());
        assert!(encode_query(1, "a..b").is_err());
        assert!(encode_query(1, &"x".repeat(64)).is_err());
    }
}
