"""a graph write in one statement: socius_pair_write() on PostgreSQL (decision 0053)

A graph write (follow, unfollow, friend request, accept, ...: ``GraphService._apply``)
is planned in Python before the pair is read, for a class of the pair's states that
plan alike (``services/pair_plans.py``: ``p_states``, a bitmap over
``domain.graph_writes.pair_code``), and sent as one call of this function, by itself
(autocommit: the call is the transaction, committed before it answers).

The function takes the pair's advisory lock (the key of ``storage/edges.py``
``_pair_lock_key``, as ``lock_pair``) and reads the pair: each of its statements sees
what was committed before it ran (a VOLATILE function takes a snapshot per statement),
so the read follows every writer that held the lock before. It answers the pair as it
found it (the actor's row there, the other user's status and privacy, the edge types
from the actor as ``pair_code``'s bits, whether the other user mutes the actor), and, when both users are
there, the other one active and the pair's state in ``p_states``, it first locks both
users' rows against erasure (``FOR SHARE``, in id order; a row changed meanwhile is
answered as locked, nothing written) and writes what ``write_pair`` writes: the edges
and their inverses, the counts moved by one in ascending key order, the inbox rows, the
stream's events, then the recipients' log counters (ascending) and log rows, numbered
below them (``out_users``, ``out_seqs``: the last number per user). Otherwise nothing
is written (and no row locked: the call ends as a read) and the caller plans again
from the pair it was given.

No table changes: the W1 bench seed is kept (``keeps_seed``).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 07:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

#: No table, column or index: a seeded database at 0021 is one at 0022 once upgraded
#: (bench/workloads/w1_seed.py keeps its template).
keeps_seed = True

_CREATE = """
CREATE FUNCTION socius_pair_write(
    p_key bigint, p_actor bigint, p_other bigint, p_states bytea, p_mute smallint,
    p_del_src bigint[], p_del_type smallint[], p_del_dst bigint[],
    p_ins_src bigint[], p_ins_type smallint[], p_ins_dst bigint[],
    p_pos bigint, p_at timestamptz,
    p_cnt_src bigint[], p_cnt_type smallint[], p_cnt_up boolean[],
    p_note_id bigint[], p_note_user bigint[], p_note_type varchar[], p_note_payload text[],
    p_note_at timestamptz[], p_note_read boolean[], p_note_msg bigint[],
    p_dom_id bigint[], p_dom_type varchar[], p_dom_at timestamptz[], p_dom_data text[],
    p_dom_msg bigint[],
    p_seq_user bigint[], p_seq_n bigint[],
    p_log_user bigint[], p_log_back bigint[], p_log_type varchar[], p_log_payload text[],
    p_log_msg bigint[],
    OUT out_written boolean, OUT out_actor boolean, OUT out_status varchar,
    OUT out_private boolean, OUT out_types integer, OUT out_muted boolean,
    OUT out_users bigint[], OUT out_seqs bigint[]
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    locked_actor boolean;
    locked_status varchar;
    locked_private boolean;
BEGIN
    out_written := false;
    PERFORM pg_advisory_xact_lock(p_key);
    SELECT EXISTS (SELECT 1 FROM users a WHERE a.id = p_actor), o.status,
           coalesce(o.is_private, false),
           (SELECT coalesce(bit_or(1 << (e.type - 1)), 0) FROM edges e
             WHERE e.src = p_actor AND e.dst = p_other),
           EXISTS (SELECT 1 FROM edges e WHERE e.src = p_other AND e.type = p_mute
                   AND e.dst = p_actor)
      INTO out_actor, out_status, out_private, out_types, out_muted
      FROM (SELECT 1) AS one LEFT JOIN users o ON o.id = p_other;
    IF NOT out_actor OR out_status IS DISTINCT FROM 'active' OR get_bit(p_states,
        out_types | CASE WHEN out_private THEN 1024 ELSE 0 END
                  | CASE WHEN out_muted THEN 2048 ELSE 0 END) = 0 THEN
        RETURN;
    END IF;
    SELECT coalesce(bool_or(u.id = p_actor), false),
           max(u.status) FILTER (WHERE u.id = p_other),
           coalesce(bool_or(u.is_private) FILTER (WHERE u.id = p_other), false)
      INTO locked_actor, locked_status, locked_private
      FROM (SELECT id, status, is_private FROM users WHERE id IN (p_actor, p_other)
            ORDER BY id FOR SHARE) AS u;
    IF locked_actor IS DISTINCT FROM out_actor OR locked_status IS DISTINCT FROM out_status
       OR locked_private IS DISTINCT FROM out_private THEN
        out_actor := locked_actor;
        out_status := locked_status;
        out_private := locked_private;
        RETURN;
    END IF;
    IF cardinality(p_del_src) > 0 THEN
        DELETE FROM edges e USING unnest(p_del_src, p_del_type, p_del_dst) AS k(s, t, d)
         WHERE e.src = k.s AND e.type = k.t AND e.dst = k.d;
    END IF;
    IF cardinality(p_ins_src) > 0 THEN
        INSERT INTO edges (src, type, dst, pos, created_at)
        SELECT k.s, k.t, k.d, p_pos, p_at
          FROM unnest(p_ins_src, p_ins_type, p_ins_dst) AS k(s, t, d)
        ON CONFLICT DO NOTHING;
    END IF;
    IF cardinality(p_cnt_src) > 0 THEN
        INSERT INTO edge_counts (src, type, count)
        SELECT k.s, k.t, CASE WHEN k.up THEN 1 ELSE 0 END
          FROM unnest(p_cnt_src, p_cnt_type, p_cnt_up) AS k(s, t, up)
        ON CONFLICT (src, type) DO UPDATE
           SET count = edge_counts.count + CASE WHEN excluded.count > 0 THEN 1 ELSE -1 END;
    END IF;
    IF cardinality(p_note_id) > 0 THEN
        INSERT INTO notifications (id, user_id, type, payload, created_at, read, message_id)
        SELECT k.i, k.u, k.t, k.p::json, k.c, k.r, k.m
          FROM unnest(p_note_id, p_note_user, p_note_type, p_note_payload, p_note_at,
                      p_note_read, p_note_msg) AS k(i, u, t, p, c, r, m);
    END IF;
    IF cardinality(p_dom_id) > 0 THEN
        INSERT INTO domain_events (id, type, occurred_at, data, message_id)
        SELECT k.i, k.t, k.c, k.d::json, k.m
          FROM unnest(p_dom_id, p_dom_type, p_dom_at, p_dom_data, p_dom_msg)
               AS k(i, t, c, d, m);
    END IF;
    IF cardinality(p_seq_user) > 0 THEN
        WITH s AS (
            INSERT INTO user_seqs (user_id, seq)
            SELECT k.u, k.n FROM unnest(p_seq_user, p_seq_n) AS k(u, n)
            ON CONFLICT (user_id) DO UPDATE SET seq = user_seqs.seq + excluded.seq
            RETURNING user_seqs.user_id AS u, user_seqs.seq AS q
        ), logged AS (
            INSERT INTO user_events (user_id, seq, type, payload, created_at, message_id)
            SELECT k.u, s.q - k.b, k.t, k.p::json, p_at, k.m
              FROM unnest(p_log_user, p_log_back, p_log_type, p_log_payload, p_log_msg)
                   AS k(u, b, t, p, m)
              JOIN s ON s.u = k.u
        )
        SELECT array_agg(s.u ORDER BY s.u), array_agg(s.q ORDER BY s.u)
          INTO out_users, out_seqs FROM s;
    END IF;
    out_written := true;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION socius_pair_write")
