-- PostgreSQL only, beside the shared schema.sql: what the nodes of a cluster share.

-- The leader's lease, one row. `epoch` grows by one with every take; `expires_at` is by the
-- database's clock, the one clock every node agrees on. Created expired, at epoch 0.
CREATE TABLE IF NOT EXISTS cluster_lease (
    id INT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    holder TEXT,
    address TEXT,
    expires_at TIMESTAMPTZ NOT NULL
);

INSERT INTO cluster_lease (id, epoch, holder, address, expires_at)
VALUES (1, 0, NULL, NULL, 'epoch')
ON CONFLICT (id) DO NOTHING;

-- Secrets every node must agree on (the token signing key), written once by the first node.
CREATE TABLE IF NOT EXISTS cluster_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
