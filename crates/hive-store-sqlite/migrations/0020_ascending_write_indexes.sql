-- The indexes written on every call keep ascending order. Audit records and task updates
-- arrive in time order; in a descending index each new entry lands at the left edge of the
-- tree, where a full page is split by rebalancing it with its neighbours (three pages and
-- their parent rewritten per split), while in an ascending one it lands at the right edge,
-- where the engine appends a fresh page. Newest-first reads walk the same index backwards.
DROP INDEX audit_events_newest;
CREATE INDEX audit_events_newest ON audit_events (at, id);
DROP INDEX audit_events_by_action;
CREATE INDEX audit_events_by_action ON audit_events (action, at, id);
DROP INDEX audit_events_by_actor;
CREATE INDEX audit_events_by_actor ON audit_events (actor, at, id);
DROP INDEX audit_events_by_target;
CREATE INDEX audit_events_by_target ON audit_events (target, at, id);
DROP INDEX audit_events_by_outcome;
CREATE INDEX audit_events_by_outcome ON audit_events (outcome, at, id);
DROP INDEX a2a_tasks_by_owner_newest;
CREATE INDEX a2a_tasks_by_owner_newest ON a2a_tasks (owner, status_time, id);
