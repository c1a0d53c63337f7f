//! The errors every route of a kind can answer, added to the OpenAPI document in one place
//! so no route forgets them: a request body can be refused as malformed (400: bad
//! Content-Type or JSON syntax), too slow (408) or too large (413); a JSON body with wrong
//! fields is 422; query parameters that do not parse or are out of range are 400.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// Adds the common error answers to every operation that can give them.
pub(super) struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ]
            .into_iter()
            .flatten()
            {
                add_common_errors(operation);
            }
        }
    }
}

fn add_common_errors(operation: &mut Operation) {
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(error_response(description)));
    };
    if let Some(body) = &operation.request_body {
        let json = body.content.contains_key("application/json");
        add(
            "400",
            "Malformed request: wrong Content-Type or invalid body syntax",
        );
        add("408", "The request body arrived too slowly");
        add("413", "The request body is larger than this route accepts");
        if json {
            add(
                "422",
                "The JSON body has missing, unknown or ill-typed fields",
            );
        }
    }
    let has_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query);
    if has_query {
        add("400", "A query parameter does not parse or is out of range");
    }
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
}
