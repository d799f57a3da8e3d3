//! Keeping the index in step with nodes and pods, and tracking a new key.

use std::hash::Hash;
use std::sync::Arc;

use super::{
    FxMap, IndexedTerm, KeyIndex, OwnedTerm, PodLabels, SetEntry, SetId, TermId, TermIndexing, TermKind, TopologyIndex,
    distinct, fx_hash, has_hard_taint, owned_terms, term_indexing,
};
use crate::intern::Sym;
use crate::model::{AffinityTerm, Node, Pod};
use crate::nodeinfo::NodeInfo;

impl TopologyIndex {
    /// Starts tracking `key`, counting the nodes and pods already on `nodes`.
    pub fn track<'a>(&mut self, key: Sym, nodes: impl Iterator<Item = &'a NodeInfo>) {
        if self.keys.contains_key(&key) {
            return;
        }
        let mut ki = KeyIndex::default();
        for n in nodes {
            let Some(domain) = n.node.labels.get(key) else {
                ki.missing.insert(n.id);
                continue;
            };
            ki.set_column(n.id, Some(domain));
            *ki.domains.entry(domain).or_insert(0) += 1;
            for pod in &n.pods {
                if let Some(set) = self.find_set(pod) {
                    bump(ki.by_set.entry(set).or_default(), domain, 1);
                }
                for (kind, term, weight) in owned_terms(pod) {
                    if term.topology_key != key {
                        continue;
                    }
                    if let Some(t) = self.find_term(kind, pod.namespace, term).and_then(|id| self.terms.get_mut(id.0)) {
                        bump(&mut t.domains, domain, weight);
                    }
                }
            }
        }
        self.keys.insert(key, ki);
    }

    /// Counts `pod` on `node`.
    pub fn add_pod(&mut self, node: &Node, pod: &Pod) {
        self.apply_pod(node, pod, 1);
    }

    /// Uncounts `pod` on `node`.
    pub fn remove_pod(&mut self, node: &Node, pod: &Pod) {
        self.apply_pod(node, pod, -1);
    }

    /// Counts the node `info` and every pod on it.
    pub fn add_node(&mut self, info: &NodeInfo) {
        self.num_nodes += 1;
        if has_hard_taint(&info.node) {
            self.hard_tainted.insert(info.id);
        }
        for (key, ki) in &mut self.keys {
            let domain = info.node.labels.get(*key);
            ki.set_column(info.id, domain);
            match domain {
                Some(d) => *ki.domains.entry(d).or_insert(0) += 1,
                None => {
                    ki.missing.insert(info.id);
                }
            }
        }
        for pod in &info.pods {
            self.apply_pod(&info.node, pod, 1);
        }
    }

    /// Recounts a node whose pods changed from `old` to `new` (the node object itself did
    /// not change): only the pods that differ are uncounted or counted, which is what makes
    /// refreshing a snapshot O(changed pods) rather than O(pods on changed nodes). Pods are
    /// compared by identity; an equal pod in a different allocation is recounted, which gives
    /// the same totals.
    pub fn replace_pods(&mut self, node: &Node, old: &[Arc<Pod>], new: &[Arc<Pod>]) {
        // The usual refresh adds one pod at the end, or removes one.
        let same = |a: &Arc<Pod>, b: &Arc<Pod>| Arc::ptr_eq(a, b);
        let common = old.iter().zip(new).take_while(|(a, b)| same(a, b)).count();
        let (old, new) = (&old[common..], &new[common..]);
        if old.is_empty() || new.is_empty() {
            old.iter().for_each(|p| self.apply_pod(node, p, -1));
            new.iter().for_each(|p| self.apply_pod(node, p, 1));
            return;
        }
        let key = |p: &Arc<Pod>| Arc::as_ptr(p) as usize;
        let mut gone: Vec<&Arc<Pod>> = old.iter().collect();
        let mut came: Vec<&Arc<Pod>> = new.iter().collect();
        gone.sort_unstable_by_key(|p| key(p));
        came.sort_unstable_by_key(|p| key(p));
        let (mut i, mut j) = (0, 0);
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        while i < gone.len() || j < came.len() {
            match (gone.get(i), came.get(j)) {
                (Some(a), Some(b)) if key(a) == key(b) => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if key(a) < key(b) => {
                    removed.push(*a);
                    i += 1;
                }
                (Some(a), None) => {
                    removed.push(*a);
                    i += 1;
                }
                (_, Some(b)) => {
                    added.push(*b);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        removed.into_iter().for_each(|p| self.apply_pod(node, p, -1));
        added.into_iter().for_each(|p| self.apply_pod(node, p, 1));
    }

    /// Uncounts the node `info` and every pod on it.
    pub fn remove_node(&mut self, info: &NodeInfo) {
        for pod in &info.pods {
            self.apply_pod(&info.node, pod, -1);
        }
        self.num_nodes = self.num_nodes.saturating_sub(1);
        self.hard_tainted.remove(&info.id);
        for (key, ki) in &mut self.keys {
            ki.set_column(info.id, None);
            match info.node.labels.get(*key) {
                Some(d) => bump_u32(&mut ki.domains, d),
                None => {
                    ki.missing.remove(&info.id);
                }
            }
        }
    }

    /// Adds (`sign` 1) or removes (`sign` -1) `pod` on `node`: its label set's counts per node
    /// and per tracked domain, and its terms' counts per domain.
    fn apply_pod(&mut self, node: &Node, pod: &Pod, sign: i64) {
        let set = if sign > 0 { Some(self.acquire_set(pod)) } else { self.find_set(pod) };
        if let Some(set) = set {
            bump_nested(&mut self.node_pods, set, node.name, sign);
            for (key, ki) in &mut self.keys {
                if let Some(domain) = node.labels.get(*key) {
                    bump_nested(&mut ki.by_set, set, domain, sign);
                }
            }
            if sign < 0 {
                self.release_set(pod, set);
            }
        }
        for (kind, term, weight) in owned_terms(pod) {
            let id = if sign > 0 {
                Some(self.acquire_term(kind, pod.namespace, term))
            } else {
                self.find_term(kind, pod.namespace, term)
            };
            let tracked = self.keys.contains_key(&term.topology_key);
            let Some(t) = id.and_then(|id| self.terms.get_mut(id.0)) else { continue };
            bump(&mut t.nodes, node.name, sign * weight);
            if let (true, Some(domain)) = (tracked, node.labels.get(term.topology_key)) {
                bump(&mut t.domains, domain, sign * weight);
            }
            if let (true, Some(id)) = (sign < 0, id) {
                self.release_term(kind, pod.namespace, term, id);
            }
        }
    }

    fn find_set(&self, pod: &Pod) -> Option<SetId> {
        let hash = fx_hash(&(pod.namespace, &pod.labels));
        self.sets.find(hash, |e| e.labels.namespace == pod.namespace && e.labels.labels == pod.labels).map(SetId)
    }

    fn acquire_set(&mut self, pod: &Pod) -> SetId {
        let id = match self.find_set(pod) {
            Some(id) => id,
            None => {
                let hash = fx_hash(&(pod.namespace, &pod.labels));
                let labels = PodLabels { namespace: pod.namespace, labels: pod.labels.clone() };
                let id = SetId(self.sets.insert(hash, SetEntry { labels, pods: 0 }));
                for pair in pod.labels.iter() {
                    self.sets_by_label.entry(pair).or_default().push(id);
                }
                self.sets_by_namespace.entry(pod.namespace).or_default().push(id);
                id
            }
        };
        if let Some(e) = self.sets.get_mut(id.0) {
            e.pods += 1;
        }
        id
    }

    fn release_set(&mut self, pod: &Pod, id: SetId) {
        let Some(e) = self.sets.get_mut(id.0) else { return };
        e.pods = e.pods.saturating_sub(1);
        if e.pods > 0 {
            return;
        }
        self.sets.remove(fx_hash(&(pod.namespace, &pod.labels)), id.0);
        for pair in pod.labels.iter() {
            remove_from(&mut self.sets_by_label, &pair, id);
        }
        remove_from(&mut self.sets_by_namespace, &pod.namespace, id);
        self.node_pods.remove(&id);
        for ki in self.keys.values_mut() {
            ki.by_set.remove(&id);
        }
    }

    fn find_term(&self, kind: TermKind, owner: Sym, term: &AffinityTerm) -> Option<TermId> {
        let hash = fx_hash(&(kind, owner, term));
        self.terms.find(hash, |t| t.kind == kind && t.term.owner_namespace == owner && t.term.term == *term).map(TermId)
    }

    fn acquire_term(&mut self, kind: TermKind, owner: Sym, term: &AffinityTerm) -> TermId {
        let id = match self.find_term(kind, owner, term) {
            Some(id) => id,
            None => {
                let owned = OwnedTerm { owner_namespace: owner, term: term.clone() };
                let entry =
                    IndexedTerm { kind, term: owned, pods: 0, domains: FxMap::default(), nodes: FxMap::default() };
                let id = TermId(self.terms.insert(fx_hash(&(kind, owner, term)), entry));
                match term_indexing(term) {
                    TermIndexing::Pairs(key, values) => {
                        for v in distinct(values) {
                            self.terms_by_label.entry((key, v)).or_default().push(id);
                        }
                    }
                    TermIndexing::Unindexed => self.terms_unindexed.push(id),
                    TermIndexing::Never => {}
                }
                id
            }
        };
        if let Some(t) = self.terms.get_mut(id.0) {
            t.pods += 1;
        }
        id
    }

    fn release_term(&mut self, kind: TermKind, owner: Sym, term: &AffinityTerm, id: TermId) {
        let Some(t) = self.terms.get_mut(id.0) else { return };
        t.pods = t.pods.saturating_sub(1);
        if t.pods > 0 {
            return;
        }
        self.terms.remove(fx_hash(&(kind, owner, term)), id.0);
        match term_indexing(term) {
            TermIndexing::Pairs(key, values) => {
                for v in distinct(values) {
                    remove_from(&mut self.terms_by_label, &(key, v), id);
                }
            }
            TermIndexing::Unindexed => self.terms_unindexed.retain(|i| *i != id),
            TermIndexing::Never => {}
        }
    }
}

fn remove_from<K: Hash + Eq, I: PartialEq>(map: &mut FxMap<K, Vec<I>>, key: &K, id: I) {
    if let Some(list) = map.get_mut(key) {
        if let Some(i) = list.iter().position(|x| *x == id) {
            list.swap_remove(i);
        }
        if list.is_empty() {
            map.remove(key);
        }
    }
}

/// Adds `delta` at `outer`/`inner`, dropping entries that reach zero.
fn bump_nested(map: &mut FxMap<SetId, FxMap<Sym, i64>>, outer: SetId, inner: Sym, delta: i64) {
    let per = map.entry(outer).or_default();
    bump(per, inner, delta);
    if per.is_empty() {
        map.remove(&outer);
    }
}

/// Adds `delta` at `key`, dropping the entry if it reaches zero.
fn bump(map: &mut FxMap<Sym, i64>, key: Sym, delta: i64) {
    use std::collections::hash_map::Entry;
    match map.entry(key) {
        Entry::Occupied(mut o) => {
            *o.get_mut() += delta;
            if *o.get() == 0 {
                o.remove();
            }
        }
        Entry::Vacant(v) if delta != 0 => {
            v.insert(delta);
        }
        Entry::Vacant(_) => {}
    }
}

fn bump_u32(map: &mut FxMap<Sym, u32>, key: Sym) {
    if let Some(n) = map.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&key);
        }
    }
}
