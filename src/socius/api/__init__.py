"""Transports: REST, later GraphQL and the WebSocket gateway. Parse, call a service, serialize."""
