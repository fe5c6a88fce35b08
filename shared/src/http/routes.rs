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

/// Decodes `%XX` escapes in a path segment; `None` when they are not valid UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
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
    }

    #[test]
    fn decodes_percent_escapes_in_parameters() {
        let (_, params) = route(&Method::GET, &format!("{PREFIX}/customer/a%20b")).unwrap();
        assert_eq!(params[0].1, "a b");
        assert!(route(&Method::GET, &format!("{PREFIX}/customer/%FF")).is_err());
    }
}
