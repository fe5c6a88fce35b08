//! The documentation kept true: `README.md` and `docs/` against the code and
//! `template.yaml`.
//!
//! - The metrics table of `docs/operations.md` is the code's catalogue
//!   ([`Metric::ALL`]: name, unit, dimensions), row for row.
//! - Its alarm table names exactly the template's alarms (per-function alarms
//!   as `<stack>-<function>-<suffix>`), each with the metric it watches.
//! - `docs/configuration.md` has one row for every variable the code reads or
//!   the template sets, one for every template parameter, and names every
//!   output; a row naming a variable nothing reads fails too.
//! - Every repository path the pages name exists, every link between them
//!   lands on a page and a heading, and every page under `docs/` is listed in
//!   the README.
//!
//! Each failure says what to add or remove. Adding a metric, an alarm, a
//! variable or a parameter: add its row where the failure says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use billing::telemetry::metrics::Metric;
use billing_tests::Env;
use billing_tests::servers::repo_root;
use serde_norway::Value as Yaml;

use super::{entries, functions, render, resources_of, template};

const OPERATIONS: &str = "docs/operations.md";
const CONFIGURATION: &str = "docs/configuration.md";

/// Pages the docs link to that another change adds. Each must not exist yet:
/// once it does, remove it from here.
const ARRIVING: &[&str] = &[];

/// Where the code that reads environment variables lives.
const SOURCE_DIRS: &[&str] = &["shared/src", "functions", "infra/billing-dev/src"];

/// Where a documented variable may be read (code, scripts, the template).
const READERS: &[&str] = &[
    "shared",
    "functions",
    "infra",
    "tests",
    "console/src",
    "console/scripts",
    "console/test",
    "template.yaml",
    "Makefile",
];

/// Paths the docs name that tools create (gitignored): not checked.
const MADE_BY_TOOLS: &[&str] = &[
    "target/",
    ".local/",
    ".aws-sam/",
    "console/dist",
    "console/node_modules",
    "samconfig.toml",
];

/// File name endings that make a code span a path.
const PATH_EXTENSIONS: &[&str] = &[
    "rs", "sh", "py", "toml", "yaml", "yml", "json", "md", "mjs", "ts", "tsx", "java", "txt",
    "lock", "pem",
];

// ---- Markdown -------------------------------------------------------------------

/// One page: its lines outside fenced code blocks (number, text).
struct Page {
    path: String,
    lines: Vec<(usize, String)>,
}

impl Page {
    fn read(path: &str) -> Self {
        let text = std::fs::read_to_string(repo_root().join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut fenced = false;
        let mut lines = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            } else if !fenced {
                lines.push((i + 1, line.to_owned()));
            }
        }
        Self {
            path: path.to_owned(),
            lines,
        }
    }

    /// Every table whose first header cell is `first`: its rows (line, cells).
    fn tables(&self, first: &str) -> Vec<Vec<(usize, Vec<String>)>> {
        let mut tables = Vec::new();
        let mut current: Option<Vec<(usize, Vec<String>)>> = None;
        let mut header_seen = false;
        for (n, line) in &self.lines {
            if !line.trim_start().starts_with('|') {
                tables.extend(current.take());
                header_seen = false;
                continue;
            }
            let cells = cells(line);
            if !header_seen {
                header_seen = true;
                if cells.first().map(String::as_str) == Some(first) {
                    current = Some(Vec::new());
                }
            } else if let Some(rows) = current.as_mut()
                && !cells
                    .iter()
                    .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                rows.push((*n, cells));
            }
        }
        tables.extend(current);
        tables
    }

    /// The one table whose first header cell is `first`.
    fn table(&self, first: &str) -> Vec<(usize, Vec<String>)> {
        let mut tables = self.tables(first);
        assert_eq!(
            tables.len(),
            1,
            "{}: one table headed `| {first} |`",
            self.path
        );
        tables.remove(0)
    }

    /// The GitHub anchors of its headings.
    fn anchors(&self) -> BTreeSet<String> {
        self.lines
            .iter()
            .filter(|(_, l)| l.starts_with('#'))
            .map(|(_, l)| slug(l.trim_start_matches('#')))
            .collect()
    }

    /// The lines of the section under the heading `title` (to the next heading).
    fn section(&self, title: &str) -> Vec<&str> {
        let mut inside = false;
        let mut out = Vec::new();
        for (_, line) in &self.lines {
            if line.starts_with('#') {
                inside = line.trim_start_matches('#').trim() == title;
            } else if inside {
                out.push(line.as_str());
            }
        }
        assert!(!out.is_empty(), "{}: no section `{title}`", self.path);
        out
    }
}

/// A table row's cells, split on `|` outside code spans.
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    for ch in line.trim().trim_start_matches('|').chars() {
        match ch {
            '`' => {
                in_code = !in_code;
                cell.push(ch);
            }
            '|' if !in_code => out.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(ch),
        }
    }
    if !cell.trim().is_empty() {
        out.push(cell.trim().to_owned());
    }
    out
}

/// The code spans of a text.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The targets of the inline links of a text (`[text](target)`).
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// GitHub's anchor of a heading.
fn slug(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every page: the README and `docs/*.md`.
fn pages() -> Vec<Page> {
    let mut paths = vec!["README.md".to_owned()];
    paths.extend(docs_pages());
    paths.iter().map(|p| Page::read(p)).collect()
}

/// `docs/*.md`, as repository paths.
fn docs_pages() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(repo_root().join("docs"))
        .expect("docs/")
        .map(|e| {
            e.expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    out.sort();
    out
}

/// Panics with every problem found, one per line.
fn report(problems: Vec<String>, what: &str) {
    assert!(
        problems.is_empty(),
        "{what}:\n{}",
        problems
            .iter()
            .map(|p| format!("  - {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---- Metrics --------------------------------------------------------------------

/// The metrics table of `docs/operations.md` is [`Metric::ALL`], one row each,
/// with its unit and dimensions.
pub(super) async fn docs_metrics_table_is_the_code_catalogue(_env: &'static Env) {
    let page = Page::read(OPERATIONS);
    let mut problems = Vec::new();
    let mut documented: BTreeMap<String, (usize, String, Vec<String>)> = BTreeMap::new();
    for (line, row) in page.table("metric") {
        let names = code_spans(&row[0]);
        let [name] = names.as_slice() else {
            problems.push(format!(
                "{OPERATIONS}:{line}: one metric per row, in backticks"
            ));
            continue;
        };
        let unit = row.get(1).cloned().unwrap_or_default();
        let dimensions = match row.get(2).map(String::as_str) {
            Some("none") => Vec::new(),
            Some(cell) => code_spans(cell),
            None => Vec::new(),
        };
        if documented
            .insert(name.clone(), (line, unit, dimensions))
            .is_some()
        {
            problems.push(format!("{OPERATIONS}:{line}: `{name}` has two rows"));
        }
    }
    for metric in Metric::ALL {
        let unit = metric.unit().as_str();
        let dimensions: Vec<String> = metric
            .dimensions()
            .iter()
            .map(|d| d.name().to_owned())
            .collect();
        let shown = if dimensions.is_empty() {
            "none".to_owned()
        } else {
            dimensions
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let row = format!(
            "| `{}` | {unit} | {shown} | <when it is emitted> |",
            metric.name()
        );
        match documented.remove(metric.name()) {
            None => problems.push(format!(
                "{OPERATIONS}: the metrics table lacks `{}`: add {row}",
                metric.name()
            )),
            Some((line, u, d)) if u != unit || d != dimensions => problems.push(format!(
                "{OPERATIONS}:{line}: `{}` is published as {row}",
                metric.name()
            )),
            Some(_) => {}
        }
    }
    for (name, (line, _, _)) in documented {
        problems.push(format!(
            "{OPERATIONS}:{line}: `{name}` is not in the code's catalogue (Metric::ALL): remove its row"
        ));
    }
    report(problems, "the metrics table and the code disagree");
}

// ---- Alarms ---------------------------------------------------------------------

/// An alarm's name as the docs write it: `${AWS::StackName}` as `<stack>`, and
/// the name of each function as `<function>` when every function has an alarm
/// of that suffix.
fn alarm_names(template: &Yaml) -> BTreeMap<String, Vec<String>> {
    let binaries: Vec<String> = functions(template).into_iter().map(|f| f.binary).collect();
    let alarms: Vec<(String, Vec<String>)> = resources_of(template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, alarm)| {
            let p = &alarm["Properties"];
            let name = render(&p["AlarmName"]);
            let name = name
                .trim_start_matches("Sub:")
                .replace("${AWS::StackName}", "<stack>");
            // A placeholder left by a loop over the functions.
            let name = match (name.find("${"), name.find('}')) {
                (Some(a), Some(b)) if a < b => {
                    format!("{}<function>{}", &name[..a], &name[b + 1..])
                }
                _ => name,
            };
            let mut metrics: Vec<String> = p["MetricName"]
                .as_str()
                .map(str::to_owned)
                .into_iter()
                .collect();
            if let Some(queries) = p["Metrics"].as_sequence() {
                metrics.extend(queries.iter().filter_map(|q| {
                    q["MetricStat"]["Metric"]["MetricName"]
                        .as_str()
                        .map(str::to_owned)
                }));
            }
            assert!(!metrics.is_empty(), "{id}: watches no metric");
            (name, metrics)
        })
        .collect();
    let per_function = |suffix: &str| {
        binaries.iter().all(|b| {
            alarms
                .iter()
                .any(|(n, _)| *n == format!("<stack>-{b}-{suffix}"))
        })
    };
    let mut out = BTreeMap::new();
    for (name, metrics) in &alarms {
        // One 429 alarm per route: written once as `<stack>-<route>-429`.
        if name.ends_with("-429") && metrics.iter().any(|m| m == "TooManyRequests") {
            out.insert("<stack>-<route>-429".to_owned(), metrics.clone());
            continue;
        }
        let generic = binaries.iter().find_map(|b| {
            let suffix = name.strip_prefix(&format!("<stack>-{b}-"))?;
            per_function(suffix).then(|| format!("<stack>-<function>-{suffix}"))
        });
        out.insert(generic.unwrap_or_else(|| name.clone()), metrics.clone());
    }
    out
}

/// The alarm table of `docs/operations.md` names exactly the template's alarms,
/// each with the metric it watches.
pub(super) async fn docs_alarm_table_is_the_template_alarms(_env: &'static Env) {
    let template = template();
    let mut expected = alarm_names(&template);
    let page = Page::read(OPERATIONS);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (line, row) in page.table("alarm") {
        let Some(name) = code_spans(&row[0]).into_iter().next() else {
            problems.push(format!(
                "{OPERATIONS}:{line}: the alarm's name in backticks"
            ));
            continue;
        };
        if !seen.insert(name.clone()) {
            problems.push(format!("{OPERATIONS}:{line}: `{name}` has two rows"));
        }
        match expected.remove(&name) {
            None => problems.push(format!(
                "{OPERATIONS}:{line}: `{name}` is not an alarm of template.yaml: remove its row"
            )),
            Some(metrics) => {
                let shown = code_spans(row.get(1).map(String::as_str).unwrap_or_default());
                for metric in metrics.iter().filter(|m| !shown.contains(m)) {
                    problems.push(format!(
                        "{OPERATIONS}:{line}: `{name}` watches `{metric}`: name it in the metric column"
                    ));
                }
            }
        }
    }
    for (name, metrics) in expected {
        problems.push(format!(
            "{OPERATIONS}: the alarm table lacks `{name}`: add | `{name}` | `{}` ... | <fires when> | <first look> |",
            metrics.join("`, `")
        ));
    }
    report(problems, "the alarm table and template.yaml disagree");
}

// ---- Configuration --------------------------------------------------------------

/// Whether `s` looks like an environment variable (`AB_CD`).
fn is_variable(s: &str) -> bool {
    s.contains('_')
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Every file under `dir` (a file, or a directory walked without `target/`,
/// `node_modules/`, `dist/`).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_owned()];
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(
                    name.as_str(),
                    "target" | "node_modules" | "dist" | "__pycache__"
                ) {
                    stack.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The variables the Rust code reads by name: the string literal given to
/// `var`, `var_os`, `required`, `optional`, `get`, `setting` or clap's `env =`.
fn variables_read_by_the_code() -> BTreeMap<String, String> {
    let root = repo_root();
    let mut out = BTreeMap::new();
    for dir in SOURCE_DIRS {
        for file in files_under(&root.join(dir)) {
            if file.extension().and_then(|e| e.to_str()) != Some("rs")
                || file.file_name().and_then(|n| n.to_str()) == Some("build.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let shown = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            for opener in [
                "var(\"",
                "var_os(\"",
                "required(\"",
                "optional(\"",
                "get(\"",
                "setting(\"",
                "env = \"",
            ] {
                for (i, _) in text.match_indices(opener) {
                    let rest = &text[i + opener.len()..];
                    let name = &rest[..rest.find('"').unwrap_or(0)];
                    if is_variable(name) {
                        out.entry(name.to_owned()).or_insert_with(|| shown.clone());
                    }
                }
            }
        }
    }
    out
}

/// `docs/configuration.md` describes every variable the code reads and the
/// template sets, once, and nothing else; every template parameter, once; and
/// names every output.
pub(super) async fn docs_configuration_names_every_variable_and_parameter(_env: &'static Env) {
    let page = Page::read(CONFIGURATION);
    let template = template();
    let mut problems = Vec::new();

    // Variables: one row each, across its variable tables.
    let mut documented: BTreeMap<String, usize> = BTreeMap::new();
    for table in page.tables("variable") {
        for (line, row) in table {
            for name in code_spans(&row[0]) {
                if documented.insert(name.clone(), line).is_some() {
                    problems.push(format!("{CONFIGURATION}:{line}: `{name}` has two rows"));
                }
            }
        }
    }
    assert!(
        !documented.is_empty(),
        "{CONFIGURATION}: no `| variable |` table"
    );
    let mut wanted = variables_read_by_the_code();
    for f in functions(&template) {
        let vars = f
            .properties
            .get("Environment")
            .map(|e| entries(&e["Variables"]))
            .unwrap_or_default();
        for (name, _) in vars {
            wanted
                .entry(name)
                .or_insert_with(|| format!("template.yaml ({})", f.binary));
        }
    }
    for (name, source) in &wanted {
        if !documented.contains_key(name) {
            problems.push(format!(
                "{CONFIGURATION}: `{name}` (read in {source}) has no row: add | `{name}` | <meaning> | <local default> |"
            ));
        }
    }
    let root = repo_root();
    let corpus: String = READERS
        .iter()
        .flat_map(|d| files_under(&root.join(d)))
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect::<Vec<_>>()
        .join("\n");
    for (name, line) in &documented {
        if !wanted.contains_key(name) && !corpus.contains(name.as_str()) {
            problems.push(format!(
                "{CONFIGURATION}:{line}: nothing reads `{name}`: remove its row"
            ));
        }
    }

    // Parameters: exactly the template's.
    let parameters: BTreeSet<String> = entries(&template["Parameters"])
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut rows: BTreeSet<String> = BTreeSet::new();
    for (line, row) in page.table("parameter") {
        for name in code_spans(&row[0]) {
            if !rows.insert(name.clone()) {
                problems.push(format!("{CONFIGURATION}:{line}: `{name}` has two rows"));
            }
            if !parameters.contains(&name) {
                problems.push(format!(
                    "{CONFIGURATION}:{line}: `{name}` is not a parameter of template.yaml: remove its row"
                ));
            }
        }
    }
    for name in parameters.difference(&rows) {
        problems.push(format!(
            "{CONFIGURATION}: the parameter table lacks `{name}`: add | `{name}` | <meaning, or the variable it sets> | <default> |"
        ));
    }

    // Outputs: each named in its section.
    let named: BTreeSet<String> = page
        .section("Outputs")
        .iter()
        .flat_map(|l| code_spans(l))
        .collect();
    for (name, _) in entries(&template["Outputs"]) {
        if !named.contains(&name) {
            problems.push(format!(
                "{CONFIGURATION}: the Outputs section does not name `{name}`"
            ));
        }
    }
    report(
        problems,
        "the configuration reference and the code disagree",
    );
}

// ---- Paths and links ------------------------------------------------------------

/// Whether `path` (repository-relative, `<x>` and `*` matching within a
/// segment) names something in the repository, or ends a path that does.
fn exists(root: &Path, path: &str, all_files: &[String]) -> bool {
    let trimmed = path.trim_end_matches('/');
    if !trimmed.contains(['<', '*']) && root.join(trimmed).exists() {
        return true;
    }
    let want: Vec<&str> = trimmed.split('/').collect();
    all_files.iter().any(|file| {
        let got: Vec<&str> = file.split('/').collect();
        // A directory is matched by any file under it, a file by itself;
        // anywhere in the tree when the path is relative to some directory.
        (0..got.len()).any(|start| {
            got.len() - start >= want.len()
                && want
                    .iter()
                    .zip(&got[start..])
                    .all(|(w, g)| segment_matches(w, g))
        })
    })
}

/// `<x>` and `*` match any run of characters within a segment.
fn segment_matches(pattern: &str, segment: &str) -> bool {
    let mut parts = Vec::new();
    let mut rest = pattern;
    loop {
        let next = [rest.find('<'), rest.find('*')].into_iter().flatten().min();
        match next {
            None => {
                parts.push(rest);
                break;
            }
            Some(i) => {
                parts.push(&rest[..i]);
                let skip = if rest[i..].starts_with('<') {
                    rest[i..].find('>').map_or(rest.len() - i, |e| e + 1)
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
    if parts.len() == 1 {
        return pattern == segment;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !segment.starts_with(first) || !segment[first.len()..].ends_with(last) {
        return false;
    }
    let mut at = first.len();
    let end = segment.len() - last.len();
    for part in &parts[1..parts.len() - 1] {
        match segment[at..end].find(part) {
            Some(i) => at += i + part.len(),
            None => return false,
        }
    }
    at <= end
}

/// Whether a code span is meant as a repository path.
fn is_path(span: &str, top_level: &BTreeSet<String>) -> bool {
    if span.is_empty()
        || span.contains([' ', '(', '=', '"', '\''])
        || span.contains("://")
        || span.starts_with(['/', '~', '$', '-'])
    {
        return false;
    }
    let first = span.split('/').next().unwrap_or_default();
    let extension = span
        .rsplit_once('.')
        .map(|(_, e)| e.trim_end_matches('/'))
        .unwrap_or_default();
    (span.contains('/') && top_level.contains(first)) || PATH_EXTENSIONS.contains(&extension)
}

/// Every repository path the README and `docs/` name exists; every link lands on
/// a page (and a heading of it); every page of `docs/` is listed in the README.
pub(super) async fn docs_name_only_paths_that_exist(_env: &'static Env) {
    let root = repo_root();
    let top_level: BTreeSet<String> = std::fs::read_dir(&root)
        .expect("repository root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !MADE_BY_TOOLS.iter().any(|m| m.trim_end_matches('/') == n))
        .collect();
    let all_files: Vec<String> = top_level
        .iter()
        .flat_map(|t| files_under(&root.join(t)))
        .filter_map(|f| Some(f.strip_prefix(&root).ok()?.to_string_lossy().into_owned()))
        .collect();
    let pages = pages();
    let anchors: BTreeMap<String, BTreeSet<String>> = pages
        .iter()
        .map(|p| (p.path.clone(), p.anchors()))
        .collect();
    let mut problems = Vec::new();
    for page in &pages {
        let dir = Path::new(&page.path).parent().unwrap_or(Path::new(""));
        for (n, line) in &page.lines {
            for span in code_spans(line) {
                let made = MADE_BY_TOOLS.iter().any(|m| span.starts_with(m));
                if is_path(&span, &top_level) && !made && !exists(&root, &span, &all_files) {
                    problems.push(format!(
                        "{}:{n}: `{span}` does not exist in the repository",
                        page.path
                    ));
                }
            }
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let path = if file.is_empty() {
                    page.path.clone()
                } else {
                    normalize(&dir.join(file))
                };
                if ARRIVING.contains(&path.as_str()) {
                    continue;
                }
                if !root.join(&path).exists() {
                    problems.push(format!(
                        "{}:{n}: the link to {target} lands nowhere ({path})",
                        page.path
                    ));
                } else if !anchor.is_empty()
                    && anchors.get(&path).is_some_and(|a| !a.contains(anchor))
                {
                    problems.push(format!(
                        "{}:{n}: {path} has no heading #{anchor}",
                        page.path
                    ));
                }
            }
        }
    }
    for path in ARRIVING {
        if root.join(path).exists() {
            problems.push(format!(
                "{path} exists now: remove it from ARRIVING in tests/it/contract/docs.rs"
            ));
        }
    }
    let readme = &pages[0];
    let listed: BTreeSet<String> = readme
        .lines
        .iter()
        .flat_map(|(_, l)| link_targets(l))
        .map(|t| t.split('#').next().unwrap_or_default().to_owned())
        .collect();
    for page in docs_pages() {
        if !listed.contains(&page) {
            problems.push(format!(
                "README.md: {page} is not listed: add it to the Documentation table"
            ));
        }
    }
    report(problems, "the docs name what is not there");
}

/// `a/b/../c` as `a/c`, without touching the filesystem.
fn normalize(path: &Path) -> String {
    let mut out: Vec<String> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(p) => out.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    out.join("/")
}

/// The checks above catch what they claim: a stale path, a link to a missing
/// heading, a metric row with the wrong unit; placeholders and suffixes match.
pub(super) async fn docs_checks_catch_what_they_claim(_env: &'static Env) {
    let root = repo_root();
    let files = vec![
        "shared/src/store/table/mod.rs".to_owned(),
        "functions/list-audit/src/main.rs".to_owned(),
        "events/list-audit.json".to_owned(),
    ];
    let top: BTreeSet<String> = ["shared", "functions", "events"].map(str::to_owned).into();
    // Paths: the README's stale one is refused, placeholders and tails match.
    assert!(is_path("shared/src/store/table.rs", &top));
    assert!(!exists(&root, "shared/src/store/table.rs", &files));
    assert!(exists(&root, "shared/src/store/table/", &files));
    assert!(exists(&root, "functions/<name>/src/main.rs", &files));
    assert!(exists(&root, "events/<function>.json", &files));
    assert!(exists(&root, "table/mod.rs", &files));
    assert!(!exists(&root, "events/<function>.yaml", &files));
    assert!(is_path("mod.rs", &top) && !is_path("customer.deleted", &top));
    assert!(!is_path("application/json", &top) && !is_path("/tmp/x.json", &top));
    assert!(!is_path("billing-dev seed --file x.json", &top));
    // Markdown: cells split outside code spans, headings' anchors, links.
    assert_eq!(cells("| `a|b` | c |"), ["`a|b`", "c"]);
    assert_eq!(
        slug("## `user.deleted` from the platform only"),
        "userdeleted-from-the-platform-only"
    );
    assert_eq!(slug("# Adding a listing filter"), "adding-a-listing-filter");
    assert_eq!(
        link_targets("see [x](a.md#b) and [y](../c.md)"),
        ["a.md#b", "../c.md"]
    );
    assert_eq!(normalize(Path::new("docs/../openapi.yaml")), "openapi.yaml");
    // Variables: names, not words.
    assert!(is_variable("JWT_ISSUER") && !is_variable("INFO") && !is_variable("Jwt_X"));
    // Tables: the header picks the table; fenced blocks are not read.
    let page = Page {
        path: "x.md".to_owned(),
        lines: vec![
            (1, "| metric | unit |".to_owned()),
            (2, "|---|---|".to_owned()),
            (3, "| `A` | Count |".to_owned()),
            (4, String::new()),
            (5, "| other |".to_owned()),
            (6, "| `B` |".to_owned()),
        ],
    };
    assert_eq!(
        page.table("metric"),
        vec![(3, vec!["`A`".to_owned(), "Count".to_owned()])]
    );
}
