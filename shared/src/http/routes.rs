//! The routes of the API (the spec's six and the extensions): the one list
//! the local server, the tests, the SAM template and the OpenAPI document are
//! checked against.

use http::Method;

use crate::error::ApiError;

/// Path prefix of every route.
pub const PREFIX: &str = "/api/billing/v1/admin";

/// One endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /customers`
    ListCustomers,
    /// `GET /customer/{customerID}`
    GetCustomer,
    /// `DELETE /customer/{customerID}`
    DeleteCustomer,
    /// `GET /customer/{customerID}/members`
    ListMembers,
    /// `POST /customer/{customerID}/member`
    AddMember,
    /// `DELETE /customer/{customerID}/member/{userID}`
    RemoveMember,
    /// `PATCH /customer/{customerID}/member/{userID}` (extension)
    ChangeMemberRole,
    /// `GET /user/{userID}/customer` (extension)
    GetUserCustomer,
    /// `GET /customer/{customerID}/audit` (extension)
    ListAudit,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Self; 9] = [
        Self::ListCustomers,
        Self::GetCustomer,
        Self::DeleteCustomer,
        Self::ListMembers,
        Self::AddMember,
        Self::RemoveMember,
        Self::ChangeMemberRole,
        Self::GetUserCustomer,
        Self::ListAudit,
    ];

    /// HTTP method.
    pub fn method(self) -> Method {
        match self {
            Self::ListCustomers
            | Self::GetCustomer
            | Self::ListMembers
            | Self::GetUserCustomer
            | Self::ListAudit => Method::GET,
            Self::DeleteCustomer | Self::RemoveMember => Method::DELETE,
            Self::AddMember => Method::POST,
            Self::ChangeMemberRole => Method::PATCH,
        }
    }

    /// Path template below [`PREFIX`], with `{name}` parameters.
    pub fn path(self) -> &'static str {
        match self {
            Self::ListCustomers => "/customers",
            Self::GetCustomer | Self::DeleteCustomer => "/customer/{customerID}",
            Self::ListMembers => "/customer/{customerID}/members",
            Self::AddMember => "/customer/{customerID}/member",
            Self::RemoveMember | Self::ChangeMemberRole => "/customer/{customerID}/member/{userID}",
            Self::GetUserCustomer => "/user/{userID}/customer",
            Self::ListAudit => "/customer/{customerID}/audit",
        }
    }

    /// Name of the function (workspace package) that serves it.
    pub fn function(self) -> &'static str {
        match self {
            Self::ListCustomers => "list-customers",
            Self::GetCustomer => "get-customer",
            Self::DeleteCustomer => "delete-customer",
            Self::ListMembers => "list-members",
            Self::AddMember => "add-member",
            Self::RemoveMember => "remove-member",
            Self::ChangeMemberRole => "change-member-role",
            Self::GetUserCustomer => "get-user-customer",
            Self::ListAudit => "list-audit",
        }
    }

    /// Whether it honours `Idempotency-Key` (the mutations a client retries).
    pub fn idempotent(self) -> bool {
        matches!(
            self,
            Self::AddMember | Self::ChangeMemberRole | Self::DeleteCustomer
        )
    }

    /// Whether it pages with sealed cursors (its Lambda needs `CURSOR_KEY`).
    pub fn pages_with_cursors(self) -> bool {
        matches!(
            self,
            Self::ListCustomers | Self::ListMembers | Self::ListAudit
        )
    }

    /// The statuses every endpoint can answer: 400 (its input, or an
    /// `Idempotency-Key`), 401 and 403 (the caller), 500 (the database) and
    /// 503 (`auth_unavailable`, and `contention` where a transaction runs).
    pub const COMMON_STATUSES: [u16; 5] = [400, 401, 403, 500, 503];

    /// Every status it can answer, [`Endpoint::COMMON_STATUSES`] included,
    /// ascending: its one success, 404 where a customer, member or membership
    /// is looked up, 409 where a membership condition can fail or an
    /// `Idempotency-Key` is in use, 422 where one is reused.
    pub fn statuses(self) -> &'static [u16] {
        match self {
            Self::ListCustomers | Self::ListAudit => &[200, 400, 401, 403, 500, 503],
            Self::GetCustomer | Self::ListMembers | Self::GetUserCustomer => {
                &[200, 400, 401, 403, 404, 500, 503]
            }
            Self::DeleteCustomer => &[204, 400, 401, 403, 404, 409, 422, 500, 503],
            Self::AddMember => &[201, 400, 401, 403, 404, 409, 422, 500, 503],
            Self::RemoveMember => &[204, 400, 401, 403, 404, 409, 500, 503],
            Self::ChangeMemberRole => &[200, 400, 401, 403, 404, 409, 422, 500, 503],
        }
    }

    /// The DynamoDB actions (as IAM names them) its code performs on the
    /// table's items outside a transaction: `GetItem` everywhere (API keys,
    /// then records), `Query` where it reads partitions (listings, members,
    /// the deletion cascade's members, audit entries and their count).
    pub fn table_reads(self) -> &'static [&'static str] {
        match self {
            Self::GetCustomer
            | Self::AddMember
            | Self::RemoveMember
            | Self::ChangeMemberRole
            | Self::GetUserCustomer => &[GET_ITEM],
            Self::ListCustomers | Self::ListMembers | Self::DeleteCustomer | Self::ListAudit => {
                &[GET_ITEM, QUERY]
            }
        }
    }

    /// The secondary indexes it queries.
    pub fn indexes_queried(self) -> &'static [&'static str] {
        match self {
            Self::ListMembers => &[crate::store::table::MEMBERS_INDEX],
            _ => &[],
        }
    }

    /// The item actions inside its `TransactWriteItems` (IAM authorizes a
    /// transaction by them). Every change of a customer, a member or a
    /// membership puts its audit entry in the same transaction, and with an
    /// `Idempotency-Key` its answer (an Update of the key's record).
    pub fn transaction_writes(self) -> &'static [&'static str] {
        match self {
            Self::ListCustomers
            | Self::GetCustomer
            | Self::ListMembers
            | Self::GetUserCustomer
            | Self::ListAudit => &[],
            // The cascade: listing deltas, the audit entry and the
            // customer's tombstone (Put), the record and counts (Update),
            // entries, members, memberships and the record (Delete).
            Self::DeleteCustomer => &[PUT_ITEM, UPDATE_ITEM, DELETE_ITEM],
            // The members and memberships (Put), the customer's count, its
            // entries' and its members directory (Update).
            Self::AddMember => &[PUT_ITEM, UPDATE_ITEM],
            // The audit entry (Put), the counts and directory (Update), the
            // member and membership (Delete).
            Self::RemoveMember => &[PUT_ITEM, UPDATE_ITEM, DELETE_ITEM],
            // The customer checked active, the member put, the membership
            // and the members directory updated.
            Self::ChangeMemberRole => &[CONDITION_CHECK_ITEM, PUT_ITEM, UPDATE_ITEM],
        }
    }

    /// The item actions it performs outside a transaction, on its
    /// `Idempotency-Key` records only (claim; the answer of a request whose
    /// change committed none; release), each conditional.
    pub fn idempotency_writes(self) -> &'static [&'static str] {
        if self.idempotent() {
            &[PUT_ITEM, UPDATE_ITEM, DELETE_ITEM]
        } else {
            &[]
        }
    }
}

const GET_ITEM: &str = "dynamodb:GetItem";
const QUERY: &str = "dynamodb:Query";
const PUT_ITEM: &str = "dynamodb:PutItem";
const UPDATE_ITEM: &str = "dynamodb:UpdateItem";
const DELETE_ITEM: &str = "dynamodb:DeleteItem";
const CONDITION_CHECK_ITEM: &str = "dynamodb:ConditionCheckItem";

/// The operators' console (`functions/console`): its function and its two
/// routes, outside the admin prefix and its auth (the page it serves signs in
/// to the API itself). Any other method on its paths is 405.
pub const CONSOLE_FUNCTION: &str = "console";
/// `(METHOD, path)` of the console's routes, as the template declares them.
pub const CONSOLE_ROUTES: [(&str, &str); 2] = [("GET", "/console"), ("GET", "/console/{proxy+}")];

/// Whether `path` is the console's: `/console` or below `/console/`.
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Path parameters captured by a route.
pub type PathParams = Vec<(String, String)>;

/// Matches a request to an endpoint and its path parameters: 404 when no route has
/// the path, 405 (with the allowed methods) when none has it with this method.
///
/// The Stripe webhook's path is served by its own function (API Gateway routes
/// `POST` there): any other method on it is 405.
pub fn route(method: &Method, path: &str) -> Result<(Endpoint, PathParams), ApiError> {
    if path == crate::sync::webhook::PATH && method != Method::POST {
        return Err(ApiError::MethodNotAllowed(vec![Method::POST]));
    }
    if is_console_path(path) {
        // API Gateway sends the console's GETs to its function: what reaches
        // a router here is another method.
        return Err(ApiError::MethodNotAllowed(vec![Method::GET]));
    }
    let rest = path.strip_prefix(PREFIX).ok_or(ApiError::RouteNotFound)?;
    let mut allowed = Vec::new();
    for endpoint in Endpoint::ALL {
        if let Some(params) = matches(endpoint.path(), rest) {
            if endpoint.method() == method {
                return Ok((endpoint, params));
            }
            allowed.push(endpoint.method());
        }
    }
    if allowed.is_empty() {
        Err(ApiError::RouteNotFound)
    } else {
        Err(ApiError::MethodNotAllowed(allowed))
    }
}

fn matches(template: &str, path: &str) -> Option<PathParams> {
    let mut params = Vec::new();
    let mut want = template.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => {
                params.push((w.trim_matches(['{', '}']).to_owned(), percent_decode(g)?));
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

/// Decodes `%XX` escapes in a path segment (a `%` not followed by two hex digits
/// stays as it is); `None` when the result is not valid UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e";

    #[test]
    fn routes_every_endpoint_with_its_parameters() {
        let cases = [
            (
                Method::GET,
                "/customers".to_owned(),
                Endpoint::ListCustomers,
                0,
            ),
            (
                Method::GET,
                format!("/customer/{ID}"),
                Endpoint::GetCustomer,
                1,
            ),
            (
                Method::DELETE,
                format!("/customer/{ID}"),
                Endpoint::DeleteCustomer,
                1,
            ),
            (
                Method::GET,
                format!("/customer/{ID}/members"),
                Endpoint::ListMembers,
                1,
            ),
            (
                Method::POST,
                format!("/customer/{ID}/member"),
                Endpoint::AddMember,
                1,
            ),
            (
                Method::DELETE,
                format!("/customer/{ID}/member/{ID}"),
                Endpoint::RemoveMember,
                2,
            ),
            (
                Method::PATCH,
                format!("/customer/{ID}/member/{ID}"),
                Endpoint::ChangeMemberRole,
                2,
            ),
            (
                Method::GET,
                format!("/user/{ID}/customer"),
                Endpoint::GetUserCustomer,
                1,
            ),
            (
                Method::GET,
                format!("/customer/{ID}/audit"),
                Endpoint::ListAudit,
                1,
            ),
        ];
        for (method, path, want, n) in cases {
            let (got, params) = route(&method, &format!("{PREFIX}{path}")).unwrap();
            assert_eq!(got, want);
            assert_eq!(params.len(), n);
            assert!(params.iter().all(|(_, v)| v == ID));
        }
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        for path in [
            "/",
            "/api/billing/v1/admin",
            "/api/billing/v1/admin/customers/",
            "/api/billing/v1/admin/customer/",
            "/api/billing/v1/admin/customer//members",
            "/x/customers",
        ] {
            assert!(
                matches!(route(&Method::GET, path), Err(ApiError::RouteNotFound)),
                "{path}"
            );
        }
        match route(&Method::PUT, &format!("{PREFIX}/customer/{ID}")) {
            Err(ApiError::MethodNotAllowed(allowed)) => {
                assert_eq!(allowed, vec![Method::GET, Method::DELETE])
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route(&Method::POST, &format!("{PREFIX}/customers")),
            Err(ApiError::MethodNotAllowed(_))
        ));
        match route(&Method::GET, crate::sync::webhook::PATH) {
            Err(ApiError::MethodNotAllowed(allowed)) => assert_eq!(allowed, vec![Method::POST]),
            other => panic!("{other:?}"),
        }
        for path in ["/console", "/console/", "/console/assets/app.js"] {
            match route(&Method::POST, path) {
                Err(ApiError::MethodNotAllowed(allowed)) => assert_eq!(allowed, vec![Method::GET]),
                other => panic!("{path}: {other:?}"),
            }
        }
        assert!(matches!(
            route(&Method::GET, "/consoles"),
            Err(ApiError::RouteNotFound)
        ));
    }

    #[test]
    fn statuses_are_the_common_ones_plus_a_success_and_the_idempotency_answers() {
        for e in Endpoint::ALL {
            let statuses = e.statuses();
            assert!(statuses.is_sorted(), "{e:?}");
            assert!(
                Endpoint::COMMON_STATUSES
                    .iter()
                    .all(|s| statuses.contains(s)),
                "{e:?}"
            );
            assert_eq!(
                statuses.iter().filter(|s| (200..300).contains(*s)).count(),
                1,
                "{e:?}: one success"
            );
            if e.idempotent() {
                assert!(statuses.contains(&409) && statuses.contains(&422), "{e:?}");
                assert!(!e.idempotency_writes().is_empty(), "{e:?}");
            } else {
                assert!(!statuses.contains(&422), "{e:?}");
                assert!(e.idempotency_writes().is_empty(), "{e:?}");
            }
            // Reads answer from reads; writes change through transactions.
            assert_eq!(
                e.method() == Method::GET,
                e.transaction_writes().is_empty(),
                "{e:?}"
            );
            assert!(e.table_reads().contains(&GET_ITEM), "{e:?}: API keys");
        }
    }

    #[test]
    fn decodes_percent_escapes_in_parameters() {
        let (_, params) = route(&Method::GET, &format!("{PREFIX}/customer/a%20b")).unwrap();
        assert_eq!(params[0].1, "a b");
        assert!(route(&Method::GET, &format!("{PREFIX}/customer/%FF")).is_err());
        // Escapes of multi-byte characters, and `%` without two hex digits kept as is.
        assert_eq!(percent_decode("%C3%A9t%c3%a9").as_deref(), Some("été"));
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%C3"), None);
    }
}
