//! Port lists of models. The modules the interface description covers (engine, board top,
//! RTL kernel) take theirs from it; reading the ANSI port declarations of the Verilog (one
//! per line, as every kvpq template writes them) checks that the RTL agrees, and gives the
//! ports of internal units, which the description does not cover.

use kvpq_core::interface::{Direction, Port};

/// One port of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Name.
    pub name: String,
    /// Driven by the testbench.
    pub input: bool,
    /// Width in bits.
    pub width: u32,
}

impl PortSpec {
    /// 32-bit words that carry a value of the port.
    pub fn words(&self) -> usize {
        self.width.div_ceil(32) as usize
    }
}

impl From<&Port> for PortSpec {
    fn from(p: &Port) -> Self {
        Self {
            name: p.name.clone(),
            input: p.direction == Direction::Input,
            width: p.width,
        }
    }
}

/// The first difference between the described and the parsed port lists (names, directions,
/// widths and order), or `None` when they agree.
pub fn first_difference(described: &[PortSpec], parsed: &[PortSpec]) -> Option<String> {
    let show = |p: &PortSpec| {
        let dir = if p.input { "input" } else { "output" };
        format!("{dir} [{}] {}", p.width, p.name)
    };
    for (i, (d, v)) in described.iter().zip(parsed).enumerate() {
        if d != v {
            return Some(format!(
                "port {i}: description has `{}`, Verilog has `{}`",
                show(d),
                show(v)
            ));
        }
    }
    match described.len().cmp(&parsed.len()) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Less => Some(format!(
            "Verilog port `{}` is not in the description",
            show(&parsed[described.len()])
        )),
        std::cmp::Ordering::Greater => Some(format!(
            "described port `{}` is missing from the Verilog",
            show(&described[parsed.len()])
        )),
    }
}

/// The ports of `module` in `verilog`, in declaration order; `None` if the module is absent.
pub fn parse_ports(verilog: &str, module: &str) -> Option<Vec<PortSpec>> {
    let header = format!("module {module} (");
    let start = verilog.find(&header)? + header.len();
    let end = start + verilog[start..].find(");")?;
    let mut ports = Vec::new();
    for line in verilog[start..end].lines() {
        let decl = line
            .split("//")
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches(',');
        let mut words = decl.split_whitespace().peekable();
        let input = match words.next() {
            Some("input") => true,
            Some("output") => false,
            _ => continue,
        };
        let mut width = 1;
        let mut name = None;
        for w in words {
            if let Some(range) = w.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                let (hi, lo) = range.split_once(':')?;
                width = hi.trim().parse::<u32>().ok()? - lo.trim().parse::<u32>().ok()? + 1;
            } else if !matches!(w, "wire" | "reg" | "signed") {
                name = Some(w.to_string());
            }
        }
        ports.push(PortSpec {
            name: name?,
            input,
            width,
        });
    }
    Some(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ansi_declarations() {
        let v = "module m (\n    input  wire        clk,  // clock\n    output reg  [12:0] res_score,\n    input  wire [511:0] code_data\n);\nendmodule";
        let p = parse_ports(v, "m").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[1],
            PortSpec {
                name: "res_score".into(),
                input: false,
                width: 13
            }
        );
        assert_eq!(p[2].words(), 16);
        assert!(parse_ports(v, "other").is_none());
    }

    #[test]
    fn reports_the_first_difference() {
        let port = |name: &str, input, width| PortSpec {
            name: name.into(),
            input,
            width,
        };
        let a = vec![port("clk", true, 1), port("q", false, 8)];
        assert_eq!(first_difference(&a, &a), None);
        let wider = vec![port("clk", true, 1), port("q", false, 9)];
        assert!(first_difference(&a, &wider).unwrap().contains("port 1"));
        assert!(first_difference(&a, &a[..1]).unwrap().contains("missing"));
        assert!(first_difference(&a[..1], &a)
            .unwrap()
            .contains("not in the description"));
    }
}
