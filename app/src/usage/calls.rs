//! A structured model call as every domain makes it: the request, the answer parsed and
//! validated by the caller, one repair of an invalid answer that names what was wrong, and a
//! usage record for each attempt.

use crate::auth::UserId;
use crate::infra::llm::{LlmError, Repair, StructuredRequest};
use crate::infra::AppState;
use std::time::Instant;

/// One structured model call with its one repair: `parse` reads the answer (an invalid one,
/// [`LlmError::InvalidReply`], is sent back once with what was wrong). Each attempt's usage is
/// recorded under `kinds`: (first attempt, repair).
pub async fn structured<T>(
    state: &AppState,
    user: &UserId,
    mut request: StructuredRequest,
    (kind, repair_kind): (&'static str, &'static str),
    language: Option<&str>,
    parse: impl Fn(&str) -> Result<T, LlmError>,
) -> Result<T, LlmError> {
    for attempt in 1..=2 {
        let started = Instant::now();
        let span = super::call_span(
            state.llm.name(),
            if attempt == 1 { kind } else { repair_kind },
        );
        let result =
            tracing::Instrument::instrument(state.llm.generate_json(request.clone()), span).await;
        let parsed = result
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|r| parse(&r.raw));
        super::store::record(
            &state.db,
            super::Record {
                owner_id: &user.0,
                kind: if attempt == 1 { kind } else { repair_kind },
                provider: state.llm.name(),
                language,
                outcome: super::outcome(&parsed),
                duration_ms: started.elapsed().as_millis() as i64,
                usage: result.as_ref().map(|r| r.usage).unwrap_or_default(),
            },
        )
        .await;
        match (result, parsed) {
            (_, Ok(value)) => return Ok(value),
            (Ok(reply), Err(LlmError::InvalidReply(problem))) if attempt == 1 => {
                tracing::warn!(%problem, "invalid structured reply; asking for one repair");
                request.repair = Some(Repair {
                    previous: reply.raw,
                    problem,
                });
            }
            (_, Err(e)) => return Err(e),
        }
    }
    unreachable!("the loop returns on its second attempt")
}
