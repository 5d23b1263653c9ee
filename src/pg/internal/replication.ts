/**
 * A PostgreSQL hot standby's replication lag, as the standby itself sees it (see
 * `EventStore.ReplicationLag`): how much WAL it received and has not replayed, for how long, and whether
 * its WAL receiver runs. Read on the standby: the primary's own view (`pg_stat_replication`) needs a
 * connection to the primary, which a reader of the standby may not have.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { ReplicationLag } from "../../EventStore.js"

/**
 * The standby's lag; none when the server is not in recovery (a primary, or a standby since promoted).
 * The seconds are the usual estimate: the age of the last replayed commit while received WAL waits to be
 * replayed, 0 once all of it is (an idle primary sends no commits, and a standby that replayed all it got
 * is not behind on what it knows of). `pg_stat_wal_receiver` shows its row to every role (its details only
 * to privileged ones): its presence is whether the receiver runs.
 */
export const lag = (sql: SqlClient.SqlClient): Effect.Effect<Option.Option<ReplicationLag>, SqlError> =>
  Effect.map(
    sql<{
      readonly recovery: boolean
      readonly bytes: string | number | null
      readonly seconds: number | null
      readonly receiving: boolean
    }>`select pg_is_in_recovery() as recovery,
        pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 as bytes,
        case when pg_last_wal_receive_lsn() is null or pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() then 0
          else extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 end as seconds,
        exists (select 1 from pg_stat_wal_receiver) as receiving`,
    ([row]) =>
      row === undefined || !row.recovery
        ? Option.none()
        : Option.some({
            seconds: Math.max(0, Number(row.seconds ?? 0)),
            bytes: Math.max(0, Number(row.bytes ?? 0)),
            receiving: row.receiving
          })
  )
