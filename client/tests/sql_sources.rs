//! The live SQL files agree with their one source, without a server (`sql/README.md`).
//!
//! The extension's SQL is the source: `sql/extension/*.sql` (included by the extension crate) for
//! the log table, the replay functions and the comments, and this crate's constants for the
//! numbers. The pure-SQL edition (`sql/pure/install.sql`) and the newest upgrade script restate
//! parts of it; each restatement must be identical, so that a change made in one place and not
//! in the others fails a plain `cargo test`. (What the SQL *does* — payload bytes, errors,
//! catalogs — is compared on real servers by the end-to-end suites.)

use std::fs;
use std::path::{Path, PathBuf};

use bytebase_signal_client::limits::{
    DEFAULT_NOTIFY_QUEUE_LIMIT, DEFAULT_RETENTION_SECS, MAX_RETENTION_SECS, MIN_RETENTION_SECS, PRUNE_EVERY,
    PRUNE_LIMIT,
};
use bytebase_signal_client::validate::MAX_PROJECT_LEN;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    let path = repository().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The text with each line trimmed and blank lines dropped: indentation differs between files
/// (the pure edition's table is created inside a DO block), words may not.
fn normalized(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
}

/// Every `COMMENT ON ... IS '...';` statement of `sql`, normalized.
fn comments(sql: &str) -> Vec<String> {
    statements(sql).into_iter().filter(|s| s.starts_with("COMMENT ON ")).collect()
}

/// The statements of `sql` that start at the beginning of a line and end with `;` at the end of
/// one (dollar-quoted bodies end with `$tag$;`), normalized, without `--` comment lines.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_body: Option<String> = None;
    for line in sql.lines() {
        let trimmed = line.trim();
        // Blank lines, comments and psql's meta-commands (`\echo ... \quit`) between statements.
        if current.is_empty()
            && (trimmed.is_empty() || trimmed.starts_with("--") || trimmed.starts_with('\\'))
        {
            continue;
        }
        current.push(trimmed);
        if in_body.is_none() {
            if let Some(tag) = dollar_tag(trimmed) {
                // A body opens on this line unless it also closes on it.
                if trimmed.matches(tag.as_str()).count() == 1 {
                    in_body = Some(tag);
                    continue;
                }
            }
        } else if let Some(tag) = &in_body {
            if trimmed.starts_with(tag.as_str()) {
                in_body = None;
            } else {
                continue;
            }
        }
        if trimmed.ends_with(';') {
            out.push(current.join("\n"));
            current.clear();
        }
    }
    out
}

/// The `$tag$` that opens a dollar-quoted body on this line, if any.
fn dollar_tag(line: &str) -> Option<String> {
    let start = line.find('$')?;
    let rest = &line[start + 1..];
    let end = rest.find('$')?;
    let name = &rest[..end];
    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_').then(|| format!("${name}$"))
}

/// `CREATE FUNCTION name(arg type, ...)` → `name(type, ...)`, the signature `ALTER FUNCTION` uses.
fn signature(create: &str) -> String {
    let head = create.lines().next().unwrap();
    let head = head.trim_start_matches("CREATE OR REPLACE FUNCTION ").trim_start_matches("CREATE FUNCTION ");
    let (name, args) = head.split_once('(').unwrap();
    let args = args.trim_end_matches(')');
    let types: Vec<&str> = args.split(',').map(|a| a.split_whitespace().last().unwrap_or("")).collect();
    format!("{name}({})", types.join(", "))
}

/// The quoted items of the list that starts right after `opening` and ends at `closing`, e.g.
/// the pure installer's `FOREACH f IN ARRAY ARRAY['a(bigint)', ...]` or `proname IN ('a', ...)`.
fn quoted_list(text: &str, opening: &str, closing: &str) -> Vec<String> {
    let start = text.find(opening).unwrap_or_else(|| panic!("no {opening:?} in sql/pure/install.sql"))
        + opening.len();
    let end =
        start + text[start..].find(closing).unwrap_or_else(|| panic!("{opening:?} without {closing:?}"));
    text[start..end].split('\'').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The extension's `CREATE FUNCTION` statements in `sql`.
fn functions(sql: &str) -> Vec<String> {
    statements(sql).into_iter().filter(|s| s.starts_with("CREATE FUNCTION ")).collect()
}

#[test]
fn the_extension_includes_its_sql_files() {
    let lib = read("extension/src/lib.rs");
    for file in ["log_table.sql", "finalize.sql"] {
        assert!(
            lib.contains(&format!("extension_sql_file!(\"../sql/extension/{file}\"")),
            "extension/src/lib.rs no longer includes sql/extension/{file}"
        );
    }
    for entry in fs::read_dir(repository().join("extension/src")).unwrap() {
        let path = entry.unwrap().path();
        let source = fs::read_to_string(&path).unwrap();
        assert!(
            !source.contains("extension_sql!("),
            "SQL written inline in {}: put it in sql/extension/",
            path.display()
        );
        // The statements the library runs, outside its #[pg_test]s, are files too.
        let library = source.split("#[pg_schema]").next().unwrap();
        for line in library.lines() {
            let inline = ["\"SELECT ", "\"WITH ", "\"DELETE ", "\"INSERT ", "\"UPDATE "]
                .iter()
                .any(|s| line.contains(s));
            assert!(!inline, "SQL written inline in {}: put it in sql/extension/\n{line}", path.display());
        }
    }
}

#[test]
fn the_pure_edition_creates_the_same_log_table() {
    let table = read("sql/extension/log_table.sql");
    let pure = normalized(&read("sql/pure/install.sql"));
    let create = statements(&table)
        .into_iter()
        .find(|s| s.starts_with("CREATE TABLE bytebase_signal_log"))
        .expect("sql/extension/log_table.sql creates bytebase_signal_log");
    assert!(
        pure.contains(&create),
        "sql/pure/install.sql's bytebase_signal_log differs from the extension's:\n{create}"
    );
    let mut others = 0;
    for statement in statements(&table) {
        if statement.starts_with("CREATE INDEX")
            || statement.starts_with("REVOKE")
            || statement.starts_with("COMMENT")
        {
            assert!(pure.contains(&statement), "sql/pure/install.sql lacks the extension's\n{statement}");
            others += 1;
        }
    }
    assert!(others >= 4, "sql/extension/log_table.sql: its indexes, REVOKE and COMMENT not found");
}

#[test]
fn the_pure_edition_creates_the_same_replay_functions_with_the_same_settings() {
    let finalize = read("sql/extension/finalize.sql");
    let pure_text = read("sql/pure/install.sql");
    let pure = normalized(&pure_text);
    let pinned = quoted_list(&pure_text, "FOREACH f IN ARRAY ARRAY[", "]::regprocedure[]");
    let created = functions(&finalize);
    assert!(created.len() >= 2, "sql/extension/finalize.sql creates the replay functions");
    for function in created {
        let sig = signature(&function);
        // The pure edition creates it (replaceably) without the SET clauses, and sets them with
        // ALTER FUNCTION: its schema is only known when it runs.
        let (settings, rest): (Vec<&str>, Vec<&str>) = function.lines().partition(|l| l.starts_with("SET "));
        let expected = rest.join("\n").replacen("CREATE FUNCTION ", "CREATE OR REPLACE FUNCTION ", 1);
        assert!(
            pure.contains(&expected),
            "sql/pure/install.sql's {sig} differs from the extension's:\n{expected}"
        );
        for setting in settings {
            if setting.starts_with("SET search_path TO pg_catalog, @extschema@, pg_temp") {
                assert!(
                    pinned.contains(&sig) && pure.contains("SET search_path TO pg_catalog, %I, pg_temp"),
                    "sql/pure/install.sql does not pin {sig}'s search_path (its list: {pinned:?})"
                );
            } else {
                let alter = format!("ALTER FUNCTION {sig} {setting};");
                assert!(pure.contains(&alter), "sql/pure/install.sql lacks {alter}");
            }
        }
    }
}

#[test]
fn the_pure_edition_revokes_and_comments_the_same() {
    let finalize = read("sql/extension/finalize.sql");
    let pure_text = read("sql/pure/install.sql");
    let pure = normalized(&pure_text);
    let revoked = quoted_list(&pure_text, "AND p.proname IN (", ") LOOP");
    let comments = comments(&finalize);
    assert!(comments.len() >= 11, "sql/extension/finalize.sql comments every function");
    for comment in comments {
        assert!(pure.contains(&comment), "sql/pure/install.sql lacks the extension's\n{comment}");
    }
    let revokes: Vec<String> =
        statements(&finalize).into_iter().filter(|s| s.starts_with("REVOKE ALL ON FUNCTION ")).collect();
    assert!(revokes.len() >= 11, "sql/extension/finalize.sql revokes every function from PUBLIC");
    for revoke in revokes {
        let name = revoke["REVOKE ALL ON FUNCTION ".len()..].split('(').next().unwrap().to_owned();
        assert!(
            revoked.contains(&name),
            "sql/pure/install.sql does not revoke {name} from PUBLIC (its list: {revoked:?})"
        );
    }
}

/// The update to this version leaves what a fresh install creates (the upgrade suite compares
/// the catalogs on a server); here, that each function, setting, REVOKE and comment it writes is
/// the live one.
#[test]
fn the_newest_upgrade_script_writes_the_live_functions_and_comments() {
    let version = env!("CARGO_PKG_VERSION");
    let scripts: Vec<PathBuf> = fs::read_dir(repository().join("sql"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("bytebase_signal--") && name.ends_with(&format!("--{version}.sql"))
        })
        .collect();
    assert!(!scripts.is_empty(), "no sql/bytebase_signal--*--{version}.sql");
    let live = read("sql/extension/finalize.sql");
    let live_statements = statements(&live);
    // Each live function's SET clauses as ALTER FUNCTION statements, for the scripts'.
    let live_settings: Vec<String> = functions(&live)
        .iter()
        .flat_map(|f| {
            let sig = signature(f);
            let settings: Vec<String> = f
                .lines()
                .filter(|l| l.starts_with("SET "))
                .map(|l| format!("ALTER FUNCTION {sig} {l};"))
                .collect();
            settings
        })
        .collect();
    for script in scripts {
        let name = script.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&script).unwrap();
        let mut compared = 0;
        for statement in statements(&text) {
            let restates = ["CREATE FUNCTION ", "COMMENT ON FUNCTION ", "REVOKE ALL ON FUNCTION "]
                .iter()
                .any(|p| statement.starts_with(p));
            if restates {
                assert!(
                    live_statements.contains(&statement),
                    "sql/{name} writes something sql/extension/finalize.sql does not:\n{statement}"
                );
                compared += 1;
            } else if statement.starts_with("ALTER FUNCTION ") && statement.contains(" SET ") {
                assert!(
                    live_settings.contains(&statement),
                    "sql/{name} sets what no live function has:\n{statement}"
                );
                compared += 1;
            }
        }
        assert!(compared > 0, "sql/{name}: nothing in it was compared with the live SQL");
    }
}

/// The SQL literals of `sql`, quotes included (`''` inside one is part of it), in order.
fn literals(sql: &str) -> Vec<String> {
    let code: Vec<&str> = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect();
    let code = code.join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(start) = rest.find('\'') {
        let mut end = start + 1;
        loop {
            let next = end + rest[end..].find('\'').expect("an unterminated literal");
            if rest[next + 1..].starts_with('\'') {
                end = next + 2;
            } else {
                out.push(rest[start..=next].to_owned());
                rest = &rest[next + 1..];
                break;
            }
        }
    }
    out
}

#[test]
fn the_pure_edition_words_the_queue_warning_the_same() {
    let warning = read("sql/extension/queue_warning.sql");
    let pure = read("sql/pure/install.sql");
    let texts: Vec<String> = literals(&warning).into_iter().filter(|l| l.len() > 12).collect();
    assert!(
        texts.len() >= 5,
        "sql/extension/queue_warning.sql: its message, detail and hint not found: {texts:?}"
    );
    for text in texts {
        assert!(pure.contains(&text), "sql/pure/install.sql does not word the queue warning with {text}");
    }
}

#[test]
fn the_pure_edition_states_the_same_numbers() {
    let pure = read("sql/pure/install.sql");
    let expected = [
        format!("logged.id % {PRUNE_EVERY}::bigint = 0"),
        format!("_bytebase_signal_prune({PRUNE_LIMIT}::bigint)"),
        format!("octet_length(project) > {MAX_PROJECT_LEN} THEN"),
        format!("project must be at most {MAX_PROJECT_LEN} bytes"),
        format!("RETURN {DEFAULT_RETENTION_SECS};"),
        format!(
            "secs < {MIN_RETENTION_SECS}::double precision OR secs > {MAX_RETENTION_SECS}::double precision"
        ),
        format!("({MIN_RETENTION_SECS} s .. {MAX_RETENTION_SECS} s)"),
        format!("({MIN_RETENTION_SECS} .. {MAX_RETENTION_SECS})"),
        format!("RETURN {DEFAULT_NOTIFY_QUEUE_LIMIT};"),
    ];
    for text in expected {
        assert!(pure.contains(&text), "sql/pure/install.sql does not say {text:?} (the constant changed?)");
    }
}

#[test]
fn the_statement_splitter_finds_what_it_must() {
    let sql = "-- a comment\nCOMMENT ON TABLE t IS\n    'a; b';\nCREATE FUNCTION f(a bigint, b text)\nRETURNS void\nAS $body$\nBEGIN\n    PERFORM 1;\nEND\n$body$;\nREVOKE ALL ON FUNCTION f(bigint, text) FROM PUBLIC;\n";
    let found = statements(sql);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(found[0], "COMMENT ON TABLE t IS\n'a; b';");
    assert!(found[1].starts_with("CREATE FUNCTION f(") && found[1].ends_with("$body$;"));
    assert_eq!(signature(&found[1]), "f(bigint, text)");
}
