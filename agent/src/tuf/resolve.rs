//! Finding a target in verified metadata as TUF §5.6.7 says: the top-level targets first,
//! then, in order, each delegated role whose paths cover the name (and whose parents' do),
//! depth first, each role once. A terminating delegation, or a role that could not be
//! loaded, ends the search. An entry a role lists outside its paths is never reached, so it
//! is ignored while the rest of the repository still counts.

use std::collections::HashSet;

use otter_keys::tuf::delegation::within;
use tough::TargetName;
use tough::schema::{Target, Targets};

use super::Trusted;
use super::update::verified_by;

/// Why a name resolves to no target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotFound {
    /// No role that may list it does.
    Absent,
    /// The search ended at a role that could not be loaded.
    Unavailable {
        /// The role.
        role: String,
        /// Why it could not be loaded.
        why: String,
    },
}

/// The target `name` resolves to.
pub fn find<'a>(trusted: &'a Trusted, name: &TargetName) -> Result<&'a Target, NotFound> {
    let mut visited = HashSet::new();
    match search(trusted, &trusted.targets.signed, name, &mut visited) {
        Search::Found(target) => Ok(target),
        Search::Missing | Search::Stop(None) => Err(NotFound::Absent),
        Search::Stop(Some(why)) => Err(why),
    }
}

/// Every target the metadata lists that resolves to itself: each name with the entry
/// [`find`] picks for it.
pub fn all(trusted: &Trusted) -> Vec<(&TargetName, &Target)> {
    let roles = std::iter::once(&trusted.targets.signed).chain(
        trusted
            .delegated
            .values()
            .filter_map(|d| d.metadata.as_ref().ok())
            .map(|s| &s.signed),
    );
    let mut out: Vec<(&TargetName, &Target)> = roles
        .flat_map(|role| role.targets.iter())
        .filter(|(name, target)| {
            find(trusted, name).is_ok_and(|found| std::ptr::eq(found, *target))
        })
        .collect();
    out.sort_by(|a, b| a.0.raw().cmp(b.0.raw()));
    out
}

enum Search<'a> {
    Found(&'a Target),
    /// Not in this role or below; the search goes on.
    Missing,
    /// The search ends here (a terminating delegation, or a failed role).
    Stop(Option<NotFound>),
}

fn search<'a>(
    trusted: &'a Trusted,
    role: &'a Targets,
    name: &TargetName,
    visited: &mut HashSet<&'a str>,
) -> Search<'a> {
    if let Some(target) = role.targets.get(name) {
        return Search::Found(target);
    }
    let Some(delegations) = &role.delegations else {
        return Search::Missing;
    };
    for delegated in &delegations.roles {
        if !within(delegated, name) || !visited.insert(delegated.name.as_str()) {
            continue;
        }
        let unavailable = |why: String| {
            Search::Stop(Some(NotFound::Unavailable {
                role: delegated.name.clone(),
                why,
            }))
        };
        let Some(loaded) = trusted.delegated.get(&delegated.name) else {
            return unavailable("not loaded".into());
        };
        // Loaded through another delegation (another parent naming the same role with
        // other keys): not what this delegation vouches for.
        if loaded.verified_by != verified_by(delegated) {
            return unavailable("verified under another delegation of that name".into());
        }
        match &loaded.metadata {
            Ok(child) => match search(trusted, &child.signed, name, visited) {
                Search::Missing => {}
                found_or_stop => return found_or_stop,
            },
            Err(why) => return unavailable(why.clone()),
        }
        if delegated.terminating {
            return Search::Stop(None);
        }
    }
    Search::Missing
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::num::NonZeroU64;

    use tough::schema::{
        DelegatedRole, Delegations, Hashes, PathPattern, PathSet, Root, Signed, Snapshot, Timestamp,
    };

    use super::super::update::Delegated;
    use super::*;

    fn when() -> jiff::Timestamp {
        jiff::Timestamp::from_second(4_000_000_000).unwrap()
    }

    fn signed<T>(signed: T) -> Signed<T> {
        Signed {
            signed,
            signatures: Vec::new(),
        }
    }

    fn target(length: u64) -> Target {
        Target {
            length,
            hashes: Hashes {
                sha256: vec![0; 32].into(),
                _extra: HashMap::new(),
            },
            custom: HashMap::new(),
            _extra: HashMap::new(),
        }
    }

    fn name(s: &str) -> TargetName {
        TargetName::new(s).unwrap()
    }

    fn listing(entries: &[(&str, u64)]) -> Targets {
        let mut t = Targets::new("1.0.0".into(), NonZeroU64::MIN, when());
        for (n, len) in entries {
            t.targets.insert(name(n), target(*len));
        }
        t
    }

    fn role(name: &str, paths: &[&str], terminating: bool) -> DelegatedRole {
        DelegatedRole {
            name: name.into(),
            keyids: Vec::new(),
            threshold: NonZeroU64::MIN,
            paths: PathSet::Paths(
                paths
                    .iter()
                    .map(|p| PathPattern::new(*p).unwrap())
                    .collect(),
            ),
            terminating,
            targets: None,
        }
    }

    /// Top-level lists `top.img`; it delegates `a/*` to `a` (terminating), then `a/*` and
    /// `b/*` to `b`, then `c/*` to `broken`, which failed to load.
    fn trusted() -> Trusted {
        let mut top = listing(&[("top.img", 1)]);
        top.delegations = Some(Delegations {
            keys: HashMap::new(),
            roles: vec![
                role("a", &["a/*"], true),
                role("b", &["a/*", "b/*"], false),
                role("broken", &["c/*"], false),
            ],
        });
        let a = listing(&[("a/one", 2), ("b/stray", 3)]);
        let b = listing(&[("a/two", 4), ("b/three", 5), ("elsewhere", 6)]);
        let root = Root {
            spec_version: "1.0.0".into(),
            consistent_snapshot: true,
            version: NonZeroU64::MIN,
            expires: when(),
            keys: HashMap::new(),
            roles: HashMap::new(),
            _extra: HashMap::new(),
        };
        Trusted {
            root: signed(root),
            timestamp: signed(Timestamp::new("1.0.0".into(), NonZeroU64::MIN, when())),
            snapshot: signed(Snapshot::new("1.0.0".into(), NonZeroU64::MIN, when())),
            targets: signed(top),
            delegated: HashMap::from([
                ("a".to_owned(), loaded(Ok(signed(a)))),
                ("b".to_owned(), loaded(Ok(signed(b)))),
                ("broken".to_owned(), loaded(Err("bad signature".to_owned()))),
            ]),
        }
    }

    /// Loaded through a delegation with no keys and threshold 1, as `role` makes them.
    fn loaded(metadata: Result<Signed<Targets>, String>) -> Delegated {
        Delegated {
            verified_by: (Vec::new(), 1),
            metadata,
        }
    }

    fn length(t: &Trusted, n: &str) -> Result<u64, NotFound> {
        find(t, &name(n)).map(|t| t.length)
    }

    #[test]
    fn names_resolve_top_level_first_then_through_delegations_in_order() {
        let t = trusted();
        assert_eq!(length(&t, "top.img"), Ok(1));
        assert_eq!(length(&t, "a/one"), Ok(2));
        assert_eq!(length(&t, "b/three"), Ok(5));
    }

    #[test]
    fn a_terminating_delegation_ends_the_search() {
        // `b` lists a/two, but `a` covers a/* first and is terminating.
        assert_eq!(length(&trusted(), "a/two"), Err(NotFound::Absent));
    }

    #[test]
    fn an_entry_outside_its_roles_paths_is_ignored_and_the_rest_counts() {
        let t = trusted();
        // `a` lists b/stray, outside a/*: the search for b/* goes to `b`, which lacks it.
        assert_eq!(length(&t, "b/stray"), Err(NotFound::Absent));
        assert_eq!(length(&t, "elsewhere"), Err(NotFound::Absent));
        let all: Vec<&str> = all(&t).iter().map(|(n, _)| n.raw()).collect();
        assert_eq!(all, ["a/one", "b/three", "top.img"]);
    }

    #[test]
    fn a_role_that_failed_to_load_ends_the_search_with_its_reason() {
        assert_eq!(
            length(&trusted(), "c/x"),
            Err(NotFound::Unavailable {
                role: "broken".into(),
                why: "bad signature".into()
            })
        );
    }

    #[test]
    fn a_role_verified_under_another_delegation_of_its_name_is_not_used() {
        let mut t = trusted();
        if let Some(b) = t.delegated.get_mut("b") {
            b.verified_by = (vec!["00".into()], 1);
        }
        assert!(matches!(
            length(&t, "b/three"),
            Err(NotFound::Unavailable { role, .. }) if role == "b"
        ));
    }
}
