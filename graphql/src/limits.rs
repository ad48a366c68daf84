//! Guards against expensive documents, and stable codes for what async-graphql refuses.
//!
//! async-graphql enforces depth and complexity during validation but reports them as plain
//! messages; this extension gives them codes, counts aliases (which async-graphql does not
//! bound), and replaces parser messages with one that does not echo the document.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value, Variables};

use crate::ErrorCode;

/// Installs the guard with the configured alias limit.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) max_aliases: usize,
}

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension {
            max_aliases: self.max_aliases,
        })
    }
}

#[derive(Debug)]
struct GuardExtension {
    max_aliases: usize,
}

#[async_trait::async_trait]
impl Extension for GuardExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        // Anything async-graphql produced without a code is the client's mistake in the
        // request itself (a bad variable, an unknown operation name).
        for error in &mut response.errors {
            let has_code = error
                .extensions
                .as_ref()
                .is_some_and(|ext| ext.get("code").is_some());
            if !has_code {
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", ErrorCode::BadRequest.as_str());
            }
        }

        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await.map_err(|err| {
            coded(
                ServerError {
                    message: "The query is not valid GraphQL.".into(),
                    ..err
                },
                ErrorCode::ParseError,
            )
        })?;

        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            return Err(coded(
                ServerError::new(
                    format!(
                        "The query uses {aliases} aliases; at most {} are allowed.",
                        self.max_aliases
                    ),
                    None,
                ),
                ErrorCode::AliasLimit,
            ));
        }

        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|err| {
                    // These texts come from async-graphql's validator; the unit tests below
                    // fail if an upgrade changes them.
                    let code = match err.message.as_str() {
                        "Query is nested too deep." => ErrorCode::DepthLimit,
                        "Query is too complex." => ErrorCode::ComplexityLimit,
                        _ => ErrorCode::ValidationFailed,
                    };
                    coded(err, code)
                })
                .collect()
        })
    }
}

fn coded(mut err: ServerError, code: ErrorCode) -> ServerError {
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", Value::from(code.as_str()));
    err
}

/// Counts aliased fields in every operation and fragment of the document.
fn count_aliases(document: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    usize::from(field.node.alias.is_some()) + walk(&field.node.selection_set.node)
                }
                Selection::InlineFragment(fragment) => walk(&fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }

    let operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node))
        .sum();
    let fragments: usize = document
        .fragments
        .values()
        .map(|f| walk(&f.node.selection_set.node))
        .sum();

    operations + fragments
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Request, Schema};

    use super::*;

    struct Root;

    #[Object]
    impl Root {
        async fn leaf(&self) -> i32 {
            1
        }

        async fn nest(&self) -> Root {
            Root
        }
    }

    fn schema() -> Schema<Root, EmptyMutation, EmptySubscription> {
        Schema::build(Root, EmptyMutation, EmptySubscription)
            .limit_depth(4)
            .limit_complexity(20)
            .disable_suggestions()
            .extension(Guard { max_aliases: 3 })
            .finish()
    }

    async fn code_of(query: &str) -> String {
        let response = schema().execute(Request::new(query)).await;
        let error = response.errors.first().expect("an error");
        let ext = error.extensions.as_ref().expect("extensions");
        ext.get("code")
            .expect("a code")
            .to_string()
            .trim_matches('"')
            .to_owned()
    }

    #[tokio::test]
    async fn a_deep_query_is_refused_with_depth_limit() {
        assert_eq!(
            code_of("{ nest { nest { nest { nest { nest { leaf } } } } } }").await,
            "DEPTH_LIMIT"
        );
    }

    #[tokio::test]
    async fn a_wide_query_is_refused_with_complexity_limit() {
        let fields = "leaf ".repeat(25);
        let query = format!("{{ nest {{ {fields} }} nest2: nest {{ {fields} }} }}");
        // Two aliased branches would trip the alias guard first if it were lower; keep the
        // alias count under its limit so complexity is what is measured.
        assert_eq!(code_of(&query).await, "COMPLEXITY_LIMIT");
    }

    #[tokio::test]
    async fn many_aliases_are_refused_with_alias_limit() {
        assert_eq!(
            code_of("{ a: leaf b: leaf c: leaf d: leaf }").await,
            "ALIAS_LIMIT"
        );
    }

    #[tokio::test]
    async fn aliases_inside_fragments_count_too() {
        let query = "{ ...F } fragment F on Root { a: leaf b: leaf c: leaf d: leaf }";
        assert_eq!(code_of(query).await, "ALIAS_LIMIT");
    }

    #[tokio::test]
    async fn a_syntax_error_does_not_echo_the_document() {
        let response = schema()
            .execute(Request::new("{ leaf secret-text-1970 "))
            .await;
        let error = &response.errors[0];

        assert!(!error.message.contains("secret"));
        assert_eq!(code_of("{ leaf ").await, "PARSE_ERROR");
    }

    #[tokio::test]
    async fn an_unknown_field_is_a_validation_failure_without_suggestions() {
        let response = schema().execute(Request::new("{ lea }")).await;

        assert_eq!(code_of("{ lea }").await, "VALIDATION_FAILED");
        assert!(!response.errors[0].message.contains("Did you mean"));
    }
}
