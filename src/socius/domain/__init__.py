"""Pure types and rules: no I/O, no framework, no other socius layer."""
