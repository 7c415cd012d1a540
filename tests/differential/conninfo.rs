//! Our connection-string parser against libpq's own, on the same inputs: every URI of
//! PostgreSQL's `001_uri.pl` (`001_uri.txt`), libpq's documented rules written as cases, and a few
//! thousand strings from a seeded generator that mutates valid ones with the characters that
//! matter. The reference is `PQconninfoParse` of the newest libpq the project fetches
//! (`installs::NEWEST_MAJOR`), through a few lines of C (`conninfo_parse.c`) compiled against it.
//!
//! For each string both must accept or both refuse, and what they accept must set the same
//! keywords to the same values. The differences that remain are deliberate: [`Allowed`] names
//! each, docs/connecting.md ("Differences from libpq") gives the reason, and any other difference
//! fails the test with the strings that show it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use bytebase_signal_client::connect::parse;
use bytebase_signal_tests::installs::{pg_bindir, NEWEST_MAJOR};

/// What one parser made of one string: the keywords it set (the last one written wins), or its
/// error message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Accepted(BTreeMap<String, Vec<u8>>),
    Refused(String),
}

/// The deliberate differences, each recognised by what the two parsers said.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Allowed {
    /// `servicefile` and `oauth_ca_file` are keywords of libpq 19, the version this client
    /// imitates; the reference libpq (18) does not know them.
    Libpq19Keyword,
    /// A percent-encoded value that is not UTF-8 (`%e9`): libpq passes the bytes on, we refuse,
    /// since the settings are Rust strings (and tokio-postgres takes the user and database as
    /// `&str`).
    ValuesAreUtf8,
}

impl Allowed {
    fn recognise(ours: &Verdict, libpq: &Verdict) -> Option<Allowed> {
        match (ours, libpq) {
            (Verdict::Accepted(keys), Verdict::Refused(message))
                if LIBPQ19_KEYWORDS
                    .iter()
                    .any(|k| keys.contains_key(*k) && message.contains(&format!("\"{k}\""))) =>
            {
                Some(Allowed::Libpq19Keyword)
            }
            // (A secret's error says why without the value.)
            (Verdict::Refused(message), Verdict::Accepted(_))
                if message.starts_with("percent-decoded value is not valid UTF-8")
                    || message
                        .ends_with(": percent-decoded value is not valid UTF-8 (the value is not shown)") =>
            {
                Some(Allowed::ValuesAreUtf8)
            }
            _ => None,
        }
    }
}

/// libpq's parser, as a filter process.
struct Libpq {
    program: PathBuf,
    _dir: tempfile::TempDir,
}

impl Libpq {
    /// Compiles `conninfo_parse.c` against the newest libpq's headers and library.
    fn build() -> Result<Libpq> {
        let prefix = pg_bindir(NEWEST_MAJOR)?.join("..");
        let (include, lib) = (prefix.join("include"), prefix.join("lib"));
        ensure!(include.join("libpq-fe.h").is_file(), "no libpq-fe.h in {}", include.display());
        let dir = tempfile::tempdir()?;
        let program = dir.path().join("conninfo_parse");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("differential/conninfo_parse.c");
        let out = Command::new("cc")
            .arg("-O1")
            .arg(format!("-I{}", include.display()))
            .arg(&source)
            .arg(format!("-L{}", lib.display()))
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-lpq")
            .arg("-o")
            .arg(&program)
            .output()
            .context("running cc")?;
        ensure!(out.status.success(), "cc {}: {}", source.display(), String::from_utf8_lossy(&out.stderr));
        Ok(Libpq { program, _dir: dir })
    }

    /// The keywords this libpq knows.
    fn keywords(&self) -> Result<Vec<String>> {
        let out = Command::new(&self.program).arg("--keywords").output()?;
        ensure!(out.status.success(), "{} --keywords failed", self.program.display());
        Ok(String::from_utf8(out.stdout)?.lines().map(str::to_owned).collect())
    }

    /// libpq's verdict on each string, in order.
    fn parse_all(&self, inputs: &[String]) -> Result<Vec<Verdict>> {
        let mut child = Command::new(&self.program).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let input: Vec<u8> = inputs.iter().flat_map(|s| s.bytes().chain([0])).collect();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output()?;
        writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        ensure!(out.status.success(), "{} failed", self.program.display());
        let text = String::from_utf8(out.stdout)?;
        let mut verdicts = Vec::new();
        for record in text.split("\n\n").filter(|r| !r.is_empty()) {
            let mut lines = record.lines();
            let verdict = match lines.next() {
                Some("O") => Verdict::Accepted(
                    lines
                        .map(|l| {
                            let (k, v) = l.split_once('\t').context("no tab")?;
                            Ok((k.to_owned(), unhex(v)?))
                        })
                        .collect::<Result<_>>()?,
                ),
                Some(e) if e.starts_with("E\t") => {
                    Verdict::Refused(String::from_utf8_lossy(&unhex(&e[2..])?).trim_end().to_owned())
                }
                other => bail!("unexpected answer {other:?}"),
            };
            verdicts.push(verdict);
        }
        ensure!(verdicts.len() == inputs.len(), "{} answers to {} strings", verdicts.len(), inputs.len());
        Ok(verdicts)
    }
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("bad hex")).collect()
}

/// Our verdict.
fn ours(input: &str) -> Verdict {
    match parse(input) {
        Ok(pairs) => Verdict::Accepted(pairs.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()),
        Err(e) => Verdict::Refused(e.to_string()),
    }
}

/// libpq's documented rules (the "Connection Strings" section of its manual), as cases.
const DOCUMENTED: &[&str] = &[
    "",
    "host=localhost port=5432 dbname=mydb connect_timeout=10",
    "host = localhost  port= 5432\tdbname =mydb",
    "password='it''s'",
    r"password='it\'s' user=a\ b",
    r"dbname='a\\b' user=x\=y",
    "options='-c geqo=off -c statement_timeout=5min'",
    "dbname=",
    "dbname=''",
    "dbname",
    "dbname='unterminated",
    "=value",
    "host=a,b,c port=1,2,3",
    "host=/var/run/postgresql",
    "hostaddr=127.0.0.1 host=db",
    "requiressl=1",
    "requiressl=0",
    "nosuchkeyword=1",
    "sslmode=verify-full sslrootcert=system",
    "application_name=caf\u{e9}",
    "user=\u{1f600}",
    "postgresql://",
    "postgresql://localhost",
    "postgresql://localhost:5433",
    "postgresql://localhost/mydb",
    "postgresql://user@localhost",
    "postgresql://user:secret@localhost",
    "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
    "postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp",
    "postgresql:///mydb?host=localhost&port=5433",
    "postgresql://[2001:db8::1234]/database",
    "postgresql://%2Fvar%2Flib%2Fpostgresql/dbname",
    "postgresql://user%40host:p%40ss@h/d%20b",
    "postgresql://h/d?ssl=true",
    "postgresql://h/d?ssl=false",
    "postgresql://h/d#fragment",
    "postgresql://h/d?a",
    "postgres://h?host=",
    "postgresql://h/%e9",
    "postgresql://h?password=%ff%fe",
    "servicefile=/etc/pg_service.conf",
    "service=x servicefile=/tmp/s",
    "oauth_ca_file=/x",
];

/// The keywords libpq 19 added, which the reference libpq (18) refuses.
const LIBPQ19_KEYWORDS: [&str; 2] = ["servicefile", "oauth_ca_file"];

/// Valid strings the generator starts from.
const SEEDS: &[&str] = &[
    "host=db port=5432 dbname=app user=alice password='s3cr et'",
    "host=a,b port=1,2 sslmode=require application_name='x y'",
    r"password='a\'b\\c' options='-c x=1'",
    "postgresql://alice:pw@db:5433/app?sslmode=require&application_name=x",
    "postgres://[::1]:5432,h2/db?target_session_attrs=read-write",
    "postgresql:///db?host=/tmp&port=5433",
    "postgresql://u%20x@h/d%2Fe?options=-c%20a%3Db",
];

/// What the generator inserts or substitutes: the characters that matter to either syntax, white
/// space and control characters, and non-ASCII text.
const PIECES: &[&str] = &[
    "=",
    "'",
    "\\",
    " ",
    "%",
    "@",
    ":",
    "/",
    "?",
    "&",
    ",",
    "[",
    "]",
    "#",
    "\t",
    "\n",
    "\u{b}",
    "\u{1}",
    "%2",
    "%20",
    "%e9",
    "%00",
    "%zz",
    "é",
    "ü",
    "\u{1f600}",
    "''",
    "\\'",
    "host=",
    "port=",
    "=x",
];

/// A small deterministic generator (xorshift64*), so that a failure names a seed that reproduces
/// it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `count` mutants of the seeds: one to three edits each (insert, replace or delete at a char
/// boundary).
fn generated(seed: u64, count: usize) -> Vec<String> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..count)
        .map(|_| {
            let mut s: Vec<char> = SEEDS[rng.below(SEEDS.len())].chars().collect();
            for _ in 0..=rng.below(3) {
                let at = rng.below(s.len() + 1);
                let piece: Vec<char> = PIECES[rng.below(PIECES.len())].chars().collect();
                match rng.below(3) {
                    0 => drop(s.splice(at..at, piece)),
                    1 if at < s.len() => drop(s.splice(at..at + 1, piece)),
                    _ if at < s.len() => drop(s.remove(at)),
                    _ => s.extend(piece),
                }
            }
            s.into_iter().collect()
        })
        .collect()
}

/// The strings of `001_uri.txt`.
fn uri_cases() -> Result<Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("differential/001_uri.txt");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(text.split('\n').filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect())
}

/// The generator's seed: `BYTEBASE_SIGNAL_DIFF_SEED` to reproduce a run, else a fixed one.
fn seed() -> u64 {
    std::env::var("BYTEBASE_SIGNAL_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c0de)
}

const GENERATED: usize = 4000;

#[test]
fn our_parser_agrees_with_libpqs_but_for_the_documented_differences() -> Result<()> {
    let libpq = Libpq::build()?;
    let mut inputs: Vec<String> = uri_cases()?;
    let uris = inputs.len();
    inputs.extend(DOCUMENTED.iter().map(|s| s.to_string()));
    inputs.extend(generated(seed(), GENERATED));
    let theirs = libpq.parse_all(&inputs)?;

    let mut allowed: BTreeMap<Allowed, Vec<&str>> = BTreeMap::new();
    let mut unexplained = Vec::new();
    let (mut accepted, mut refused, mut same_words) = (0, 0, 0);
    for (input, libpq) in inputs.iter().zip(&theirs) {
        let ours = ours(input);
        match (&ours, libpq) {
            (Verdict::Accepted(_), Verdict::Accepted(_)) if ours == *libpq => {
                accepted += 1;
                continue;
            }
            // Both refuse: the verdict is the contract; the words are compared for the record.
            (Verdict::Refused(a), Verdict::Refused(b)) => {
                refused += 1;
                same_words += usize::from(a == b);
                continue;
            }
            _ => {}
        }
        match Allowed::recognise(&ours, libpq) {
            Some(why) => allowed.entry(why).or_default().push(input),
            None => unexplained.push(format!("{input:?}\n    ours:  {ours:?}\n    libpq: {libpq:?}")),
        }
    }
    println!(
        "{} strings ({uris} of 001_uri.pl, {} documented rules, {GENERATED} generated from seed {}): \
         {accepted} accepted alike and {refused} refused by both ({same_words} in libpq's very words); \
         allowed differences: {:?}",
        inputs.len(),
        DOCUMENTED.len(),
        seed(),
        allowed.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    ensure!(
        unexplained.is_empty(),
        "{} strings on which our parser and libpq {NEWEST_MAJOR} differ:\n{}",
        unexplained.len(),
        unexplained.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    Ok(())
}

#[test]
fn our_keywords_are_libpqs_but_for_the_documented_differences() -> Result<()> {
    let libpq = Libpq::build()?;
    let theirs = libpq.keywords()?;
    ensure!(theirs.len() >= 40, "libpq listed {} keywords: {theirs:?}", theirs.len());
    // Each of libpq's keywords parses with us; what we know beyond it is the allow-list.
    for keyword in &theirs {
        ensure!(
            parse(&format!("{keyword}=''")).is_ok(),
            "libpq {NEWEST_MAJOR} knows {keyword}, we refuse it"
        );
    }
    let extra: Vec<&str> = LIBPQ19_KEYWORDS.into_iter().filter(|k| !theirs.iter().any(|t| t == k)).collect();
    for keyword in &extra {
        ensure!(parse(&format!("{keyword}=''")).is_ok(), "{keyword} is refused");
    }
    println!("libpq {NEWEST_MAJOR} knows {} keywords; ours also: {extra:?} (libpq 19)", theirs.len());
    Ok(())
}
