//! `kidsafe check --probe`: one question to each upstream on its own, all at once, each within
//! `[upstream] timeout`, so an admin learns which resolvers answer from this machine before
//! every forwarded name turns into SERVFAIL.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use tokio::time::Instant;

use super::{Forwarder, Question};
use crate::config::{Strategy, UpstreamServer, UpstreamSettings};

/// What one upstream did with the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    /// It answered NOERROR (or NXDOMAIN) after this long.
    Answers(Duration),
    /// It answered, but with this code (SERVFAIL, REFUSED): it will not resolve for kidsafe.
    Refuses(ResponseCode),
    /// No answer; why.
    Silent(String),
}

/// Asks every upstream in `settings` for the root's name servers, each on its own and all at
/// once; the results come back in the configured order.
pub async fn probe(
    settings: &UpstreamSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Vec<(UpstreamServer, Probed)> {
    let question = Question {
        name: Name::root(),
        qtype: RecordType::NS,
        dnssec_ok: false,
        checking_disabled: false,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, server) in settings.servers.iter().enumerate() {
        let alone = UpstreamSettings {
            servers: vec![server.clone()],
            strategy: Strategy::Failover,
            ..settings.clone()
        };
        let (tls, question) = (tls.clone(), question.clone());
        tasks.spawn(async move {
            let start = Instant::now();
            let result = Forwarder::new(1)
                .resolve(&alone, tls.as_ref(), &question)
                .await;
            let probed = match result {
                Ok(m) => match m.metadata.response_code {
                    ResponseCode::NoError | ResponseCode::NXDomain => {
                        Probed::Answers(start.elapsed())
                    }
                    code => Probed::Refuses(code),
                },
                Err(e) => Probed::Silent(e.to_string()),
            };
            (i, probed)
        });
    }
    let mut results: Vec<Option<Probed>> = vec![None; settings.servers.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, probed)) = joined
            && let Some(slot) = results.get_mut(i)
        {
            *slot = Some(probed);
        }
    }
    settings
        .servers
        .iter()
        .cloned()
        .zip(results)
        .map(|(server, probed)| {
            let probed =
                probed.unwrap_or_else(|| Probed::Silent("the probe did not finish".into()));
            (server, probed)
        })
        .collect()
}

/// The probe's report, and how many upstreams answered.
pub fn render(results: &[(UpstreamServer, Probed)], timeout: Duration) -> (String, usize) {
    let mut out = format!(
        "upstreams (one question each, \". NS\", within {}):\n",
        humantime::format_duration(timeout)
    );
    let mut answering = 0;
    for (server, probed) in results {
        let what = match probed {
            Probed::Answers(took) => {
                answering += 1;
                format!("answers ({} ms)", took.as_millis())
            }
            Probed::Refuses(code) => format!("answers {code}: it will not resolve for kidsafe"),
            Probed::Silent(why) => format!("no answer: {why}"),
        };
        out.push_str(&format!("  {server}  {what}\n"));
    }
    out.push_str(&format!(
        "{answering} of {} upstreams answer\n",
        results.len()
    ));
    (out, answering)
}
