//! Host-side facts for the validator: the `cslc` line of each command file and the SdkRuntime
//! calls of `run.py` (simple line scanning; the generator emits one call per line).

use std::collections::HashMap;

/// Flags of one `cslc` invocation.
#[derive(Clone, Debug, Default)]
pub struct Cslc {
    /// `--arch`
    pub arch: Option<String>,
    /// `--fabric-dims`
    pub dims: Option<(i64, i64)>,
    /// `--fabric-offsets`
    pub offsets: Option<(i64, i64)>,
    /// `--channels`
    pub channels: Option<i64>,
    /// `--width-west-buf` / `--width-east-buf`
    pub bufs: (i64, i64),
    /// `--params` names and values (None when not an unsigned integer)
    pub params: Vec<(String, Option<u64>)>,
    /// `--memcpy` given
    pub memcpy: bool,
}

fn pair(v: &str) -> Option<(i64, i64)> {
    let (a, b) = v.split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Every `cslc` line of a shell script.
pub fn cslc_lines(file: &str, text: &str) -> Vec<Cslc> {
    let mut out = Vec::new();
    let joined = text.replace("\\\n", " ");
    for line in joined.lines() {
        let l = line.trim();
        if !l.starts_with("cslc ") {
            continue;
        }
        let _ = file;
        let mut c = Cslc::default();
        let words: Vec<&str> = l.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let (flag, val) = match w.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (w, words.get(i + 1).map(|s| s.to_string())),
            };
            let takes = |v: &Option<String>| {
                if w.contains('=') {
                    0
                } else {
                    usize::from(v.is_some())
                }
            };
            match flag {
                "--arch" => {
                    c.arch = val.clone();
                    i += takes(&val);
                }
                "--fabric-dims" => {
                    c.dims = val.as_deref().and_then(pair);
                    i += takes(&val);
                }
                "--fabric-offsets" => {
                    c.offsets = val.as_deref().and_then(pair);
                    i += takes(&val);
                }
                "--channels" => {
                    c.channels = val.as_deref().and_then(|v| v.parse().ok());
                    i += takes(&val);
                }
                "--width-west-buf" => {
                    c.bufs.0 = val.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
                    i += takes(&val);
                }
                "--width-east-buf" => {
                    c.bufs.1 = val.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
                    i += takes(&val);
                }
                "--params" => {
                    for kv in val.clone().unwrap_or_default().split(',') {
                        if let Some((k, v)) = kv.split_once(':') {
                            c.params.push((k.to_string(), v.parse().ok()));
                        }
                    }
                    i += takes(&val);
                }
                "--memcpy" => c.memcpy = true,
                _ => {}
            }
            i += 1;
        }
        out.push(c);
    }
    out
}

/// One memcpy call of the host script.
#[derive(Clone, Debug)]
pub struct Memcpy {
    /// true for host -> device
    pub h2d: bool,
    /// device symbol name (resolved through `get_id`)
    pub symbol: Option<String>,
    /// x0, y0, w, h, elems_per_pe when literal
    pub rect: Option<[i64; 5]>,
    /// line number
    pub line: usize,
}

/// SdkRuntime usage of a host script.
#[derive(Clone, Debug, Default)]
pub struct HostScript {
    /// `get_id("name")` names
    pub ids: Vec<String>,
    /// launched function names and argument counts
    pub launches: Vec<(String, usize)>,
    /// memcpy calls
    pub memcpys: Vec<Memcpy>,
    /// line of first load(), run(), and of stop(); first memcpy/launch line
    pub load: Option<usize>,
    /// line of `run()`
    pub run: Option<usize>,
    /// line of `stop()`
    pub stop: Option<usize>,
    /// first memcpy or launch line
    pub first_io: Option<usize>,
    /// last memcpy or launch line
    pub last_io: Option<usize>,
}

pub(super) fn quoted(s: &str) -> Option<String> {
    let a = s.find('"')?;
    let b = s[a + 1..].find('"')?;
    Some(s[a + 1..a + 1 + b].to_string())
}

pub(super) fn call_args(s: &str, name: &str) -> Option<Vec<String>> {
    let start = s.find(name)? + name.len();
    let rest = &s[start..];
    let mut depth = 0i32;
    let mut args = vec![String::new()];
    for ch in rest.chars() {
        match ch {
            '(' | '[' => {
                depth += 1;
                if depth == 1 && ch == '(' {
                    continue;
                }
            }
            ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                args.push(String::new());
                continue;
            }
            _ => {}
        }
        if depth >= 1 {
            if let Some(last) = args.last_mut() {
                last.push(ch);
            }
        }
    }
    Some(args.into_iter().map(|a| a.trim().to_string()).collect())
}

/// Scans a host script.
pub fn scan_host(text: &str) -> HostScript {
    let mut h = HostScript::default();
    let mut vars: HashMap<String, String> = HashMap::new();
    for (ln, line) in text.lines().enumerate() {
        let ln = ln + 1;
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        if l.contains(".get_id(") {
            if let Some(name) = quoted(&l[l.find(".get_id(").unwrap_or(0)..]) {
                if let Some((var, _)) = l.split_once('=') {
                    vars.insert(var.trim().to_string(), name.clone());
                }
                h.ids.push(name);
            }
        }
        let mut io = false;
        if l.contains(".launch(") {
            if let Some(args) = call_args(l, ".launch") {
                let name = quoted(&args[0]).unwrap_or_default();
                let n = args.iter().skip(1).filter(|a| !a.contains('=')).count();
                h.launches.push((name, n));
            }
            io = true;
        }
        for (name, h2d) in [(".memcpy_h2d", true), (".memcpy_d2h", false)] {
            if let Some(args) = l
                .contains(&format!("{name}("))
                .then(|| call_args(l, name))
                .flatten()
            {
                let sym_arg = if h2d { args.first() } else { args.get(1) };
                let symbol = sym_arg.and_then(|s| vars.get(s).cloned());
                let nums: Vec<i64> = args
                    .iter()
                    .skip(2)
                    .take(5)
                    .filter_map(|a| a.parse().ok())
                    .collect();
                let rect = (nums.len() == 5).then(|| [nums[0], nums[1], nums[2], nums[3], nums[4]]);
                h.memcpys.push(Memcpy {
                    h2d,
                    symbol,
                    rect,
                    line: ln,
                });
                io = true;
            }
        }
        if io {
            h.first_io.get_or_insert(ln);
            h.last_io = Some(ln);
        }
        if l.ends_with(".load()") {
            h.load.get_or_insert(ln);
        }
        if l.ends_with(".run()") {
            h.run.get_or_insert(ln);
        }
        if l.ends_with(".stop()") {
            h.stop = Some(ln);
        }
    }
    h
}
