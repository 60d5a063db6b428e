"""Adapters of the durable event stream: JetStream, and webhook delivery over HTTP."""
