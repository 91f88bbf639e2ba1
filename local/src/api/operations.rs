//! `/api/operations/{id}`: an operation's items and their parent tree.
//!
//! An item's parent is the item of the same operation whose data `id` (Request,
//! Dependency, Availability, PageView) equals its `ai.operation.parentId`, whatever the
//! roles: a backend's Request whose parent is the gateway's Dependency nests under that
//! dependency. Items whose parent is not stored are roots; so are items caught in a
//! parent cycle. The tree is at most [`MAX_DEPTH`] levels deep (deeper items are roots).

use std::collections::HashMap;

use serde_json::{json, Value};

use super::summary_json;
use crate::store::{Entry, Store};

/// Deepest nesting in the answer.
pub const MAX_DEPTH: usize = 64;

/// The operation's items (oldest first) and tree; `None` when none is stored.
pub fn operation(store: &Store, operation_id: &str) -> Option<Value> {
    let mut items: Vec<&Entry> = store
        .newest_first()
        .filter(|e| e.rec.operation_id == operation_id)
        .collect();
    if items.is_empty() {
        return None;
    }
    items.reverse();
    let tree = Tree::of(&items).to_json();
    let summaries: Vec<Value> = items.iter().map(|e| summary_json(e)).collect();
    Some(json!({"operation_id": operation_id, "items": summaries, "tree": tree}))
}

/// Children by index into the operation's items.
struct Tree {
    seqs: Vec<u64>,
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

impl Tree {
    fn of(items: &[&Entry]) -> Tree {
        let mut by_id: HashMap<&str, usize> = HashMap::new();
        for (i, e) in items.iter().enumerate() {
            if !e.rec.id.is_empty() {
                by_id.entry(e.rec.id.as_str()).or_insert(i);
            }
        }
        let parent_of = |i: usize, e: &Entry| by_id.get(e.rec.parent_id.as_str()).copied().filter(|&p| p != i);
        let parents: Vec<Option<usize>> = items.iter().enumerate().map(|(i, e)| parent_of(i, e)).collect();
        let mut tree = Tree {
            seqs: items.iter().map(|e| e.seq).collect(),
            children: vec![Vec::new(); items.len()],
            roots: Vec::new(),
        };
        for (i, parent) in parents.iter().enumerate() {
            match parent.and_then(|p| tree.children.get_mut(p)) {
                Some(siblings) => siblings.push(i),
                None => tree.roots.push(i),
            }
        }
        tree.adopt_unreachable();
        tree
    }

    /// Items not reachable from a root within [`MAX_DEPTH`] (cycles, deep chains) become roots.
    fn adopt_unreachable(&mut self) {
        let mut seen = vec![false; self.seqs.len()];
        let mut stack: Vec<(usize, usize)> = self.roots.iter().map(|&r| (r, 1)).collect();
        while let Some((i, depth)) = stack.pop() {
            if let Some(s) = seen.get_mut(i) {
                *s = true;
            }
            if depth < MAX_DEPTH {
                let kids = self.children.get(i).map_or(&[][..], Vec::as_slice);
                stack.extend(kids.iter().map(|&k| (k, depth + 1)));
            }
        }
        for kids in &mut self.children {
            kids.retain(|&k| seen.get(k).copied().unwrap_or(false));
        }
        self.roots
            .extend((0..seen.len()).filter(|&i| !seen.get(i).copied().unwrap_or(true)));
        self.roots.sort_unstable();
    }

    fn to_json(&self) -> Vec<Value> {
        self.roots.iter().map(|&r| self.node(r, 1)).collect()
    }

    fn node(&self, i: usize, depth: usize) -> Value {
        let kids = self.children.get(i).map_or(&[][..], Vec::as_slice);
        let children: Vec<Value> = if depth < MAX_DEPTH {
            kids.iter().map(|&k| self.node(k, depth + 1)).collect()
        } else {
            Vec::new()
        };
        json!({"seq": self.seqs.get(i).copied().unwrap_or(0), "children": children})
    }
}
