/**
 * The folded state of recently used aggregates, most recently used kept, so that a command reads only
 * the events after the cached version.
 *
 * An entry names the id of the event at its version, and a load reads from that version: if the event
 * found there is another one (the stream was deleted and written again, a transaction that appended it
 * rolled back, a database restored), the entry is dropped and the aggregate loaded in full. So a cached
 * state is only ever used on the history it was folded from.
 *
 * @internal
 */

/** An aggregate's state after the event `eventId` at `version`. */
export interface Entry<S> {
  readonly state: S
  readonly version: number
  readonly eventId: string
  /** The version of the latest snapshot known, for the snapshot strategy. */
  readonly snapshotVersion: number
}

export interface StateCache<S> {
  readonly get: (key: string) => Entry<S> | undefined
  readonly set: (key: string, entry: Entry<S>) => void
  readonly delete: (key: string) => void
}

/** A cache of at most `capacity` aggregates (least recently used dropped first); 0 keeps nothing. */
export const make = <S>(capacity: number): StateCache<S> => {
  // a Map iterates in insertion order: re-inserting on use keeps the least recently used first
  const entries = new Map<string, Entry<S>>()
  return {
    get: (key) => {
      const entry = entries.get(key)
      if (entry !== undefined) {
        entries.delete(key)
        entries.set(key, entry)
      }
      return entry
    },
    set: (key, entry) => {
      if (capacity <= 0) return
      entries.delete(key)
      entries.set(key, entry)
      if (entries.size > capacity) entries.delete(entries.keys().next().value!)
    },
    delete: (key) => {
      entries.delete(key)
    }
  }
}
