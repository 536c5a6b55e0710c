//! Which waiting backups and restores may start now: Velero 1.18's queue rule for
//! `--concurrent-backups N`. A waiting backup starts when fewer than N run and it shares no
//! namespace with a running backup or restore, nor with a backup that waits ahead of it
//! (so a backup never overtakes an earlier one it conflicts with). Namespaces are resolved
//! against the cluster's, so a backup of every namespace conflicts with every other.
//!
//! Unlike Velero, waiting backups stay `New` (no `Queued` phase, no `queuePosition`): tools
//! that do not know 1.18's phases keep working, and the order is the creation order.
//!
//! Restores run one at a time (as Velero's), and never beside a backup of a namespace
//! they write to.

use std::collections::BTreeSet;

use repo_k8s::filter::NamespaceFilter;
use repo_k8s::velero::{Backup, Restore};

/// The namespaces a backup reads or a restore writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Namespaces {
    /// Every namespace, present and future (a restore of everything).
    All,
    Some(BTreeSet<String>),
}

impl Namespaces {
    pub fn overlaps(&self, other: &Namespaces) -> bool {
        match (self, other) {
            (Namespaces::Some(a), Namespaces::Some(b)) => !a.is_disjoint(b),
            (Namespaces::All, Namespaces::Some(s)) | (Namespaces::Some(s), Namespaces::All) => {
                !s.is_empty()
            }
            (Namespaces::All, Namespaces::All) => true,
        }
    }
}

/// The namespaces of `backup`, among `cluster` (the cluster's namespaces) and the names it
/// includes literally. Invalid filters give none: the backup fails validation at once.
pub fn of_backup(backup: &Backup, cluster: &[String]) -> Namespaces {
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
    let (includes, excludes) = (
        list(&backup.spec.included_namespaces),
        list(&backup.spec.excluded_namespaces),
    );
    let Ok(filter) = NamespaceFilter::new(&includes, &excludes) else {
        return Namespaces::Some(BTreeSet::new());
    };
    let literal = includes
        .iter()
        .filter(|n| !n.contains(['*', '?', '[']))
        .filter(|n| filter.includes(n));
    let found = cluster.iter().filter(|n| filter.includes(n));
    Namespaces::Some(literal.chain(found).cloned().collect())
}

/// The namespaces `restore` writes to: its included namespaces, mapped; all when it
/// includes every namespace.
pub fn of_restore(restore: &Restore) -> Namespaces {
    let includes = restore.spec.included_namespaces.clone().unwrap_or_default();
    if includes.is_empty() || includes.iter().any(|n| n.contains(['*', '?', '['])) {
        return Namespaces::All;
    }
    let mapping = &restore.spec.namespace_mapping;
    Namespaces::Some(
        includes
            .iter()
            .map(|n| mapping.get(n).unwrap_or(n).clone())
            .collect(),
    )
}

/// Of `waiting` (oldest first, with their namespaces), the indices that may start now,
/// beside `running` (the namespaces of what runs) of which `running_backups` are backups.
pub fn startable_backups(
    waiting: &[Namespaces],
    running: &[Namespaces],
    running_backups: usize,
    concurrent_backups: usize,
) -> Vec<usize> {
    let mut ahead: Vec<&Namespaces> = running.iter().collect();
    let mut slots = concurrent_backups.max(1).saturating_sub(running_backups);
    let mut start = Vec::new();
    for (i, ns) in waiting.iter().enumerate() {
        if slots > 0 && !ahead.iter().any(|a| a.overlaps(ns)) {
            start.push(i);
            slots -= 1;
        }
        ahead.push(ns);
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(names: &[&str]) -> Namespaces {
        Namespaces::Some(names.iter().map(|s| s.to_string()).collect())
    }

    fn backup(includes: &[&str], excludes: &[&str]) -> Backup {
        let mut b = Backup::default();
        let v = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        b.spec.included_namespaces = v(includes);
        b.spec.excluded_namespaces = v(excludes);
        b
    }

    // Velero's TestDetectNSConflictsInternal cases, and the queue's order.
    #[test]
    fn namespaces_of_backups() {
        let cluster: Vec<String> = ["ns1", "ns2", "ns3", "other"].map(String::from).to_vec();
        assert_eq!(of_backup(&backup(&["ns1"], &[]), &cluster), ns(&["ns1"]));
        assert_eq!(
            of_backup(&backup(&["*"], &["ns2"]), &cluster),
            ns(&["ns1", "ns3", "other"])
        );
        assert_eq!(
            of_backup(&backup(&[], &[]), &cluster),
            ns(&["ns1", "ns2", "ns3", "other"])
        );
        assert_eq!(
            of_backup(&backup(&["ns*"], &[]), &cluster),
            ns(&["ns1", "ns2", "ns3"])
        );
        // A namespace not (yet) in the cluster still counts.
        assert_eq!(of_backup(&backup(&["new"], &[]), &cluster), ns(&["new"]));
    }

    #[test]
    fn queue_rule() {
        let all = ns(&["a", "b", "c"]);
        // Disjoint backups run side by side up to the limit.
        assert_eq!(
            startable_backups(&[ns(&["a"]), ns(&["b"]), ns(&["c"])], &[], 0, 2),
            [0, 1]
        );
        // A conflict with a running backup waits; a later disjoint one goes ahead.
        assert_eq!(
            startable_backups(&[ns(&["a"]), ns(&["b"])], &[ns(&["a"])], 1, 4),
            [1]
        );
        // A later backup never overtakes an earlier waiting one it conflicts with.
        assert_eq!(
            startable_backups(&[ns(&["a"]), ns(&["a", "b"])], &[ns(&["a"])], 1, 4),
            Vec::<usize>::new()
        );
        // Every namespace conflicts with everything.
        assert_eq!(
            startable_backups(&[all.clone(), ns(&["b"])], &[], 0, 4),
            [0]
        );
        assert_eq!(
            startable_backups(&[ns(&["b"])], &[Namespaces::All], 0, 4),
            Vec::<usize>::new()
        );
        // A backup with no namespaces (cluster-scoped only) conflicts with nothing.
        assert_eq!(startable_backups(&[ns(&[])], &[all], 1, 4), [0]);
        // The limit counts running backups only.
        assert_eq!(
            startable_backups(&[ns(&["b"])], &[ns(&["a"])], 1, 1),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn namespaces_of_restores() {
        let mut r = Restore::default();
        assert_eq!(of_restore(&r), Namespaces::All);
        r.spec.included_namespaces = Some(vec!["shop".into()]);
        r.spec
            .namespace_mapping
            .insert("shop".into(), "shop-copy".into());
        assert_eq!(of_restore(&r), ns(&["shop-copy"]));
    }
}
