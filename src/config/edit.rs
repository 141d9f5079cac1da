//! Edits of the config file that keep the admin's comments and layout (`toml_edit`): what
//! `kidsafe setup` writes. Text in, text out; the caller checks the result with the same
//! checker as every load before anything is written.

use std::net::SocketAddr;

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

/// The name of the `[[clients]]` rule `kidsafe setup` writes for the parents' devices; a
/// second run replaces it instead of adding another.
pub const PARENTS_RULE: &str = "parents' devices";

/// What `kidsafe setup` sets.
#[derive(Debug, Clone, Default)]
pub struct SetupEdit {
    /// `[server] listen`, when given.
    pub listen: Vec<SocketAddr>,
    /// `[defaults] profile`, when given.
    pub default_profile: Option<String>,
    /// The parents' devices (MACs, addresses or networks) and the profile they get.
    pub parents: Option<(Vec<String>, String)>,
}

/// Applies `edit` to the config text `source`.
pub fn apply(source: &str, edit: &SetupEdit) -> Result<String, String> {
    let mut doc: DocumentMut = source
        .parse()
        .map_err(|e: toml_edit::TomlError| format!("the config is not valid TOML: {e}"))?;
    if !edit.listen.is_empty() {
        let server = table(&mut doc, "server")?;
        let mut listen = Array::new();
        for addr in &edit.listen {
            listen.push(addr.to_string());
        }
        server["listen"] = value(listen);
    }
    if let Some(profile) = &edit.default_profile {
        table(&mut doc, "defaults")?["profile"] = value(profile.as_str());
    }
    if let Some((matches, profile)) = &edit.parents {
        let mut rule = Table::new();
        rule["name"] = value(PARENTS_RULE);
        let mut list = Array::new();
        for m in matches {
            list.push(m.as_str());
        }
        rule["match"] = value(list);
        rule["profile"] = value(profile.as_str());
        let clients = doc
            .entry("clients")
            .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
            .as_array_of_tables_mut()
            .ok_or("`clients` is not a list of [[clients]] tables")?;
        let existing = clients
            .iter()
            .position(|t| t.get("name").and_then(Item::as_str) == Some(PARENTS_RULE));
        match existing {
            Some(i) => {
                if let Some(old) = clients.get_mut(i) {
                    *old = rule;
                }
            }
            None => clients.push(rule),
        }
    }
    Ok(doc.to_string())
}

fn table<'d>(doc: &'d mut DocumentMut, name: &str) -> Result<&'d mut Table, String> {
    doc.entry(name)
        .or_insert(Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| format!("`{name}` is not a [{name}] table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "# my house\n[server]\n# where\nlisten = [\"127.0.0.1:53\"]\n\n\
        [defaults]\nprofile = \"teen\" # unknown devices\n\n[profiles.teen]\npreset = \"13-15\"\n";

    #[test]
    fn keeps_comments_sets_keys_and_replaces_its_own_rule() {
        let edit = SetupEdit {
            listen: vec!["192.168.1.1:53".parse().expect("addr")],
            default_profile: Some("child".into()),
            parents: Some((vec!["aa:bb:cc:dd:ee:01".into()], "open".into())),
        };
        let once = apply(SOURCE, &edit).expect("applies");
        assert!(once.contains("# my house\n[server]\n# where\nlisten = [\"192.168.1.1:53\"]"));
        assert!(once.contains("profile = \"child\""), "{once}");
        assert!(once.contains("[[clients]]\nname = \"parents' devices\"\nmatch = [\"aa:bb:cc:dd:ee:01\"]\nprofile = \"open\""), "{once}");
        let twice = apply(&once, &edit).expect("applies");
        assert_eq!(twice.matches("[[clients]]").count(), 1, "{twice}");
        assert_eq!(apply(SOURCE, &SetupEdit::default()).expect("no-op"), SOURCE);
    }
}
