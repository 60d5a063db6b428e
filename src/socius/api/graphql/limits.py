"""How big a query may be: its depth and its cost, judged once it is valid, before
anything runs.

- **Depth**: fields nested more than ``MAX_DEPTH`` levels: ``query_too_deep``.
- **Cost**: the number of field values the query may produce, counting every list at the
  size it may have: a connection's ``first`` (REST's limit: default 50, at most 100), a
  list's ``limit`` or ``first``, or the number of ``ids`` given; variables count at their
  value. Past ``MAX_COST``: ``query_too_complex``. So ``conversations(first: 50) { edges
  { node { members(first: 10) { nodes { user { username } } } } } }`` costs about 1,700,
  and the same with ``first: 100`` twice about 80,000.

The document is also limited to ``MAX_TOKENS`` tokens while it is parsed (Strawberry's
``MaxTokensLimiter``), so a huge one is refused before it is even built. Introspection
counts too, each of its lists at its average length in this schema (``types`` at the
number of types): GraphiQL's own query costs a few thousand, and the classic
``types { fields { type { fields ... } } }`` explosion is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from socius.domain.pagination import DEFAULT_LIMIT, MAX_LIMIT

__all__ = ["MAX_COST", "MAX_DEPTH", "MAX_TOKENS", "QueryLimits", "measure"]

MAX_DEPTH = 15  # the deepest query the schema allows is 9; GraphiQL's introspection, 15
MAX_COST = 50_000
MAX_TOKENS = 5_000
_PAGE_ARGUMENTS = ("first", "limit")


def _unwrap(type_: GraphQLOutputType) -> GraphQLOutputType:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def _named(type_: Any) -> GraphQLNamedType | None:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_ if isinstance(type_, GraphQLNamedType) else None


class _Walk:
    """One pass over an operation: the deepest field and the total cost."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.depth = 0
        self.cost = 0

    def _value(self, node: Any) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, ListValueNode):
            return list(node.values)
        return None

    def _size(self, node: FieldNode, definition: GraphQLField, pending: int) -> int:
        """How many items a list field may hold: its page argument (or that argument's
        default), the number of ids asked for, or else the enclosing connection's page."""
        for argument in node.arguments or ():
            value = self._value(argument.value)
            if argument.name.value in _PAGE_ARGUMENTS and isinstance(value, int):
                return max(1, min(value, MAX_LIMIT))
            if argument.name.value == "ids" and isinstance(value, list):
                return max(1, min(len(value), MAX_LIMIT))
        for name in _PAGE_ARGUMENTS:
            declared = definition.args.get(name)
            if declared is not None:
                default = declared.default_value
                return default if isinstance(default, int) else DEFAULT_LIMIT
        return pending

    def _page(self, field: FieldNode) -> int:
        """A connection's page size (its ``first``; the REST default without one)."""
        for argument in field.arguments or ():
            value = self._value(argument.value)
            if argument.name.value == "first" and isinstance(value, int):
                return max(1, min(value, MAX_LIMIT))
        return DEFAULT_LIMIT

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType | None,
        depth: int,
        multiplier: int,
        page: int,
        seen: frozenset[str],
    ) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                self.field(selection, parent, depth, multiplier, page, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                self.selections(selection.selection_set, inner, depth, multiplier, page, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:  # (validation reports both)
                    continue
                inner = self.schema.get_type(fragment.type_condition.name.value)
                self.selections(
                    fragment.selection_set, inner, depth, multiplier, page, seen | {name}
                )

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType | None,
        depth: int,
        multiplier: int,
        page: int,
        seen: frozenset[str],
    ) -> None:
        name = node.name.value
        self.depth = max(self.depth, depth)
        fields = parent.fields if isinstance(parent, GraphQLObjectType) else {}
        definition = fields.get(name)
        type_: GraphQLOutputType | None = None
        if definition is not None:
            type_ = _unwrap(definition.type)
        elif name in _INTROSPECTION_ROOTS:  # __schema, __type: on every root, unlisted
            type_ = self.schema.get_type(_INTROSPECTION_ROOTS[name])  # type: ignore[assignment]
        if isinstance(type_, GraphQLList):
            assert definition is not None
            if parent is not None and parent.name.startswith("__"):
                multiplier *= _introspection_sizes(self.schema).get(name, 1)
            else:
                multiplier *= self._size(node, definition, page)
        self.cost += multiplier
        if node.selection_set is None:
            return
        inner = _named(type_) if type_ is not None else None
        inner_page = (
            self._page(node) if inner is not None and inner.name.endswith("Connection") else 1
        )
        self.selections(node.selection_set, inner, depth + 1, multiplier, inner_page, seen)


_INTROSPECTION_ROOTS = {"__schema": "__Schema", "__type": "__Type"}
_sizes: dict[int, dict[str, int]] = {}


def _introspection_sizes(schema: GraphQLSchema) -> dict[str, int]:
    """How long each list of the introspection types is in ``schema``, on average (the
    whole list of types for ``types``): what describing the schema costs."""
    known = _sizes.get(id(schema))
    if known is not None:
        return known
    types = [t for t in schema.type_map.values() if not t.name.startswith("__")]
    objects = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    fields = [f for t in objects for f in t.fields.values()]
    enums = [t for t in types if isinstance(t, GraphQLEnumType)]
    inputs = [t for t in types if isinstance(t, GraphQLInputObjectType)]

    def mean(total: int, count: int) -> int:
        return max(1, -(-total // max(count, 1)))

    known = {
        "types": len(schema.type_map),
        "directives": len(schema.directives),
        "fields": mean(len(fields), len(objects)),
        "args": mean(sum(len(f.args) for f in fields), len(fields)),
        "enumValues": mean(sum(len(t.values) for t in enums), len(enums)),
        "inputFields": mean(sum(len(t.fields) for t in inputs), len(inputs)),
        "interfaces": 1,
        "possibleTypes": 1,
        "locations": 1,
    }
    _sizes[id(schema)] = known
    return known


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


_ROOTS = {
    OperationType.QUERY: "query_type",
    OperationType.MUTATION: "mutation_type",
    OperationType.SUBSCRIPTION: "subscription_type",
}


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> tuple[int, int]:
    """The depth and the cost of the operation (0, 0 when there is none to run)."""
    operation = _operation(document, operation_name)
    if operation is None:
        return 0, 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walk = _Walk(schema, fragments, variables or {})
    root = getattr(schema, _ROOTS[operation.operation])
    walk.selections(operation.selection_set, root, 1, 1, 1, frozenset())
    return walk.depth, walk.cost


def _refusal(code: str, message: str, **details: int) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, "details": details})


class QueryLimits(SchemaExtension):
    """Refuses a valid query past the depth or cost limit, before it runs."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and not context.pre_execution_errors:
            depth, cost = measure(
                context.schema._schema, document, context.operation_name, context.variables
            )
            if depth > MAX_DEPTH:
                context.pre_execution_errors = [
                    _refusal(
                        "query_too_deep",
                        f"the query nests fields {depth} levels deep; at most {MAX_DEPTH} "
                        "are allowed",
                        depth=depth,
                        max_depth=MAX_DEPTH,
                    )
                ]
            elif cost > MAX_COST:
                context.pre_execution_errors = [
                    _refusal(
                        "query_too_complex",
                        f"the query may produce {cost} values; at most {MAX_COST} are "
                        "allowed: ask for smaller pages or fewer fields",
                        cost=cost,
                        max_cost=MAX_COST,
                    )
                ]
        yield
