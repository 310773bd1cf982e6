//! A scrape of `/metrics` over a real HTTP connection, parsed from Prometheus' text format.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One series: its name and labels, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every series of one scrape, with the `# TYPE` of each metric.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub series: Vec<Series>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// The sum of every series named `name` whose labels include `labels` (0 if none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The one series named `name` with these labels; fails unless there is exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Series> = self.matching(name, labels).collect();
        assert_eq!(
            found.len(),
            1,
            "one series {name} {labels:?} expected, found {found:?}"
        );
        found[0].value
    }

    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// GETs `path` from `addr` over HTTP/1.1; answers the status code, the headers (lower-case
/// names) and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, BTreeMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("the metrics listener accepts connections");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .expect("the response is read");
    let raw = String::from_utf8(raw).expect("the response is UTF-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    // `Connection: close` with a body of known length: no chunked encoding to undo.
    (status, headers, body.to_owned())
}

/// Scrapes `/metrics` at `addr`, which must answer 200 in the text format.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, headers, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&body)
}

/// Parses Prometheus' text exposition format.
pub fn parse(text: &str) -> Scrape {
    let mut series = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, labels, value) = match line.find('{') {
            Some(open) => {
                let close = line.rfind('}').expect("labels end with }");
                (
                    &line[..open],
                    parse_labels(&line[open + 1..close]),
                    &line[close + 1..],
                )
            }
            None => {
                let (name, value) = line.split_once(' ').expect("a name and a value");
                (name, BTreeMap::new(), value)
            }
        };
        let value = value.trim().split(' ').next().unwrap_or_default();
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("a number in {line:?}")),
        };
        series.push(Series {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Scrape {
        text: text.to_owned(),
        series,
        types,
    }
}

/// `a="x",b="y\"z"` as a map.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key.trim_start_matches(',').trim().to_owned();
        if key.is_empty() {
            return labels;
        }
        assert_eq!(
            chars.next(),
            Some('"'),
            "a quoted value for {key} in {text:?}"
        );
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key, value);
    }
}
