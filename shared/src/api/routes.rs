//! The routes of the API (the spec's six and the extensions), one struct
//! literal each: the one table the router, the dispatch, the local server,
//! the tests, the SAM template and the OpenAPI document are checked against.

use std::future::Future;
use std::pin::Pin;

use http::Method;
use lambda_http::Request;

use super::{Call, Reply, State};
use super::{customer, listings, members};
use crate::http::{ApiError, PathParams, match_template};
use crate::iam::TableAccess;

/// Path prefix of every route.
pub const PREFIX: &str = "/api/billing/v1/admin";

/// One endpoint of the API: its name in code, and through [`Endpoint::route`]
/// everything about it.
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

/// What a handler returns: its answer, or the error it ends in.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// A handler: the request, authenticated and authorized, in its call.
pub type Handler = for<'a> fn(&'a State, &'a Request, Call<'a>) -> Answer<'a>;

/// Everything about one endpoint.
pub struct Route {
    /// Its name in code.
    pub endpoint: Endpoint,
    /// HTTP method.
    pub method: Method,
    /// Path template below [`PREFIX`], with `{name}` parameters.
    pub path: &'static str,
    /// Name of the function (workspace package) that serves it.
    pub function: &'static str,
    /// Every status it can answer, [`COMMON_STATUSES`] included, ascending:
    /// its one success, 404 where a customer, member or membership is looked
    /// up, 409 where a membership condition can fail or an `Idempotency-Key`
    /// is in use, 422 where one is reused.
    pub statuses: &'static [u16],
    /// Whether it honours `Idempotency-Key` (the mutations a client retries).
    pub idempotent: bool,
    /// Whether it pages with sealed cursors (its Lambda needs the cursor key).
    pub paged: bool,
    /// What its code does to the table, as IAM names it.
    pub access: TableAccess,
    /// What serves it.
    pub handler: Handler,
}

/// The statuses every endpoint can answer: 400 (its input, or an
/// `Idempotency-Key`), 401 and 403 (the caller), 500 (the database) and 503
/// (`auth_unavailable`, and `contention` where a transaction runs).
pub const COMMON_STATUSES: [u16; 5] = [400, 401, 403, 500, 503];

/// Every endpoint, in [`Endpoint`]'s order.
pub static ROUTES: [Route; 9] = [
    Route {
        endpoint: Endpoint::ListCustomers,
        method: Method::GET,
        path: "/customers",
        function: "list-customers",
        statuses: &[200, 400, 401, 403, 500, 503],
        idempotent: false,
        paged: true,
        access: TableAccess::LIST_CUSTOMERS,
        handler: |state, req, _| Box::pin(listings::customers(state, req)),
    },
    Route {
        endpoint: Endpoint::GetCustomer,
        method: Method::GET,
        path: "/customer/{customerID}",
        function: "get-customer",
        statuses: &[200, 400, 401, 403, 404, 500, 503],
        idempotent: false,
        paged: false,
        access: TableAccess::GET_CUSTOMER,
        handler: |state, req, _| Box::pin(customer::get(state, req)),
    },
    Route {
        endpoint: Endpoint::DeleteCustomer,
        method: Method::DELETE,
        path: "/customer/{customerID}",
        function: "delete-customer",
        statuses: &[204, 400, 401, 403, 404, 409, 422, 500, 503],
        idempotent: true,
        paged: false,
        access: TableAccess::DELETE_CUSTOMER,
        handler: |state, req, call| Box::pin(customer::delete(state, req, call)),
    },
    Route {
        endpoint: Endpoint::ListMembers,
        method: Method::GET,
        path: "/customer/{customerID}/members",
        function: "list-members",
        statuses: &[200, 400, 401, 403, 404, 500, 503],
        idempotent: false,
        paged: true,
        access: TableAccess::LIST_MEMBERS,
        handler: |state, req, _| Box::pin(listings::members(state, req)),
    },
    Route {
        endpoint: Endpoint::AddMember,
        method: Method::POST,
        path: "/customer/{customerID}/member",
        function: "add-member",
        statuses: &[201, 400, 401, 403, 404, 409, 422, 500, 503],
        idempotent: true,
        paged: false,
        access: TableAccess::ADD_MEMBER,
        handler: |state, req, call| Box::pin(members::add(state, req, call)),
    },
    Route {
        endpoint: Endpoint::RemoveMember,
        method: Method::DELETE,
        path: "/customer/{customerID}/member/{userID}",
        function: "remove-member",
        statuses: &[204, 400, 401, 403, 404, 409, 500, 503],
        idempotent: false,
        paged: false,
        access: TableAccess::REMOVE_MEMBER,
        handler: |state, req, call| Box::pin(members::remove(state, req, call)),
    },
    Route {
        endpoint: Endpoint::ChangeMemberRole,
        method: Method::PATCH,
        path: "/customer/{customerID}/member/{userID}",
        function: "change-member-role",
        statuses: &[200, 400, 401, 403, 404, 409, 422, 500, 503],
        idempotent: true,
        paged: false,
        access: TableAccess::CHANGE_MEMBER_ROLE,
        handler: |state, req, call| Box::pin(members::change_role(state, req, call)),
    },
    Route {
        endpoint: Endpoint::GetUserCustomer,
        method: Method::GET,
        path: "/user/{userID}/customer",
        function: "get-user-customer",
        statuses: &[200, 400, 401, 403, 404, 500, 503],
        idempotent: false,
        paged: false,
        access: TableAccess::GET_USER_CUSTOMER,
        handler: |state, req, _| Box::pin(members::user_customer(state, req)),
    },
    Route {
        endpoint: Endpoint::ListAudit,
        method: Method::GET,
        path: "/customer/{customerID}/audit",
        function: "list-audit",
        statuses: &[200, 400, 401, 403, 500, 503],
        idempotent: false,
        paged: true,
        access: TableAccess::LIST_AUDIT,
        handler: |state, req, _| Box::pin(listings::audit(state, req)),
    },
];

/// A route served by a function of its own, outside the admin prefix and its
/// auth.
#[derive(Debug, Clone, Copy)]
pub struct Mount {
    /// The function serving it.
    pub function: &'static str,
    /// The only method it answers; any other is 405.
    pub method: &'static str,
    /// Its path, as the template declares it (`{proxy+}` matching anything below).
    pub path: &'static str,
}

/// `POST /api/billing/v1/webhooks/stripe`: Stripe's events (the
/// `Stripe-Signature` header is the credential).
pub const WEBHOOK: Mount = Mount {
    function: "stripe-webhook",
    method: "POST",
    path: "/api/billing/v1/webhooks/stripe",
};

/// The operators' console (`functions/console`): the page it serves signs in
/// to the API itself.
pub const CONSOLE: [Mount; 2] = [
    Mount {
        function: CONSOLE_FUNCTION,
        method: "GET",
        path: "/console",
    },
    Mount {
        function: CONSOLE_FUNCTION,
        method: "GET",
        path: "/console/{proxy+}",
    },
];

/// The console's function.
pub const CONSOLE_FUNCTION: &str = "console";

/// Whether `path` is the console's: `/console` or below `/console/`.
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
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

    /// See [`COMMON_STATUSES`].
    pub const COMMON_STATUSES: [u16; 5] = COMMON_STATUSES;

    /// Its route.
    pub fn route(self) -> &'static Route {
        &ROUTES[self as usize]
    }

    /// HTTP method.
    pub fn method(self) -> Method {
        self.route().method.clone()
    }

    /// Path template below [`PREFIX`], with `{name}` parameters.
    pub fn path(self) -> &'static str {
        self.route().path
    }

    /// Name of the function (workspace package) that serves it.
    pub fn function(self) -> &'static str {
        self.route().function
    }

    /// Whether it honours `Idempotency-Key`.
    pub fn idempotent(self) -> bool {
        self.route().idempotent
    }

    /// Whether it pages with sealed cursors.
    pub fn pages_with_cursors(self) -> bool {
        self.route().paged
    }

    /// Every status it can answer ([`Route::statuses`]).
    pub fn statuses(self) -> &'static [u16] {
        self.route().statuses
    }

    /// See [`TableAccess::reads`].
    pub fn table_reads(self) -> &'static [&'static str] {
        self.route().access.reads
    }

    /// See [`TableAccess::indexes`].
    pub fn indexes_queried(self) -> &'static [&'static str] {
        self.route().access.indexes
    }

    /// See [`TableAccess::transaction_writes`].
    pub fn transaction_writes(self) -> &'static [&'static str] {
        self.route().access.transaction_writes
    }

    /// See [`TableAccess::idempotency_writes`].
    pub fn idempotency_writes(self) -> &'static [&'static str] {
        self.route().access.idempotency_writes
    }
}

/// Matches a request to an endpoint and its path parameters: 404 when no route has
/// the path, 405 (with the allowed methods) when none has it with this method.
/// The webhook's and the console's paths are served by their own functions:
/// another method on them is 405.
pub fn route(method: &Method, path: &str) -> Result<(Endpoint, PathParams), ApiError> {
    if path == WEBHOOK.path && method.as_str() != WEBHOOK.method {
        return Err(ApiError::MethodNotAllowed(vec![Method::POST]));
    }
    if is_console_path(path) {
        // API Gateway sends the console's GETs to its function: what reaches
        // a router here is another method.
        return Err(ApiError::MethodNotAllowed(vec![Method::GET]));
    }
    let rest = path.strip_prefix(PREFIX).ok_or(ApiError::RouteNotFound)?;
    let mut allowed = Vec::new();
    for route in &ROUTES {
        if let Some(params) = match_template(route.path, rest) {
            if route.method == method {
                return Ok((route.endpoint, params));
            }
            allowed.push(route.method.clone());
        }
    }
    if allowed.is_empty() {
        Err(ApiError::RouteNotFound)
    } else {
        Err(ApiError::MethodNotAllowed(allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::GET_ITEM;

    const ID: &str = "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e";

    #[test]
    fn the_table_is_in_the_order_of_the_endpoints() {
        for (i, e) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(ROUTES[i].endpoint, e);
        }
    }

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
        match route(&Method::GET, WEBHOOK.path) {
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
            assert_eq!(
                e.pages_with_cursors(),
                e.path() == "/customers"
                    || e.path().ends_with("/members")
                    || e.path().ends_with("/audit"),
                "{e:?}: the listings page with cursors"
            );
        }
    }

    #[test]
    fn decodes_percent_escapes_in_parameters() {
        let (_, params) = route(&Method::GET, &format!("{PREFIX}/customer/a%20b")).unwrap();
        assert_eq!(params[0].1, "a b");
        assert!(route(&Method::GET, &format!("{PREFIX}/customer/%FF")).is_err());
    }
}
