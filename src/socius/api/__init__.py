"""Transports: REST (and later GraphQL and the WebSocket gateway). Parse, call one service, serialize."""
