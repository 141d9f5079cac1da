//! The national feed operator's side: `kidsafe feed build`.
//!
//! A sources file (TOML, docs/feed-operator.md) names, per kidsafe category, local list files
//! (paths relative to the sources file) and the operator's corrections. Building reads every
//! file with the lenient list reader ([`canonical::canonicalise`], which is
//! [`crate::blocklist::parse`]'s), maps it onto its category (synonyms such as `drogue` or
//! `social_networks` resolve through [`crate::category::canonical_name`]), applies the
//! corrections (`[[remove]]` takes a name and every name below it out of one category,
//! `[[add]]` puts names in), drops every name that equals, lies above or lies below a helpline
//! (the built-in [`crate::config::presets::HELPLINES`] plus the file's `[never_block]`) from
//! every block-type category, writes the canonical lists into a private staging directory and
//! publishes them with [`publish::publish`].
//!
//! Reproducible: the lists depend only on the input files and the sources file (names sorted
//! and unique, categories in name order), so two builds of the same inputs into fresh output
//! directories give byte-identical list files; the manifest differs only in `published_at`
//! and `expires_at` (and with them its signature), which it must carry.
//!
//! Fails loudly, publishing nothing, when a listed file is missing, unreadable or yields no
//! names: a source that disappeared must never become a shrunken feed. URL sources are not
//! supported: fetch them beforehand (docs/feed-operator.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::FeedError;
use super::canonical;
use super::publish::{self, PublishOptions, PublishSummary};
use super::sign::SecretKey;
use crate::category::CategoryKind;

/// Why a build stopped before publishing anything.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The sources file is unreadable or says something wrong.
    #[error("{path}: {message}")]
    Sources {
        /// The sources file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A list file the sources name is missing, unreadable or empty.
    #[error(
        "{path} ({category}): {message}; nothing was published (a source that disappeared must \
         not become a shrunken feed)"
    )]
    Input {
        /// The list file.
        path: PathBuf,
        /// The category it feeds.
        category: String,
        /// What is wrong.
        message: String,
    },
    /// Publishing the built lists failed.
    #[error(transparent)]
    Publish(#[from] FeedError),
}

/// The sources file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesFile {
    /// The feed id, unless `--feed-id` gives one.
    #[serde(default)]
    feed_id: Option<String>,
    /// One entry per category: the files that fill it.
    #[serde(default, rename = "list")]
    lists: Vec<ListEntry>,
    /// Names no block category may hold, nor any name above or below them.
    #[serde(default)]
    never_block: Option<NeverBlock>,
    /// Names taken out of one category, with every name below them.
    #[serde(default)]
    remove: Vec<Correction>,
    /// Names put into one category.
    #[serde(default)]
    add: Vec<Correction>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListEntry {
    category: String,
    files: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NeverBlock {
    names: Vec<String>,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Correction {
    category: String,
    names: Vec<String>,
    reason: String,
}

/// What `kidsafe feed build` was asked to do.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The sources file.
    pub sources: PathBuf,
    /// The feed directory (as for `feed publish`).
    pub out_dir: PathBuf,
    /// The feed id; overrides the sources file's `feed_id`.
    pub feed_id: Option<String>,
    /// How long the manifest stays valid.
    pub expires_in: std::time::Duration,
    /// The shortest poll interval clients should use.
    pub min_poll: std::time::Duration,
    /// The publication time.
    pub now: jiff::Timestamp,
}

/// One category as built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltCategory {
    /// The canonical category id.
    pub id: String,
    /// Names in the published list.
    pub names: usize,
    /// The files that fed it, as the sources file names them.
    pub files: Vec<String>,
}

/// The canonical lists a build produces, before publishing.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// Category id → sorted, unique canonical names.
    pub lists: BTreeMap<String, Vec<String>>,
    /// Per category, the files that fed it.
    pub files: BTreeMap<String, Vec<String>>,
    /// What each correction did, one line each.
    pub corrections: Vec<String>,
    /// Helpline names (or names above or below one) dropped from a block category, one line
    /// each.
    pub helplines_dropped: Vec<String>,
    /// The feed id the sources file gives, if any.
    pub feed_id: Option<String>,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildSummary {
    /// Every category, in name order.
    pub categories: Vec<BuiltCategory>,
    /// What the corrections did.
    pub corrections: Vec<String>,
    /// Helpline names dropped.
    pub helplines_dropped: Vec<String>,
    /// The publication.
    pub published: PublishSummary,
}

impl BuildSummary {
    /// Human summary: the categories, the corrections, the helplines, then the publication.
    pub fn render(&self) -> String {
        let mut out = String::from("built:\n");
        for c in &self.categories {
            out.push_str(&format!(
                "  {:<14} {:>9} names  from {}\n",
                c.id,
                c.names,
                c.files.join(", ")
            ));
        }
        for line in &self.corrections {
            out.push_str(&format!("correction: {line}\n"));
        }
        for line in &self.helplines_dropped {
            out.push_str(&format!("helpline guard: {line}\n"));
        }
        out.push_str(&self.published.render());
        out
    }
}

/// Reads the sources file and every list it names, and returns the canonical lists with the
/// corrections and the helpline guard applied. Writes nothing.
pub fn build_lists(sources: &Path) -> Result<Built, BuildError> {
    let bad = |message: String| BuildError::Sources {
        path: sources.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(sources).map_err(|e| bad(format!("cannot read: {e}")))?;
    let file: SourcesFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if file.lists.is_empty() {
        return Err(bad("no [[list]] entries".into()));
    }
    let base = sources.parent().unwrap_or(Path::new("."));
    let mut built = Built {
        feed_id: file.feed_id.clone(),
        ..Built::default()
    };
    let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in &file.lists {
        let id = category_id(&entry.category).map_err(&bad)?;
        if entry.files.is_empty() {
            return Err(bad(format!("[[list]] {:?} names no files", entry.category)));
        }
        let set = sets.entry(id.clone()).or_default();
        for rel in &entry.files {
            let path = base.join(rel);
            let input = |message: String| BuildError::Input {
                path: path.clone(),
                category: id.clone(),
                message,
            };
            let bytes = std::fs::read(&path).map_err(|e| input(format!("cannot read: {e}")))?;
            let (names, _skipped) = canonical::canonicalise(&String::from_utf8_lossy(&bytes));
            if names.is_empty() {
                return Err(input("no names in it".into()));
            }
            set.extend(names);
            built.files.entry(id.clone()).or_default().push(rel.clone());
        }
    }

    for c in &file.remove {
        let (id, names) = correction(c, &sets).map_err(&bad)?;
        let set = sets.get_mut(&id).expect("checked by correction()");
        for name in names {
            let below = format!(".{name}");
            let gone: Vec<String> = set
                .iter()
                .filter(|n| **n == name || n.ends_with(&below))
                .cloned()
                .collect();
            for n in &gone {
                set.remove(n);
            }
            built.corrections.push(format!(
                "{id}: removed {name} ({} names) — {}",
                gone.len(),
                one_line(&c.reason)
            ));
        }
    }
    for c in &file.add {
        let (id, names) = correction(c, &sets).map_err(&bad)?;
        let set = sets.get_mut(&id).expect("checked by correction()");
        for name in names {
            let new = set.insert(name.clone());
            built.corrections.push(format!(
                "{id}: added {name}{} — {}",
                if new { "" } else { " (already listed)" },
                one_line(&c.reason)
            ));
        }
    }

    let mut helplines: Vec<String> = crate::config::presets::HELPLINES
        .iter()
        .map(|h| (*h).to_string())
        .collect();
    if let Some(nb) = &file.never_block {
        if nb.reason.trim().is_empty() {
            return Err(bad("[never_block] needs a reason".into()));
        }
        helplines.extend(normalise_names(&nb.names).map_err(&bad)?);
    }
    helplines.sort();
    helplines.dedup();
    for (id, set) in &mut sets {
        let allow_kind = crate::category::known(id).is_some_and(|k| k.kind == CategoryKind::Allow);
        if allow_kind {
            continue;
        }
        let hits: Vec<(String, String)> = set
            .iter()
            .filter_map(|n| {
                helplines
                    .iter()
                    .find(|h| touches(n, h))
                    .map(|h| (n.clone(), h.clone()))
            })
            .collect();
        for (name, helpline) in hits {
            set.remove(&name);
            let how = if name == helpline {
                "a helpline".to_string()
            } else if helpline.ends_with(&format!(".{name}")) {
                format!("above the helpline {helpline}")
            } else {
                format!("below the helpline {helpline}")
            };
            built.helplines_dropped.push(format!(
                "{id}: dropped {name} ({how}; helplines are never blocked)"
            ));
        }
    }
    for (id, set) in sets {
        built.lists.insert(id, set.into_iter().collect());
    }
    Ok(built)
}

/// Builds the lists ([`build_lists`]), writes them into a staging directory and publishes them
/// into `opts.out_dir` with `key`.
pub fn build(key: &SecretKey, opts: &BuildOptions) -> Result<BuildSummary, BuildError> {
    let built = build_lists(&opts.sources)?;
    let staging =
        tempfile::tempdir().map_err(|e| FeedError::io("cannot create a staging directory", e))?;
    write_lists(&built, staging.path())?;
    let published = publish::publish(
        key,
        &PublishOptions {
            lists_dir: staging.path().to_path_buf(),
            out_dir: opts.out_dir.clone(),
            feed_id: opts.feed_id.clone().or_else(|| built.feed_id.clone()),
            expires_in: opts.expires_in,
            min_poll: opts.min_poll,
            encoding: None,
            now: opts.now,
        },
    )?;
    Ok(BuildSummary {
        categories: built
            .lists
            .iter()
            .map(|(id, names)| BuiltCategory {
                id: id.clone(),
                names: names.len(),
                files: built.files.get(id).cloned().unwrap_or_default(),
            })
            .collect(),
        corrections: built.corrections,
        helplines_dropped: built.helplines_dropped,
        published,
    })
}

/// Writes `<category>.txt` per built list into `dir`, one name a line.
pub fn write_lists(built: &Built, dir: &Path) -> Result<(), FeedError> {
    for (id, names) in &built.lists {
        let path = dir.join(format!("{id}.txt"));
        let mut text = String::with_capacity(names.iter().map(|n| n.len() + 1).sum());
        for n in names {
            text.push_str(n);
            text.push('\n');
        }
        std::fs::write(&path, text)
            .map_err(|e| FeedError::io(format!("cannot write {}", path.display()), e))?;
    }
    Ok(())
}

/// Whether `name` equals `helpline` or lies above or below it.
fn touches(name: &str, helpline: &str) -> bool {
    name == helpline
        || name.ends_with(&format!(".{helpline}"))
        || helpline.ends_with(&format!(".{name}"))
}

fn category_id(name: &str) -> Result<String, String> {
    let id = crate::category::canonical_name(name);
    if id == publish::ALLOW_ID || !crate::category::is_valid_name(&id) {
        return Err(format!(
            "{name:?} is not a category name (a-z, 0-9, '_', '-'; not \"allow\")"
        ));
    }
    Ok(id)
}

/// A correction's category (which some `[[list]]` must fill) and its canonical names.
fn correction(
    c: &Correction,
    sets: &BTreeMap<String, BTreeSet<String>>,
) -> Result<(String, Vec<String>), String> {
    let id = category_id(&c.category)?;
    if !sets.contains_key(&id) {
        return Err(format!(
            "a correction for category {id:?}, which no [[list]] fills"
        ));
    }
    if c.reason.trim().is_empty() {
        return Err(format!("a correction for {id:?} without a reason"));
    }
    Ok((id, normalise_names(&c.names)?))
}

/// Each name through the list reader; one it refuses is an error, not a silent skip.
fn normalise_names(names: &[String]) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|n| match canonical::canonicalise(n).0.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(format!("{n:?} is not a domain name")),
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
