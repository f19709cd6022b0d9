//! crushtool's text format (`crushtool -c` / `crushtool -d`).
//!
//! Ported from Ceph `src/crush/CrushCompiler.cc` (`compile`,
//! `parse_bucket`, `parse_rule`, `decompile`) and its grammar in
//! `src/crush/grammar.h`. Parsing starts from legacy tunables and builds
//! the device-class shadow trees when the first rule is seen, reusing
//! the `id N class C` ids, exactly as `crushtool -c` does; [`format()`]
//! prints byte-for-byte what `crushtool -d` prints for the same map.
//!
//! Only `alg straw2` with `hash 0` (rjenkins1) is accepted, and
//! `choose_args` (weight sets) are rejected.
//!
//! Weights are 16.16 fixed point. Ceph converts `item X weight 1.234`
//! with `strtof(..) * (float)0x10000` and prints `%.3f` of
//! `(float)w / 0x10000`; both conversions are reproduced here exactly
//! with integer arithmetic (round to the nearest binary32, then
//! truncate / round half to even), so no floating point is used. Like
//! crushtool's, the format keeps only three decimals: a weight that is
//! not a multiple of 1/1000 may not survive a format/parse round trip.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use crate::CrushError;
use crate::map::{
    Bucket, CRUSH_MAX_BUCKET_WEIGHT, CRUSH_MAX_DEVICE_WEIGHT, CrushMap, Device, Rule, RuleStep,
    RuleType, Tunables, is_valid_crush_name,
};

/// Parse crushtool's text format into a map, as `crushtool -c` would.
pub fn parse(s: &str) -> Result<CrushMap, CrushError> {
    let tokens = tokenize(s);
    let mut p = Parser { tokens, pos: 0 };
    let doc = p.document()?;
    compile(doc)
}

/// Print a map in crushtool's decompiled text format (`crushtool -d`).
pub fn format(map: &CrushMap) -> String {
    let mut out = String::new();
    out.push_str("# begin crush map\n");
    let t = &map.tunables;
    let legacy = Tunables::legacy();
    let tunables = [
        (
            "choose_local_tries",
            t.choose_local_tries,
            legacy.choose_local_tries,
        ),
        (
            "choose_local_fallback_tries",
            t.choose_local_fallback_tries,
            legacy.choose_local_fallback_tries,
        ),
        (
            "choose_total_tries",
            t.choose_total_tries,
            legacy.choose_total_tries,
        ),
        (
            "chooseleaf_descend_once",
            t.chooseleaf_descend_once,
            legacy.chooseleaf_descend_once,
        ),
        (
            "chooseleaf_vary_r",
            t.chooseleaf_vary_r,
            legacy.chooseleaf_vary_r,
        ),
        (
            "chooseleaf_stable",
            t.chooseleaf_stable,
            legacy.chooseleaf_stable,
        ),
        (
            "straw_calc_version",
            t.straw_calc_version,
            legacy.straw_calc_version,
        ),
        (
            "allowed_bucket_algs",
            t.allowed_bucket_algs,
            legacy.allowed_bucket_algs,
        ),
    ];
    // Only tunables that differ from the legacy values are printed.
    for (name, value, default) in tunables {
        if value != default {
            let _ = writeln!(out, "tunable {name} {value}");
        }
    }

    out.push_str("\n# devices\n");
    for d in map.devices().filter(|d| d.id < map.max_devices()) {
        let _ = write!(out, "device {} {}", d.id, d.name);
        if let Some(c) = &d.class {
            let _ = write!(out, " class {c}");
        }
        out.push('\n');
    }

    out.push_str("\n# types\n");
    if map.type_name(0).is_none() {
        out.push_str("type 0 osd\n");
    }
    for (id, name) in map.types() {
        let _ = writeln!(out, "type {id} {name}");
    }

    out.push_str("\n# buckets\n");
    let mut done = HashSet::new();
    for slot in 0..map.buckets.len() {
        format_bucket_tree(map, -1 - slot as i32, &mut done, &mut out);
    }

    out.push_str("\n# rules\n");
    for rule in map.rules() {
        format_rule(map, rule, &mut out);
    }
    out.push_str("\n# end crush map\n");
    out
}

/// Depth-first: children before parents, each bucket once; shadow
/// buckets are walked but not printed (their names are not valid).
fn format_bucket_tree(map: &CrushMap, id: i32, done: &mut HashSet<i32>, out: &mut String) {
    let Some(b) = map.bucket(id) else {
        return;
    };
    if !done.insert(id) {
        return;
    }
    for &(item, _) in &b.items {
        if item < 0 {
            format_bucket_tree(map, item, done, out);
        }
    }
    if b.is_shadow() {
        return;
    }
    let _ = writeln!(
        out,
        "{} {} {{",
        type_name_or_default(map, b.type_id),
        b.name
    );
    let _ = writeln!(out, "\tid {}\t\t# do not change unnecessarily", b.id);
    if let Some(by_class) = map.class_buckets.get(&b.id) {
        for (cid, shadow) in by_class {
            let cname = map.classes.get(cid).map_or("", String::as_str);
            let _ = writeln!(
                out,
                "\tid {shadow} class {cname}\t\t# do not change unnecessarily"
            );
        }
    }
    let _ = writeln!(out, "\t# weight {}", format_weight(b.weight()));
    out.push_str("\talg straw2\n");
    out.push_str("\thash 0\t# rjenkins1\n");
    for &(item, w) in &b.items {
        let _ = writeln!(
            out,
            "\titem {} weight {}",
            item_name_or_default(map, item),
            format_weight(w)
        );
    }
    out.push_str("}\n");
}

fn format_rule(map: &CrushMap, rule: &Rule, out: &mut String) {
    let _ = writeln!(out, "rule {} {{", rule.name);
    let _ = writeln!(out, "\tid {}", rule.id);
    match rule.rule_type {
        RuleType::Replicated => out.push_str("\ttype replicated\n"),
        RuleType::Erasure => out.push_str("\ttype erasure\n"),
        RuleType::Other(v) => {
            let _ = writeln!(out, "\ttype {v}");
        }
    }
    let _ = writeln!(out, "\tmin_size {}", rule.min_size);
    let _ = writeln!(out, "\tmax_size {}", rule.max_size);
    for step in &rule.steps {
        match *step {
            RuleStep::Noop => out.push_str("\tstep noop\n"),
            RuleStep::Take(item) => {
                // A class take names the original bucket plus the class.
                let shadow = map.bucket(item).filter(|b| b.is_shadow());
                match shadow.and_then(|b| Some((b.name.split('~').next()?, b.class.as_ref()?))) {
                    Some((orig, class)) => {
                        let _ = writeln!(out, "\tstep take {orig} class {class}");
                    }
                    None => {
                        let _ = writeln!(out, "\tstep take {}", item_name_or_default(map, item));
                    }
                }
            }
            RuleStep::Emit => out.push_str("\tstep emit\n"),
            RuleStep::SetChooseTries(n) => {
                let _ = writeln!(out, "\tstep set_choose_tries {n}");
            }
            RuleStep::SetChooseLocalTries(n) => {
                let _ = writeln!(out, "\tstep set_choose_local_tries {n}");
            }
            RuleStep::SetChooseLocalFallbackTries(n) => {
                let _ = writeln!(out, "\tstep set_choose_local_fallback_tries {n}");
            }
            RuleStep::SetChooseLeafTries(n) => {
                let _ = writeln!(out, "\tstep set_chooseleaf_tries {n}");
            }
            RuleStep::SetChooseLeafVaryR(n) => {
                let _ = writeln!(out, "\tstep set_chooseleaf_vary_r {n}");
            }
            RuleStep::SetChooseLeafStable(n) => {
                let _ = writeln!(out, "\tstep set_chooseleaf_stable {n}");
            }
            RuleStep::ChooseFirstN { n, type_id } => {
                let t = type_name_or_default(map, type_id);
                let _ = writeln!(out, "\tstep choose firstn {n} type {t}");
            }
            RuleStep::ChooseIndep { n, type_id } => {
                let t = type_name_or_default(map, type_id);
                let _ = writeln!(out, "\tstep choose indep {n} type {t}");
            }
            RuleStep::ChooseLeafFirstN { n, type_id } => {
                let t = type_name_or_default(map, type_id);
                let _ = writeln!(out, "\tstep chooseleaf firstn {n} type {t}");
            }
            RuleStep::ChooseLeafIndep { n, type_id } => {
                let t = type_name_or_default(map, type_id);
                let _ = writeln!(out, "\tstep chooseleaf indep {n} type {t}");
            }
        }
    }
    out.push_str("}\n");
}

/// `print_type_name`: the name, `device` for an unnamed 0, else `typeN`.
fn type_name_or_default(map: &CrushMap, t: i32) -> String {
    match map.type_name(t) {
        Some(n) => n.to_string(),
        None if t == 0 => "device".to_string(),
        None => format!("type{t}"),
    }
}

/// `print_item_name`: the name, else `deviceN` / `bucketN`.
fn item_name_or_default(map: &CrushMap, id: i32) -> String {
    match map.item_name(id) {
        Some(n) => n.to_string(),
        None if id >= 0 => format!("device{id}"),
        None => format!("bucket{}", -1 - i64::from(id)),
    }
}

/// `print_fixedpoint`: `printf("%.3f", (float)w / (float)0x10000)` for
/// the C `int` value of `w`, done in integers: round `w` to a binary32
/// (24-bit significand, ties to even), then round the exact quotient to
/// three decimals with ties to even, as glibc's printf does.
pub fn format_weight(w: u32) -> String {
    let v = i64::from(w as i32);
    let neg = v < 0;
    let mut m = v.unsigned_abs();
    let bits = 64 - m.leading_zeros();
    if bits > 24 {
        let shift = bits - 24;
        let kept = m >> shift;
        let rem = m & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        let up = rem > half || (rem == half && kept & 1 == 1);
        m = (kept + u64::from(up)) << shift;
    }
    let scaled = u128::from(m) * 1000;
    let mut q = scaled >> 16;
    let rem = scaled & 0xffff;
    if rem > 0x8000 || (rem == 0x8000 && q & 1 == 1) {
        q += 1;
    }
    let sign = if neg { "-" } else { "" };
    format!("{sign}{}.{:03}", q / 1000, q % 1000)
}

/// Ceph's weight parse: `(unsigned)(strtof(s) * (float)0x10000)`, done
/// exactly in integers (nearest binary32, ties to even, then truncate).
pub fn parse_weight(s: &str) -> Option<u32> {
    let s = s.strip_prefix('+').unwrap_or(s);
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((a, b)) => (a, b),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    if neg {
        return None;
    }
    // value = n * 10^e10
    let mut e10 = i64::from(exp) - frac_part.len() as i64;
    let mut digits = digits;
    while digits.len() > 1 && digits.ends_with('0') {
        digits = &digits[..digits.len() - 1];
        e10 += 1;
    }
    if digits.len() > 30 {
        return None;
    }
    let n: u128 = digits.parse().ok()?;
    // Magnitude check before building the fraction: weights are < 2^16.
    let magnitude = digits.len() as i64 + e10;
    if magnitude < -6 {
        return Some(0); // below 1e-6 < 2^-16: truncates to 0
    }
    if magnitude > 12 {
        return None;
    }
    let (mut a, mut b) = if e10 >= 0 {
        (n * 10u128.pow(e10 as u32), 1u128)
    } else {
        (n, 10u128.pow((-e10) as u32))
    };
    // Find s with 2^23 <= a * 2^s / b < 2^24.
    let mut s: i32 = 0;
    while a < (b << 23) {
        a <<= 1;
        s += 1;
    }
    while a >= (b << 24) {
        b <<= 1;
        s -= 1;
    }
    let q = a / b;
    let rem = a % b;
    let up = 2 * rem > b || (2 * rem == b && q & 1 == 1);
    let m = q + u128::from(up);
    // weight = trunc(m * 2^(16 - s))
    let w = if s <= 16 {
        m.checked_shl((16 - s) as u32)?
    } else {
        m >> (s - 16) as u32
    };
    u32::try_from(w).ok()
}

// ----- tokenizer & grammar ------------------------------------------------

#[derive(Debug, Clone)]
struct Token {
    text: String,
    line: usize,
}

/// Split into words, with `{ } [ ]` as their own tokens; `#` comments
/// run to the end of the line.
fn tokenize(s: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    for (i, raw) in s.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        let mut cur = String::new();
        for ch in line.chars() {
            if ch.is_whitespace() || matches!(ch, '{' | '}' | '[' | ']') {
                if !cur.is_empty() {
                    tokens.push(Token {
                        text: std::mem::take(&mut cur),
                        line: i + 1,
                    });
                }
                if !ch.is_whitespace() {
                    tokens.push(Token {
                        text: ch.to_string(),
                        line: i + 1,
                    });
                }
            } else {
                cur.push(ch);
            }
        }
        if !cur.is_empty() {
            tokens.push(Token {
                text: cur,
                line: i + 1,
            });
        }
    }
    tokens
}

struct RawItem {
    name: String,
    weight: Option<String>,
    pos: Option<i64>,
    line: usize,
}

struct RawBucket {
    type_name: String,
    name: String,
    /// (id, class) lines in order; `None` class is the bucket's own id.
    ids: Vec<(i32, Option<String>)>,
    alg: Option<String>,
    hash: Option<String>,
    items: Vec<RawItem>,
    line: usize,
}

enum RawStep {
    Take(String, Option<String>),
    Set(String, i64),
    Choose {
        leaf: bool,
        mode: String,
        n: i64,
        type_name: String,
    },
    Emit,
    Noop,
}

struct RawRule {
    name: String,
    id: i64,
    rule_type: RuleType,
    min_size: u32,
    max_size: u32,
    steps: Vec<(RawStep, usize)>,
    line: usize,
}

enum Decl {
    Tunable(String, i64, usize),
    Device(i64, String, Option<String>, usize),
    Type(i64, String, usize),
    Bucket(RawBucket),
    Rule(RawRule),
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(|t| t.text.as_str())
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .map_or(0, |t| t.line)
    }

    fn err(&self, message: impl Into<String>) -> CrushError {
        CrushError::Parse {
            line: self.line(),
            message: message.into(),
        }
    }

    fn next(&mut self, what: &str) -> Result<String, CrushError> {
        match self.tokens.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.text.clone())
            }
            None => Err(self.err(format!("unexpected end of input, expected {what}"))),
        }
    }

    fn expect(&mut self, word: &str) -> Result<(), CrushError> {
        let got = self.next(word)?;
        if got == word {
            Ok(())
        } else {
            self.pos -= 1;
            Err(self.err(format!("expected '{word}', found '{got}'")))
        }
    }

    fn int(&mut self, what: &str) -> Result<i64, CrushError> {
        let t = self.next(what)?;
        t.parse::<i64>().map_err(|_| {
            self.pos -= 1;
            self.err(format!("expected integer {what}, found '{t}'"))
        })
    }

    fn name(&mut self, what: &str) -> Result<String, CrushError> {
        let t = self.next(what)?;
        if matches!(t.as_str(), "{" | "}" | "[" | "]") {
            self.pos -= 1;
            return Err(self.err(format!("expected {what}, found '{t}'")));
        }
        Ok(t)
    }

    fn document(&mut self) -> Result<Vec<Decl>, CrushError> {
        let mut decls = Vec::new();
        while let Some(word) = self.peek() {
            let line = self.line();
            let decl = match word {
                "tunable" => {
                    self.pos += 1;
                    let name = self.name("tunable name")?;
                    let v = self.int("tunable value")?;
                    Decl::Tunable(name, v, line)
                }
                "device" => {
                    self.pos += 1;
                    let id = self.int("device id")?;
                    let name = self.name("device name")?;
                    let class = if self.peek() == Some("class") {
                        self.pos += 1;
                        Some(self.name("class name")?)
                    } else {
                        None
                    };
                    Decl::Device(id, name, class, line)
                }
                "type" => {
                    self.pos += 1;
                    let id = self.int("type id")?;
                    let name = self.name("type name")?;
                    Decl::Type(id, name, line)
                }
                "rule" => Decl::Rule(self.rule()?),
                "choose_args" => {
                    return Err(CrushError::Unsupported(
                        "choose_args (weight sets) are not supported".into(),
                    ));
                }
                _ => Decl::Bucket(self.bucket()?),
            };
            decls.push(decl);
        }
        Ok(decls)
    }

    fn bucket(&mut self) -> Result<RawBucket, CrushError> {
        let line = self.line();
        let type_name = self.name("bucket type")?;
        let name = self.name("bucket name")?;
        self.expect("{")?;
        let mut b = RawBucket {
            type_name,
            name,
            ids: Vec::new(),
            alg: None,
            hash: None,
            items: Vec::new(),
            line,
        };
        loop {
            let word = self.next("bucket body")?;
            match word.as_str() {
                "}" => break,
                "id" => {
                    let id = self.int("bucket id")?;
                    let id = i32::try_from(id).map_err(|_| self.err("bucket id out of range"))?;
                    let class = if self.peek() == Some("class") {
                        self.pos += 1;
                        Some(self.name("class name")?)
                    } else {
                        None
                    };
                    b.ids.push((id, class));
                }
                "alg" => b.alg = Some(self.name("bucket algorithm")?),
                "hash" => b.hash = Some(self.name("bucket hash")?),
                "item" => {
                    let item_line = self.line();
                    let iname = self.name("item name")?;
                    let mut item = RawItem {
                        name: iname,
                        weight: None,
                        pos: None,
                        line: item_line,
                    };
                    loop {
                        match self.peek() {
                            Some("weight") => {
                                self.pos += 1;
                                item.weight = Some(self.name("item weight")?);
                            }
                            Some("pos") => {
                                self.pos += 1;
                                item.pos = Some(self.int("item position")?);
                            }
                            _ => break,
                        }
                    }
                    b.items.push(item);
                }
                other => {
                    self.pos -= 1;
                    return Err(self.err(format!("unexpected '{other}' in bucket")));
                }
            }
        }
        Ok(b)
    }

    fn rule(&mut self) -> Result<RawRule, CrushError> {
        let line = self.line();
        self.expect("rule")?;
        let name = if self.peek() == Some("{") {
            String::new()
        } else {
            self.name("rule name")?
        };
        self.expect("{")?;
        let key = self.next("'id'")?;
        if key != "id" && key != "ruleset" {
            self.pos -= 1;
            return Err(self.err(format!("expected 'id', found '{key}'")));
        }
        let id = self.int("rule id")?;
        self.expect("type")?;
        let tname = self.next("rule type")?;
        let rule_type = match tname.as_str() {
            "replicated" => RuleType::Replicated,
            "erasure" => RuleType::Erasure,
            other => match other.parse::<u8>() {
                Ok(v) => RuleType::from_code(v),
                Err(_) => {
                    self.pos -= 1;
                    return Err(self.err(format!("unknown rule type '{other}'")));
                }
            },
        };
        // min_size/max_size are deprecated (optional since Quincy).
        let mut min_size = 1;
        let mut max_size = 10;
        if self.peek() == Some("min_size") {
            self.pos += 1;
            min_size = self.int("min_size")? as u32;
        }
        if self.peek() == Some("max_size") {
            self.pos += 1;
            max_size = self.int("max_size")? as u32;
        }
        let mut steps = Vec::new();
        loop {
            let step_line = self.line();
            let word = self.next("rule step")?;
            if word == "}" {
                break;
            }
            if word != "step" {
                self.pos -= 1;
                return Err(self.err(format!("expected 'step', found '{word}'")));
            }
            let op = self.next("step operation")?;
            let step = match op.as_str() {
                "take" => {
                    let item = self.name("item name")?;
                    let class = if self.peek() == Some("class") {
                        self.pos += 1;
                        Some(self.name("class name")?)
                    } else {
                        None
                    };
                    RawStep::Take(item, class)
                }
                "emit" => RawStep::Emit,
                "noop" => RawStep::Noop,
                "choose" | "chooseleaf" => {
                    let mode = self.next("firstn or indep")?;
                    if mode != "firstn" && mode != "indep" {
                        self.pos -= 1;
                        return Err(self.err(format!("expected firstn or indep, found '{mode}'")));
                    }
                    let n = self.int("replica count")?;
                    self.expect("type")?;
                    let type_name = self.name("type name")?;
                    RawStep::Choose {
                        leaf: op == "chooseleaf",
                        mode,
                        n,
                        type_name,
                    }
                }
                s if s.starts_with("set_") => {
                    let v = self.int("step value")?;
                    RawStep::Set(s.to_string(), v)
                }
                other => {
                    self.pos -= 1;
                    return Err(self.err(format!("unknown rule step '{other}'")));
                }
            };
            steps.push((step, step_line));
        }
        Ok(RawRule {
            name,
            id,
            rule_type,
            min_size,
            max_size,
            steps,
            line,
        })
    }
}

// ----- compilation (CrushCompiler::parse_crush) ----------------------------

fn perr(line: usize, message: impl Into<String>) -> CrushError {
    CrushError::Parse {
        line,
        message: message.into(),
    }
}

fn compile(decls: Vec<Decl>) -> Result<CrushMap, CrushError> {
    let mut map = CrushMap::empty(Tunables::legacy());
    // Item name -> id and bucket id -> weight, as CrushCompiler keeps them.
    let mut item_id: HashMap<String, i32> = HashMap::new();
    let mut used_bucket_ids: HashSet<i32> = HashSet::new();
    let mut item_weight: HashMap<i32, u32> = HashMap::new();
    let mut text_class_buckets: BTreeMap<i32, BTreeMap<i32, i32>> = BTreeMap::new();

    // find_used_bucket_ids: a bucket whose first line is `id N` owns N.
    for d in &decls {
        if let Decl::Bucket(b) = d
            && let Some(&(id, _)) = b.ids.first()
        {
            used_bucket_ids.insert(id);
        }
    }

    let mut buckets = Vec::new();
    let mut rules = Vec::new();
    for d in decls {
        match d {
            Decl::Tunable(name, v, line) => {
                let v = u32::try_from(v).map_err(|_| perr(line, "tunable value out of range"))?;
                let t = &mut map.tunables;
                match name.as_str() {
                    "choose_local_tries" => t.choose_local_tries = v,
                    "choose_local_fallback_tries" => t.choose_local_fallback_tries = v,
                    "choose_total_tries" => t.choose_total_tries = v,
                    "chooseleaf_descend_once" => t.chooseleaf_descend_once = v,
                    "chooseleaf_vary_r" => t.chooseleaf_vary_r = v,
                    "chooseleaf_stable" => t.chooseleaf_stable = v,
                    "straw_calc_version" => t.straw_calc_version = v,
                    "allowed_bucket_algs" => t.allowed_bucket_algs = v,
                    other => return Err(perr(line, format!("tunable {other} not recognized"))),
                }
            }
            Decl::Device(id, name, class, line) => {
                let id = i32::try_from(id)
                    .ok()
                    .filter(|&i| i >= 0)
                    .ok_or_else(|| perr(line, format!("invalid device id {id}")))?;
                if !is_valid_crush_name(&name) {
                    return Err(CrushError::InvalidName(name));
                }
                if item_id.contains_key(&name) {
                    return Err(perr(line, format!("item {name} defined twice")));
                }
                item_id.insert(name.clone(), id);
                if let Some(c) = &class {
                    map.get_or_create_class_id(c);
                }
                map.devices.insert(id, Device { id, name, class });
            }
            Decl::Type(id, name, line) => {
                let id = i32::try_from(id).map_err(|_| perr(line, "type id out of range"))?;
                map.types.insert(id, name);
            }
            Decl::Bucket(b) => {
                if !rules.is_empty() {
                    return Err(perr(b.line, "buckets must be defined before rules"));
                }
                buckets.push(b);
            }
            Decl::Rule(r) => rules.push(r),
        }
    }

    // CrushCompiler::adjust_bucket_item_place: a bucket may list a bucket
    // defined further down; compile dependencies first.
    let by_name: HashMap<String, usize> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| (b.name.clone(), i))
        .collect();
    let mut order = Vec::with_capacity(buckets.len());
    let mut state = vec![0u8; buckets.len()];
    for i in 0..buckets.len() {
        visit_bucket(i, &buckets, &by_name, &mut state, &mut order)?;
    }

    for i in order {
        let b = &buckets[i];
        compile_bucket(
            &mut map,
            b,
            &mut item_id,
            &mut used_bucket_ids,
            &mut item_weight,
            &mut text_class_buckets,
        )?;
    }

    let mut seen_rule_names = HashSet::new();
    for (i, r) in rules.into_iter().enumerate() {
        if i == 0 {
            // Shadow trees are built when the first rule is parsed.
            map.populate_classes(&text_class_buckets)?;
        }
        if !r.name.is_empty() && !seen_rule_names.insert(r.name.clone()) {
            return Err(perr(
                r.line,
                format!("rule name '{}' already defined", r.name),
            ));
        }
        compile_rule(&mut map, r, &item_id)?;
    }
    map.finalize();
    map.check_acyclic()?;
    map.check_limits()?;
    Ok(map)
}

fn visit_bucket(
    i: usize,
    buckets: &[RawBucket],
    by_name: &HashMap<String, usize>,
    state: &mut [u8],
    order: &mut Vec<usize>,
) -> Result<(), CrushError> {
    match state[i] {
        2 => return Ok(()),
        1 => {
            return Err(perr(
                buckets[i].line,
                format!("bucket '{}' contains itself (cycle)", buckets[i].name),
            ));
        }
        _ => {}
    }
    state[i] = 1;
    for item in &buckets[i].items {
        if let Some(&j) = by_name.get(&item.name)
            && j > i
        {
            visit_bucket(j, buckets, by_name, state, order)?;
        }
    }
    state[i] = 2;
    order.push(i);
    Ok(())
}

fn compile_bucket(
    map: &mut CrushMap,
    b: &RawBucket,
    item_id: &mut HashMap<String, i32>,
    used_bucket_ids: &mut HashSet<i32>,
    item_weight: &mut HashMap<i32, u32>,
    text_class_buckets: &mut BTreeMap<i32, BTreeMap<i32, i32>>,
) -> Result<(), CrushError> {
    let Some(type_id) = map.type_id(&b.type_name) else {
        return Err(perr(
            b.line,
            format!("bucket type '{}' is not defined", b.type_name),
        ));
    };
    if item_id.contains_key(&b.name) {
        return Err(perr(
            b.line,
            format!("bucket or device '{}' is already defined", b.name),
        ));
    }
    if !is_valid_crush_name(&b.name) {
        return Err(CrushError::InvalidName(b.name.clone()));
    }
    match b.alg.as_deref() {
        Some("straw2") => {}
        Some(other) => {
            return Err(CrushError::UnsupportedBucketAlg {
                bucket: b.name.clone(),
                alg: other.to_string(),
            });
        }
        None => return Err(perr(b.line, format!("bucket '{}' has no alg", b.name))),
    }
    if let Some(h) = b.hash.as_deref()
        && h != "0"
        && h != "rjenkins1"
    {
        return Err(CrushError::UnsupportedHash {
            bucket: b.name.clone(),
            hash: h.to_string(),
        });
    }

    let mut id = 0;
    let mut class_ids: BTreeMap<i32, i32> = BTreeMap::new();
    for (maybe_id, class) in &b.ids {
        match class {
            Some(c) => {
                let cid = map.get_or_create_class_id(c);
                if class_ids.insert(cid, *maybe_id).is_some() {
                    return Err(perr(
                        b.line,
                        format!("duplicate device class {c} for bucket {}", b.name),
                    ));
                }
            }
            None => id = *maybe_id,
        }
    }

    // Item positions: explicit `pos` first, the rest fill the gaps.
    let used_pos: Vec<i64> = b.items.iter().filter_map(|i| i.pos).collect();
    let mut size = b.items.len() as i64;
    if let Some(&maxpos) = used_pos.iter().max() {
        size = size.max(maxpos);
    }
    let mut items = vec![(0i32, 0u32); size as usize];
    let mut curpos = 0i64;
    let mut bucket_weight: u32 = 0;
    for it in &b.items {
        let Some(&iid) = item_id.get(&it.name) else {
            return Err(perr(
                it.line,
                format!("item '{}' in bucket '{}' is not defined", it.name, b.name),
            ));
        };
        let mut weight = item_weight.get(&iid).copied().unwrap_or(0x10000);
        if let Some(ws) = &it.weight {
            weight = parse_weight(ws).ok_or_else(|| CrushError::InvalidWeight(ws.clone()))?;
            if weight > CRUSH_MAX_DEVICE_WEIGHT && iid >= 0 {
                return Err(CrushError::WeightOutOfRange(format!(
                    "device weight limited to {}",
                    CRUSH_MAX_DEVICE_WEIGHT / 0x10000
                )));
            }
            if weight > CRUSH_MAX_BUCKET_WEIGHT && iid < 0 {
                return Err(CrushError::WeightOutOfRange(format!(
                    "bucket weight limited to {}",
                    CRUSH_MAX_BUCKET_WEIGHT / 0x10000
                )));
            }
        }
        let pos = match it.pos {
            Some(p) => p,
            None => {
                while used_pos.contains(&curpos) {
                    curpos += 1;
                }
                curpos += 1;
                curpos - 1
            }
        };
        if pos < 0 || pos >= size {
            return Err(perr(
                it.line,
                format!(
                    "item '{}' in bucket '{}' has pos {pos} >= size {size}",
                    it.name, b.name
                ),
            ));
        }
        items[pos as usize] = (iid, weight);
        bucket_weight = bucket_weight
            .checked_add(weight)
            .ok_or_else(|| CrushError::WeightOutOfRange(format!("bucket {} overflows", b.name)))?;
    }

    if id == 0 {
        id = -1;
        while used_bucket_ids.contains(&id) {
            id -= 1;
        }
    }
    used_bucket_ids.insert(id);
    for (cid, shadow) in class_ids {
        text_class_buckets
            .entry(id)
            .or_default()
            .insert(cid, shadow);
    }
    item_id.insert(b.name.clone(), id);
    item_weight.insert(id, bucket_weight);
    map.insert_bucket(Bucket {
        id,
        name: b.name.clone(),
        type_id,
        items,
        class: None,
    })
}

fn compile_rule(
    map: &mut CrushMap,
    r: RawRule,
    item_id: &HashMap<String, i32>,
) -> Result<(), CrushError> {
    let id = u32::try_from(r.id).map_err(|_| perr(r.line, "rule id out of range"))?;
    if map.rule(id).is_some() {
        return Err(perr(r.line, format!("rule {id} already exists")));
    }
    let mut steps = Vec::with_capacity(r.steps.len());
    for (step, line) in r.steps {
        let s = match step {
            RawStep::Take(item, class) => {
                let Some(&mut_id) = item_id.get(&item) else {
                    return Err(perr(
                        line,
                        format!("in rule '{}' item '{item}' not defined", r.name),
                    ));
                };
                let mut take = mut_id;
                if let Some(c) = class {
                    let cid = map
                        .class_id(&c)
                        .ok_or_else(|| CrushError::UnknownClass(c.clone()))?;
                    take = map
                        .class_buckets
                        .get(&take)
                        .and_then(|m| m.get(&cid))
                        .copied()
                        .ok_or_else(|| {
                            perr(
                                line,
                                format!(
                                    "in rule '{}' step take {item} has no bucket for class {c}",
                                    r.name
                                ),
                            )
                        })?;
                }
                RuleStep::Take(take)
            }
            RawStep::Emit => RuleStep::Emit,
            RawStep::Noop => RuleStep::Noop,
            RawStep::Set(op, v) => {
                let v = u32::try_from(v)
                    .map_err(|_| perr(line, format!("{op}: value out of range")))?;
                match op.as_str() {
                    "set_choose_tries" => RuleStep::SetChooseTries(v),
                    "set_chooseleaf_tries" => RuleStep::SetChooseLeafTries(v),
                    "set_choose_local_tries" => RuleStep::SetChooseLocalTries(v),
                    "set_choose_local_fallback_tries" => RuleStep::SetChooseLocalFallbackTries(v),
                    "set_chooseleaf_vary_r" => RuleStep::SetChooseLeafVaryR(v),
                    "set_chooseleaf_stable" => RuleStep::SetChooseLeafStable(v),
                    other => return Err(perr(line, format!("unknown rule step '{other}'"))),
                }
            }
            RawStep::Choose {
                leaf,
                mode,
                n,
                type_name,
            } => {
                let Some(type_id) = map.type_id(&type_name) else {
                    return Err(perr(
                        line,
                        format!("in rule '{}' type '{type_name}' not defined", r.name),
                    ));
                };
                let n = i32::try_from(n).map_err(|_| perr(line, "replica count out of range"))?;
                match (leaf, mode.as_str()) {
                    (false, "firstn") => RuleStep::ChooseFirstN { n, type_id },
                    (false, _) => RuleStep::ChooseIndep { n, type_id },
                    (true, "firstn") => RuleStep::ChooseLeafFirstN { n, type_id },
                    (true, _) => RuleStep::ChooseLeafIndep { n, type_id },
                }
            }
        };
        steps.push(s);
    }
    let slot = id as usize;
    if map.rules.len() <= slot {
        map.rules.resize(slot + 1, None);
    }
    map.rules[slot] = Some(Rule {
        id,
        name: r.name,
        rule_type: r.rule_type,
        min_size: r.min_size,
        max_size: r.max_size,
        steps,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_parse_matches_strtof_times_65536() {
        assert_eq!(parse_weight("1.000"), Some(0x10000));
        assert_eq!(parse_weight("1"), Some(0x10000));
        assert_eq!(parse_weight("0.5"), Some(0x8000));
        // f32(0.1) = 0.100000001490116..., * 65536 = 6553.6001 -> 6553
        assert_eq!(parse_weight("0.1"), Some(6553));
        // f32(1.6) = 1.60000002384..., * 65536 = 104857.6016 -> 104857
        assert_eq!(parse_weight("1.600"), Some(104_857));
        assert_eq!(parse_weight("12.000"), Some(12 * 0x10000));
        assert_eq!(parse_weight("0.000"), Some(0));
        assert_eq!(parse_weight("1e1"), Some(10 * 0x10000));
        assert_eq!(parse_weight("x"), None);
        assert_eq!(parse_weight("-1"), None);
    }

    #[test]
    fn weight_format_matches_printf() {
        assert_eq!(format_weight(0x10000), "1.000");
        assert_eq!(format_weight(0x18000), "1.500");
        assert_eq!(format_weight(0), "0.000");
        // 0x1000 / 65536 = 0.0625 exactly: printf rounds half to even.
        assert_eq!(format_weight(0x1000), "0.062");
        assert_eq!(format_weight(0x3000), "0.188"); // 0.1875 -> even 8
        assert_eq!(format_weight(104_857), "1.600");
        assert_eq!(format_weight(6553), "0.100");
    }

    #[test]
    fn every_three_decimal_weight_round_trips() {
        for milli in 0..20_000u32 {
            let s = format!("{}.{:03}", milli / 1000, milli % 1000);
            let w = parse_weight(&s).unwrap();
            assert_eq!(format_weight(w), s, "weight {w:#x}");
        }
    }

    /// `chooseleaf firstn 1073741824` made every placement loop for hours
    /// (each unfillable replica spends the whole retry budget): found by
    /// fuzzing, refused with the step named.
    #[test]
    fn a_choose_step_for_too_many_items_is_refused() {
        let map = |step: &str| {
            format!(
                "device 0 osd.0\ndevice 1 osd.1\ntype 0 osd\ntype 1 host\ntype 2 root\n\
                 host h0 {{\n id -2\n alg straw2\n hash 0\n item osd.0 weight 1.000\n}}\n\
                 host h1 {{\n id -3\n alg straw2\n hash 0\n item osd.1 weight 1.000\n}}\n\
                 root default {{\n id -1\n alg straw2\n hash 0\n item h0 weight 1.000\n item h1 weight 1.000\n}}\n\
                 rule r {{\n id 0\n type replicated\n step take default\n {step}\n step emit\n}}\n"
            )
        };
        assert!(parse(&map("step chooseleaf firstn 64 type host")).is_ok());
        let e = parse(&map("step chooseleaf firstn 1073741824 type host")).expect_err("parsed");
        assert!(e.to_string().contains("rule r step choose count"), "{e}");
        let e = parse(&map(
            "step set_choose_tries 100000\n step chooseleaf firstn 0 type host",
        ))
        .expect_err("parsed");
        assert!(e.to_string().contains("set_choose_tries"), "{e}");
    }
}
