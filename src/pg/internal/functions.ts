/**
 * The PostgreSQL append functions (server-side, so an append is one round trip), created by the
 * migrations (see the dialect record's DDL) and called by `append`.
 *
 * @internal
 */
import type { Tables } from "../../sql/migrations.js"

/**
 * The SQLSTATEs the append function raises on purpose, one per refusal, with the refusal's fields as JSON
 * in the error's detail (class `ES`, which no PostgreSQL error uses): callers tell refusals by code.
 */
export const refusalCode = { uniqueValueTaken: "ES001", duplicateCommand: "ES002" } as const

/** Refuses the append as a duplicate of the command record in `v_handled` (undoing the call). */
const raiseDuplicateCommand = `raise exception 'effect-eventsourcing: duplicate command' using errcode = '${refusalCode.duplicateCommand}',
        detail = json_build_object('streamId', v_handled.stream_id, 'version', v_handled.version,
                                   'positions', v_handled.positions::text[])::text;`

/**
 * The append as one server-side function, so an append is one round trip: lock the stream row, report
 * already-stored event ids (the caller decides between idempotent retry and id conflict), check the
 * expected version, insert the events, bump the stream version. A failed check inserts nothing and so
 * consumes no position. Names are validated identifiers, so interpolating them is safe.
 *
 * Each event's `data` and `metadata` arrive as JSON texts (strings in the `p_events` document) and are
 * stored as `json`, which keeps the text as given: a `jsonb` value would reorder its keys.
 *
 * Returns `outcome` = `ok` (with the new version and positions), `conflict` (with the actual version),
 * `duplicates` (with, per event, the version holding its id or null), or `deleted` / `hard-deleted` (the
 * stream is deleted: nothing else is checked). A unique value held by another
 * stream, or a command handled within its TTL, raises its {@link refusalCode}, undoing the call.
 */
export const appendFunction = (t: Tables): string => `
create or replace function ${t.appendFunction}(
  p_stream_id text, p_category text, p_stream_hash bigint, p_expected_kind text, p_expected_version integer, p_events jsonb,
  p_claims jsonb, p_releases jsonb, p_command_id text, p_command_ttl_ms bigint,
  out o_outcome text, out o_version integer, out o_positions bigint[], out o_stored integer[]
) language plpgsql as $fn$
declare
  v_current integer;
  v_count integer := jsonb_array_length(p_events);
  v_constraint text;
  v_value text;
  v_owner text;
  v_handled record;
  v_deleted integer := 0;
begin
  v_current := null;
  if v_count > 0 and (p_expected_kind in ('Any', 'NoStream') or (p_expected_kind = 'Exact' and p_expected_version = 0)) then
    -- the common case of a new stream: create its row at its final version; if it exists (or a concurrent
    -- creator holds it, whose commit we then wait for), fall through to locking the existing row
    insert into ${t.streams} (stream_id, version) values (p_stream_id, v_count) on conflict (stream_id) do nothing;
    if found then
      v_current := 0;
    end if;
  end if;
  if v_current is null then
    select s.version, s.deleted into v_current, v_deleted from ${t.streams} s where s.stream_id = p_stream_id for update;
    if not found then
      v_current := 0;
    end if;
  end if;
  if v_deleted <> 0 then
    -- a tombstone: refused, whatever else (see the streams table's deleted column)
    o_outcome := case v_deleted when 2 then 'hard-deleted' else 'deleted' end;
    o_version := v_current;
    return;
  end if;

  if p_command_id is not null then
    -- a handled command first: a replay of its append is a duplicate command, not a success (the stream's
    -- lock, taken above, made a concurrent first append of it commit before this reads)
    select c.stream_id, c.version, c.positions into v_handled from ${t.commands} c
    where c.command_id = p_command_id and c.recorded_at >= now() - make_interval(secs => p_command_ttl_ms / 1000.0);
    if found then
      ${raiseDuplicateCommand}
    end if;
  end if;

  if v_current > 0 and v_count > 0 then
    -- some of these ids may be stored already: report where, the caller tells a retry from a conflict
    select array_agg(e.version order by i.ord) into o_stored
    from jsonb_array_elements(p_events) with ordinality as i(event, ord)
    left join ${t.events} e on e.stream_id = p_stream_id and e.event_id = (i.event->>'eventId')::uuid;
    if exists (select 1 from unnest(o_stored) as v where v is not null) then
      o_outcome := 'duplicates';
      o_version := v_current;
      return;
    end if;
    o_stored := null;
  end if;

  if not (p_expected_kind = 'Any'
      or (p_expected_kind = 'NoStream' and v_current = 0)
      or (p_expected_kind = 'StreamExists' and v_current > 0)
      or (p_expected_kind = 'Exact' and v_current = p_expected_version)) then
    o_outcome := 'conflict';
    o_version := v_current;
    return;
  end if;

  if jsonb_array_length(p_releases) > 0 then
    delete from ${t.uniqueValues} u using jsonb_array_elements(p_releases) as r(item)
    where u.constraint_name = r.item->>'constraint' and u.value = r.item->>'value' and u.stream_id = p_stream_id;
  end if;
  if jsonb_array_length(p_claims) > 0 then
    -- a concurrent claimant makes us wait for its commit; then its claim stands and ours is refused
    insert into ${t.uniqueValues} (constraint_name, value, stream_id)
    select c.item->>'constraint', c.item->>'value', p_stream_id from jsonb_array_elements(p_claims) as c(item)
    on conflict (constraint_name, value) do nothing;
    select u.constraint_name, u.value, u.stream_id into v_constraint, v_value, v_owner
    from jsonb_array_elements(p_claims) as c(item)
    join ${t.uniqueValues} u on u.constraint_name = c.item->>'constraint' and u.value = c.item->>'value'
    where u.stream_id <> p_stream_id
    limit 1;
    if found then
      -- an error, not a result: it undoes everything this call did (the stream row included)
      raise exception 'effect-eventsourcing: unique value taken' using errcode = '${refusalCode.uniqueValueTaken}',
        detail = json_build_object('constraint', v_constraint, 'value', v_value, 'owner', v_owner)::text;
    end if;
  end if;

  if p_command_id is not null then
    -- a command is handled once within its TTL: a concurrent duplicate waits for the first one's commit
    insert into ${t.commands} as c (command_id, stream_id, version, positions, recorded_at)
    values (p_command_id, p_stream_id, v_current + v_count, '{}', now())
    on conflict (command_id) do update
      set stream_id = excluded.stream_id, version = excluded.version, positions = '{}', recorded_at = excluded.recorded_at
      where c.recorded_at < now() - make_interval(secs => p_command_ttl_ms / 1000.0);
    if not found then
      select c.stream_id, c.version, c.positions into v_handled from ${t.commands} c where c.command_id = p_command_id;
      ${raiseDuplicateCommand}
    end if;
  end if;

  o_outcome := 'ok';
  o_version := v_current + v_count;
  if v_count = 0 then
    o_positions := '{}';
    return;
  end if;

  if v_count = 1 then
    -- the common single event: a plain insert, cheaper than unnesting a one-element array
    insert into ${t.events} (stream_id, category, stream_hash, version, event_id, type, schema_version, data, metadata)
    values (p_stream_id, p_category, p_stream_hash, v_current + 1, (p_events->0->>'eventId')::uuid, p_events->0->>'type',
            (p_events->0->>'schemaVersion')::integer, (p_events->0->>'data')::json, (p_events->0->>'metadata')::json)
    returning array[position] into o_positions;
  else
    with inserted as (
      insert into ${t.events} (stream_id, category, stream_hash, version, event_id, type, schema_version, data, metadata)
      select p_stream_id, p_category, p_stream_hash, v_current + i.ord, (i.event->>'eventId')::uuid, i.event->>'type',
             (i.event->>'schemaVersion')::integer, (i.event->>'data')::json, (i.event->>'metadata')::json
      from jsonb_array_elements(p_events) with ordinality as i(event, ord)
      order by i.ord
      returning position, version
    )
    select array_agg(position order by version) into o_positions from inserted;
  end if;

  if v_current > 0 then
    update ${t.streams} set version = v_current + v_count where stream_id = p_stream_id;
  end if;
  if p_command_id is not null then
    update ${t.commands} set positions = o_positions where command_id = p_command_id;
  end if;
end
$fn$`

/**
 * Group commit: several appends in one round trip and one transaction, each checked, committed or
 * refused on its own. Results come back in input order as JSON.
 *
 * The common batch (no unique values, no command ids, each stream once, none of its event ids stored
 * yet) takes a set-based path: the streams' rows locked (or created) one by one in the batch's order,
 * every expected-version check, then one insert for all accepted events and one update of the streams'
 * versions; a refused append writes nothing and burns no position. Any other batch, or one whose
 * set-based try fails, is undone and runs append by append, each in its own subtransaction, so one that
 * fails (a unique value taken, a duplicate command, any error) is undone alone and reported in its
 * result, while the others commit.
 *
 * Which path a batch took is reported as a DEBUG1 message (`effect-eventsourcing: batch appended
 * set-based` or `... append by append`), sent to a session only if it asks (`client_min_messages`).
 *
 * Lock waits are bounded ({@link batchLockWaitMs}, as the function's own `lock_timeout`, which ends with the call): a stream
 * whose row another transaction holds (a caller's transaction that appended to it and goes on) would
 * otherwise hold up every append batched with it, and every batch after it. An append that waits longer is
 * undone alone and reported `busy`; the caller runs it again on its own, where it waits as long as it must.
 *
 * **Gotchas**: a set-based try that loses a deadlock (with a caller's transaction that locks the same
 * streams in another order) or a lock wait is undone and the batch goes append by append, so its
 * appends wait a second time instead of the one that deadlocked failing; a statement timeout fails the
 * whole batch, as before. A batch with locked streams takes up to {@link batchLockWaitMs} longer for each,
 * and once more for its set-based try. Appends run again alone each take a pool connection while they
 * wait, as they would with group commit off: many of them on one locked stream can use up the pool. Two
 * appends to one stream in one batch keep their arrival order unless the first one is left out.
 */
/** The longest a batch waits for one lock (a stream's row, mostly) before it leaves that append out. */
export const batchLockWaitMs = 50

export const appendBatchFunction = (t: Tables): string => `
create or replace function ${t.appendBatchFunction}(p_batch jsonb) returns jsonb
language plpgsql set lock_timeout = '${batchLockWaitMs}ms' as $fn$
declare
  v_item jsonb;
  v_result record;
  v_results jsonb := '[]'::jsonb;
  v_detail text;
  v_count integer := jsonb_array_length(p_batch);
  v_current integer[] := '{}';
  v_created boolean[] := '{}';
  v_version integer;
  v_events integer;
  v_deleted integer;
begin
  if not exists (
       select 1 from jsonb_array_elements(p_batch) as i(item)
       where jsonb_array_length(i.item->'claims') > 0 or jsonb_array_length(i.item->'releases') > 0
          or i.item->>'commandId' is not null)
     and (select count(distinct i.item->>'streamId') = v_count from jsonb_array_elements(p_batch) as i(item)) then
    begin
      -- each stream's row, in the batch's order (the caller sorts it by stream: one lock order, no deadlocks)
      for k in 0 .. v_count - 1 loop
        v_item := p_batch->k;
        v_events := jsonb_array_length(v_item->'events');
        v_version := null;
        if v_events > 0 and (v_item->>'kind' in ('Any', 'NoStream')
            or (v_item->>'kind' = 'Exact' and (v_item->>'expected')::integer = 0)) then
          insert into ${t.streams} (stream_id, version) values (v_item->>'streamId', v_events)
          on conflict (stream_id) do nothing;
          if found then
            v_version := 0;
          end if;
        end if;
        v_created := v_created || (v_version is not null);
        if v_version is null then
          select s.version, s.deleted into v_version, v_deleted from ${t.streams} s
          where s.stream_id = v_item->>'streamId' for update;
          if v_deleted <> 0 then
            -- a deleted stream: its refusal is reported append by append
            raise exception using errcode = 'P0002';
          end if;
        end if;
        v_current := v_current || coalesce(v_version, 0);
      end loop;
      -- an event id already stored in its stream: a retry (or an id conflict), sorted out append by append
      if exists (
           select 1 from jsonb_array_elements(p_batch) with ordinality as i(item, ord)
           cross join lateral jsonb_array_elements(i.item->'events') as ev(event)
           join ${t.events} e on e.event_id = (ev.event->>'eventId')::uuid and e.stream_id = i.item->>'streamId'
           where v_current[i.ord] > 0) then
        raise exception using errcode = 'P0002';
      end if;
      with items as (
        select i.ord, i.item, v_current[i.ord] as current, v_created[i.ord] as created,
               jsonb_array_length(i.item->'events') as n,
               case i.item->>'kind'
                 when 'Any' then true
                 when 'NoStream' then v_current[i.ord] = 0
                 when 'StreamExists' then v_current[i.ord] > 0
                 else v_current[i.ord] = (i.item->>'expected')::integer
               end as accepted
        from jsonb_array_elements(p_batch) with ordinality as i(item, ord)
      ), inserted as (
        insert into ${t.events} (stream_id, category, stream_hash, version, event_id, type, schema_version, data, metadata)
        select it.item->>'streamId', it.item->>'category', (it.item->>'hash')::bigint, it.current + ev.k,
               (ev.event->>'eventId')::uuid, ev.event->>'type', (ev.event->>'schemaVersion')::integer,
               (ev.event->>'data')::json, (ev.event->>'metadata')::json
        from items it cross join lateral jsonb_array_elements(it.item->'events') with ordinality as ev(event, k)
        where it.accepted
        order by it.ord, ev.k
        returning stream_id, version, position
      ), positions as (
        select stream_id, jsonb_agg(position::text order by version) as positions from inserted group by stream_id
      ), bumped as (
        update ${t.streams} s set version = it.current + it.n
        from items it
        where it.accepted and not it.created and it.n > 0 and s.stream_id = it.item->>'streamId'
      )
      select coalesce(jsonb_agg(
               case when it.accepted
                 then jsonb_build_object('outcome', 'ok', 'version', it.current + it.n,
                        'positions', coalesce(p.positions, '[]'::jsonb), 'stored', null)
                 else jsonb_build_object('outcome', 'conflict', 'version', it.current,
                        'positions', null, 'stored', null)
               end order by it.ord), '[]'::jsonb)
        into v_results
      from items it left join positions p on p.stream_id = it.item->>'streamId';
      raise debug 'effect-eventsourcing: batch appended set-based';
      return v_results;
    exception when others then
      -- undone (stream rows created included): the batch runs append by append below
      v_results := '[]'::jsonb;
    end;
  end if;
  raise debug 'effect-eventsourcing: batch appended append by append';
  for v_item in select value from jsonb_array_elements(p_batch) loop
    begin
      select * into v_result from ${t.appendFunction}(
        v_item->>'streamId', v_item->>'category', (v_item->>'hash')::bigint, v_item->>'kind', (v_item->>'expected')::integer, v_item->'events',
        v_item->'claims', v_item->'releases', v_item->>'commandId', (v_item->>'ttl')::bigint);
      v_results := v_results || jsonb_build_array(jsonb_build_object(
        'outcome', v_result.o_outcome, 'version', v_result.o_version,
        'positions', to_jsonb(v_result.o_positions::text[]), 'stored', to_jsonb(v_result.o_stored)));
    exception
      when lock_not_available then
        v_results := v_results || jsonb_build_array(jsonb_build_object('outcome', 'busy'));
      when others then
        get stacked diagnostics v_detail = pg_exception_detail;
        v_results := v_results || jsonb_build_array(jsonb_build_object(
          'outcome', 'error', 'code', sqlstate, 'message', sqlerrm, 'detail', v_detail));
    end;
  end loop;
  return v_results;
end
$fn$`
