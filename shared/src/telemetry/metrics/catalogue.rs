//! The catalogue: every metric this service publishes, with its unit and the
//! dimensions it is published with, in namespace [`NAMESPACE`]. The table of
//! `docs/operations.md` is this catalogue, row for row.

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "BillingAdmin";

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
    /// A duration in seconds.
    Seconds,
}

impl Unit {
    /// The unit's CloudWatch name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
        }
    }
}

/// A dimension name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// The CloudFormation stack (every metric's first dimension; [`super::stack`]).
    Stack,
    /// The function (package name).
    Function,
    /// `2xx`, `4xx` or `5xx`.
    StatusClass,
    /// Why authentication failed ([`crate::auth::AuthError::reason`], or `forbidden`).
    Reason,
    /// A deletion cascade step.
    Step,
    /// How a cascade step ended.
    Outcome,
    /// A Stripe operation.
    Operation,
    /// Where an event came from: `stripe` or `platform`.
    Source,
}

impl Dimension {
    /// The dimension's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stack => "Stack",
            Self::Function => "Function",
            Self::StatusClass => "StatusClass",
            Self::Reason => "Reason",
            Self::Step => "Step",
            Self::Outcome => "Outcome",
            Self::Operation => "Operation",
            Self::Source => "Source",
        }
    }
}

/// Every metric this service publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// HTTP requests, by function and status class.
    Requests,
    /// HTTP request latency, by function.
    Latency,
    /// Process starts (cold starts), by function.
    ColdStart,
    /// Failed authentications and role checks, by function and reason.
    AuthFailures,
    /// Transaction attempts cancelled by a conflicting transaction.
    TransactionConflicts,
    /// Transaction attempts re-sent after a conflict.
    TransactionRetries,
    /// Customers in the deleting state.
    DeletingCustomers,
    /// Age of the oldest customer in the deleting state (0 when none).
    OldestDeletionAgeSeconds,
    /// Deletion cascade steps run, by step and outcome.
    CascadeSteps,
    /// Deletion cascade step durations, by step and outcome.
    CascadeStepDuration,
    /// Stripe calls, by operation.
    StripeCalls,
    /// Failed Stripe calls, by operation.
    StripeErrors,
    /// Events received from Stripe and the platform, by source and outcome.
    SyncEvents,
    /// Customers a reconciliation compared with Stripe.
    ReconcileChecked,
    /// Customers a reconciliation found drifted from Stripe.
    ReconcileDrifted,
    /// Drifted customers a reconciliation repaired.
    ReconcileRepaired,
    /// Age of the oldest listing count change a compaction of a listing's
    /// directory moved into its months (how far the fold lags).
    FoldLagSeconds,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Self; 17] = [
        Self::Requests,
        Self::Latency,
        Self::ColdStart,
        Self::AuthFailures,
        Self::TransactionConflicts,
        Self::TransactionRetries,
        Self::DeletingCustomers,
        Self::OldestDeletionAgeSeconds,
        Self::CascadeSteps,
        Self::CascadeStepDuration,
        Self::StripeCalls,
        Self::StripeErrors,
        Self::SyncEvents,
        Self::ReconcileChecked,
        Self::ReconcileDrifted,
        Self::ReconcileRepaired,
        Self::FoldLagSeconds,
    ];

    /// The metric's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Self::Requests => "Requests",
            Self::Latency => "Latency",
            Self::ColdStart => "ColdStart",
            Self::AuthFailures => "AuthFailures",
            Self::TransactionConflicts => "TransactionConflicts",
            Self::TransactionRetries => "TransactionRetries",
            Self::DeletingCustomers => "DeletingCustomers",
            Self::OldestDeletionAgeSeconds => "OldestDeletionAgeSeconds",
            Self::CascadeSteps => "CascadeSteps",
            Self::CascadeStepDuration => "CascadeStepDuration",
            Self::StripeCalls => "StripeCalls",
            Self::StripeErrors => "StripeErrors",
            Self::SyncEvents => "SyncEvents",
            Self::ReconcileChecked => "ReconcileChecked",
            Self::ReconcileDrifted => "ReconcileDrifted",
            Self::ReconcileRepaired => "ReconcileRepaired",
            Self::FoldLagSeconds => "FoldLagSeconds",
        }
    }

    /// Its unit.
    pub fn unit(self) -> Unit {
        match self {
            Self::Latency | Self::CascadeStepDuration => Unit::Milliseconds,
            Self::OldestDeletionAgeSeconds | Self::FoldLagSeconds => Unit::Seconds,
            _ => Unit::Count,
        }
    }

    /// Its own dimensions: it is published with `Stack` followed by these
    /// ([`Metric::dimension_set`]).
    pub fn dimensions(self) -> &'static [Dimension] {
        use Dimension as D;
        match self {
            Self::Requests => &[D::Function, D::StatusClass],
            Self::Latency
            | Self::ColdStart
            | Self::TransactionConflicts
            | Self::TransactionRetries => &[D::Function],
            Self::AuthFailures => &[D::Function, D::Reason],
            Self::DeletingCustomers
            | Self::OldestDeletionAgeSeconds
            | Self::ReconcileChecked
            | Self::ReconcileDrifted
            | Self::ReconcileRepaired
            | Self::FoldLagSeconds => &[],
            Self::SyncEvents => &[D::Source, D::Outcome],
            Self::CascadeSteps | Self::CascadeStepDuration => &[D::Step, D::Outcome],
            Self::StripeCalls | Self::StripeErrors => &[D::Operation],
        }
    }

    /// The one dimension set it is published with (and that an alarm on it
    /// must name, whole): `Stack`, then [`Metric::dimensions`].
    pub fn dimension_set(self) -> Vec<Dimension> {
        std::iter::once(Dimension::Stack)
            .chain(self.dimensions().iter().copied())
            .collect()
    }
}
