"""What every domain stands on: SQL engine, tables and migrations; Redis (the pipelined hot
connection, embedded Valkey); HTTP payload reading and the OpenAPI registry; logs; task owners."""
