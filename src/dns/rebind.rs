//! DNS-rebinding protection: a web page on a public name must not be able to re-point that name
//! at the LAN (the router's admin page, a printer, a camera) and script it from a browser. An
//! upstream answer that maps a name to a private, loopback, link-local, unspecified, broadcast
//! or multicast address — in an A or AAAA record, a NAT64 address (64:ff9b::/96) that embeds
//! such an IPv4 address, or the ipv4hint/ipv6hint of an HTTPS or SVCB record, which browsers
//! connect to before any A or AAAA arrives — is replaced by an empty answer (NOERROR, no records: NODATA), unless the name is under one of
//! `[upstream] rebind_allow` (the LAN's own domains, where such addresses are the point).
//!
//! Like dnsmasq's `stop-dns-rebind`, the whole answer goes, not just the private record: a
//! half-answer would still let a client pick the LAN address from a later query.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::SVCB;
use hickory_proto::rr::rdata::svcb::SvcParamValue;
use hickory_proto::rr::{LowerName, Name, RData, Record};

/// Whether `ip` points into a private network, this host, or nowhere.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let segments = v6.segments();
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // The well-known NAT64 prefix (RFC 6052): a DNS64 answer for an IPv4 address,
                // reached through the LAN's translator.
                let [.., hi, lo] = segments;
                return is_internal_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
            }
            let first = segments[0];
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first == 0x64 && segments[1] == 0xff9b && segments[2] == 1) // 64:ff9b:1::/48, local-use NAT64
                || (first & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (first & 0xffc0) == 0xfe80 // fe80::/10 link-local
                || (first & 0xffc0) == 0xfec0 // fec0::/10 old site-local
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0 // 0.0.0.0/8 reaches this host on Linux
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10 carrier-grade NAT
}

fn internal_address(record: &Record) -> bool {
    match &record.data {
        RData::A(a) => is_internal(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => is_internal(IpAddr::V6(aaaa.0)),
        RData::HTTPS(https) => internal_hint(&https.0),
        RData::SVCB(svcb) => internal_hint(svcb),
        _ => false,
    }
}

/// Whether an HTTPS or SVCB record hints at an internal address.
fn internal_hint(svcb: &SVCB) -> bool {
    svcb.svc_params.iter().any(|(_, value)| match value {
        SvcParamValue::Ipv4Hint(hint) => hint.0.iter().any(|a| is_internal(IpAddr::V4(a.0))),
        SvcParamValue::Ipv6Hint(hint) => hint.0.iter().any(|a| is_internal(IpAddr::V6(a.0))),
        _ => false,
    })
}

/// Whether `qname` is one of `allowed` or under it.
pub fn allowed(qname: &Name, allowed: &[LowerName]) -> bool {
    if allowed.is_empty() {
        return false;
    }
    let lower = LowerName::from(qname);
    allowed.iter().any(|zone| zone.zone_of(&lower))
}

/// Empties `message`'s answer (and drops internal addresses from its additional section) if
/// it maps `qname` to an internal address and `qname` is not allowed to. Returns whether it did.
pub fn strip(message: &mut Message, qname: &Name, allow: &[LowerName]) -> bool {
    if !message.answers.iter().any(internal_address) || allowed(qname, allow) {
        return false;
    }
    message.answers.clear();
    message.additionals.retain(|r| !internal_address(r));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    #[test]
    fn internal_ranges() {
        for internal in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
            "255.255.255.255",
            "224.0.0.251",
            "ff02::1",
            "64:ff9b::c0a8:101",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
        ] {
            assert!(is_internal(internal.parse().expect("ip")), "{internal}");
        }
        for public in [
            "9.9.9.9",
            "172.32.0.1",
            "192.0.2.1",
            "100.128.0.1",
            "2620:fe::fe",
            "::ffff:9.9.9.9",
            "64:ff9b::909:909",
        ] {
            assert!(!is_internal(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn a_public_name_pointing_inside_loses_its_whole_answer() {
        let qname = name("evil.example.");
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            qname.clone(),
            60,
            RData::CNAME(CNAME(name("x.example."))),
        ));
        m.add_answer(Record::from_rdata(
            name("x.example."),
            60,
            RData::A(A::new(9, 9, 9, 9)),
        ));
        m.add_answer(Record::from_rdata(
            name("x.example."),
            60,
            RData::A(A::new(192, 168, 1, 1)),
        ));
        let allow = vec![LowerName::from(name("lan."))];
        let mut stripped = m.clone();
        assert!(strip(&mut stripped, &qname, &allow));
        assert!(stripped.answers.is_empty());

        // The LAN's own names may, and so may their subdomains.
        let mut kept = m.clone();
        assert!(!strip(&mut kept, &name("printer.lan."), &allow));
        assert_eq!(kept.answers.len(), 3);

        // A public answer is untouched.
        let mut public = Message::new(1, MessageType::Response, OpCode::Query);
        public.add_answer(Record::from_rdata(
            qname.clone(),
            60,
            RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ));
        assert!(!strip(&mut public, &qname, &allow));
        assert_eq!(public.answers.len(), 1);
    }

    #[test]
    fn https_and_svcb_hints_pointing_inside_strip_the_answer() {
        use hickory_proto::rr::rdata::HTTPS;
        use hickory_proto::rr::rdata::svcb::{IpHint, SvcParamKey};
        let qname = name("evil.example.");
        let https = |hint: SvcParamValue| {
            let mut m = Message::new(1, MessageType::Response, OpCode::Query);
            m.add_answer(Record::from_rdata(
                qname.clone(),
                60,
                RData::HTTPS(HTTPS(SVCB::new(
                    1,
                    Name::root(),
                    vec![(SvcParamKey::Ipv4Hint, hint)],
                ))),
            ));
            m
        };
        let mut inside = https(SvcParamValue::Ipv4Hint(IpHint(vec![A::new(
            192, 168, 1, 1,
        )])));
        assert!(strip(&mut inside, &qname, &[]));
        assert!(inside.answers.is_empty());
        let mut v6 = https(SvcParamValue::Ipv6Hint(IpHint(vec![AAAA::new(
            0xfd00, 0, 0, 0, 0, 0, 0, 1,
        )])));
        assert!(strip(&mut v6, &qname, &[]));
        let mut outside = https(SvcParamValue::Ipv4Hint(IpHint(vec![A::new(9, 9, 9, 9)])));
        assert!(!strip(&mut outside, &qname, &[]));
        assert_eq!(outside.answers.len(), 1);
    }
}
