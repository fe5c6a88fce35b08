//! `billing-dev import`: load customers with their members from an NDJSON
//! file, a fixtures file or Stripe, resumably and idempotently.
//!
//! Each customer is created with its owner in one transaction
//! ([`Store::create_customer_with_owner`]), then its other members are added.
//! A customer that exists already is skipped and counted (its missing
//! non-owner members are added, so a run cut between the two writes completes
//! on the next one); an invalid record is reported and counted, never fatal.
//! Records run `concurrency` at a time but complete in input order, so the
//! checkpoint is always a prefix of the input: the count of records done for
//! a file, the last Stripe customer of the last page done for Stripe.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use billing::domain::audit::Origin;
use billing::domain::{CustomerId, Member, NewCustomer, Role, UserId};
use billing::payments::{Payments, StripeCustomer};
use billing::seed::FixtureCustomer;
use billing::store::{Store, StoreError};
use billing::sync::reconcile::StripeView;
use futures_util::{StreamExt, stream};
pub use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an import can fail with (a record that is invalid is no failure).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Records in flight by default.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// How often the checkpoint is saved at most (and always at the end of a page).
const SAVE_EVERY: Duration = Duration::from_millis(500);
/// Member checks in flight when completing an existing customer's members.
const MEMBER_CHECKS: usize = 8;

/// Where the customers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// One fixtures-format customer object per line.
    Ndjson(PathBuf),
    /// A fixtures file: `{"customers": [...]}`.
    Fixtures(PathBuf),
    /// Stripe customers tagged `metadata[customerID]` and `metadata[ownerUserID]`.
    Stripe,
}

impl Source {
    /// How a checkpoint names the source (so that one is not resumed with another).
    fn name(&self) -> String {
        let path = |p: &Path| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        match self {
            Self::Ndjson(p) => format!("ndjson:{}", path(p)),
            Self::Fixtures(p) => format!("fixtures:{}", path(p)),
            Self::Stripe => "stripe".to_owned(),
        }
    }
}

/// How to import.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where progress is saved after records complete, and resumed from when
    /// the file exists; deleted when the import completes.
    pub checkpoint: Option<PathBuf>,
    /// Records in flight (at least 1).
    pub concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            checkpoint: None,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// A record that was not imported (or only in part), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which record: `line 3`, `customers[2]`, `cus_...`.
    pub record: String,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Records already done by an earlier run (from the checkpoint), files only.
    pub resumed_at: u64,
    /// Records handled by this run (blank lines and untagged Stripe customers
    /// included).
    pub records: u64,
    /// Customers created.
    pub created: u64,
    /// Customers that existed already.
    pub existing: u64,
    /// Invalid records (see `problems`).
    pub invalid: u64,
    /// Stripe customers left out: untagged, or without a subscription naming a tier.
    pub skipped: u64,
    /// Members added (owners included).
    pub members: u64,
    /// Members left out because they belong to another customer.
    pub member_conflicts: u64,
    /// Invalid records, skipped tagged Stripe customers and member conflicts.
    pub problems: Vec<Problem>,
    /// How long this run took.
    pub elapsed: Duration,
}

impl ImportReport {
    /// Customers handled per second by this run.
    pub fn rate(&self) -> f64 {
        (self.created + self.existing + self.invalid) as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    fn tally(&mut self, record: String, outcome: Outcome) {
        self.records += 1;
        match outcome {
            Outcome::Blank => {}
            Outcome::Created { members, conflicts } => {
                self.created += 1;
                self.members += members;
                self.conflicts(record, conflicts);
            }
            Outcome::Existing { members, conflicts } => {
                self.existing += 1;
                self.members += members;
                self.conflicts(record, conflicts);
            }
            Outcome::Invalid(reason) => {
                self.invalid += 1;
                self.problems.push(Problem { record, reason });
            }
            Outcome::Skipped(reason) => {
                self.skipped += 1;
                if let Some(reason) = reason {
                    self.problems.push(Problem { record, reason });
                }
            }
        }
    }

    fn conflicts(&mut self, record: String, users: Vec<UserId>) {
        if users.is_empty() {
            return;
        }
        self.member_conflicts += users.len() as u64;
        let users: Vec<String> = users.iter().map(ToString::to_string).collect();
        self.problems.push(Problem {
            record,
            reason: format!(
                "members left out, they belong to another customer: {}",
                users.join(", ")
            ),
        });
    }
}

/// What became of one record.
#[derive(Debug)]
enum Outcome {
    Blank,
    Created {
        members: u64,
        conflicts: Vec<UserId>,
    },
    Existing {
        members: u64,
        conflicts: Vec<UserId>,
    },
    Invalid(String),
    Skipped(Option<String>),
}

/// Saved progress.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    source: String,
    /// Records done (files).
    #[serde(default)]
    done: u64,
    /// The last Stripe customer done (Stripe).
    #[serde(default)]
    after: Option<String>,
}

/// Imports every record of `source` into `store` (Stripe is read through
/// `payments`, required for [`Source::Stripe`]), showing progress on `progress`.
pub async fn import(
    store: &Store,
    payments: Option<&Payments>,
    source: &Source,
    options: &Options,
    progress: &ProgressBar,
) -> Result<ImportReport, Error> {
    let began = Instant::now();
    let resume = match &options.checkpoint {
        Some(path) if path.exists() => {
            let saved: Checkpoint = serde_json::from_slice(&std::fs::read(path)?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if saved.source != source.name() {
                return Err(format!(
                    "{} is the checkpoint of {}, not of {}",
                    path.display(),
                    saved.source,
                    source.name()
                )
                .into());
            }
            Some(saved)
        }
        _ => None,
    };
    let mut saver = Saver {
        path: options.checkpoint.as_deref(),
        source: source.name(),
        saved: Instant::now(),
    };
    let concurrency = options.concurrency.max(1);
    let mut report = match source {
        Source::Ndjson(path) | Source::Fixtures(path) => {
            let done = resume.map_or(0, |c| c.done);
            let records = records(source, path)?;
            progress.set_length(records.len);
            progress.set_position(done);
            let mut report = ImportReport {
                resumed_at: done,
                ..ImportReport::default()
            };
            let mut outcomes = stream::iter(records.iter.skip(done as usize))
                .map(|(index, raw)| async move { (index, file_record(store, raw).await) })
                .buffered(concurrency);
            while let Some((index, outcome)) = outcomes.next().await {
                let label = match source {
                    Source::Fixtures(_) => format!("customers[{index}]"),
                    _ => format!("line {}", index + 1),
                };
                let outcome = match outcome {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        saver.save_files(index, true)?;
                        return Err(format!("{label}: {e}").into());
                    }
                };
                report.tally(label, outcome);
                progress.set_position(index + 1);
                show(progress, &report);
                saver.save_files(index + 1, false)?;
            }
            report
        }
        Source::Stripe => {
            let payments = payments.ok_or("importing from Stripe needs Stripe settings")?;
            stripe(
                store,
                payments,
                resume.and_then(|c| c.after),
                concurrency,
                progress,
                &mut saver,
            )
            .await?
        }
    };
    if let Some(path) = options.checkpoint.as_deref().filter(|p| p.exists()) {
        std::fs::remove_file(path)?;
    }
    report.elapsed = began.elapsed();
    Ok(report)
}

/// The records of a file: their count and, in order, each with its index.
struct Records {
    len: u64,
    iter: Box<dyn Iterator<Item = (u64, Raw)> + Send>,
}

/// One record as read.
enum Raw {
    Blank,
    Unreadable(String),
    Json(serde_json::Value),
}

fn records(source: &Source, path: &Path) -> Result<Records, Error> {
    let open = || std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()));
    match source {
        Source::Fixtures(_) => {
            #[derive(Deserialize)]
            struct File {
                customers: Vec<serde_json::Value>,
            }
            let file: File = serde_json::from_reader(BufReader::new(open()?))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Records {
                len: file.customers.len() as u64,
                iter: Box::new((0..).zip(file.customers.into_iter().map(Raw::Json))),
            })
        }
        _ => {
            let len = BufReader::new(open()?).lines().count() as u64;
            let lines = BufReader::new(open()?).lines().map(|line| match line {
                Err(e) => Raw::Unreadable(e.to_string()),
                Ok(line) if line.trim().is_empty() => Raw::Blank,
                Ok(line) => match serde_json::from_str(&line) {
                    Ok(value) => Raw::Json(value),
                    Err(e) => Raw::Unreadable(format!("not JSON: {e}")),
                },
            });
            Ok(Records {
                len,
                iter: Box::new((0..).zip(lines)),
            })
        }
    }
}

/// Imports one record of a file.
async fn file_record(store: &Store, raw: Raw) -> Result<Outcome, StoreError> {
    let value = match raw {
        Raw::Blank => return Ok(Outcome::Blank),
        Raw::Unreadable(reason) => return Ok(Outcome::Invalid(reason)),
        Raw::Json(value) => value,
    };
    let fixture: FixtureCustomer = match serde_json::from_value(value) {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::Invalid(e.to_string())),
    };
    match fixture.to_domain() {
        Ok((customer, members)) => create(store, &customer, members).await,
        Err(e) => Ok(Outcome::Invalid(e.to_string())),
    }
}

/// Creates a customer with its owner, then its other members; completes the
/// members of one that exists already.
async fn create(
    store: &Store,
    customer: &NewCustomer,
    members: Vec<Member>,
) -> Result<Outcome, StoreError> {
    let (owner, others): (Vec<Member>, Vec<Member>) =
        members.into_iter().partition(|m| m.role == Role::Owner);
    let owner = owner.first();
    // One read first: a rerun then costs a read per customer, not a
    // transaction that fails.
    if let Some(existing) = store.find_customer(&customer.id).await? {
        return self::existing(store, &existing, owner, &others).await;
    }
    match store
        .create_customer_with_owner(customer, owner, None, &importer())
        .await
    {
        Ok(_) => {}
        Err(StoreError::CustomerExists) => {
            return match store.find_customer(&customer.id).await? {
                Some(existing) => self::existing(store, &existing, owner, &others).await,
                None => Ok(Outcome::Invalid(
                    "the customer was deleted meanwhile".into(),
                )),
            };
        }
        Err(StoreError::AlreadyMember) => {
            return Ok(Outcome::Invalid(format!(
                "owner {} already belongs to another customer",
                customer.owner_user_id
            )));
        }
        Err(StoreError::StripeCustomerClaimed) => {
            return Ok(Outcome::Invalid(
                "its Stripe customer belongs to another customer".into(),
            ));
        }
        Err(e) => return Err(e),
    }
    let with_owner = u64::from(owner.is_some());
    match store.add_members(&customer.id, &others, &importer()).await {
        Ok(()) => Ok(Outcome::Created {
            members: with_owner + others.len() as u64,
            conflicts: Vec::new(),
        }),
        // One of them belongs to another customer: the others one by one.
        Err(StoreError::AlreadyMember) => {
            let (added, conflicts) = complete_members(store, &customer.id, &others).await?;
            Ok(Outcome::Created {
                members: with_owner + added,
                conflicts,
            })
        }
        Err(e) => Err(e),
    }
}

/// A customer that exists already: counted, its missing members added (a
/// run cut between its two writes); one being deleted is left alone.
async fn existing(
    store: &Store,
    existing: &billing::domain::Customer,
    owner: Option<&Member>,
    others: &[Member],
) -> Result<Outcome, StoreError> {
    let complete = existing.member_count as usize >= others.len() + usize::from(owner.is_some());
    if complete || existing.state != billing::domain::CustomerState::Active {
        return Ok(Outcome::Existing {
            members: 0,
            conflicts: Vec::new(),
        });
    }
    let (members, conflicts) = complete_members(store, &existing.id, others).await?;
    Ok(Outcome::Existing { members, conflicts })
}

/// Adds those of `members` that belong to no customer yet; returns how many
/// were added and the users that belong to another customer.
async fn complete_members(
    store: &Store,
    customer: &CustomerId,
    members: &[Member],
) -> Result<(u64, Vec<UserId>), StoreError> {
    let memberships: Vec<_> = stream::iter(members.to_vec())
        .map(|m| async move {
            let of = store.membership_of(&m.user_id).await;
            (m, of)
        })
        .buffered(MEMBER_CHECKS)
        .collect()
        .await;
    let (mut missing, mut conflicts) = (Vec::new(), Vec::new());
    for (m, of) in memberships {
        match of? {
            None => missing.push(m),
            Some((c, _)) if c == *customer => {}
            Some(_) => conflicts.push(m.user_id),
        }
    }
    let mut added = 0;
    for m in missing {
        // One at a time: a user taken meanwhile is a conflict, not a failure.
        match store
            .add_members(customer, std::slice::from_ref(&m), &importer())
            .await
        {
            Ok(()) => added += 1,
            Err(StoreError::AlreadyMember) => conflicts.push(m.user_id),
            Err(e) => return Err(e),
        }
    }
    Ok((added, conflicts))
}

/// Imports Stripe's tagged customers page by page from `after`.
async fn stripe(
    store: &Store,
    payments: &Payments,
    mut after: Option<String>,
    concurrency: usize,
    progress: &ProgressBar,
    saver: &mut Saver<'_>,
) -> Result<ImportReport, Error> {
    progress.set_message("reading Stripe's subscriptions");
    let view = StripeView::new(Vec::new(), payments.all_subscriptions().await?);
    let mut report = ImportReport::default();
    loop {
        let page = payments.customers_page(after.as_deref()).await?;
        let last = page.data.last().map(|c| c.id.clone());
        let outcomes: Vec<(String, Result<Outcome, StoreError>)> = stream::iter(page.data)
            .map(|c| {
                let view = &view;
                async move {
                    let outcome = stripe_record(store, view, &c).await;
                    (c.id, outcome)
                }
            })
            .buffered(concurrency)
            .collect()
            .await;
        for (id, outcome) in outcomes {
            report.tally(id, outcome?);
            progress.inc(1);
        }
        show(progress, &report);
        match (page.next, last) {
            (Some(_), Some(last)) => {
                saver.save_stripe(&last)?;
                after = Some(last);
            }
            _ => return Ok(report),
        }
    }
}

/// Imports one Stripe customer.
async fn stripe_record(
    store: &Store,
    view: &StripeView,
    c: &StripeCustomer,
) -> Result<Outcome, StoreError> {
    let meta = |key: &str| c.metadata.get(key).map(String::as_str);
    let (Some(id), Some(owner)) = (meta("customerID"), meta("ownerUserID")) else {
        // Not one of ours to import: counted, not reported.
        return Ok(Outcome::Skipped(None));
    };
    let Ok(id) = CustomerId::parse(id) else {
        return Ok(Outcome::Invalid(format!(
            "metadata.customerID {id:?} is not a UUID"
        )));
    };
    let owner = match UserId::parse(owner) {
        Ok(o) if !o.is_nil() => o,
        _ => {
            return Ok(Outcome::Invalid(format!(
                "metadata.ownerUserID {owner:?} is not a user UUID"
            )));
        }
    };
    if c.deleted {
        return Ok(Outcome::Skipped(Some(
            "the Stripe customer is deleted".into(),
        )));
    }
    let name = match billing::domain::customer_name(c.name.as_deref().unwrap_or_default()) {
        Ok(name) => name,
        Err(reason) => return Ok(Outcome::Invalid(reason.into())),
    };
    let Some(sub) = view.current_subscription(&c.id) else {
        return Ok(Outcome::Skipped(Some("no subscription".into())));
    };
    let Some((tier_name, tier_id)) = sub.tier.clone() else {
        return Ok(Outcome::Skipped(Some(format!(
            "subscription {} names no tier (metadata tierName and tierID)",
            sub.id
        ))));
    };
    let created_at =
        chrono::DateTime::from_timestamp(c.created, 0).unwrap_or_else(billing::domain::now);
    let customer = NewCustomer {
        id,
        name: name.to_owned(),
        tier_name,
        tier_id,
        subscription_status: sub.status,
        created_at,
        owner_user_id: owner,
        stripe_customer_id: Some(c.id.clone()),
        stripe_subscription_id: Some(sub.id.clone()),
    };
    let owner = Member {
        role_id: Uuid::new_v4(),
        user_id: owner,
        role: Role::Owner,
        joined_at: created_at,
    };
    create(store, &customer, vec![owner]).await
}

/// Shows the counts so far.
fn show(progress: &ProgressBar, r: &ImportReport) {
    progress.set_message(format!(
        "{} created, {} existing, {} invalid, {} skipped",
        r.created, r.existing, r.invalid, r.skipped
    ));
}

/// Writes the checkpoint (atomically: a temporary file renamed).
struct Saver<'a> {
    path: Option<&'a Path>,
    source: String,
    saved: Instant,
}

impl Saver<'_> {
    fn save_files(&mut self, done: u64, now: bool) -> Result<(), Error> {
        if !now && self.saved.elapsed() < SAVE_EVERY {
            return Ok(());
        }
        self.write(&Checkpoint {
            source: self.source.clone(),
            done,
            after: None,
        })
    }

    fn save_stripe(&mut self, after: &str) -> Result<(), Error> {
        self.write(&Checkpoint {
            source: self.source.clone(),
            done: 0,
            after: Some(after.to_owned()),
        })
    }

    fn write(&mut self, checkpoint: &Checkpoint) -> Result<(), Error> {
        let Some(path) = self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(checkpoint)?)?;
        std::fs::rename(tmp, path)?;
        self.saved = Instant::now();
        Ok(())
    }
}

/// Who the audit trail says added the imported members.
fn importer() -> Origin {
    Origin::system("billing-dev import")
}
