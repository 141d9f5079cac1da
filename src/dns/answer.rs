//! Answers kidsafe makes up itself: the block responses.
//!
//! NXDOMAIN and NODATA answers carry a synthetic SOA whose TTL and MINIMUM are the block TTL,
//! so clients cache a block only that long (RFC 2308) and a rule change reaches them soon.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::BlockResponse;

/// The SOA's primary server: a reserved name (RFC 6761) that can never be a real host.
static SOA_MNAME: LazyLock<Name> =
    LazyLock::new(|| Name::from_ascii("kidsafe.invalid.").unwrap_or_else(|_| Name::root()));
/// The SOA's mailbox, likewise reserved.
static SOA_RNAME: LazyLock<Name> =
    LazyLock::new(|| Name::from_ascii("blocked.kidsafe.invalid.").unwrap_or_else(|_| Name::root()));

/// A made-up answer: response code plus answer and authority records.
#[derive(Debug)]
pub struct Synthesized {
    /// The response code.
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authorities: Vec<Record>,
}

/// The block answer for `name`/`qtype` in the configured style.
pub fn block(style: BlockResponse, ttl: u32, name: &Name, qtype: RecordType) -> Synthesized {
    let address = match (style, qtype) {
        (BlockResponse::NullIp, RecordType::A) => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        (BlockResponse::NullIp, RecordType::AAAA) => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        (BlockResponse::Address(ip @ IpAddr::V4(_)), RecordType::A) => Some(ip),
        (BlockResponse::Address(ip @ IpAddr::V6(_)), RecordType::AAAA) => Some(ip),
        _ => None,
    };
    match (style, address) {
        (BlockResponse::Refused, _) => Synthesized {
            rcode: ResponseCode::Refused,
            answers: Vec::new(),
            authorities: Vec::new(),
        },
        (BlockResponse::NxDomain, _) => Synthesized {
            rcode: ResponseCode::NXDomain,
            answers: Vec::new(),
            authorities: vec![soa(name, ttl)],
        },
        (_, Some(ip)) => {
            let rdata = match ip {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            Synthesized {
                rcode: ResponseCode::NoError,
                answers: vec![Record::from_rdata(name.clone(), ttl, rdata)],
                authorities: Vec::new(),
            }
        }
        // NODATA: the style itself, or an address style asked for another type.
        (_, None) => Synthesized {
            rcode: ResponseCode::NoError,
            answers: Vec::new(),
            authorities: vec![soa(name, ttl)],
        },
    }
}

fn soa(name: &Name, ttl: u32) -> Record {
    let rdata = SOA::new(
        SOA_MNAME.clone(),
        SOA_RNAME.clone(),
        1,
        3600,
        600,
        86_400,
        ttl,
    );
    Record::from_rdata(name.clone(), ttl, RData::SOA(rdata))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> Name {
        Name::from_ascii("bad.example.").expect("name")
    }

    #[test]
    fn every_style_for_every_type() {
        let v4: IpAddr = "192.0.2.1".parse().expect("ip");
        let cases = [
            (
                BlockResponse::NxDomain,
                RecordType::A,
                ResponseCode::NXDomain,
                0,
                1,
            ),
            (
                BlockResponse::NxDomain,
                RecordType::TXT,
                ResponseCode::NXDomain,
                0,
                1,
            ),
            (
                BlockResponse::NoData,
                RecordType::A,
                ResponseCode::NoError,
                0,
                1,
            ),
            (
                BlockResponse::Refused,
                RecordType::A,
                ResponseCode::Refused,
                0,
                0,
            ),
            (
                BlockResponse::NullIp,
                RecordType::A,
                ResponseCode::NoError,
                1,
                0,
            ),
            (
                BlockResponse::NullIp,
                RecordType::AAAA,
                ResponseCode::NoError,
                1,
                0,
            ),
            (
                BlockResponse::NullIp,
                RecordType::HTTPS,
                ResponseCode::NoError,
                0,
                1,
            ),
            (
                BlockResponse::Address(v4),
                RecordType::A,
                ResponseCode::NoError,
                1,
                0,
            ),
            (
                BlockResponse::Address(v4),
                RecordType::AAAA,
                ResponseCode::NoError,
                0,
                1,
            ),
        ];
        for (style, qtype, rcode, answers, authorities) in cases {
            let s = block(style, 60, &name(), qtype);
            assert_eq!(s.rcode, rcode, "{style:?} {qtype}");
            assert_eq!(
                (s.answers.len(), s.authorities.len()),
                (answers, authorities),
                "{style:?} {qtype}"
            );
            for r in s.answers.iter().chain(&s.authorities) {
                assert_eq!(r.ttl, 60);
            }
        }
        let null = block(BlockResponse::NullIp, 60, &name(), RecordType::AAAA);
        assert_eq!(
            null.answers[0].data,
            RData::AAAA(AAAA(Ipv6Addr::UNSPECIFIED))
        );
    }
}
