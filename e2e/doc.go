// Package e2e holds end-to-end tests that run the real keyhaven binary: data
// durability across restarts and SIGKILL, encryption at rest, root-key
// rotation and the server's basic contract, on SQLite and PostgreSQL.
package e2e
