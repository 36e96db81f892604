//! Keyfactor's certificate query language, the part scripts use: `Field -op Value` clauses
//! joined by `AND`, e.g. `IssuedCN -eq "web01" AND NotAfter -le "2027-01-01T00:00:00Z"`.
//! A query that does not parse is a 400 that says at which character.

use crate::error::ApiError;

/// A field a query can test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Id,
    CertRequestId,
    Thumbprint,
    SerialNumber,
    IssuedCN,
    IssuedDN,
    IssuerDN,
    NotBefore,
    NotAfter,
}

const FIELDS: &[(&str, Field)] = &[
    ("Id", Field::Id),
    ("CertRequestId", Field::CertRequestId),
    ("Thumbprint", Field::Thumbprint),
    ("SerialNumber", Field::SerialNumber),
    ("IssuedCN", Field::IssuedCN),
    ("IssuedDN", Field::IssuedDN),
    ("IssuerDN", Field::IssuerDN),
    ("NotBefore", Field::NotBefore),
    ("NotAfter", Field::NotAfter),
];

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

const OPS: &[(&str, Op)] = &[
    ("-eq", Op::Eq),
    ("-ne", Op::Ne),
    ("-lt", Op::Lt),
    ("-le", Op::Le),
    ("-gt", Op::Gt),
    ("-ge", Op::Ge),
    ("-contains", Op::Contains),
];

/// One clause.
#[derive(Clone, Debug)]
pub(crate) struct Clause {
    pub(crate) field: Field,
    pub(crate) op: Op,
    pub(crate) value: String,
}

/// The values of one certificate that a query can test.
pub(crate) struct Subject<'a> {
    pub(crate) id: i64,
    pub(crate) thumbprint: &'a str,
    pub(crate) serial: &'a str,
    pub(crate) issued_cn: &'a str,
    pub(crate) issued_dn: &'a str,
    pub(crate) issuer_dn: &'a str,
    pub(crate) not_before_ms: i64,
    pub(crate) not_after_ms: i64,
}

fn error(at: usize, what: &str) -> ApiError {
    ApiError::bad_request(format!("pq.queryString: {what} at character {}", at + 1))
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn skip_ws(&mut self) {
        let rest = self.text.get(self.pos..).unwrap_or_default();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// A bare word (letters, digits, '-', '_', '.', ':').
    fn word(&mut self) -> Option<(usize, &'a str)> {
        self.skip_ws();
        let start = self.pos;
        let rest = self.text.get(start..).unwrap_or_default();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || "-_.:".contains(c)))
            .unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some((start, rest.get(..len).unwrap_or_default()))
    }

    /// A quoted string or a bare word.
    fn value(&mut self) -> Result<String, ApiError> {
        self.skip_ws();
        let start = self.pos;
        let rest = self.text.get(start..).unwrap_or_default();
        if let Some(inner) = rest.strip_prefix('"') {
            let end = inner
                .find('"')
                .ok_or_else(|| error(start, "unterminated string"))?;
            self.pos += end + 2;
            return Ok(inner.get(..end).unwrap_or_default().to_string());
        }
        self.word()
            .map(|(_, w)| w.to_string())
            .ok_or_else(|| error(start, "expected a value"))
    }
}

/// Parses a query; an empty query matches everything.
pub(crate) fn parse(text: &str) -> Result<Vec<Clause>, ApiError> {
    if text.len() > 4096 {
        return Err(ApiError::bad_request(
            "pq.queryString is longer than 4096 bytes",
        ));
    }
    let mut lx = Lexer { text, pos: 0 };
    let mut clauses = Vec::new();
    lx.skip_ws();
    if lx.pos == text.len() {
        return Ok(clauses);
    }
    loop {
        let (at, name) = lx
            .word()
            .ok_or_else(|| error(lx.pos, "expected a field name"))?;
        let field = FIELDS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, f)| *f)
            .ok_or_else(|| error(at, &format!("unknown field '{name}'")))?;
        let (at, op) = lx.word().ok_or_else(|| {
            error(
                lx.pos,
                "expected an operator (-eq, -ne, -lt, -le, -gt, -ge, -contains)",
            )
        })?;
        let op = OPS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(op))
            .map(|(_, o)| *o)
            .ok_or_else(|| error(at, &format!("unknown operator '{op}'")))?;
        let value_at = lx.pos;
        let value = lx.value()?;
        if matches!(field, Field::NotBefore | Field::NotAfter)
            && pfxkit_catalog::jobs::parse_time(&value).is_err()
        {
            return Err(error(value_at, "expected an ISO 8601 UTC time"));
        }
        if matches!(field, Field::Id | Field::CertRequestId) && value.parse::<i64>().is_err() {
            return Err(error(value_at, "expected an integer"));
        }
        clauses.push(Clause { field, op, value });
        lx.skip_ws();
        if lx.pos >= text.len() {
            return Ok(clauses);
        }
        match lx.word() {
            Some((_, w)) if w.eq_ignore_ascii_case("AND") => {}
            Some((at, _)) => return Err(error(at, "expected AND")),
            None => return Err(error(lx.pos, "expected AND")),
        }
    }
}

fn compare<T: PartialOrd>(a: &T, op: Op, b: &T) -> bool {
    match op {
        Op::Eq | Op::Contains => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
    }
}

fn text_matches(have: &str, op: Op, want: &str) -> bool {
    let have = have.to_ascii_lowercase();
    let want = want.to_ascii_lowercase();
    match op {
        Op::Contains => have.contains(&want),
        _ => compare(&have, op, &want),
    }
}

/// Whether a certificate satisfies one clause (`CertRequestId` is resolved by the caller).
pub(crate) fn matches(clause: &Clause, s: &Subject<'_>) -> bool {
    let int = |v: i64| {
        clause
            .value
            .parse::<i64>()
            .is_ok_and(|w| compare(&v, clause.op, &w))
    };
    let time = |v: i64| {
        pfxkit_catalog::jobs::parse_time(&clause.value).is_ok_and(|w| compare(&v, clause.op, &w))
    };
    match clause.field {
        Field::Id => int(s.id),
        Field::CertRequestId => true,
        Field::Thumbprint => text_matches(s.thumbprint, clause.op, &clause.value),
        Field::SerialNumber => text_matches(s.serial, clause.op, &clause.value),
        Field::IssuedCN => text_matches(s.issued_cn, clause.op, &clause.value),
        Field::IssuedDN => text_matches(s.issued_dn, clause.op, &clause.value),
        Field::IssuerDN => text_matches(s.issuer_dn, clause.op, &clause.value),
        Field::NotBefore => time(s.not_before_ms),
        Field::NotAfter => time(s.not_after_ms),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn parses_clauses_joined_by_and() {
        let q = parse(r#"IssuedCN -eq "web 01" AND NotAfter -le "2030-01-01T00:00:00Z" and CertRequestId -eq 3"#)
            .unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!(q[0].field, Field::IssuedCN);
        assert_eq!(q[0].value, "web 01");
        assert_eq!(q[1].op, Op::Le);
        assert_eq!(q[2].value, "3");
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn says_where_a_query_goes_wrong() {
        let e = parse(r#"IssuedCN -eq "x" OR Id -eq 1"#).unwrap_err();
        assert!(
            e.message.contains("expected AND at character 18"),
            "{}",
            e.message
        );
        let e = parse(r#"Bogus -eq 1"#).unwrap_err();
        assert!(
            e.message.contains("unknown field 'Bogus' at character 1"),
            "{}",
            e.message
        );
        let e = parse(r#"IssuedCN -eq "x"#).unwrap_err();
        assert!(e.message.contains("unterminated string"), "{}", e.message);
        assert!(parse("Id -eq abc").is_err());
        assert!(parse(r#"NotAfter -le "tomorrow""#).is_err());
    }
}
