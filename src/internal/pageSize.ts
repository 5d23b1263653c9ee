/**
 * The page size of an operator's listing (`SagaStore` `instances`): the option if it is a positive integer,
 * its default if absent, else why it is refused.
 */
import * as Either from "effect/Either"

export const pageSize = (limit: number | undefined, fallback: number): Either.Either<number, string> => {
  const size = limit ?? fallback
  return Number.isSafeInteger(size) && size > 0
    ? Either.right(size)
    : Either.left(`a page limit is a positive integer, not ${size}`)
}
