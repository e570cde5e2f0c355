//! Balanced binary reduction trees (adder trees, comparator trees), unrolled for templates.

/// One node of a tree level: the reduction of two nodes of the level below, or one node
/// passed through when the level below has an odd count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// Position in its level.
    pub index: usize,
    /// Whether the node reduces two children (`a`, `b`) or passes `a` through.
    pub is_pair: bool,
    /// Name of the first child.
    pub a: String,
    /// Name of the second child (empty when `is_pair` is false).
    pub b: String,
}

/// One level of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeLevel {
    /// Level number: 1 for the level above the leaves.
    pub depth: usize,
    /// Pipeline stage of the level, for comments (`first_stage + depth - 1`).
    pub stage: usize,
    /// Nodes of the level.
    pub nodes: Vec<TreeNode>,
}

impl TreeLevel {
    /// Name of a node of this level (`<prefix><depth>_<index>`).
    pub fn name(prefix: &str, depth: usize, index: usize) -> String {
        format!("{prefix}{depth}_{index}")
    }
}

/// Levels reducing `leaves` nodes named `<prefix>0_<i>` to one node `<prefix><L>_0`.
/// A single leaf gives no levels.
pub fn reduction_tree(prefix: &str, leaves: usize, first_stage: usize) -> Vec<TreeLevel> {
    let mut levels = Vec::new();
    let mut width = leaves;
    let mut depth = 0;
    while width > 1 {
        depth += 1;
        let nodes = (0..width.div_ceil(2))
            .map(|index| {
                let a = TreeLevel::name(prefix, depth - 1, 2 * index);
                if 2 * index + 1 < width {
                    TreeNode {
                        index,
                        is_pair: true,
                        a,
                        b: TreeLevel::name(prefix, depth - 1, 2 * index + 1),
                    }
                } else {
                    TreeNode {
                        index,
                        is_pair: false,
                        a,
                        b: String::new(),
                    }
                }
            })
            .collect::<Vec<_>>();
        width = nodes.len();
        levels.push(TreeLevel {
            depth,
            stage: first_stage + depth - 1,
            nodes,
        });
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_widths_pass_the_last_node_through() {
        let t = reduction_tree("t", 5, 2);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].nodes.len(), 3);
        assert!(!t[0].nodes[2].is_pair);
        assert_eq!(t[0].nodes[2].a, "t0_4");
        assert_eq!(t[2].nodes.len(), 1);
        assert_eq!(t[2].stage, 4);
        assert!(reduction_tree("t", 1, 0).is_empty());
    }
}
