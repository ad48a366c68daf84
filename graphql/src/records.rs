//! The health record: what the signed-in patient reads, the sync state admins watch, and
//! withholding for authorized staff. Every rule is in `portico_platform::records`; this
//! only translates.

use async_graphql::{Context, Enum, InputObject, Json, Object, Result, SimpleObject};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use portico_platform::ids::{RecordId, WithholdingId};
use portico_platform::principal::Principal;
use portico_platform::records::classify::{parse_datetime, title};
use portico_platform::records::service::{self, Filter};
use portico_platform::records::sync::{JobKind, JobStatus};
use portico_platform::records::{Category, RecordError, Records};
use serde_json::Value;

use crate::error::{self, ErrorCode};
use crate::query::request_context;

/// Parts of the record, as the portal groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum RecordCategory {
    /// Clinical notes and discharge summaries.
    Note,
    /// Lab results and lab reports.
    Lab,
    /// Vital signs.
    Vital,
    /// Prescriptions and medications taken.
    Medication,
    /// Allergies and adverse reactions.
    Allergy,
    /// Immunizations.
    Immunization,
    /// Problems and diagnoses.
    Problem,
    /// Care plans and goals.
    CarePlan,
    /// Appointments and visits.
    Visit,
    /// Imaging and pathology reports and imaging studies.
    Imaging,
    /// Procedures.
    Procedure,
    /// Claims, explanations of benefit and coverage.
    Billing,
    /// Anything else the EHR holds about you.
    Other,
}

impl From<RecordCategory> for Category {
    fn from(category: RecordCategory) -> Self {
        match category {
            RecordCategory::Note => Self::Note,
            RecordCategory::Lab => Self::Lab,
            RecordCategory::Vital => Self::Vital,
            RecordCategory::Medication => Self::Medication,
            RecordCategory::Allergy => Self::Allergy,
            RecordCategory::Immunization => Self::Immunization,
            RecordCategory::Problem => Self::Problem,
            RecordCategory::CarePlan => Self::CarePlan,
            RecordCategory::Visit => Self::Visit,
            RecordCategory::Imaging => Self::Imaging,
            RecordCategory::Procedure => Self::Procedure,
            RecordCategory::Billing => Self::Billing,
            RecordCategory::Other => Self::Other,
        }
    }
}

fn category_of(category: Category) -> RecordCategory {
    match category {
        Category::Note | Category::Attachment => RecordCategory::Note,
        Category::Lab => RecordCategory::Lab,
        Category::Vital => RecordCategory::Vital,
        Category::Medication => RecordCategory::Medication,
        Category::Allergy => RecordCategory::Allergy,
        Category::Immunization => RecordCategory::Immunization,
        Category::Problem => RecordCategory::Problem,
        Category::CarePlan => RecordCategory::CarePlan,
        Category::Visit => RecordCategory::Visit,
        Category::Imaging => RecordCategory::Imaging,
        Category::Procedure => RecordCategory::Procedure,
        Category::Billing => RecordCategory::Billing,
        Category::Other => RecordCategory::Other,
    }
}

/// The eight information-blocking exceptions (45 CFR 171): the only grounds on which one
/// item may be withheld from its patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "portico_platform::records::Exception")]
pub enum InformationBlockingException {
    /// 171.201: a licensed professional judged that access would likely endanger life or
    /// physical safety.
    PreventingHarm,
    /// 171.202: the patient's privacy.
    Privacy,
    /// 171.203: security.
    Security,
    /// 171.204: infeasibility.
    Infeasibility,
    /// 171.205: health IT maintenance or performance.
    HealthItPerformance,
    /// 171.301: content and manner.
    ContentAndManner,
    /// 171.302: fees.
    Fees,
    /// 171.303: licensing.
    Licensing,
}

/// One item of your record.
#[derive(Debug, SimpleObject)]
pub struct RecordItem {
    /// Portico's id for it.
    id: String,
    /// Its FHIR resource type.
    resource_type: String,
    /// Where in the record it belongs.
    category: RecordCategory,
    /// What it is, in the clinic's words.
    title: String,
    /// Its status at the clinic (final, amended, active, …).
    status: String,
    /// Not final yet: shown because the clinic shows preliminary results, labelled so.
    preliminary: bool,
    /// When it happened (taken, given, written, started), RFC 3339.
    effective_at: Option<String>,
    /// When the clinic's EHR finalized it, RFC 3339.
    finalized_at: Option<String>,
    /// When it was released to you, RFC 3339.
    released_at: Option<String>,
    /// When you first opened it (before now), RFC 3339; null until then.
    first_viewed_at: Option<String>,
    /// The whole FHIR R4 resource, as the clinic's EHR sent it.
    resource: Json<Value>,
}

/// A page of items, newest first.
#[derive(Debug, SimpleObject)]
pub struct RecordPage {
    /// The items.
    items: Vec<RecordItem>,
    /// Pass as `after` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// A file attached to a note.
#[derive(Debug, SimpleObject)]
pub struct RecordAttachment {
    /// Its media type.
    content_type: Option<String>,
    /// Its title.
    title: Option<String>,
    /// The text, for text attachments.
    text: Option<String>,
    /// The content, base64, for any attachment held in the record.
    data: Option<String>,
}

/// One item, whole: a note with its text and attachments.
#[derive(Debug, SimpleObject)]
pub struct RecordDetail {
    /// The item.
    item: RecordItem,
    /// Its attachments (for notes), text decoded.
    attachments: Vec<RecordAttachment>,
}

/// A lab result.
#[derive(Debug, SimpleObject)]
pub struct LabResult {
    /// The item.
    item: RecordItem,
    /// The analyte's code (LOINC where the clinic gives one).
    code: Option<String>,
    /// What was measured.
    name: String,
    /// The numeric value.
    value: Option<f64>,
    /// The value as text (with a comparator, or a text result).
    value_text: Option<String>,
    /// The unit.
    unit: Option<String>,
    /// The reference range's low end.
    range_low: Option<f64>,
    /// The reference range's high end.
    range_high: Option<f64>,
    /// The reference range, as text.
    reference_range: Option<String>,
    /// The flag: H, L, HH, LL, A, N, …
    flag: Option<String>,
}

/// A page of lab results, newest first.
#[derive(Debug, SimpleObject)]
pub struct LabResultPage {
    /// The results.
    results: Vec<LabResult>,
    /// Pass as `after` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// One analyte over time, oldest first: what a trend chart draws.
#[derive(Debug, SimpleObject)]
#[graphql(complex)]
pub struct LabTrend {
    /// The analyte's code.
    code: String,
    /// What is measured.
    name: String,
    /// The unit.
    unit: Option<String>,
    /// The results.
    results: Vec<LabResult>,
}

#[async_graphql::ComplexObject]
impl LabTrend {
    /// The trend as an accessible SVG chart (title and description in words, high and low
    /// results as up and down triangles, the reference range as a band); null when no
    /// result has a numeric value. Show the results as a table beside it.
    async fn chart_svg(&self) -> Option<String> {
        let points: Vec<crate::chart::Point> = self
            .results
            .iter()
            .filter_map(|result| {
                let at = result
                    .item
                    .effective_at
                    .as_deref()
                    .and_then(parse_datetime)?;
                Some(crate::chart::Point {
                    at,
                    value: result.value?,
                    flag: result.flag.clone(),
                })
            })
            .collect();
        let latest = self.results.last();
        crate::chart::svg(
            &crate::chart::Trend {
                name: &self.name,
                unit: self.unit.as_deref(),
                low: latest.and_then(|r| r.range_low),
                high: latest.and_then(|r| r.range_high),
                points: &points,
            },
            &self.code,
        )
    }
}

/// How far a sync job got.
#[derive(Debug, SimpleObject)]
pub struct SyncProgress {
    /// queued, done or failed.
    state: String,
    /// backfill, poll or push.
    kind: String,
    /// Resource types read so far.
    done: i32,
    /// Resource types to read.
    total: i32,
    /// Resources stored so far.
    stored: i32,
    /// Attempts so far.
    attempts: i32,
    /// The last failure (an HTTP status or a step, never record content).
    last_error: Option<String>,
}

/// How current your record is.
#[derive(Debug, SimpleObject)]
pub struct RecordFreshness {
    /// Whether your record here is connected to the clinic's EHR.
    linked: bool,
    /// When it was last brought up to date, RFC 3339.
    last_synced_at: Option<String>,
    /// Whether it may be out of date.
    stale: bool,
    /// The first full copy's progress, while it runs.
    backfill: Option<SyncProgress>,
}

/// One patient's sync, for the clinic's admins.
#[derive(Debug, SimpleObject)]
pub struct PatientSyncState {
    /// The patient's id.
    patient_id: String,
    /// When the first full copy finished.
    backfilled_at: Option<String>,
    /// When a sync last completed.
    last_synced_at: Option<String>,
    /// The first full copy.
    backfill: Option<SyncProgress>,
}

/// The clinic's EHR sync, for its admins.
#[derive(Debug, SimpleObject)]
pub struct RecordSyncState {
    /// Each linked patient.
    patients: Vec<PatientSyncState>,
    /// Jobs waiting.
    queued: u64,
    /// Jobs given up after repeated failures.
    failed: u64,
    /// Resources the EHR sent that could not be stored.
    errors: u64,
    /// Finalized in the EHR → visible here: items measured.
    latency_count: u64,
    /// … the median, in milliseconds.
    latency_p50_ms: Option<i64>,
    /// … the 95th percentile, in milliseconds.
    latency_p95_ms: Option<i64>,
}

/// A withholding, for compliance review.
#[derive(Debug, SimpleObject)]
pub struct WithholdingInfo {
    /// Its id.
    id: String,
    /// The item held back.
    record_id: String,
    /// Whose.
    patient_id: String,
    /// Under which exception.
    exception: InformationBlockingException,
    /// The regulation.
    citation: String,
    /// Why.
    reason: String,
    /// Until when at the latest, RFC 3339.
    until: String,
    /// By whom (account id).
    withheld_by: String,
    /// When, RFC 3339.
    withheld_at: String,
    /// Released by whom.
    released_by: Option<String>,
    /// When it was released, RFC 3339.
    released_at: Option<String>,
}

/// What to withhold, and why.
#[derive(Debug, InputObject)]
pub struct WithholdInput {
    /// The item (`RecordItem.id`).
    record_id: String,
    /// The exception it falls under. Required: there is no other ground.
    exception: InformationBlockingException,
    /// Why, in 10 to 2000 characters; kept for compliance review.
    reason: String,
    /// The last day it may be withheld, RFC 3339 or YYYY-MM-DD; at most a year ahead.
    until: String,
}

/// The record's queries, merged into the root query.
#[derive(Debug, Default)]
pub struct RecordsQuery;

#[Object]
impl RecordsQuery {
    /// Your record, every category, newest first: `first` items (1 to 200) after `after`,
    /// optionally one category and a date range (`from` inclusive, `to` exclusive; dates
    /// or RFC 3339 times). Only what is final is here, the moment it is, unless the clinic
    /// also shows preliminary results (labelled).
    async fn record_items(
        &self,
        ctx: &Context<'_>,
        category: Option<RecordCategory>,
        from: Option<String>,
        to: Option<String>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<RecordPage> {
        let principal = patient(ctx)?;
        let filter = Filter {
            category: category.map(Category::from),
            from: date_arg("from", from.as_deref())?,
            to: date_arg("to", to.as_deref())?,
            resource_types: Vec::new(),
        };
        let page = records(ctx)?
            .list(principal, &filter, page_size(first)?, after.as_deref())
            .await
            .map_err(from_records)?;
        Ok(RecordPage {
            items: page.items.into_iter().map(item).collect(),
            next_cursor: page.next,
        })
    }

    /// One item, whole: a note in full, with its attachments.
    async fn record_item(&self, ctx: &Context<'_>, id: String) -> Result<RecordDetail> {
        let principal = patient(ctx)?;
        let id: RecordId = id
            .parse()
            .map_err(|_| ErrorCode::NotFound.error("Not found."))?;
        let (found, binaries) = records(ctx)?
            .item(principal, id)
            .await
            .map_err(from_records)?;
        let mut attachments = inline_attachments(&found.resource);
        attachments.extend(binaries.iter().map(|binary| {
            let data = binary.resource["data"].as_str().map(str::to_owned);
            let content_type = binary.resource["contentType"].as_str().map(str::to_owned);
            RecordAttachment {
                text: decode_text(content_type.as_deref(), data.as_deref()),
                content_type,
                title: None,
                data,
            }
        }));
        Ok(RecordDetail {
            item: item(found),
            attachments,
        })
    }

    /// Your lab results, newest first, with value, unit, reference range and flag.
    async fn lab_results(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<LabResultPage> {
        let principal = patient(ctx)?;
        let (results, next) = records(ctx)?
            .labs(principal, page_size(first)?, after.as_deref())
            .await
            .map_err(from_records)?;
        Ok(LabResultPage {
            results: results.into_iter().map(lab).collect(),
            next_cursor: next,
        })
    }

    /// Your lab results grouped by what was measured, each oldest first, for trends.
    async fn lab_trends(&self, ctx: &Context<'_>) -> Result<Vec<LabTrend>> {
        let principal = patient(ctx)?;
        let trends = records(ctx)?
            .lab_trends(principal)
            .await
            .map_err(from_records)?;
        Ok(trends
            .into_iter()
            .map(|trend| LabTrend {
                code: trend.code,
                name: trend.name,
                unit: trend.unit,
                results: trend.points.into_iter().map(lab).collect(),
            })
            .collect())
    }

    /// Your whole record as one FHIR R4 Bundle (type `collection`), attachments included:
    /// what "download my record" gives. Always free.
    async fn record_bundle(&self, ctx: &Context<'_>) -> Result<Json<Value>> {
        let principal = patient(ctx)?;
        let bundle = records(ctx)?
            .export(principal)
            .await
            .map_err(from_records)?;
        Ok(Json(bundle))
    }

    /// How current your record is: the last sync and whether it may be stale.
    async fn record_freshness(&self, ctx: &Context<'_>) -> Result<RecordFreshness> {
        let principal = patient(ctx)?;
        let freshness = records(ctx)?
            .freshness(principal)
            .await
            .map_err(from_records)?;
        Ok(RecordFreshness {
            linked: freshness.linked,
            last_synced_at: freshness.last_synced_at.map(time),
            stale: freshness.stale,
            backfill: freshness.backfill.map(progress),
        })
    }

    /// The clinic's EHR sync: each patient's backfill, the queue, errors and
    /// finalized→visible latency. Clinic admins only.
    async fn record_sync(&self, ctx: &Context<'_>) -> Result<RecordSyncState> {
        let principal = signed_in(ctx)?;
        let tenant = request_context(ctx)?.tenant.id;
        let overview = records(ctx)?
            .sync_overview(principal, tenant)
            .await
            .map_err(from_records)?;
        Ok(RecordSyncState {
            patients: overview
                .patients
                .into_iter()
                .map(|patient| PatientSyncState {
                    patient_id: patient.patient.to_string(),
                    backfilled_at: patient.backfilled_at.map(time),
                    last_synced_at: patient.last_synced_at.map(time),
                    backfill: patient.backfill.map(progress),
                })
                .collect(),
            queued: overview.queued,
            failed: overview.failed,
            errors: overview.errors,
            latency_count: overview.latency.count,
            latency_p50_ms: overview.latency.p50_ms,
            latency_p95_ms: overview.latency.p95_ms,
        })
    }

    /// Every withholding, newest first, with its reason: the compliance list. Clinic
    /// admins only.
    async fn withholdings(&self, ctx: &Context<'_>) -> Result<Vec<WithholdingInfo>> {
        let principal = signed_in(ctx)?;
        let list = records(ctx)?
            .withholdings(principal)
            .await
            .map_err(from_records)?;
        Ok(list.into_iter().map(withholding).collect())
    }
}

/// The record's mutations, merged into the root mutation.
#[derive(Debug, Default)]
pub struct RecordsMutation;

#[Object]
impl RecordsMutation {
    /// Withholds one item from its patient under an information-blocking exception, with a
    /// reason and an end date. Providers and clinic admins only; audited and listed for
    /// compliance review.
    async fn withhold_record(&self, ctx: &Context<'_>, input: WithholdInput) -> Result<String> {
        let principal = signed_in(ctx)?;
        let record: RecordId = input
            .record_id
            .parse()
            .map_err(|_| ErrorCode::NotFound.error("Not found."))?;
        let until = date_arg("until", Some(&input.until))?
            .ok_or_else(|| ErrorCode::ValidationFailed.error("`until` is required."))?;
        let id = records(ctx)?
            .withhold(
                principal,
                record,
                input.exception.into(),
                &input.reason,
                until,
            )
            .await
            .map_err(from_records)?;
        Ok(id.to_string())
    }

    /// Ends a withholding now: the item is visible to its patient at once. Audited.
    async fn release_withholding(&self, ctx: &Context<'_>, id: String) -> Result<bool> {
        let principal = signed_in(ctx)?;
        let id: WithholdingId = id
            .parse()
            .map_err(|_| ErrorCode::NotFound.error("Not found."))?;
        records(ctx)?
            .release(principal, id)
            .await
            .map_err(from_records)?;
        Ok(true)
    }
}

fn records<'a>(ctx: &Context<'a>) -> Result<&'a Records> {
    ctx.data::<Records>()
}

fn signed_in<'a>(ctx: &Context<'a>) -> Result<&'a Principal> {
    let request = request_context(ctx)?;
    match &request.principal {
        Principal::Patient { tenant, .. } | Principal::Staff { tenant, .. }
            if *tenant == request.tenant.id =>
        {
            Ok(&request.principal)
        }
        Principal::Patient { .. } | Principal::Staff { .. } => {
            Err(ErrorCode::Forbidden.error("Not allowed."))
        }
        _ => Err(ErrorCode::Unauthenticated.error("Sign in first.")),
    }
}

fn patient<'a>(ctx: &Context<'a>) -> Result<&'a Principal> {
    let principal = signed_in(ctx)?;
    match principal {
        Principal::Patient { .. } => Ok(principal),
        _ => Err(ErrorCode::Forbidden.error("Only a patient reads their own record here.")),
    }
}

fn page_size(first: i32) -> Result<u64> {
    u64::try_from(first)
        .ok()
        .filter(|first| (1..=service::MAX_PAGE).contains(first))
        .ok_or_else(|| ErrorCode::ValidationFailed.error("`first` must be 1 to 200."))
}

fn date_arg(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    value
        .map(|value| {
            parse_datetime(value.trim()).ok_or_else(|| {
                ErrorCode::ValidationFailed.error(format!(
                    "`{name}` must be a date (YYYY-MM-DD) or an RFC 3339 time."
                ))
            })
        })
        .transpose()
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn item(found: service::Item) -> RecordItem {
    RecordItem {
        id: found.id.to_string(),
        title: title(&found.resource),
        resource_type: found.resource_type,
        category: category_of(found.category),
        status: found.status,
        preliminary: found.preliminary,
        effective_at: found.effective_at.map(time),
        finalized_at: found.finalized_at.map(time),
        released_at: found.released_at.map(time),
        first_viewed_at: found.first_viewed_at.map(time),
        resource: Json(found.resource),
    }
}

fn lab(result: service::LabResult) -> LabResult {
    let reading = result.reading;
    LabResult {
        item: item(result.item),
        code: reading.code,
        name: reading.name,
        value: reading.value,
        value_text: reading.value_text,
        unit: reading.unit,
        range_low: reading.low,
        range_high: reading.high,
        reference_range: reading.range,
        flag: reading.flag,
    }
}

fn progress(job: JobStatus) -> SyncProgress {
    SyncProgress {
        state: job.state,
        kind: match job.kind {
            JobKind::Backfill => "backfill",
            JobKind::Poll => "poll",
            JobKind::Push => "push",
        }
        .to_owned(),
        done: job.progress.done,
        total: job.progress.total,
        stored: job.progress.stored,
        attempts: job.attempts,
        last_error: job.last_error,
    }
}

fn withholding(found: service::Withholding) -> WithholdingInfo {
    WithholdingInfo {
        id: found.id.to_string(),
        record_id: found.record.to_string(),
        patient_id: found.patient.to_string(),
        exception: found.exception.into(),
        citation: found.exception.citation().to_owned(),
        reason: found.reason,
        until: time(found.until),
        withheld_by: found.withheld_by,
        withheld_at: time(found.withheld_at),
        released_by: found.released_by,
        released_at: found.released_at.map(time),
    }
}

/// A note's attachments carried inline (`attachment.data`).
fn inline_attachments(resource: &Value) -> Vec<RecordAttachment> {
    resource["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|content| content.get("attachment"))
        .filter(|attachment| attachment.get("data").is_some())
        .map(|attachment| {
            let content_type = attachment["contentType"].as_str().map(str::to_owned);
            let data = attachment["data"].as_str().map(str::to_owned);
            RecordAttachment {
                text: decode_text(content_type.as_deref(), data.as_deref()),
                title: attachment["title"].as_str().map(str::to_owned),
                content_type,
                data,
            }
        })
        .collect()
}

fn decode_text(content_type: Option<&str>, data: Option<&str>) -> Option<String> {
    if !content_type.is_some_and(|t| t.starts_with("text/")) {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data?.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Translates a record failure for the client.
pub(crate) fn from_records(err: RecordError) -> async_graphql::Error {
    match err {
        RecordError::Invalid(problem) => ErrorCode::ValidationFailed.error(problem),
        RecordError::NotFound => ErrorCode::NotFound.error("Not found."),
        RecordError::Forbidden => ErrorCode::Forbidden.error("Not allowed."),
        RecordError::Conflict => ErrorCode::Conflict.error(err.to_string()),
        RecordError::Vault(err) => error::from_vault(err),
        RecordError::Audit(err) => error::from_audit(err),
        RecordError::Ehr(_) | RecordError::Database(_) => error::internal(&err),
    }
}
