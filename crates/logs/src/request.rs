//! A request's log data, kept as typed fields from the request thread to the batch write and
//! written as JSON straight from them, in the key order (sorted) and shape of PocketBase's
//! `data` for a request entry; other entries carry a JSON map.

use serde_json::{Map, Value};
use warren_schema::json_out;

/// What a request's entry records (PocketBase's names in brackets).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestData {
    /// `method`.
    pub method: String,
    /// `url`: path and query.
    pub url: String,
    /// `status`.
    pub status: u16,
    /// `execTime`, in milliseconds.
    pub exec_time: f64,
    /// `userAgent`.
    pub user_agent: String,
    /// `referer`.
    pub referer: String,
    /// `remoteIP`; `None` once the tenant's `logIP` setting dropped it.
    pub remote_ip: Option<String>,
    /// `userIP`; `None` once the tenant's `logIP` setting dropped it.
    pub user_ip: Option<String>,
    /// `auth`: the caller's collection name, empty for guests.
    pub auth: String,
    /// `authId`; `None` for guests or once the `logAuthId` setting dropped it.
    pub auth_id: Option<String>,
    /// `error` (with `details: null`) for failed requests.
    pub error: Option<String>,
}

/// An entry's `data`.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// Any attributes.
    Map(Map<String, Value>),
    /// A request's.
    Request(Box<RequestData>),
}

impl RequestData {
    /// The same data as a JSON map.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("auth".into(), self.auth.clone().into());
        if let Some(id) = &self.auth_id {
            map.insert("authId".into(), id.clone().into());
        }
        if let Some(error) = &self.error {
            map.insert("details".into(), Value::Null);
            map.insert("error".into(), error.clone().into());
        }
        map.insert("execTime".into(), self.exec_time.into());
        map.insert("method".into(), self.method.clone().into());
        map.insert("referer".into(), self.referer.clone().into());
        if let Some(ip) = &self.remote_ip {
            map.insert("remoteIP".into(), ip.clone().into());
        }
        map.insert("status".into(), self.status.into());
        map.insert("type".into(), "request".into());
        map.insert("url".into(), self.url.clone().into());
        map.insert("userAgent".into(), self.user_agent.clone().into());
        if let Some(ip) = &self.user_ip {
            map.insert("userIP".into(), ip.clone().into());
        }
        map
    }

    /// The text it holds (for the buffer's size accounting and the size limit's bound).
    fn text_len(&self) -> usize {
        [
            &self.method,
            &self.url,
            &self.user_agent,
            &self.referer,
            &self.auth,
        ]
        .iter()
        .map(|s| s.len())
        .chain(
            [&self.remote_ip, &self.user_ip, &self.auth_id, &self.error]
                .iter()
                .map(|s| s.as_ref().map_or(0, String::len)),
        )
        .sum()
    }

    /// An upper bound of its JSON's length: every character escapes to at most 6 bytes, keys
    /// and punctuation take under 200, the numbers under 50.
    pub(crate) fn size_bound(&self) -> usize {
        6 * self.text_len() + 250
    }

    /// Roughly the memory it holds.
    pub(crate) fn size(&self) -> usize {
        self.text_len() + std::mem::size_of::<Self>()
    }

    /// Writes its JSON, as serde_json writes [`RequestData::to_map`].
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, key: &str, value: &str| {
            out.extend_from_slice(key.as_bytes());
            json_out::write_str(out, value);
        };
        string(out, "{\"auth\":", &self.auth);
        if let Some(id) = &self.auth_id {
            string(out, ",\"authId\":", id);
        }
        if let Some(error) = &self.error {
            string(out, ",\"details\":null,\"error\":", error);
        }
        out.extend_from_slice(b",\"execTime\":");
        json_out::write_value(out, &Value::from(self.exec_time));
        string(out, ",\"method\":", &self.method);
        string(out, ",\"referer\":", &self.referer);
        if let Some(ip) = &self.remote_ip {
            string(out, ",\"remoteIP\":", ip);
        }
        out.extend_from_slice(b",\"status\":");
        json_out::write_u64(out, u64::from(self.status));
        string(out, ",\"type\":", "request");
        string(out, ",\"url\":", &self.url);
        string(out, ",\"userAgent\":", &self.user_agent);
        if let Some(ip) = &self.user_ip {
            string(out, ",\"userIP\":", ip);
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RequestData {
        RequestData {
            method: "GET".into(),
            url: "/api/x?q=\"é\"\n".into(),
            status: 404,
            exec_time: 0.123_456_7,
            user_agent: "curl/8 \u{1}".into(),
            referer: String::new(),
            remote_ip: Some("127.0.0.1".into()),
            user_ip: Some("10.0.0.1".into()),
            auth: "users".into(),
            auth_id: Some("u1".into()),
            error: Some("Not found.".into()),
        }
    }

    #[test]
    fn the_json_is_the_maps_json() {
        let full = sample();
        let bare = RequestData {
            remote_ip: None,
            user_ip: None,
            auth_id: None,
            error: None,
            exec_time: 12.0,
            ..sample()
        };
        for data in [full, bare, RequestData::default()] {
            let mut out = Vec::new();
            data.write_json(&mut out);
            let expected = Value::Object(data.to_map()).to_string();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
            assert!(data.size_bound() >= expected.len());
        }
    }
}
