// Starts GraphiQL (vendored, served by this server: no CDN) on this server's /graphql.
// Queries and mutations go over HTTP; subscriptions over graphql-transport-ws on the same
// path. The headers typed in the Headers tab go with both: the access token as
// {"Authorization": "Bearer <token>"} authenticates the request, and the socket's
// connection_init.
"use strict";
const endpoint = new URL("/graphql", window.location.href);
const socket = new URL(endpoint.href);
socket.protocol = endpoint.protocol === "https:" ? "wss:" : "ws:";

const fetcher = GraphiQL.createFetcher({ url: endpoint.href, subscriptionUrl: socket.href });

const EXAMPLE = `# socius GraphQL: put your access token in the Headers tab below as
#   {"Authorization": "Bearer <access token>"}
# (POST /v1/auth/login answers one). Ctrl-Enter runs the query.

query Me {
  me { id username displayName friendsCount }
  conversations(first: 10) {
    nodes { id kind title unreadCount lastMessage { body sender { username } } }
    pageInfo { hasNextPage endCursor }
  }
}
`;

ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: EXAMPLE,
    defaultHeaders: '{"Authorization": "Bearer "}',
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
  }),
);
