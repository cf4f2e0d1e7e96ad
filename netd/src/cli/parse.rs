//! Client-side parsing of flag values, so bad input fails with a one-line
//! `Error: invalid <flag> "<value>": <reason>` before the daemon is contacted.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::Ipv4Net;

use super::error::CliError;

fn invalid(flag: &str, value: &str, reason: impl std::fmt::Display) -> CliError {
    CliError::Client(format!("invalid {flag} {value:?}: {reason}"))
}

fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
    text.parse().map_err(|_| {
        if text.parse::<Ipv6Addr>().is_ok() {
            "IPv6 is not supported".to_owned()
        } else {
            format!("{text:?} is not an IPv4 address")
        }
    })
}

/// An IPv4 network in CIDR notation (`--subnet`, `--ip-range`). Host bits must be zero.
pub fn cidr(flag: &str, text: &str) -> Result<Ipv4Net, CliError> {
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| invalid(flag, text, "expected ADDRESS/PREFIX, e.g. 10.1.0.0/24"))?;
    let addr = ipv4(addr).map_err(|reason| invalid(flag, text, reason))?;
    let len = Some(len)
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|l| l.parse::<u8>().ok())
        .filter(|l| *l <= 32)
        .ok_or_else(|| {
            invalid(
                flag,
                text,
                format!("prefix length {len:?} is not a number from 0 to 32"),
            )
        })?;
    let net = Ipv4Net::new(addr, len).map_err(|e| invalid(flag, text, e))?;
    if net.network() != addr {
        return Err(invalid(
            flag,
            text,
            format!("host bits are set, did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

/// An IPv4 address (`--gateway`, `--ip`).
pub fn ip(flag: &str, text: &str) -> Result<Ipv4Addr, CliError> {
    ipv4(text).map_err(|reason| invalid(flag, text, reason))
}

/// `NAME=VALUE`: split at the first `=`; the name must not be empty.
fn pair<'a>(flag: &str, text: &'a str, shape: &str) -> Result<(&'a str, &'a str), CliError> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name, value)),
        _ => Err(invalid(flag, text, format!("expected {shape}"))),
    }
}

/// Repeated `--aux-address NAME=IP`. A name given twice is an error.
pub fn aux_addresses(values: &[String]) -> Result<BTreeMap<String, Ipv4Addr>, CliError> {
    const FLAG: &str = "aux-address";
    let mut out = BTreeMap::new();
    for text in values {
        let (name, addr) = pair(FLAG, text, "NAME=IP")?;
        let addr = ipv4(addr).map_err(|reason| invalid(FLAG, text, reason))?;
        if out.insert(name.to_owned(), addr).is_some() {
            return Err(invalid(
                FLAG,
                text,
                format!("{name:?} is given more than once"),
            ));
        }
    }
    Ok(out)
}

/// Repeated `-o/--opt KEY=VALUE`. The value may be empty or hold `=`; a key given
/// twice is an error.
pub fn options(values: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    const FLAG: &str = "option";
    let mut out = BTreeMap::new();
    for text in values {
        let (key, value) = pair(FLAG, text, "KEY=VALUE")?;
        if out.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(invalid(
                FLAG,
                text,
                format!("{key:?} is given more than once"),
            ));
        }
    }
    Ok(out)
}

/// `--mtu N`. The range is the daemon's to judge.
pub fn mtu(text: &str) -> Result<u32, CliError> {
    text.parse()
        .map_err(|_| invalid("mtu", text, "not a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: CliError) -> String {
        err.to_string()
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn cidr_accepts_network_addresses() {
        let net = cidr("subnet", "10.1.0.0/16").expect("valid");
        assert_eq!(net.to_string(), "10.1.0.0/16");
        assert_eq!(cidr("subnet", "0.0.0.0/0").expect("valid").prefix_len(), 0);
        assert_eq!(
            cidr("ip-range", "10.1.2.3/32").expect("valid").prefix_len(),
            32
        );
    }

    #[test]
    fn cidr_errors_are_one_clear_line() {
        let cases = [
            (
                "x",
                r#"Error: invalid subnet "x": expected ADDRESS/PREFIX, e.g. 10.1.0.0/24"#,
            ),
            (
                "10.0.0.0",
                r#"Error: invalid subnet "10.0.0.0": expected ADDRESS/PREFIX, e.g. 10.1.0.0/24"#,
            ),
            (
                "10.0.0/24",
                r#"Error: invalid subnet "10.0.0/24": "10.0.0" is not an IPv4 address"#,
            ),
            (
                "300.0.0.0/8",
                r#"Error: invalid subnet "300.0.0.0/8": "300.0.0.0" is not an IPv4 address"#,
            ),
            (
                "10.0.0.0/33",
                r#"Error: invalid subnet "10.0.0.0/33": prefix length "33" is not a number from 0 to 32"#,
            ),
            (
                "10.0.0.0/",
                r#"Error: invalid subnet "10.0.0.0/": prefix length "" is not a number from 0 to 32"#,
            ),
            (
                "10.0.0.0/+8",
                r#"Error: invalid subnet "10.0.0.0/+8": prefix length "+8" is not a number from 0 to 32"#,
            ),
            (
                "10.0.0.1/24",
                r#"Error: invalid subnet "10.0.0.1/24": host bits are set, did you mean 10.0.0.0/24?"#,
            ),
            (
                "fd00::/64",
                r#"Error: invalid subnet "fd00::/64": IPv6 is not supported"#,
            ),
        ];
        for (input, want) in cases {
            let got = message(cidr("subnet", input).expect_err(input));
            assert_eq!(got, want, "input {input:?}");
            assert!(!got.contains('\n'));
        }
        assert_eq!(
            message(cidr("ip-range", "a/b").expect_err("bad")),
            r#"Error: invalid ip-range "a/b": "a" is not an IPv4 address"#
        );
    }

    #[test]
    fn ip_errors_name_the_flag() {
        assert_eq!(
            ip("gateway", "10.0.0.1").expect("valid"),
            Ipv4Addr::new(10, 0, 0, 1)
        );
        assert_eq!(
            message(ip("gateway", "10.0.0.1/24").expect_err("cidr is no ip")),
            r#"Error: invalid gateway "10.0.0.1/24": "10.0.0.1/24" is not an IPv4 address"#
        );
    }

    #[test]
    fn aux_addresses_parse_name_ip_pairs() {
        let got = aux_addresses(&strings(&["router=10.0.0.2", "printer=10.0.0.3"])).expect("valid");
        assert_eq!(got.len(), 2);
        assert_eq!(got["router"], Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(got["printer"], Ipv4Addr::new(10, 0, 0, 3));
        assert!(aux_addresses(&[]).expect("empty").is_empty());
    }

    #[test]
    fn aux_address_errors() {
        let cases = [
            (
                "router",
                r#"Error: invalid aux-address "router": expected NAME=IP"#,
            ),
            (
                "=10.0.0.2",
                r#"Error: invalid aux-address "=10.0.0.2": expected NAME=IP"#,
            ),
            (
                "r=10.0.0",
                r#"Error: invalid aux-address "r=10.0.0": "10.0.0" is not an IPv4 address"#,
            ),
            (
                "r=",
                r#"Error: invalid aux-address "r=": "" is not an IPv4 address"#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                message(aux_addresses(&strings(&[input])).expect_err(input)),
                want
            );
        }
        assert_eq!(
            message(aux_addresses(&strings(&["a=10.0.0.2", "a=10.0.0.3"])).expect_err("dup")),
            r#"Error: invalid aux-address "a=10.0.0.3": "a" is given more than once"#
        );
    }

    #[test]
    fn options_parse_key_value_pairs() {
        let got = options(&strings(&[
            "com.docker.network.bridge.enable_icc=false",
            "com.docker.network.driver.mtu=1400",
            "k=a=b",
            "empty=",
        ]))
        .expect("valid");
        assert_eq!(got["com.docker.network.bridge.enable_icc"], "false");
        assert_eq!(got["com.docker.network.driver.mtu"], "1400");
        assert_eq!(got["k"], "a=b");
        assert_eq!(got["empty"], "");
    }

    #[test]
    fn option_errors() {
        assert_eq!(
            message(options(&strings(&["enable_icc"])).expect_err("no =")),
            r#"Error: invalid option "enable_icc": expected KEY=VALUE"#
        );
        assert_eq!(
            message(options(&strings(&["=x"])).expect_err("no key")),
            r#"Error: invalid option "=x": expected KEY=VALUE"#
        );
        assert_eq!(
            message(options(&strings(&["k=1", "k=2"])).expect_err("dup")),
            r#"Error: invalid option "k=2": "k" is given more than once"#
        );
    }

    #[test]
    fn mtu_must_be_a_number() {
        assert_eq!(mtu("1400").expect("valid"), 1400);
        assert_eq!(
            message(mtu("big").expect_err("nan")),
            r#"Error: invalid mtu "big": not a whole number"#
        );
    }
}
